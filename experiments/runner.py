"""Run a leave-one-patient-out study: one fold per held-out patient, then a summary.

Per fold: fit with early stopping on validation patients, predict every window of every
held-out recording, turn probabilities into events, write SzCORE hypothesis TSVs, score them
with timescoring, render activation-map panels, and save ``model.ckpt``: a self-describing
checkpoint holding the tuned threshold, all that ``python -m experiments predict`` needs.

The run folder keeps the study honest (:mod:`experiments.run_folder`): the config is recorded
and a rerun with another one refused; one process per run id; finished folds are skipped, an
interrupted fold (SIGTERM, SIGINT, a kill) resumes from its last good checkpoint with its whole
training log; a fold that fails is recorded and the others go on.
"""
from __future__ import annotations

import csv
import json
import logging
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from .corpus import dataset_folder, ensure_synthetic, uses_synthetic
from .events import write_events_tsv
from .factory import holds_out_recordings, plain
from .predictions import collect_predictions, write_predictions
from .run_folder import ERROR_FILE, METRICS_FILE, RunFolder, new_run_id, quarantine, write_json_atomic

log = logging.getLogger(__name__)

MODEL_FILE = "model.ckpt"


@dataclass(frozen=True)
class FoldResult:
    fold: str
    ok: bool
    metrics_path: str | None
    error: str | None = None


class Interrupted(BaseException):  # noqa: N818  (a signal, like KeyboardInterrupt, not an error)
    """The study was stopped by a signal; the fold in progress is resumable."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _Signals:
    """SIGTERM / SIGINT handling: outside a Trainer call the study stops at once; inside one,
    Lightning stops at the next batch (SIGTERM) or gracefully (SIGINT) and the call is turned
    into :class:`Interrupted` when it returns."""

    def __init__(self):
        self.received: int | None = None
        self.in_trainer = False
        self.deferring = False
        self._previous: dict = {}

    def __enter__(self):
        self.received = None
        for s in (signal.SIGTERM, signal.SIGINT):
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}
        return False

    def _handle(self, signum, frame):
        self.received = signum
        if self.deferring:
            return  # raised when the block that must not be cut in half ends
        if self.in_trainer:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # Lightning shuts down gracefully, then exits: caught below
            return  # SIGTERM: Lightning's own handler stops the loop at the next batch
        raise Interrupted(signum)

    @contextmanager
    def deferred(self):
        """Run a block that must not be cut in half (library code that swallows or rewraps
        exceptions, a file written in steps); a signal received meanwhile stops the study right
        after it."""
        before, self.deferring = self.deferring, True
        try:
            yield
        finally:
            self.deferring = before
        if not before and self.received is not None and self._previous:
            raise Interrupted(self.received)


SIGNALS = _Signals()


def trainer_call(trainer, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` (a Trainer entry point); a SIGTERM/SIGINT during it becomes
    :class:`Interrupted` instead of Lightning's ``SystemExit``, which would end the process
    with status 0 and no record."""
    SIGNALS.in_trainer = True
    try:
        return fn(*args, **kwargs)
    except (SystemExit, KeyboardInterrupt):
        if SIGNALS.received is not None:
            raise Interrupted(SIGNALS.received) from None
        if getattr(trainer, "received_sigterm", False):
            raise Interrupted(signal.SIGTERM) from None
        raise
    finally:
        SIGNALS.in_trainer = False
        if SIGNALS.received is not None and sys.exc_info()[0] is None:
            raise Interrupted(SIGNALS.received)


# -- the study --------------------------------------------------------------------------------
def open_run(cfg: DictConfig, force_new: bool = False) -> RunFolder:
    """The run folder of ``cfg`` with its config recorded (or checked against the recorded one),
    before any data is touched. Sets ``cfg.run_id`` (new or suffixed with ``force_new``) and
    ``cfg.data_root`` (the synthetic corpus's folder when none is given)."""
    cfg.data_root = str(dataset_folder(cfg))
    if not cfg.run_id:
        cfg.run_id = new_run_id()
    folder = RunFolder.of(cfg.runs_dir, cfg.name, cfg.run_id)
    if force_new and folder.recorded_config() is not None:
        base, k = str(cfg.run_id), 2
        while RunFolder.of(cfg.runs_dir, cfg.name, f"{base}-{k}").recorded_config() is not None:
            k += 1
        cfg.run_id = f"{base}-{k}"
        folder = RunFolder.of(cfg.runs_dir, cfg.name, cfg.run_id)
        print(f"--force-new: this run is {cfg.run_id}", flush=True)
    folder.record_config(plain(cfg))
    return folder


def prepare_data(cfg: DictConfig) -> list[str]:
    """Build the synthetic corpus if the run uses it, index the dataset, build the cache once,
    and list the folds."""
    from datamodules.cache import build_cache
    from datamodules.preprocessing import PreprocessingConfig
    from datamodules.sources import discover
    from eeg.montage import montage_channels

    from .config import ConfigError

    root = Path(cfg.data_root)
    if uses_synthetic(cfg):
        ensure_synthetic(cfg)
    montage = montage_channels(cfg.data.montage)
    recordings = discover(root, montage)  # patients that cannot give the montage are left out, with why
    patients = sorted({r.patient for r in recordings})
    report = build_cache(recordings, cfg.cache_dir, root, PreprocessingConfig.from_mapping(cfg.data.preprocessing),
                         montage, progress=bool(cfg.trainer.get("enable_progress_bar", True)))
    for p in report.empty:  # nothing of theirs survived the cache (unreadable, flat, ...): no fold, no data
        print(f"warning: patient {p} has no usable recording in the cache; left out of the study", flush=True)
    patients = [p for p in patients if p not in report.empty]
    from datamodules.recording import DatasetError

    if not patients:
        raise DatasetError(f"no patient of {root} has a recording that can give the montage "
                           f"{cfg.data.montage!r} (the warnings above say why for each file)")
    if holds_out_recordings(cfg):  # patient-specific: one fold per held-out recording
        from datamodules.splits import recording_folds

        skipped = {rid for rid, _ in report.skipped}
        usable = recording_folds(recordings, {r.recording_id for r in recordings} - skipped)
        if not usable:
            raise DatasetError(f"no patient of {root} has two usable seizure-bearing recordings: a "
                               f"patient-specific fold needs one to hold out and one to train on")
        folds = list(cfg.folds) if cfg.folds else usable
        unknown = [f for f in folds if f not in usable]
        if unknown:
            raise ConfigError(f"fold(s) {', '.join(unknown)} are not held-out recordings of {root}: each fold "
                              f"is a seizure-bearing recording whose patient has another one "
                              f"(usable: {', '.join(usable)})")
        return folds
    folds = list(cfg.folds) if cfg.folds else patients
    unknown = [f for f in folds if f not in patients]
    if unknown:
        raise ConfigError(f"fold(s) {', '.join(unknown)} are not usable patients of {root} "
                          f"(patients: {', '.join(patients)})")
    return folds


def run_experiment(cfg: DictConfig, force_new: bool = False) -> int:
    """Every fold in turn in this process, then the summary. Exit code 0 all folds done, 1 a fold
    failed, 128 + signal number when interrupted (the fold is resumable)."""
    from .report import aggregate_run

    if cfg.seeds:
        return run_seeds(cfg, force_new)
    t0 = time.time()
    with SIGNALS:
        try:
            with SIGNALS.deferred():
                folder = open_run(cfg, force_new)
            with folder.lock():
                folds = prepare_data(cfg)
                data_s = time.time() - t0
                print(f"run {cfg.name}/{cfg.run_id}: {len(folds)} fold(s) -> {folder.path}", flush=True)
                results = []
                for i, fold in enumerate(folds, 1):
                    if folder.fold_done(fold):
                        print(f"[{i}/{len(folds)}] {fold}: already finished, skipped", flush=True)
                        results.append(FoldResult(fold, True, str(folder.fold_dir(fold) / METRICS_FILE)))
                        continue
                    print(f"[{i}/{len(folds)}] {fold}: training ...", flush=True)
                    r = run_fold(cfg, fold, folder.path)
                    print(f"[{i}/{len(folds)}] {fold}: {'done' if r.ok else 'FAILED: ' + str(r.error)}", flush=True)
                    results.append(r)
                t_report = time.time()
                summary = aggregate_run(folder.path, cfg, wall_seconds=t_report - t0, data_seconds=data_s)
                record_report_time(folder.path, time.time() - t_report, time.time() - t0)
        except Interrupted as e:
            print(f"interrupted by {e}: rerun with run_id={cfg.run_id} to resume "
                  f"(finished folds are kept, the fold in progress resumes from its last checkpoint)",
                  file=sys.stderr, flush=True)
            return e.exit_code
    print(summary["text"], flush=True)
    return 0 if all(r.ok for r in results) else 1


def record_report_time(run_dir: Path, report_s: float, wall_s: float) -> None:
    """Add the summary's own cost (tables, plots, report.html, W&B) to summary.json's timing, and
    the wall time with it: known only once the summary is written."""
    path = Path(run_dir) / "summary.json"
    summary = json.loads(path.read_text())
    summary["timing"] = {**(summary.get("timing") or {}), "report_s": round(report_s, 1), "wall_s": round(wall_s, 1)}
    summary["wall_seconds"] = round(wall_s, 1)
    write_json_atomic(path, summary)


def seed_run_id(run_id: str, seed: int) -> str:
    return f"{run_id}-seed{int(seed)}"


def run_seeds(cfg: DictConfig, force_new: bool = False) -> int:
    """The study once per seed in ``seeds`` (each its own run ``<run_id>-seed<k>``), then the
    spread across seeds in ``<run_id>/seeds_summary.md``. The worst exit code wins."""
    from .report import aggregate_seeds

    with SIGNALS:
        try:
            folder = open_run(cfg, force_new)
        except Interrupted as e:
            return e.exit_code
    codes, runs = [], []
    for seed in cfg.seeds:
        sub = OmegaConf.create(plain(cfg))
        sub.seed, sub.seeds, sub.run_id = int(seed), None, seed_run_id(cfg.run_id, seed)
        print(f"== seed {seed}: run {sub.run_id}", flush=True)
        codes.append(run_experiment(sub, force_new=False))
        runs.append(RunFolder.of(cfg.runs_dir, cfg.name, sub.run_id).path)
        if codes[-1] >= 128:  # interrupted: stop here, resumable
            return codes[-1]
    text = aggregate_seeds(folder.path, runs, [int(s) for s in cfg.seeds])
    print(text, flush=True)
    return max(codes)


def run_fold(cfg: DictConfig | dict, fold: str, run_dir: str | Path) -> FoldResult:
    """Train, predict and score one fold. A failure is written to ``error.txt`` and returned (the
    study goes on); an interruption leaves the fold resumable and propagates."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    folder = RunFolder(Path(run_dir))
    fold_dir = folder.fold_dir(fold)
    fold_dir.mkdir(parents=True, exist_ok=True)
    with folder.fold_lock(fold):
        if folder.fold_done(fold):
            return FoldResult(fold, True, str(fold_dir / METRICS_FILE))
        (fold_dir / ERROR_FILE).unlink(missing_ok=True)
        try:
            metrics = _train_and_score(cfg, fold, fold_dir, folder)
        except Interrupted as e:
            folder.set_status(fold, "interrupted", signal=str(e))
            raise
        except Exception as e:  # a failed fold must not stop the study
            (fold_dir / ERROR_FILE).write_text(traceback.format_exc())
            folder.set_status(fold, "failed", error=f"{type(e).__name__}: {e}")
            log.error("fold %s failed: %s", fold, e)
            return FoldResult(fold, False, None, f"{type(e).__name__}: {e}")
        write_json_atomic(fold_dir / METRICS_FILE, metrics)  # the marker of a finished fold
        folder.set_status(fold, "done")
        return FoldResult(fold, True, str(fold_dir / METRICS_FILE))


def run_spec(cfg: DictConfig, dm, fold: str) -> dict:
    """What a checkpoint must know to be used alone: inputs and operating point."""
    data = {"target": str(cfg.data._target_), "channels": list(dm.channels), "sfreq": float(dm.sfreq),
            "window_s": float(dm.window_s), "preprocessing": asdict(dm.preprocessing)}
    shape = dm.model_shape()
    if "n_windows" in shape:
        data["n_windows"] = int(shape["n_windows"])
    return {"experiment": str(cfg.name), "run_id": str(cfg.run_id), "fold": fold, "data": data,
            "postprocess": plain(cfg.postprocess), "threshold": None}


def _readable(path: Path) -> bool:
    """True if ``path`` loads as a checkpoint; a damaged one is moved aside (with a warning)."""
    from lightning_modules.checkpoints import CheckpointError, read_checkpoint

    if not path.exists():
        return False
    try:
        read_checkpoint(path)
        return True
    except CheckpointError as e:
        quarantine(path, str(e).split(": ", 1)[-1])
        return False


def _resume_point(ckpt_dir: Path) -> Path | None:
    """The last good training state: ``last.ckpt``, else ``best.ckpt``, else none."""
    for name in ("last.ckpt", "best.ckpt"):
        if _readable(ckpt_dir / name):
            return ckpt_dir / name
    return None


def _attempt(fold_dir: Path) -> int:
    return 1 + len(list((fold_dir / "csv").glob("attempt-*")))


def merge_training_logs(fold_dir: Path) -> Path | None:
    """``csv/metrics.csv``: every attempt's log in order, each cut where the next one resumed,
    so a resumed fold keeps its whole training history."""
    attempts = sorted((fold_dir / "csv").glob("attempt-*/metrics.csv"),
                      key=lambda p: int(p.parent.name.split("-")[1]))
    if not attempts:
        return None
    tables = []
    for path in attempts:
        with open(path, newline="") as fh:
            tables.append(list(csv.DictReader(fh)))

    def first_epoch(rows):
        epochs = [int(float(r["epoch"])) for r in rows if r.get("epoch") not in (None, "")]
        return min(epochs) if epochs else None

    rows, keys = [], []
    for k, table in enumerate(tables):
        nxt = next((first_epoch(t) for t in tables[k + 1:] if first_epoch(t) is not None), None)
        for r in table:
            e = r.get("epoch")
            if nxt is not None and e not in (None, "") and int(float(e)) >= nxt:
                continue
            rows.append(r)
            keys += [c for c in r if c not in keys]
    out = fold_dir / "csv" / "metrics.csv"
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return out


def _train_and_score(cfg: DictConfig, fold: str, fold_dir: Path, folder: RunFolder) -> dict:
    import pytorch_lightning as pl
    import torch

    from . import factory

    t0 = time.time()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")
    dm = factory.build_datamodule(cfg, fold)
    dm.setup("fit")
    model, spec = factory.build_model(cfg, dm)
    if not isinstance(model, torch.nn.Module):  # an untrained rule studied on its own (model._target_=line_length)
        return _evaluate(cfg, fold, fold_dir, dm, None, None, model, t0, {})
    module, trainer, info = _fit(cfg, fold, fold_dir, folder, dm, model, spec, t0)
    return _evaluate(cfg, fold, fold_dir, dm, module, trainer, None, t0, info)


def _fit(cfg: DictConfig, fold: str, fold_dir: Path, folder: RunFolder, dm, model, spec, t0: float):
    """Train (or resume, or skip when done) and return the evaluated module, the trainer and
    what training did."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    from lightning_modules.checkpoints import load_module

    from . import factory

    module = factory.build_module(cfg, model, spec, dm)
    module.run_spec = run_spec(cfg, dm, fold)
    ckpt_dir = fold_dir / "checkpoints"
    pruning = factory.build_pruning(cfg)
    monitor = None if pruning is not None else str(cfg.monitor.metric)
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=str(cfg.monitor.mode),
                                 save_last=True, enable_version_counter=False)
    callbacks = [checkpoint] + [cb for cb in (factory.build_early_stopping(cfg), pruning,
                                              factory.build_activation_maps(cfg, fold_dir / "panels"))
                                if cb is not None]
    loggers = factory.build_loggers(cfg, fold, folder.path, fold_dir, _attempt(fold_dir))
    plugins = []
    from lightning_fabric.plugins.environments import SLURMEnvironment
    if SLURMEnvironment.detect():  # submitit requeues the job on timeout; Lightning must not too
        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer = factory.build_trainer(cfg, callbacks=callbacks, logger=loggers, default_root_dir=str(fold_dir),
                                    plugins=plugins)
    status = folder.status(fold)
    eval_ckpt = ckpt_dir / ("pruned.ckpt" if pruning is not None else "best.ckpt")
    if status.get("state") in ("trained", "done") and _readable(eval_ckpt):
        print(f"fold {fold}: training finished earlier, evaluating {eval_ckpt.name}", flush=True)
        fit_s = float(status.get("fit_seconds", 0.0))
        epochs = int(status.get("epochs", 0))
    else:
        resume = _resume_point(ckpt_dir)
        if resume is not None:
            print(f"resuming fold {fold} from {resume}", flush=True)
        folder.set_status(fold, "training")
        try:
            trainer_call(trainer, trainer.fit, module, datamodule=dm,
                         ckpt_path=str(resume) if resume else None, weights_only=True)
        finally:
            merge_training_logs(fold_dir)
        fit_s = time.time() - t0
        epochs = int(trainer.current_epoch)
        if pruning is not None:  # the final, compacted network
            trainer.save_checkpoint(str(eval_ckpt))
        elif not checkpoint.best_model_path:
            eval_ckpt = ckpt_dir / "last.ckpt"
        folder.set_status(fold, "trained", fit_seconds=round(fit_s, 1), epochs=epochs,
                          eval_checkpoint=str(eval_ckpt))
    module = load_module(eval_ckpt)
    module.run_spec = run_spec(cfg, dm, fold)
    info = {"epochs": epochs, "fit_seconds": round(fit_s, 1), "training_checkpoint": str(eval_ckpt),
            "callbacks": callbacks, "loggers": loggers}
    return module, trainer, info


def _evaluate(cfg: DictConfig, fold: str, fold_dir: Path, dm, module, trainer, rule, t0: float, info: dict) -> dict:
    """The model (or the rule studied on its own) and every baseline through the same folds,
    windows, post-processing, threshold choice and scoring; localization of every held-out
    seizure; ``model.ckpt``; the fold's metrics."""
    import torch

    from . import baselines as bl
    from . import factory
    from .evaluate import by_recording, evaluate_method
    from .settings import DETECTION_BASELINES

    settings = factory.build_evaluation(cfg)
    post, params = factory.build_postprocess(cfg), factory.build_scoring(cfg)
    val_recs = dm.split_recordings("val")
    test_recs = dm.split_recordings("test")
    scored_recs = test_recs + [r for r, _ in dm.unusable_recordings("test")]
    name = str(cfg.model._target_)
    common = dict(n_perm=int(settings.chance_permutations), seed=int(cfg.seed), min_overlap=float(dm.min_overlap))
    test_metrics: dict = {}
    clock = _Clock()
    if module is not None:
        test_metrics = {k: float(v) for k, v in
                        trainer_call(trainer, trainer.test, module, datamodule=dm, verbose=False)[0].items()}
        table = collect_predictions(trainer_call(trainer, trainer.predict, module, datamodule=dm))
        val_table = (collect_predictions(trainer_call(trainer, trainer.predict, module,
                                                      dataloaders=dm.predict_dataloader("val")))
                     if post.threshold == "auto" else {"recording": [], "start_s": [], "probability": []})
        write_predictions(fold_dir / "predictions.csv", table)
        val_windows, test_windows, window_s = by_recording(val_table), by_recording(table), dm.window_s
    else:
        val_windows, test_windows = bl.scorer_windows(rule, val_recs), bl.scorer_windows(rule, test_recs)
        window_s = rule.window_s
    clock.lap("predict_s")
    methods = {name: {"kind": "model" if module is not None else "baseline",
                      **evaluate_method(val_recs, val_windows, scored_recs, test_windows, window_s, post, params,
                                        **common)}}
    clock.lap("scoring_s")
    if module is None:
        test_metrics = {"test/auroc": methods[name]["window_auroc"]}
    for b in settings.baselines:
        if b in DETECTION_BASELINES and b != name:
            scorer = bl.detector(b, dm)
            methods[b] = {"kind": "baseline", **evaluate_method(
                val_recs, bl.scorer_windows(scorer, val_recs), scored_recs, bl.scorer_windows(scorer, test_recs),
                scorer.window_s, post, params, **common)}
    for m, result in methods.items():
        where = fold_dir if m == name else fold_dir / "baselines" / m
        _write_hypotheses(where, scored_recs, result["events"])
    clock.lap("baselines_s")
    localization = bl.localize_fold(dm, name, module, methods[name]["seizures"], settings.onset_window_s,
                                    [b for b in settings.baselines if b not in DETECTION_BASELINES])
    clock.lap("localization_s")
    threshold = methods[name]["threshold"]
    metrics = {
        "fold": fold, "patient": dm.test_patient, "status": "ok", "model_name": name, "channels": list(dm.channels),
        "window": test_metrics,
        "recordings": methods[name]["recordings"], "threshold": threshold,
        "methods": methods, "localization_seizures": localization,
        "unscored_recordings": [{"recording": r.recording_id, "reason": why}
                                for r, why in dm.unusable_recordings("test")],
        "epochs": info.get("epochs", 0), "fit_seconds": info.get("fit_seconds", 0.0),
    }
    if module is not None:
        from lightning_modules.cost import count_macs, count_params

        module.run_spec = {**module.run_spec, "postprocess": methods[name]["postprocess"], "threshold": threshold}
        save_model(module, fold_dir / MODEL_FILE)
        shape = dm.model_shape()
        metrics["model"] = {"name": name, "params": count_params(module.model),
                            "macs_per_input": count_macs(module.model, torch.zeros(1, shape["n_chans"],
                                                                                   shape["n_times"]))}
        metrics["checkpoint"] = str(fold_dir / MODEL_FILE)
        metrics["training_checkpoint"] = info["training_checkpoint"]
        metrics.update(extra_fold_metrics(info["callbacks"]))
        loc = {k.split("/", 1)[1]: v for k, v in test_metrics.items() if k.startswith("test/loc")}
        if loc:  # SZLoc's own clip metrics (annotated onset at a fixed window of the clip)
            metrics["localization"] = loc
    else:
        metrics["model"] = {"name": name, "params": 0, "macs_per_input": 0}
    clock.lap("saving_s")
    from callbacks.activation_maps import ActivationMapLogger

    panels_s = sum(cb.seconds for cb in info.get("callbacks", []) if isinstance(cb, ActivationMapLogger))
    # the panels of held-out seizures are drawn during trainer.test (inside "predict"), the
    # validation ones during training; both are reported apart
    metrics["timing"] = {"fit_s": float(info.get("fit_seconds", 0.0)), **clock.laps, "panels_s": round(panels_s, 1)}
    metrics["total_seconds"] = round(time.time() - t0, 1)
    for lg in info.get("loggers", []):
        _finish_logger(lg, metrics)
    return metrics


class _Clock:
    """Seconds between successive :meth:`lap` calls, by name."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self._t, 1)
        self._t = now


def _write_hypotheses(where: Path, recordings, events: dict) -> None:
    """SzCORE hypothesis and reference TSVs of every scored recording (BIDS events columns)."""
    from .events import Event

    for rec in recordings:
        evs = [Event(float(a), float(b), float(c)) for a, b, c in events.get(rec.recording_id, [])]
        write_events_tsv(where / "hypotheses" / f"{rec.recording_id}_events.tsv", evs, rec.duration_s)
        write_events_tsv(where / "references" / f"{rec.recording_id}_events.tsv",
                         [Event(float(a), float(b), 1.0) for a, b in rec.seizures], rec.duration_s)


def save_model(module, path: Path) -> Path:
    """The evaluated network with everything needed to use it (weights, spec, threshold), no
    optimizer state: the file to share and to give ``predict``. Written atomically."""
    import torch

    from lightning_modules.checkpoints import SPEC_KEY, describe

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"state_dict": module.state_dict(), SPEC_KEY: describe(module)}, tmp)
    tmp.replace(path)
    return path


def extra_fold_metrics(callbacks) -> dict:
    """Pruning history and compaction; activation-map localization (top channel in the SOZ)."""
    from callbacks.activation_maps import ActivationMapLogger

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
                out["activation_maps"] = {"events": len(test),
                                          "top_in_soz": float(np.mean([loc.in_soz for loc in test])),
                                          "top_channels": [loc.top_channel for loc in test]}
    return out


def _finish_logger(lg, metrics):
    from pytorch_lightning.loggers import WandbLogger

    if isinstance(lg, WandbLogger):
        flat = {"fold/" + k: v for k, v in metrics.get("window", {}).items()}
        lg.experiment.summary.update(flat)
        lg.experiment.finish()
