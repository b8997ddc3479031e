"""Experiment configs: one YAML per experiment on a shared base, overridable from the command
line (``key=value``, OmegaConf dotlist) and the environment (``DATA_ROOT``, ``WANDB_MODE``).

The merged config is *struct*: a key that is not in the base is an error that lists the valid
keys, so a typo never silently does nothing.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

CONFIG_DIR = Path(__file__).parent / "configs"
#: Sections whose keys are not fixed by the base (model constructor arguments).
OPEN_KEYS = ("model.kwargs",)


class ConfigError(ValueError):
    """A config problem stated in one sentence a user can act on."""


def available() -> list[str]:
    """Experiment names: every YAML in configs/ except the shared base."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "base")


def _leaf_keys(cfg, prefix="") -> list[str]:
    keys = []
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        if isinstance(v, DictConfig) and len(v):
            keys.extend(_leaf_keys(v, full + "."))
        else:
            keys.append(full)
    return keys


def load_config(name: str, overrides: list[str] | tuple[str, ...] = (), env: dict | None = None) -> DictConfig:
    """Base, then the experiment's YAML, then the environment, then ``overrides``."""
    env = os.environ if env is None else env
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"no experiment named {name!r}; available: {', '.join(available())}")
    base = OmegaConf.load(CONFIG_DIR / "base.yaml")
    OmegaConf.set_struct(base, True)
    for key in OPEN_KEYS:  # free-form: constructor arguments of whichever model is named
        OmegaConf.set_struct(OmegaConf.select(base, key), False)
    env_over = []
    if env.get("DATA_ROOT"):
        env_over.append(f"data_root={env['DATA_ROOT']}")
    if env.get("WANDB_MODE"):
        env_over.append(f"wandb.mode={env['WANDB_MODE']}")
    try:
        cfg = OmegaConf.merge(base, OmegaConf.load(path), OmegaConf.from_dotlist(env_over))
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value")
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
    except (ConfigAttributeError, ConfigKeyError) as e:
        key = getattr(e, "full_key", None) or str(e)
        valid = _leaf_keys(base)
        close = difflib.get_close_matches(str(key), valid, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown config key {key!r}.{hint} Valid keys: {', '.join(valid)}") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad config value: {e}".splitlines()[0]) from None
    cfg.name = name
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
