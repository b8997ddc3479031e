"""Experiment configs: one YAML per experiment on a shared base, overridable from the command
line (``key=value``, OmegaConf dotlist) and the environment (``DATA_ROOT``, ``WANDB_MODE``).

:func:`load_config` merges them and checks the result before anything touches data: top-level
keys against :data:`TOP_LEVEL`, every object-building section against the signature of the
class it names (:mod:`experiments.instantiate`), with the constructors' defaults filled in. The
result is plain (no interpolation left) and complete: it is what a run folder records.
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .instantiate import SECTIONS, ConfigError, conform, resolve_section

CONFIG_DIR = Path(__file__).parent / "configs"

#: Keys that are not object sections, and what they hold.
TOP_LEVEL: dict[str, Any] = {
    "name": str,                     # the experiment (file name), set by the loader
    "seed": int,
    "seeds": list[int] | None,       # several seeds: the study runs once per seed
    "data_root": str | None,         # dataset folder; null -> the synthetic corpus
    "cache_dir": str,
    "runs_dir": str,
    "run_id": str | None,            # null -> a new timestamped id
    "folds": list[str] | None,       # held-out patients to run (null = all)
    "models": dict[str, str],        # your own model classes, allowed by name: {name: package.module.Class}
}

#: A run id is a folder name, never a path.
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def available() -> list[str]:
    """Experiment names: every YAML in configs/ except the shared base."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "base")


def check_run_id(run_id: str) -> str:
    run_id = str(run_id)
    if not RUN_ID.match(run_id) or run_id in (".", ".."):
        raise ConfigError(f"run_id {run_id!r} must be a plain name (letters, digits, '.', '_', '-'; "
                          "no '/' and not '..'): it names a folder under runs_dir")
    return run_id


def _load_yaml(path: Path):
    try:
        return OmegaConf.load(path)
    except (OmegaConfBaseException, ValueError, OSError) as e:  # yaml errors are ValueErrors' kin
        raise ConfigError(f"{path} is not a valid YAML config: {str(e).splitlines()[0]}") from None
    except Exception as e:  # yaml.YAMLError
        raise ConfigError(f"{path} is not a valid YAML config: {str(e).splitlines()[0]}") from None


def load_config(name: str, overrides: list[str] | tuple[str, ...] = (), env: dict | None = None) -> DictConfig:
    """Base, then the experiment's YAML, then the environment, then ``overrides``; checked and
    completed. Raises :class:`ConfigError` (one sentence naming the key) on any problem."""
    env = os.environ if env is None else env
    path = CONFIG_DIR / f"{name}.yaml"
    if not re.match(r"^[A-Za-z0-9_.-]+$", str(name)) or not path.exists():
        raise ConfigError(f"no experiment named {name!r}; available: {', '.join(available())}")
    env_over = []
    if env.get("DATA_ROOT"):
        env_over.append(f"data_root={env['DATA_ROOT']}")
    if env.get("WANDB_MODE"):
        env_over.append(f"wandb.mode={env['WANDB_MODE']}")
    try:
        cfg = OmegaConf.merge(_load_yaml(CONFIG_DIR / "base.yaml"), _load_yaml(path),
                              OmegaConf.from_dotlist(env_over))
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value")
            key = item.split("=", 1)[0].strip().lstrip("+~")
            if not key:
                raise ConfigError(f"override {item!r} has no key")
            section = key[:-len("._target_")] if key.endswith("._target_") and key.count(".") == 1 else None
            if section and isinstance(cfg.get(section), DictConfig) and \
                    str(cfg[section].get("_target_")) != item.split("=", 1)[1].strip():
                # another target: the section starts afresh from its defaults (the keys the YAML
                # wrote for the old target would not fit it), as switching a Hydra config group does
                cfg[section] = OmegaConf.create({})
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        raw = OmegaConf.to_container(cfg, resolve=True)
    except ConfigError:
        raise
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad config: {str(e).splitlines()[0]}") from None
    raw["name"] = name
    return OmegaConf.create(resolve_config(raw))


def resolve_config(raw: dict) -> dict:
    """Check a merged plain config and fill in every section's defaults."""
    out: dict = {}
    known = list(TOP_LEVEL) + list(SECTIONS)
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown config key {key!r}.{hint} Valid top-level keys: {', '.join(known)}")
    for key, kind in TOP_LEVEL.items():
        default = {"seed": 0, "cache_dir": "cache", "runs_dir": "runs", "models": {}}.get(key)
        out[key] = conform(raw.get(key, default), kind, key)
    if out["run_id"] is not None:
        out["run_id"] = check_run_id(out["run_id"])
    for name, path in out["models"].items():
        if not re.match(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$", str(path)):
            raise ConfigError(f"models.{name} must be a dotted class path 'package.module.Class', got {path!r}")
    registry = out["models"]
    for name in SECTIONS:
        node = raw.get(name)
        if name not in raw and SECTIONS[name].optional:
            node = None
        elif name not in raw:
            node = {}
        spec = SECTIONS[name]
        if spec.choice and isinstance(node, dict) and "_target_" not in node and len(spec.targets) == 1:
            node = {"_target_": next(iter(spec.targets)), **node}
        out[name] = resolve_section(name, node, registry if name == "model" else None)
    _check_combination(out)
    return out


def _check_combination(cfg: dict) -> None:
    """What one section cannot check alone."""
    module, data = cfg["module"]["_target_"], cfg["data"]["_target_"]
    needs = {"detection": "windows", "localization": "clips"}
    if module in needs and data != needs[module]:
        raise ConfigError(f"module._target_={module} trains on data._target_={needs[module]}, "
                          f"but data._target_ is {data}")
    if cfg["pruning"] is not None and module != "detection":
        raise ConfigError("pruning applies to window detectors (module._target_=detection): set pruning=null")
    if cfg["seeds"] is not None and not cfg["seeds"]:
        raise ConfigError("seeds must list at least one seed, or be null")


def to_yaml(cfg: DictConfig | dict) -> str:
    return OmegaConf.to_yaml(cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg), resolve=True)


__all__ = ["ConfigError", "available", "load_config", "resolve_config", "to_yaml", "check_run_id", "CONFIG_DIR"]
