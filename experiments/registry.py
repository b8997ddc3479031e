"""Config -> objects: the one place that knows which DataModule, model, LightningModule,
callbacks and loggers an experiment config asks for."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

#: Short model names; anything else is a dotted class path of an nn.Module taking
#: braindecode-style signal-shaped arguments.
MODELS = {
    "lsn": "lightning_modules.lsn.LightSeizureNet",
    "szloc": "lightning_modules.szloc.SZLoc",
}


def _container(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})


def _class(name: str):
    from lightning_modules.model_spec import import_class

    if "." not in name:
        raise ValueError(f"model {name!r}: use one of {', '.join(MODELS)} or a dotted class path")
    return import_class(name)


def build_datamodule(cfg: DictConfig, fold: str):
    from datamodules.datamodule import LOSODataModule

    d = cfg.data
    common = dict(data_root=str(cfg.data_root), test_patient=fold, cache_dir=str(cfg.cache_dir),
                  val_patients=d.val_patients, window_s=float(d.window_s), batch_size=int(d.batch_size),
                  num_workers=int(d.num_workers), seed=int(cfg.seed),
                  preprocessing=_container(d.preprocessing), progress=bool(cfg.trainer.enable_progress_bar))
    if cfg.task == "localization":
        from datamodules.clip_datamodule import LOSOClipDataModule
        common["window_s"] = 1.0  # SZLoc works on 1 s windows (data.window_s is the detectors')
        return LOSOClipDataModule(n_windows=int(d.clip_windows),
                                  background_per_seizure=float(d.background_clips_per_seizure),
                                  train_repeats=int(d.clip_train_repeats),
                                  min_overlap=float(d.min_overlap), **common)
    return LOSODataModule(train_hop_s=float(d.train_hop_s), seizure_hop_s=float(d.seizure_hop_s),
                          min_overlap=float(d.min_overlap), background_ratio=float(d.background_ratio),
                          max_seizure_windows=d.max_seizure_windows, **common)


def build_model(cfg: DictConfig, dm) -> torch.nn.Module:
    cls = _class(MODELS.get(cfg.model.name, cfg.model.name))
    kwargs = _container(cfg.model.kwargs)
    if cfg.task == "localization":
        shape = dict(n_chans=len(dm.channels), n_windows=int(cfg.data.clip_windows),
                     window_samples=int(round(dm.sfreq)), sfreq=float(dm.sfreq))
    else:
        shape = dict(n_chans=len(dm.channels), n_outputs=2, n_times=dm.n_times, sfreq=float(dm.sfreq))
    return cls(**{**shape, **kwargs})


def _module_class(cfg: DictConfig):
    if cfg.task == "localization":
        from lightning_modules.localization import SeizureLocalizationModule
        return SeizureLocalizationModule
    from lightning_modules.detection import SeizureDetectionModule
    return SeizureDetectionModule


def _module_kwargs(cfg: DictConfig, dm=None) -> dict:
    if cfg.task == "localization":
        kw = _container(cfg.localization)
        if dm is not None:
            kw.setdefault("channels", tuple(dm.channels))
        return kw
    return _container(cfg.detection)


def build_module(cfg: DictConfig, model: torch.nn.Module, dm=None):
    return _module_class(cfg)(model, **_module_kwargs(cfg, dm))


def load_module(cfg: DictConfig, ckpt: str):
    """A module from a checkpoint (the model is rebuilt from the stored class and kwargs)."""
    return _module_class(cfg).load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)


def build_pruning(cfg: DictConfig):
    from callbacks.pruning import KernelPruning

    p = cfg.pruning
    return KernelPruning(target_sparsity=float(p.target_sparsity), amount=float(p.fraction_per_round),
                         every_n_epochs=int(p.every_n_epochs), start_epoch=int(p.start_epoch),
                         criterion=str(p.criterion), scope=str(p.scope),
                         sparse_kernels=bool(p.sparse_kernels), seed=int(cfg.seed))


def build_map_logger(cfg: DictConfig, out_dir: Path):
    from callbacks.ecam import ActivationMapLogger

    m = cfg.maps
    return ActivationMapLogger(every_n_epochs=int(m.every_n_epochs), max_events=int(m.max_events),
                               pre_s=float(m.pre_s), post_s=float(m.post_s), out_dir=out_dir)


def build_loggers(cfg: DictConfig, fold: str, run_dir: Path, fold_dir: Path) -> list:
    """CSV metrics in the fold folder, and W&B (one run per fold, grouped by the experiment run;
    offline by default, so the run folder holds the media for a later ``wandb sync``)."""
    from pytorch_lightning.loggers import CSVLogger

    loggers = [CSVLogger(str(fold_dir), name="csv", version="")]
    if cfg.wandb.enabled:
        from pytorch_lightning.loggers import WandbLogger

        loggers.append(WandbLogger(project=cfg.wandb.project, entity=cfg.wandb.entity,
                                   group=f"{cfg.name}/{cfg.run_id}", name=fold, job_type="fold",
                                   save_dir=str(run_dir), mode=cfg.wandb.mode, offline=cfg.wandb.mode == "offline",
                                   config=OmegaConf.to_container(cfg, resolve=True), reinit="create_new"))
    return loggers


def collect_predictions(batches: list[dict]) -> dict:
    """Concatenate ``predict_step`` outputs into per-window columns (recording, patient,
    start_s, probability). Window models give one probability per item; clip models (SZLoc) one
    per window of each clip (``window_start_s``). A window predicted twice (overlapping last
    clip of a recording) keeps its first prediction."""
    rec, pat, start, prob = [], [], [], []
    for b in batches:
        p = torch.as_tensor(b.get("prob", b.get("probability"))).float()
        per_item = p.shape[1] if p.ndim == 2 else 1
        s = torch.as_tensor(b["window_start_s"] if "window_start_s" in b else b["start_s"]).float()
        rec += [r for r in b["recording"] for _ in range(per_item)]
        pat += [q for q in b["patient"] for _ in range(per_item)]
        start.append(s.reshape(-1).numpy())
        prob.append(p.reshape(-1).numpy())
    start_a = np.concatenate(start) if start else np.zeros(0)
    prob_a = np.concatenate(prob) if prob else np.zeros(0)
    seen, keep = set(), []
    for i, key in enumerate(zip(rec, np.round(start_a, 3))):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    keep = np.asarray(keep, dtype=int)
    return {"recording": [rec[i] for i in keep], "patient": [pat[i] for i in keep],
            "start_s": start_a[keep] if keep.size else start_a, "probability": prob_a[keep] if keep.size else prob_a}


def example_input(cfg: DictConfig, dm) -> torch.Tensor:
    """One input of the model's shape, for MACs per input."""
    if cfg.task == "localization":
        return torch.zeros(1, len(dm.channels), int(cfg.data.clip_windows) * int(round(dm.sfreq)))
    return torch.zeros(1, len(dm.channels), dm.n_times)


def extra_fold_metrics(cfg: DictConfig, trainer, module, dm, callbacks) -> dict:
    """Pruning history and compaction, ECAM localization (top channel in the SOZ)."""
    from callbacks.ecam import ActivationMapLogger

    out = {}
    for cb in callbacks:
        if type(cb).__name__ == "KernelPruning":
            c = getattr(cb, "compaction", None)
            # after compaction the masks are re-derived on the smaller shapes: the reached
            # kernel sparsity is the last round's
            reached = cb.history[-1]["sparsity"] if cb.history else 0.0
            out["pruning"] = {"history": list(cb.history), "sparsity": float(reached),
                              **({"params_before": c.params_before, "params_after": c.params_after,
                                  "macs_before": c.macs_before, "macs_after": c.macs_after,
                                  "widths_after": list(c.widths_after)} if c is not None else {})}
        if isinstance(cb, ActivationMapLogger):
            test = [loc for loc in cb.localizations if loc.split == "test" and loc.in_soz is not None]
            if test:
                out["ecam"] = {"events": len(test), "top_in_soz": float(np.mean([loc.in_soz for loc in test])),
                               "top_channels": [loc.top_channel for loc in test]}
    return out
