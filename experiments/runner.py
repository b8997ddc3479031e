"""Run a leave-one-patient-out study: one fold per held-out patient, then a summary.

Per fold: fit with early stopping on validation patients, predict every window of every
held-out recording, turn probabilities into events, write SzCORE hypothesis TSVs, score them
with timescoring, render ECAM / onset-map panels. Folds that finished are skipped on a rerun of
the same run id; a fold killed mid-training resumes from its last checkpoint; a fold that fails
is recorded and the others go on.
"""
from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from .config import to_yaml
from .corpus import data_root
from .events import PostprocessConfig, probabilities_to_events, write_events_tsv
from .scoring import EventScoringParams, RecordingScore, score_recording

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
ERROR_FILE = "error.txt"


@dataclass(frozen=True)
class FoldResult:
    fold: str
    ok: bool
    metrics_path: str | None
    error: str | None = None


def run_dir_for(cfg: DictConfig) -> Path:
    """``runs/<name>/<run_id>``; a config without run_id gets a new timestamped one."""
    if not cfg.run_id:
        cfg.run_id = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(cfg.runs_dir) / cfg.name / str(cfg.run_id)


def prepare_run(cfg: DictConfig) -> tuple[Path, list[str]]:
    """Create the run folder, save the resolved config, build the cache once, list the folds."""
    from datamodules.cache import build_cache
    from datamodules.preprocessing import PreprocessingConfig
    from datamodules.sources import discover

    root = data_root(cfg)
    cfg.data_root = str(root)
    run_dir = run_dir_for(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    if not saved.exists():
        saved.write_text(to_yaml(cfg))
    recordings = discover(root)
    patients = sorted({r.patient for r in recordings})
    folds = list(cfg.folds) if cfg.folds else patients
    unknown = [f for f in folds if f not in patients]
    if unknown:
        from .config import ConfigError
        raise ConfigError(f"fold(s) {', '.join(unknown)} are not patients of {root} "
                          f"(patients: {', '.join(patients)})")
    build_cache(recordings, cfg.cache_dir, root, PreprocessingConfig.from_mapping(cfg.data.preprocessing))
    return run_dir, folds


def fold_done(run_dir: Path, fold: str) -> bool:
    return (run_dir / "folds" / fold / METRICS_FILE).exists()


def run_fold(cfg: DictConfig | dict, fold: str, run_dir: str | Path) -> FoldResult:
    """Train, predict and score one fold; never raises (failures are written to error.txt)."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    run_dir = Path(run_dir)
    fold_dir = run_dir / "folds" / fold
    fold_dir.mkdir(parents=True, exist_ok=True)
    if fold_done(run_dir, fold):
        return FoldResult(fold, True, str(fold_dir / METRICS_FILE))
    (fold_dir / ERROR_FILE).unlink(missing_ok=True)
    try:
        metrics = _train_and_score(cfg, fold, fold_dir, run_dir)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # a failed fold must not stop the study
        (fold_dir / ERROR_FILE).write_text(traceback.format_exc())
        log.error("fold %s failed: %s", fold, e)
        return FoldResult(fold, False, None, f"{type(e).__name__}: {e}")
    path = fold_dir / METRICS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(metrics, indent=1, default=_jsonable))
    tmp.replace(path)  # the marker of a finished fold appears atomically
    return FoldResult(fold, True, str(path))


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _train_and_score(cfg: DictConfig, fold: str, fold_dir: Path, run_dir: Path) -> dict:
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from . import registry

    t0 = time.time()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")
    dm = registry.build_datamodule(cfg, fold)
    dm.setup("fit")
    model = registry.build_model(cfg, dm)
    module = registry.build_module(cfg, model, dm)
    ckpt_dir = fold_dir / "checkpoints"
    pruning = bool(cfg.pruning.enabled) and cfg.task == "detection"
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=None if pruning else cfg.trainer.monitor,
                                 mode=cfg.trainer.monitor_mode, save_last=True, enable_version_counter=False)
    callbacks = [checkpoint]
    if not pruning:
        callbacks.append(EarlyStopping(monitor=cfg.trainer.monitor, mode=cfg.trainer.monitor_mode,
                                       patience=int(cfg.trainer.early_stopping_patience)))
    else:
        callbacks.append(registry.build_pruning(cfg))
    if cfg.maps.enabled:
        callbacks.append(registry.build_map_logger(cfg, fold_dir / "panels"))
    loggers = registry.build_loggers(cfg, fold, run_dir, fold_dir)
    plugins = []
    from lightning_fabric.plugins.environments import SLURMEnvironment
    if SLURMEnvironment.detect():  # submitit requeues the job on timeout; Lightning must not too
        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer = pl.Trainer(
        plugins=plugins,
        max_epochs=int(cfg.trainer.max_epochs), min_epochs=int(cfg.trainer.min_epochs),
        accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices,
        precision=cfg.trainer.precision, callbacks=callbacks, logger=loggers,
        default_root_dir=str(fold_dir), log_every_n_steps=int(cfg.trainer.log_every_n_steps),
        limit_train_batches=cfg.trainer.limit_train_batches,
        enable_progress_bar=bool(cfg.trainer.enable_progress_bar), enable_model_summary=False,
        deterministic=False, num_sanity_val_steps=0,
    )
    last = ckpt_dir / "last.ckpt"
    if last.exists():
        print(f"resuming fold {fold} from {last}", flush=True)
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if last.exists() else None)
    fit_s = time.time() - t0
    # pruned runs keep the final (compacted) network, saved again now that it is compact;
    # others the best validation checkpoint
    if pruning:
        trainer.save_checkpoint(str(ckpt_dir / "pruned.ckpt"))
    eval_ckpt = None if pruning else (checkpoint.best_model_path or None)
    if eval_ckpt:
        module = registry.load_module(cfg, eval_ckpt)
    test_metrics = {k: float(v) for k, v in trainer.test(module, datamodule=dm, verbose=False)[0].items()}
    predictions = trainer.predict(module, datamodule=dm)
    table = registry.collect_predictions(predictions)
    _write_predictions(fold_dir / "predictions.csv", table)
    threshold, curve = cfg.postprocess.threshold, None
    if str(threshold) == "auto":
        val_table = registry.collect_predictions(trainer.predict(module, dataloaders=dm.predict_dataloader("val")))
        threshold, curve = tune_threshold(cfg, dm.split_recordings("val"), val_table, dm.window_s)
    scores, events = _score_fold(cfg, dm, table, fold_dir, float(threshold))
    from lightning_modules.cost import count_macs, count_params

    example = registry.example_input(cfg, dm)
    metrics = {
        "fold": fold, "patient": fold, "status": "ok",
        "window": test_metrics,
        "recordings": [asdict(s) for s in scores],
        "n_events_detected": sum(len(v) for v in events.values()),
        "threshold": float(threshold), "threshold_curve_val": curve,
        "model": {"name": cfg.model.name, "params": count_params(module.model),
                  "macs_per_input": count_macs(module.model, example)},
        "epochs": int(trainer.current_epoch), "fit_seconds": round(fit_s, 1),
        "total_seconds": round(time.time() - t0, 1),
        "checkpoint": str(ckpt_dir / "pruned.ckpt") if pruning else (eval_ckpt or str(last)),
    }
    metrics.update(registry.extra_fold_metrics(cfg, trainer, module, dm, callbacks))
    loc = {k.split("/", 1)[1]: v for k, v in test_metrics.items() if k.startswith("test/loc")}
    if loc:  # SZLoc: seizure- and patient-level localization accuracy on the held-out patient
        metrics["localization"] = loc
    for lg in loggers:
        _finish_logger(lg, metrics)
    return metrics


def _finish_logger(lg, metrics):
    from pytorch_lightning.loggers import WandbLogger

    if isinstance(lg, WandbLogger):
        flat = {"fold/" + k: v for k, v in metrics.get("window", {}).items()}
        lg.experiment.summary.update(flat)
        lg.experiment.finish()


def _write_predictions(path: Path, table: dict) -> None:
    with open(path, "w") as fh:
        fh.write("recording,patient,start_s,probability\n")
        for r, p, s, q in zip(table["recording"], table["patient"], table["start_s"], table["probability"]):
            fh.write(f"{r},{p},{s:.3f},{q:.6f}\n")


def _scores(cfg: DictConfig, recordings, table: dict, window_s: float, post: PostprocessConfig):
    """Events and SzCORE scores of ``recordings`` from their window probabilities."""
    params = EventScoringParams(**{k: v for k, v in OmegaConf.to_container(cfg.scoring).items() if k != "sample_fs"})
    rec_ids = np.asarray(table["recording"])
    starts = np.asarray(table["start_s"], dtype=float)
    probs = np.asarray(table["probability"], dtype=float)
    scores: list[RecordingScore] = []
    events = {}
    for rec in recordings:
        sel = rec_ids == rec.recording_id
        evs = probabilities_to_events(starts[sel], probs[sel], window_s, post, rec.duration_s)
        events[rec.recording_id] = evs
        scores.append(score_recording(rec.recording_id, rec.patient, list(rec.seizures),
                                      [(e.onset_s, e.offset_s) for e in evs], rec.duration_s,
                                      params, int(cfg.scoring.sample_fs)))
    return scores, events


def tune_threshold(cfg: DictConfig, recordings, table: dict, window_s: float) -> tuple[float, dict]:
    """The post-processing threshold that maximizes pooled event F1 on the validation patients
    (ties: fewer false alarms, then the higher threshold). Held-out data never sets it."""
    from .scoring import Counts

    base = OmegaConf.to_container(cfg.postprocess)
    best, curve = None, {}
    for t in np.round(np.arange(0.05, 0.96, 0.05), 2):
        scores, _ = _scores(cfg, recordings, table, window_s, PostprocessConfig(**{**base, "threshold": float(t)}))
        total = sum((s.event for s in scores), Counts())
        f1 = total.metrics()["f1"]
        f1 = -1.0 if np.isnan(f1) else f1
        curve[float(t)] = {"f1": f1, "fp": total.fp, "tp": total.tp}
        key = (f1, -total.fp, t)
        if best is None or key > best[0]:
            best = (key, float(t))
    return best[1], curve


def _score_fold(cfg: DictConfig, dm, table: dict, fold_dir: Path, threshold: float):
    post = PostprocessConfig(**{**OmegaConf.to_container(cfg.postprocess), "threshold": threshold})
    recordings = dm.split_recordings("test")
    scores, events = _scores(cfg, recordings, table, dm.window_s, post)
    for rec in recordings:
        write_events_tsv(fold_dir / "hypotheses" / f"{rec.recording_id}_events.tsv", events[rec.recording_id],
                         rec.duration_s)
        write_events_tsv(fold_dir / "references" / f"{rec.recording_id}_events.tsv",
                         [_ref_event(a, b) for a, b in rec.seizures], rec.duration_s)
    return scores, events


def _ref_event(on, off):
    from .events import Event
    return Event(float(on), float(off), 1.0)


def run_experiment(cfg: DictConfig) -> int:
    """Every fold in turn in this process, then the summary. Exit code 1 if any fold failed."""
    from .report import aggregate_run

    t0 = time.time()
    run_dir, folds = prepare_run(cfg)
    print(f"run {cfg.name}/{cfg.run_id}: {len(folds)} fold(s) -> {run_dir}", flush=True)
    results = []
    for i, fold in enumerate(folds, 1):
        if fold_done(run_dir, fold):
            print(f"[{i}/{len(folds)}] {fold}: already finished, skipped", flush=True)
            results.append(FoldResult(fold, True, str(run_dir / "folds" / fold / METRICS_FILE)))
            continue
        print(f"[{i}/{len(folds)}] {fold}: training ...", flush=True)
        r = run_fold(cfg, fold, run_dir)
        print(f"[{i}/{len(folds)}] {fold}: {'done' if r.ok else 'FAILED: ' + str(r.error)}", flush=True)
        results.append(r)
    summary = aggregate_run(run_dir, cfg, wall_seconds=time.time() - t0)
    print(summary["text"], flush=True)
    return 0 if all(r.ok for r in results) else 1
