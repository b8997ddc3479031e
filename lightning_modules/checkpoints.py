"""Self-describing, safe checkpoints.

Every checkpoint a LightningModule of this project saves carries, under :data:`SPEC_KEY`, what it
takes to use it with nothing else at hand: the module and model by their allow-list names
(:mod:`lightning_modules.registry`) with their constructor arguments, and a ``run`` section the
runner fills (montage and channel list, sampling rate, window length, preprocessing, the
post-processing and the event threshold tuned on the validation patients).

Loading never executes code from the file: :func:`read_checkpoint` uses
``torch.load(weights_only=True)`` (tensors and plain values only, no pickled objects), and
:func:`load_module` builds the classes from the allow-list by name. A stored import path, a
``__reduce__`` payload or an unknown name is refused with one sentence naming the file.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from .registry import MODULES, UnknownClassError, model_class, models, module_class, name_of, register_model

SPEC_KEY = "seizure_lightning"
FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, in one sentence naming the file."""


class SelfDescribing:
    """Mixin of this project's LightningModules: save the spec, load through the allow-list.

    ``on_save_checkpoint`` writes :func:`describe` under :data:`SPEC_KEY`; Lightning's
    ``load_from_checkpoint`` (which would unpickle hyper-parameters) is replaced by
    :func:`load_module`: ``weights_only`` loading, classes from the allow-list only.
    """

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[SPEC_KEY] = describe(self)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None, strict=None,
                             **kwargs):
        """The module of a checkpoint, rebuilt safely (:func:`load_module`)."""
        module = load_module(checkpoint_path)
        if not isinstance(module, cls):
            raise CheckpointError(f"{checkpoint_path} holds a {type(module).__name__}, not a {cls.__name__}")
        return module if map_location is None else module.to(map_location)


def plain(value: Any) -> Any:
    """Only what ``weights_only`` loading accepts and a reader understands: dict, list, str,
    int, float, bool, None (tuples become lists, numpy scalars numbers, paths strings)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "items"):  # OmegaConf containers, AttributeDict
        return {str(k): plain(v) for k, v in value.items()}
    raise TypeError(f"{type(value).__name__} cannot go into a checkpoint spec (plain values only)")


def describe(module) -> dict:
    """The spec of a LightningModule of this project (what :func:`load_module` rebuilds from)."""
    model = module.model
    given = dict(getattr(module, "model_spec", None) or {})
    model_name = given.get("name") or name_of(model, models())
    kwargs = getattr(model, "init_kwargs", None)
    if kwargs is None:
        kwargs = given.get("kwargs")
    hp = {k: v for k, v in dict(module.hparams).items() if k not in ("model", "model_spec")}
    return {"format": FORMAT,
            "module": {"name": name_of(module, MODULES), "kwargs": plain(hp)},
            "model": {"name": model_name, "kwargs": plain(kwargs) if kwargs is not None else None},
            "run": plain(getattr(module, "run_spec", None) or {})}


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, loaded with ``weights_only=True``; :class:`CheckpointError` if the
    file is missing, empty, truncated, not a checkpoint, or holds anything but tensors and plain
    values."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): the process writing it was "
                              "probably killed while saving")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        named = re.search(r"GLOBAL ([\w.]+)", str(e))
        if named is None:  # not a pickle of objects at all: a damaged or foreign file
            raise CheckpointError(f"checkpoint {path} is damaged or not a PyTorch checkpoint (it cannot be "
                                  "unpickled)") from None
        raise CheckpointError(f"checkpoint {path} was refused: it holds Python objects other than tensors "
                              f"and plain values, which could run code when loaded (it names "
                              f"{named.group(1)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError,
            AttributeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is damaged or not a PyTorch checkpoint "
                              f"(truncated or overwritten?): {first[:160]}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path} holds no model weights (no state_dict): not a "
                              "Lightning checkpoint")
    return ckpt


def checkpoint_spec(ckpt: dict, path: str | Path = "checkpoint") -> dict:
    """The validated :data:`SPEC_KEY` section of a loaded checkpoint."""
    spec = ckpt.get(SPEC_KEY)
    if not isinstance(spec, dict):
        raise CheckpointError(f"{path} does not describe its model (no '{SPEC_KEY}' section): it was not "
                              "written by this project, or by a version before self-describing checkpoints")
    if spec.get("format") != FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {spec.get('format')!r}; this version reads "
                              f"format {FORMAT}")
    for part in ("module", "model"):
        sec = spec.get(part)
        if not isinstance(sec, dict) or not isinstance(sec.get("name"), str):
            raise CheckpointError(f"{path}: its spec names no {part}")
        if not isinstance(sec.get("kwargs"), dict):
            raise CheckpointError(f"{path}: the {part} {sec['name']!r} has no stored constructor arguments, "
                                  "so it cannot be rebuilt")
    if not isinstance(spec.get("run", {}), dict):
        raise CheckpointError(f"{path}: its run section is not a mapping")
    return spec


def load_module(checkpoint: str | Path | dict, *, extra_models: Mapping[str, str] | None = None,
                path: str | Path | None = None):
    """The LightningModule stored in a checkpoint, in eval mode, with ``run_spec`` restored.

    Parameters
    ----------
    checkpoint : path or dict
        A checkpoint file (read with :func:`read_checkpoint`) or its loaded dict.
    extra_models : mapping, optional
        Your own model classes, ``{name: "package.module.Class"}``, allowed for this load (a
        checkpoint can only name them; it cannot add them).
    """
    if isinstance(checkpoint, dict):
        ckpt, where = checkpoint, str(path or "checkpoint")
    else:
        ckpt, where = read_checkpoint(checkpoint), str(checkpoint)
    spec = checkpoint_spec(ckpt, where)
    for name, p in (extra_models or {}).items():
        register_model(name, p)
    try:
        mcls = model_class(spec["model"]["name"])
        modcls = module_class(spec["module"]["name"])
    except UnknownClassError as e:
        raise CheckpointError(f"{where}: {e}") from None
    try:
        model = mcls(**spec["model"]["kwargs"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: model {spec['model']['name']!r} cannot be built from its stored "
                              f"arguments: {str(e).splitlines()[0]}") from None
    try:
        module = modcls(model, model_spec={"name": spec["model"]["name"], "kwargs": spec["model"]["kwargs"]},
                        **spec["module"]["kwargs"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: module {spec['module']['name']!r} cannot be built from its stored "
                              f"arguments: {str(e).splitlines()[0]}") from None
    try:
        module.load_state_dict(ckpt["state_dict"], strict=True)
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{where}: the stored weights do not fit the model its spec describes: "
                              f"{str(e).splitlines()[0][:200]}") from None
    module.run_spec = dict(spec.get("run") or {})
    return module.eval()

