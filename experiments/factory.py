"""The objects of one fold, built from a resolved config through :mod:`experiments.instantiate`.

The runner supplies what the data decides (the model's ``n_chans``, ``n_times``, ``sfreq``...,
the DataModule's dataset folder and held-out patient, the run folder's paths); every other
argument comes from the config, where it was checked and completed before any data was read.
:func:`check_buildable` builds each object once without data, so an out-of-range value fails
up front in one sentence naming its key, not inside every fold after the cache build.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .instantiate import ConfigError, build, section_target

#: Passed to every window model; a model takes the ones its constructor names.
N_OUTPUTS = 2


def plain(node) -> dict | None:
    if node is None:
        return None
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def _registry(cfg) -> dict:
    return plain(cfg.models) or {}


def holds_out_recordings(cfg: DictConfig) -> bool:
    """A patient-specific study: each fold is one recording (``data.holdout=recording``)."""
    return (cfg.get("data") or {}).get("holdout", "patient") == "recording"


def build_datamodule(cfg: DictConfig, fold: str, *, data_root: str | None = None, recordings=None):
    held_out = ({"test_patient": None, "test_recording": fold} if holds_out_recordings(cfg)
                else {"test_patient": fold})
    return build("data", plain(cfg.data), data_root=str(data_root or cfg.data_root), **held_out,
                 cache_dir=str(cfg.cache_dir), seed=int(cfg.seed), recordings=recordings,
                 progress=bool(cfg.trainer.get("enable_progress_bar", True)), only_accepted=True)


def model_shape(dm) -> dict:
    """The signal-shaped constructor arguments the data decides (braindecode's names)."""
    return {**dm.model_shape(), "n_outputs": N_OUTPUTS}


def build_model(cfg: DictConfig, dm):
    """The model and its spec ``{"name", "kwargs"}`` (all constructor arguments, for checkpoints)."""
    from .instantiate import parameters

    resolved = plain(cfg.model)
    registry = _registry(cfg)
    shape = model_shape(dm)
    model = build("model", resolved, registry, only_accepted=True, **shape)
    accepted = parameters(section_target("model", resolved, registry))
    kwargs = {**{k: v for k, v in resolved.items() if k != "_target_"},
              **{k: v for k, v in shape.items() if k in accepted}}
    return model, {"name": resolved["_target_"], "kwargs": kwargs}


def build_module(cfg: DictConfig, model, model_spec: dict, dm):
    resolved = plain(cfg.module)
    return build("module", resolved, model=model, model_spec=model_spec, channels=tuple(dm.channels),
                 logit_shift=prior_logit_shift(resolved, dm), only_accepted=True)


def prior_logit_shift(module_cfg: dict, dm) -> float:
    """``logit(p_data) - logit(p_sampled)``, less the log seizure/background class-weight ratio:
    what turns a detector trained on balanced batches into one reporting probabilities at the
    data's prevalence (0 when the module does not ask for it or the data cannot tell)."""
    import math

    if not module_cfg.get("prior_correction") or not hasattr(dm, "class_prior"):
        return 0.0
    try:
        p_data, p_sampled = dm.class_prior()
    except (AttributeError, KeyError):  # clips, or a DataModule without training windows
        return 0.0
    if not (0 < p_data < 1 and 0 < p_sampled < 1):
        return 0.0
    shift = math.log(p_data / (1 - p_data)) - math.log(p_sampled / (1 - p_sampled))
    weights = module_cfg.get("class_weights")
    if weights:
        shift -= math.log(float(weights[1]) / float(weights[0]))
    return float(shift)


def build_pruning(cfg: DictConfig):
    if cfg.pruning is None:
        return None
    return build("pruning", plain(cfg.pruning), seed=int(cfg.seed), only_accepted=True)


def build_activation_maps(cfg: DictConfig, out_dir: Path | None):
    if cfg.activation_maps is None:
        return None
    return build("activation_maps", plain(cfg.activation_maps), out_dir=out_dir)


def build_early_stopping(cfg: DictConfig):
    if cfg.early_stopping is None or cfg.pruning is not None:  # the pruning schedule decides the end
        return None
    return build("early_stopping", plain(cfg.early_stopping), monitor=str(cfg.monitor.metric),
                 mode=str(cfg.monitor.mode))


def build_postprocess(cfg: DictConfig):
    return build("postprocess", plain(cfg.postprocess))


def build_scoring(cfg: DictConfig):
    return build("scoring", plain(cfg.scoring))


def build_evaluation(cfg: DictConfig):
    return build("evaluation", plain(cfg.evaluation))


def build_launcher(cfg: DictConfig):
    return build("launcher", plain(cfg.launcher))


def build_trainer(cfg: DictConfig, *, callbacks=(), logger=False, default_root_dir: str | None = None,
                  plugins=(), checkpointing: bool = True):
    return build("trainer", plain(cfg.trainer), callbacks=list(callbacks), logger=logger,
                 plugins=list(plugins) or None, default_root_dir=default_root_dir,
                 enable_checkpointing=checkpointing, enable_model_summary=False, num_sanity_val_steps=0,
                 deterministic=False)


def build_loggers(cfg: DictConfig, fold: str, run_dir: Path, fold_dir: Path, attempt: int) -> list:
    """CSV metrics of this training attempt (merged into ``csv/metrics.csv`` after fit), and W&B
    (one run per fold, grouped by the experiment run; offline by default, so the run folder
    holds the media for a later ``wandb sync``)."""
    from pytorch_lightning.loggers import CSVLogger

    loggers = [CSVLogger(str(fold_dir), name="csv", version=f"attempt-{attempt}")]
    if cfg.wandb is not None and cfg.wandb.mode != "disabled":
        from pytorch_lightning.loggers import WandbLogger

        loggers.append(WandbLogger(project=cfg.wandb.project, entity=cfg.wandb.entity,
                                   group=f"{cfg.name}/{cfg.run_id}", name=fold, job_type="fold",
                                   save_dir=str(run_dir), mode=cfg.wandb.mode, offline=cfg.wandb.mode == "offline",
                                   config=plain(cfg), reinit="create_new"))
    return loggers


class _ShapeOnly:
    """Stands in for a DataModule before any data is read: the shape its config implies."""

    def __init__(self, dm):
        self.channels = tuple(dm.channels)
        self._dm = dm

    def model_shape(self) -> dict:
        try:
            return self._dm.model_shape()
        except RuntimeError:  # native sampling rate: known after the cache; any rate checks the rest
            return self._dm.model_shape(sfreq=256.0)


def check_buildable(cfg: DictConfig) -> None:
    """Build every object of a fold once, without data: a bad value fails here, in one sentence
    naming its key, before the corpus or the cache is touched. Raises :class:`ConfigError`."""
    import torch

    dm = build_datamodule(cfg, "<held-out patient>", data_root="<dataset>")
    shape = _ShapeOnly(dm)
    model, spec = build_model(cfg, shape)
    if isinstance(model, torch.nn.Module):  # an untrained rule (line_length) has no LightningModule
        build_module(cfg, model, spec, shape)
    pruning = build_pruning(cfg)
    if pruning is not None and not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        raise ConfigError(f"pruning needs a convolutional model; model._target_ is {cfg.model._target_}")
    build_activation_maps(cfg, None)
    build_early_stopping(cfg)
    build_postprocess(cfg)
    build_scoring(cfg)
    build_evaluation(cfg)
    build_launcher(cfg)
    try:
        build_trainer(cfg, checkpointing=False)
    except ConfigError:
        raise
    except Exception as e:  # Lightning's MisconfigurationException (e.g. accelerator=gpu without one)
        raise ConfigError(f"trainer: {str(e).splitlines()[0]}") from None
