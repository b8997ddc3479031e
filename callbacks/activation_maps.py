"""Log ECAM / onset-map panels of seizure events during validation and test.

Every few validation epochs, and once at test, the callback asks the datamodule for the
annotated seizures of the split, reads a segment around each onset, asks the LightningModule
for its activation maps (LightSeizureNet ECAMs, Qiu et al. IEEE JBHI 2023; SZLoc onset maps,
Craley et al. MIDL 2022), renders one panel per event (:mod:`callbacks.panels`), writes the
PNGs and logs them to W&B under ``{split}/panels/{patient}`` so a fold's panels sit together.
It also scores the localization: is the top channel after the onset in the seizure onset zone?

What the callback needs from the datamodule (duck-typed; it skips quietly without them)::

    seizure_events(split) -> iterable of objects with patient, recording_id, onset_s,
                             offset_s, soz (tuple of electrode / region names, or None)
    read_segment(recording_id, start_s, stop_s) -> (signal (C, T) float32 uV, actual_start_s)
    sfreq, channels

and from the LightningModule::

    activation_maps(signal, sfreq, channels) -> ActivationMaps | None
"""
from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

from callbacks.panels import render_activation_panel, save_panel, top_channel
from eeg.montage import soz_channel_mask

log = logging.getLogger(__name__)

_DM_METHODS = ("seizure_events", "read_segment", "sfreq", "channels")


@dataclass(frozen=True)
class EventLocalization:
    """Where the model put one seizure event, and whether that is in the onset zone.

    Attributes
    ----------
    split : str
        ``"val"`` or ``"test"``.
    epoch : int
        Trainer epoch when the panel was rendered.
    patient, recording_id : str
        The event's recording.
    onset_s, offset_s : float, float or None
        Annotated onset / offset in the recording (s).
    kind : str
        ``"ecam"`` or ``"onset_map"``.
    top_channel : str
        Channel with the highest activation from the onset to ``post_s`` after it.
    top_score : float
        Its mean activation over that interval.
    in_soz : bool or None
        Whether ``top_channel`` touches an onset-zone electrode; None when the zone is unknown.
    png : str
        Path of the rendered panel.
    """

    split: str
    epoch: int
    patient: str
    recording_id: str
    onset_s: float
    offset_s: float | None
    kind: str
    top_channel: str
    top_score: float
    in_soz: bool | None
    png: str


class ActivationMapLogger(pl.Callback):
    """Render and log activation-map panels for a few seizure events of the val / test split.

    Parameters
    ----------
    every_n_epochs : int
        Render at the end of validation epochs ``every_n_epochs - 1``, ``2 * every_n_epochs - 1``,
        ...; test always renders.
    max_events : int
        Events per split and epoch, taken round-robin over patients so every held-out patient
        shows up; the same events every epoch, so panels compare across training.
    pre_s, post_s : float
        Segment read around each onset: ``[onset - pre_s, onset + post_s)``, clipped to the
        recording by the datamodule. The top channel is scored over ``[onset, onset + post_s)``.
    out_dir : str or Path or None
        Where PNGs go; default ``<trainer.log_dir or default_root_dir>/panels``.

    Attributes
    ----------
    localizations : list of EventLocalization
        One record per rendered event, in order. The fraction of events (with a known onset
        zone) whose top channel is in the zone is logged as ``{split}/activation_map_top_in_soz``.
    """

    def __init__(self, every_n_epochs: int = 5, max_events: int = 4, pre_s: float = 30.0,
                 post_s: float = 60.0, out_dir: str | Path | None = None):
        super().__init__()
        if int(every_n_epochs) < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if int(max_events) < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        if pre_s < 0 or post_s <= 0:
            raise ValueError(f"need pre_s >= 0 and post_s > 0, got pre_s={pre_s}, post_s={post_s}")
        self.every_n_epochs = int(every_n_epochs)
        self.max_events = int(max_events)
        self.pre_s = float(pre_s)
        self.post_s = float(post_s)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.localizations: list[EventLocalization] = []
        #: Seconds spent rendering panels so far.
        self.seconds = 0.0
        self._panel_dir: Path | None = None

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # trainer.log_dir broadcasts from rank 0: resolve it here, where every rank calls it,
        # never inside the rank-zero-only rendering (that would hang a multi-GPU run).
        if self.out_dir is not None:
            self._panel_dir = self.out_dir
        else:
            root = trainer.log_dir or trainer.default_root_dir
            self._panel_dir = Path(root) / "panels"

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        self.log_split(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.log_split(trainer, pl_module, "test")

    # ------------------------------------------------------------------ work
    def log_split(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                  split: str) -> list[EventLocalization]:
        """Render, save and log the panels of ``split``; returns this call's records. The time
        it took adds to :attr:`seconds` (a study reports where its time went)."""
        t0 = time.perf_counter()
        try:
            return self._log_split(trainer, pl_module, split)
        finally:
            self.seconds += time.perf_counter() - t0

    def _log_split(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                   split: str) -> list[EventLocalization]:
        if not trainer.is_global_zero:
            return []
        dm = getattr(trainer, "datamodule", None)
        missing = [m for m in _DM_METHODS if dm is None or not hasattr(dm, m)]
        if missing:
            log.debug("ActivationMapLogger: datamodule %s lacks %s; no %s panels",
                      type(dm).__name__, ", ".join(missing), split)
            return []
        if not callable(getattr(pl_module, "activation_maps", None)):
            log.debug("ActivationMapLogger: %s has no activation_maps(); no %s panels",
                      type(pl_module).__name__, split)
            return []
        events = _round_robin(list(dm.seizure_events(split) or ()), self.max_events)
        if not events:
            log.debug("ActivationMapLogger: no seizure events in split %r", split)
            return []
        panel_dir = self._panel_dir or (self.out_dir or Path(trainer.default_root_dir) / "panels")
        sfreq, channels = float(dm.sfreq), tuple(dm.channels)
        epoch = int(trainer.current_epoch)

        records: list[EventLocalization] = []
        by_patient: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()
        for ev in events:
            onset = float(ev.onset_s)
            offset = None if getattr(ev, "offset_s", None) is None else float(ev.offset_s)
            where = f"{split} event {ev.recording_id} (onset {onset:.1f} s)"
            signal, start = dm.read_segment(ev.recording_id, onset - self.pre_s,
                                            onset + self.post_s)
            signal = np.asarray(signal, dtype=np.float32)
            maps = pl_module.activation_maps(signal, sfreq, channels)
            if maps is None:
                log.debug("ActivationMapLogger: %s returned no map for %s",
                          type(pl_module).__name__, where)
                continue
            soz = tuple(ev.soz) if getattr(ev, "soz", None) else None
            onset_rel = onset - float(start)
            try:
                loc = top_channel(maps, onset_rel, onset_rel + self.post_s)
                soz_map = None if soz is None else soz_channel_mask(maps.channels, soz)
                fig = render_activation_panel(
                    signal, sfreq, channels, maps, segment_start_s=float(start), onset_s=onset,
                    offset_s=offset,
                    soz_channels=None if soz is None else soz_channel_mask(channels, soz),
                    soz=soz, patient=str(ev.patient), recording_id=str(ev.recording_id))
            except ValueError as err:
                raise ValueError(f"ActivationMapLogger, {where}: {err}") from err
            name = f"{split}_ep{epoch:03d}_{_safe(ev.recording_id)}_{onset:.0f}s.png"
            path = save_panel(fig, panel_dir / name)
            in_soz = None if soz_map is None else bool(soz_map[loc.index] > 0)
            rec = EventLocalization(split, epoch, str(ev.patient), str(ev.recording_id), onset,
                                    offset, maps.kind, loc.channel, loc.score, in_soz, str(path))
            records.append(rec)
            soz_txt = {None: "SOZ unknown", True: "in SOZ", False: "not in SOZ"}[in_soz]
            by_patient.setdefault(rec.patient, []).append(
                (str(path), f"{rec.recording_id} onset {onset:.0f} s: top {loc.channel} "
                            f"({soz_txt})"))
        self.localizations.extend(records)

        for logger in trainer.loggers:
            if not _is_wandb(logger):
                continue  # other loggers get the PNG files in panel_dir
            for patient, items in by_patient.items():
                logger.log_image(key=f"{split}/panels/{patient}", images=[p for p, _ in items],
                                 caption=[c for _, c in items], step=trainer.global_step)

        known = [r.in_soz for r in records if r.in_soz is not None]
        if known:
            # Only rank zero gets here, hence rank_zero_only (no cross-process reduction).
            pl_module.log(f"{split}/activation_map_top_in_soz", float(np.mean(known)), rank_zero_only=True)
        return records


def _round_robin(events: list, k: int) -> list:
    """Up to ``k`` events, alternating over patients in their order of appearance."""
    queues: OrderedDict[str, list] = OrderedDict()
    for ev in events:
        queues.setdefault(str(ev.patient), []).append(ev)
    out: list = []
    while len(out) < k and any(queues.values()):
        for q in queues.values():
            if q and len(out) < k:
                out.append(q.pop(0))
    return out


def _safe(name) -> str:
    """A file-name-safe version of a recording id (BIDS ids and CHB-MIT names pass unchanged)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name))


def _is_wandb(logger) -> bool:
    # Also accept lightning.pytorch's WandbLogger, a different class with the same API.
    return isinstance(logger, WandbLogger) or (
        type(logger).__name__ == "WandbLogger" and callable(getattr(logger, "log_image", None)))
