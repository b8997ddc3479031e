"""A model named by its class path and constructor arguments, so a checkpoint can rebuild it."""
from __future__ import annotations

import importlib

from torch import nn


def import_class(path: str):
    """``"package.module.ClassName"`` -> the class."""
    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise ValueError(f"model class must be a dotted path 'module.Class', got {path!r}")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"cannot import model class {path!r}: {err}") from err


def build_model(model_class: str, model_kwargs: dict | None) -> nn.Module:
    """Instantiate ``"package.module.ClassName"`` with ``model_kwargs``."""
    return import_class(model_class)(**dict(model_kwargs or {}))


def resolve_model(model: nn.Module | None, model_class: str | None, model_kwargs: dict | None,
                  owner: str) -> tuple[nn.Module, str, dict | None]:
    """The model a LightningModule wraps, and the (class path, kwargs) that rebuild it: built from
    them when ``model`` is None (``load_from_checkpoint``), else read off the model
    (``init_kwargs`` where it has them)."""
    if model is None:
        if model_class is None:
            raise ValueError(f"{owner} needs a model or a model_class to build one")
        return build_model(model_class, model_kwargs), model_class, model_kwargs
    if model_class is None:
        model_class = f"{type(model).__module__}.{type(model).__qualname__}"
        if model_kwargs is None:
            model_kwargs = getattr(model, "init_kwargs", None)
    return model, model_class, model_kwargs
