"""The allow-list of models and LightningModules: the only classes a config or a checkpoint can
name. A name maps to a dotted path of this project's code; nothing read from a file is ever
imported. Your own model joins by name, explicitly (``models:`` in your config, or
:func:`register_model` in your code)."""
from __future__ import annotations

import importlib

#: Pure models (nn.Module, (B, C, T) -> outputs), by name.
MODELS: dict[str, str] = {
    "lsn": "lightning_modules.lsn.LightSeizureNet",
    "szloc": "lightning_modules.szloc.SZLoc",
    "line_length": "lightning_modules.baselines.LineLengthDetector",  # untrained: a study of the rule alone
}

#: LightningModules that train them, by name (the ``module._target_`` of a config).
MODULES: dict[str, str] = {
    "detection": "lightning_modules.detection.SeizureDetectionModule",
    "localization": "lightning_modules.localization.SeizureLocalizationModule",
}

_USER_MODELS: dict[str, str] = {}


class UnknownClassError(ValueError):
    """A name that is not on the allow-list."""


def register_model(name: str, path: str) -> None:
    """Allow your own model class ``path`` (``package.module.Class``) under ``name``."""
    if name in MODELS and MODELS[name] != path:
        raise UnknownClassError(f"{name!r} is a built-in model; register yours under another name")
    _USER_MODELS[name] = str(path)


def models() -> dict[str, str]:
    return {**MODELS, **_USER_MODELS}


def import_path(path: str):
    """The object at ``package.module.Name`` (only called with allow-listed paths)."""
    module_name, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise UnknownClassError(f"cannot import {path!r}: {e}") from None


def model_class(name: str):
    table = models()
    if name not in table:
        raise UnknownClassError(f"model {name!r} is not allowed (known: {', '.join(sorted(table))}); "
                                "register your own class by name to use it")
    return import_path(table[name])


def module_class(name: str):
    if name not in MODULES:
        raise UnknownClassError(f"module {name!r} is not allowed (known: {', '.join(sorted(MODULES))})")
    return import_path(MODULES[name])


def name_of(obj_or_cls, table: dict[str, str] | None = None) -> str | None:
    """The allow-list name of a class (or of an object's class), None if it has none."""
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    path = f"{cls.__module__}.{cls.__qualname__}"
    for name, p in (table if table is not None else {**models(), **MODULES}).items():
        if p == path:
            return name
    return None
