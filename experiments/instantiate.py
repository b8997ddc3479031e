"""Config to objects: the one path from an experiment config to the objects it asks for.

Each section of a config builds one object. A section with a choice names it with ``_target_``
(``model: {_target_: lsn, dropout: 0.1}``) and passes its other keys as the constructor's
keyword arguments; a fixed section (``trainer``, ``postprocess``, ...) always builds the same
class. The constructor is the only place a default lives: :func:`resolve_section` checks a
section against the constructor's signature (unknown keys, types, choices) and fills in the
defaults, so the run folder records every argument that was used.

``_target_`` is a name from an allow-list of this project's classes (:data:`SECTIONS`), never an
import path read from a file: a config or checkpoint someone sends you cannot make this code
import or call anything else. Your own model classes join the allow-list only when your config
registers them by name (``models: {mynet: mypkg.nets.MyNet}``).
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence as AbcSequence
from dataclasses import dataclass
from functools import cache
from pathlib import PurePath
from typing import Any, Literal, Union

TARGET = "_target_"


class ConfigError(ValueError):
    """A config problem stated in one sentence a user can act on (names the key)."""


@dataclass(frozen=True)
class Section:
    """What a config section builds.

    Attributes
    ----------
    targets : mapping
        Allow-list, name -> dotted path of a class or function of this project. A section with
        one entry and ``choice=False`` has no ``_target_`` key.
    reserved : tuple of str
        Constructor arguments the runner supplies (from the data, the run folder...): a config
        setting one is an error.
    optional : bool
        ``null`` switches the section (and what it builds) off.
    fill_defaults : bool
        Record the constructor's defaults in the resolved config (off for third-party classes
        with dozens of arguments, such as ``pl.Trainer``: only what is set is recorded).
    user_registry : str or None
        Top-level config key whose ``name: dotted.path`` entries extend the allow-list.
    """

    targets: Mapping[str, str]
    reserved: tuple[str, ...] = ()
    choice: bool = True
    optional: bool = False
    fill_defaults: bool = True
    user_registry: str | None = None


#: Every object-building section of an experiment config.
SECTIONS: dict[str, Section] = {
    "synthetic": Section({"generate_corpus": "datamodules.synthetic.generate_corpus"}, choice=False,
                         reserved=("overwrite", "progress")),
    "data": Section({"windows": "datamodules.datamodule.LOSODataModule",
                     "clips": "datamodules.clip_datamodule.LOSOClipDataModule"},
                    reserved=("data_root", "test_patient", "test_recording", "cache_dir", "seed", "recordings",
                              "progress")),
    "model": Section({"lsn": "lightning_modules.lsn.LightSeizureNet",
                      "szloc": "lightning_modules.szloc.SZLoc",
                      "line_length": "lightning_modules.baselines.LineLengthDetector"},
                     reserved=("n_chans", "n_outputs", "n_times", "sfreq", "n_windows", "window_samples"),
                     user_registry="models"),
    "module": Section({"detection": "lightning_modules.detection.SeizureDetectionModule",
                       "localization": "lightning_modules.localization.SeizureLocalizationModule"},
                      reserved=("model", "model_spec", "channels", "logit_shift")),
    "trainer": Section({"Trainer": "pytorch_lightning.Trainer"}, choice=False, fill_defaults=False,
                       reserved=("callbacks", "logger", "plugins", "default_root_dir", "enable_checkpointing",
                                 "enable_model_summary", "num_sanity_val_steps", "deterministic")),
    "monitor": Section({"Monitor": "experiments.settings.Monitor"}, choice=False),
    "early_stopping": Section({"EarlyStopping": "pytorch_lightning.callbacks.EarlyStopping"}, choice=False,
                              optional=True, fill_defaults=False, reserved=("monitor", "mode")),
    "pruning": Section({"kernel_pruning": "callbacks.pruning.KernelPruning"}, optional=True,
                       reserved=("example_input", "seed")),
    "activation_maps": Section({"ActivationMapLogger": "callbacks.activation_maps.ActivationMapLogger"},
                               choice=False, optional=True, reserved=("out_dir",)),
    "postprocess": Section({"PostprocessConfig": "experiments.events.PostprocessConfig"}, choice=False),
    "scoring": Section({"ScoringParams": "experiments.scoring.ScoringParams"}, choice=False),
    "evaluation": Section({"EvaluationSettings": "experiments.settings.EvaluationSettings"}, choice=False),
    "wandb": Section({"WandbSettings": "experiments.settings.WandbSettings"}, choice=False, optional=True),
    "launcher": Section({"LauncherSettings": "experiments.launchers.LauncherSettings"}, choice=False),
}


def import_path(path: str):
    """``"package.module.Name"`` -> the object (only ever called with allow-listed paths)."""
    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise ConfigError(f"{path!r} is not a dotted path 'package.module.Name'")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot import {path!r}: {e}") from None


def allowed(section: str, registry: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-list of ``section``: the project's names plus the user's registrations."""
    out = dict(SECTIONS[section].targets)
    for name, path in (registry or {}).items():
        if name in out and out[name] != path:
            raise ConfigError(f"models.{name}: {name!r} is a built-in model; register yours under another name")
        out[name] = str(path)
    return out


def resolve_target(section: str, name: str, registry: Mapping[str, str] | None = None,
                   key: str | None = None):
    """The class (or function) ``name`` of ``section``'s allow-list. A dotted path is accepted
    only when it is the path of an allowed entry."""
    table = allowed(section, registry)
    if name not in table:
        by_path = {v: k for k, v in table.items()}
        if name in by_path:
            name = by_path[name]
        else:
            close = difflib.get_close_matches(str(name), list(table), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            extra = (" or register your own class under `models:` in your config"
                     if SECTIONS[section].user_registry else "")
            raise ConfigError(f"{key or section + '.' + TARGET} is {name!r}{hint}: use one of "
                              f"{', '.join(sorted(table))}{extra}")
    return import_path(table[name])


def target_name(section: str, obj_or_cls, registry: Mapping[str, str] | None = None) -> str:
    """The allow-list name of a class (or of an object's class) in ``section``."""
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    path = f"{cls.__module__}.{cls.__qualname__}"
    for name, p in allowed(section, registry).items():
        if p == path:
            return name
    raise ConfigError(f"{cls.__name__} is not an allowed {section} ({', '.join(allowed(section, registry))}); "
                      "register it under `models:` in your config")


# -- signatures ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any
    default: Any
    required: bool


@cache
def parameters(target) -> dict[str, Param]:
    """Keyword parameters of a class constructor (or function), with resolved type hints. A
    constructor that passes ``**kwargs`` on to its base class also takes the base's parameters
    (their defaults stay in the base)."""
    fn = target.__init__ if isinstance(target, type) else target
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that cannot be resolved is simply not type-checked
        hints = {}
    out = {}
    forwards = False
    for p in sig.parameters.values():
        if p.name == "self" or p.kind == p.VAR_POSITIONAL:
            continue
        if p.kind == p.VAR_KEYWORD:
            forwards = True
            continue
        out[p.name] = Param(p.name, hints.get(p.name, Any), p.default, p.default is inspect.Parameter.empty)
    if forwards and isinstance(target, type):
        base = next((b for b in target.__mro__[1:] if "__init__" in vars(b) and b is not object), None)
        if base is not None:
            for name, p in parameters(base).items():
                out.setdefault(name, p)
    return out


def _dataclass_in(annotation):
    """The dataclass type an annotation names (alone or in a Union), else None."""
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        for a in typing.get_args(annotation):
            if dataclasses.is_dataclass(a) and isinstance(a, type):
                return a
    return None


# -- values -------------------------------------------------------------------------------------
class _Mismatch(Exception):
    pass


def describe(annotation) -> str:
    """An annotation in words: ``Optional[int]`` -> ``an integer or null``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None) or annotation is None:
        return "null"
    if origin in (Union, types.UnionType):
        parts = []
        for a in args:
            d = describe(a)
            if d not in parts:
                parts.append(d)
        return " or ".join(parts)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if annotation is str or annotation in (os.PathLike, PurePath) or (isinstance(annotation, type)
                                                                      and issubclass(annotation, PurePath)):
        return "a string"
    if origin in (list, tuple, AbcSequence) or annotation in (list, tuple):
        return "a list"
    if origin in (dict, AbcMapping) or annotation in (dict,):
        return "a mapping"
    if dataclasses.is_dataclass(annotation):
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


def conform(value, annotation, key: str):
    """``value`` checked against ``annotation`` (and made plain: lists, dicts, floats for ints
    where a number is asked). Raises :class:`ConfigError` naming ``key``."""
    try:
        return _conform(value, annotation, key)
    except _Mismatch:
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        raise ConfigError(f"{key} must be {describe(annotation)}, got {shown}") from None


def _conform(value, annotation, key):
    if annotation is Any or annotation is inspect.Parameter.empty:
        return value
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _conform(value, args[0], key)
    if annotation is type(None) or annotation is None:
        if value is None:
            return None
        raise _Mismatch
    if origin in (Union, types.UnionType):
        # a ConfigError inside a member (e.g. a nested dataclass) is the precise one: keep it
        for a in args:
            try:
                return _conform(value, a, key)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise _Mismatch
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if isinstance(annotation, type) and issubclass(annotation, PurePath) or annotation is os.PathLike:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        if isinstance(value, dict):
            return resolve_fields(value, annotation, key)
        raise _Mismatch
    if origin in (list, AbcSequence) or annotation in (list,):
        if isinstance(value, (list, tuple)):
            item = args[0] if args else Any
            return [_conform(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        raise _Mismatch
    if origin is tuple or annotation is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if args and args[-1] is Ellipsis:
            return [_conform(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        if args:
            if len(value) != len(args):
                raise _Mismatch
            return [_conform(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        return list(value)
    if origin in (dict, AbcMapping) or annotation is dict:
        if isinstance(value, dict):
            return value
        raise _Mismatch
    if isinstance(annotation, type):
        # a class no config can spell (nn.Module, Tensor...): only None passes, when allowed
        if isinstance(value, annotation):
            return value
        raise _Mismatch
    return value


def _unknown(key: str, path: str, known) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=3)
    hint = f" Did you mean {', '.join(f'{path}.{c}' for c in close)}?" if close else ""
    return ConfigError(f"unknown config key '{path}.{key}'.{hint} Valid keys: "
                       f"{', '.join(f'{path}.{k}' for k in known)}")


def resolve_fields(node: dict, cls, path: str) -> dict:
    """A mapping checked against a dataclass's fields, defaults filled in."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    out = {}
    for k, v in node.items():
        if k not in fields:
            raise _unknown(k, path, fields)
        out[k] = conform(v, hints.get(k, Any), f"{path}.{k}")
    for name, f in fields.items():
        if name in out:
            continue
        if f.default is not dataclasses.MISSING:
            out[name] = plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[name] = plain(f.default_factory())
        else:
            raise ConfigError(f"{path}.{name} is required")
    return out


def plain(value):
    """A default as a config can hold it (tuples -> lists, dataclasses -> mappings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def resolve_section(name: str, node, registry: Mapping[str, str] | None = None) -> dict | None:
    """Check one section (a plain mapping) and return it with its target's defaults filled in.

    Raises :class:`ConfigError` for an unknown target, an unknown key, a reserved key, a value of
    the wrong type or an unknown choice, naming the key."""
    spec = SECTIONS[name]
    if node is None:
        if spec.optional:
            return None
        raise ConfigError(f"{name} cannot be null")
    if not isinstance(node, dict):
        raise ConfigError(f"{name} must be a mapping of settings, got {node!r}")
    node = dict(node)
    if spec.choice:
        if TARGET not in node:
            raise ConfigError(f"{name}.{TARGET} is missing: use one of {', '.join(sorted(allowed(name, registry)))}")
        choice = node.pop(TARGET)
        target = resolve_target(name, str(choice), registry)
        choice = target_name(name, target, registry)
    else:
        if TARGET in node:
            raise ConfigError(f"{name} builds one thing only: remove its {TARGET} key")
        choice = None
        target = import_path(next(iter(spec.targets.values())))
    out: dict = {TARGET: choice} if choice is not None else {}
    if dataclasses.is_dataclass(target) and isinstance(target, type):  # settings records
        return {**out, **resolve_fields(node, target, name)}
    params = parameters(target)
    settable = {k: p for k, p in params.items() if k not in spec.reserved}
    for k, v in node.items():
        if k in spec.reserved and k in params:
            raise ConfigError(f"{name}.{k} is set by the runner (from the data and the run folder), "
                              "not by the config")
        if k not in settable:
            raise _unknown(k, name, settable)
        p = settable[k]
        dc = _dataclass_in(p.annotation)
        if dc is not None and isinstance(v, dict):
            out[k] = resolve_fields(v, dc, f"{name}.{k}")
        else:
            out[k] = conform(v, p.annotation, f"{name}.{k}")
    if spec.fill_defaults:
        for k, p in settable.items():
            if k in out:
                continue
            if p.required:
                raise ConfigError(f"{name}.{k} is required by {getattr(target, '__name__', target)}")
            dc = _dataclass_in(p.annotation)
            default = p.default
            if dc is not None and default is None:
                default = dc()
            out[k] = plain(default)
    return out


def section_target(name: str, resolved: dict, registry: Mapping[str, str] | None = None):
    """The class (or function) a resolved section builds."""
    spec = SECTIONS[name]
    if spec.choice:
        return resolve_target(name, resolved[TARGET], registry)
    return import_path(next(iter(spec.targets.values())))


def build(name: str, resolved: dict, registry: Mapping[str, str] | None = None, *,
          only_accepted: bool = False, **injected):
    """Build a resolved section, with the runner's ``injected`` arguments.

    ``only_accepted`` drops injected arguments the target does not take (a model is given the
    signal-shaped arguments it asks for: ``n_chans``, ``n_times``, ``sfreq``...). A ValueError or
    TypeError from the constructor becomes a :class:`ConfigError` naming the section's key."""
    target = section_target(name, resolved, registry)
    params = parameters(target)
    if only_accepted:
        injected = {k: v for k, v in injected.items() if k in params}
    kwargs = {k: v for k, v in resolved.items() if k != TARGET}
    try:
        kwargs = {k: _as_dataclass(v, params[k].annotation) if k in params else v for k, v in kwargs.items()}
        return target(**kwargs, **injected)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(_name_key(name, str(e).splitlines()[0] if str(e) else type(e).__name__,
                                    list(kwargs))) from None


def _as_dataclass(value, annotation):
    """A mapping given where a constructor asks for exactly a dataclass becomes that dataclass."""
    if isinstance(value, dict) and dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        hints = typing.get_type_hints(annotation)
        return annotation(**{k: _as_dataclass(v, hints.get(k)) for k, v in value.items()})
    return value


def _name_key(section: str, message: str, keys: list[str]) -> str:
    """``"batch_size must be >= 1"`` in section ``data`` -> ``"data.batch_size must be >= 1"``."""
    first = re.match(r"^(\w+)", message)
    if first and first.group(1) in keys:
        return f"{section}.{message}"
    for k in sorted(keys, key=len, reverse=True):
        if re.search(rf"\b{re.escape(k)}\b", message):
            return f"{section}.{k}: {message}"
    return f"{section}: {message}"


def call_with(target: Callable, kwargs: Mapping[str, Any]):
    """``target(**kwargs)`` keeping only the arguments it takes."""
    params = parameters(target)
    return target(**{k: v for k, v in kwargs.items() if k in params})
