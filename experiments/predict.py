"""Score one of a user's own recordings with a trained checkpoint:
``python -m experiments predict --ckpt PATH --edf FILE [--out events.tsv] [--ecam out.png]``.

Any montage the harmonizer can map works (bipolar CHB-MIT, referential, T3/T4 names...).
Preprocessing is the one the checkpoint was trained with (read from the run's config.yaml when
the checkpoint sits in a run folder, else the defaults).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .events import PostprocessConfig, probabilities_to_events, write_events_tsv


@dataclass(frozen=True)
class Prediction:
    recording: str
    duration_s: float
    start_s: np.ndarray
    probability: np.ndarray
    events: list


def _run_config(ckpt: Path):
    from omegaconf import OmegaConf

    for parent in ckpt.resolve().parents:
        if (parent / "config.yaml").exists():
            return OmegaConf.load(parent / "config.yaml")
    return None


def _fold_threshold(ckpt: Path) -> float:
    """The threshold a fold chose on its validation patients (metrics.json beside checkpoints/)."""
    import json

    metrics = ckpt.resolve().parent.parent / "metrics.json"
    if metrics.exists():
        return float(json.loads(metrics.read_text()).get("threshold", 0.5))
    return 0.5


def load_checkpoint(ckpt: str | Path):
    """The LightningModule stored in ``ckpt`` (detection or localization, told by its hyperparameters)."""
    from lightning_modules.detection import SeizureDetectionModule
    from lightning_modules.localization import SeizureLocalizationModule

    hp = torch.load(ckpt, map_location="cpu", weights_only=False).get("hyper_parameters", {})
    cls = SeizureLocalizationModule if "loss_weights" in hp else SeizureDetectionModule
    module = cls.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=False)
    return module.eval()


def predict_recording(module, edf: str | Path, preprocessing=None, post: PostprocessConfig = PostprocessConfig(),
                      batch_size: int = 256):
    """Window probabilities and events of one EDF file; returns (Prediction, signal, sfreq, channels)."""
    from datamodules.cache import load_harmonized
    from datamodules.edf import read_edf_header
    from datamodules.preprocessing import PreprocessingConfig
    from datamodules.recording import Recording
    from eeg.montage import DOUBLE_BANANA

    header = read_edf_header(edf)
    rec = Recording(patient="user", recording_id=Path(edf).stem, path=str(edf), duration_s=header.duration_s,
                    sfreq=float(header.sfreqs[0]), channels=tuple(header.labels))
    channels = tuple(getattr(module.hparams, "channels", None) or DOUBLE_BANANA)
    x, sfreq = load_harmonized(rec, channels, preprocessing or PreprocessingConfig())
    model = module.model
    if hasattr(model, "n_windows"):  # SZLoc: clips of n_windows x 1 s
        n = int(model.n_windows * model.window_samples)
        step_s = float(model.window_samples) / sfreq
    else:
        n = int(model.n_times)
        step_s = n / sfreq
    starts = np.arange(0, x.shape[1] - n + 1, n)
    # each module's own predict_step turns inputs into per-window probabilities (LSN: one per
    # window; SZLoc: one per 1 s window of each clip), collected the way the runner does
    from .registry import collect_predictions

    batches = []
    with torch.inference_mode():
        for i in range(0, len(starts), batch_size):
            chunk = starts[i:i + batch_size]
            batch = {"x": torch.from_numpy(np.stack([x[:, s:s + n] for s in chunk])),
                     "recording": [rec.recording_id] * len(chunk), "patient": [rec.patient] * len(chunk),
                     "start_s": torch.from_numpy((chunk / sfreq).astype(np.float32))}
            batches.append(module.predict_step(batch, i // batch_size))
    table = collect_predictions(batches)
    t, prob = np.asarray(table["start_s"], dtype=float), np.asarray(table["probability"], dtype=float)
    events = probabilities_to_events(t, prob, step_s, post, x.shape[1] / sfreq)
    return Prediction(rec.recording_id, x.shape[1] / sfreq, t, prob, events), x, sfreq, channels


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, help="checkpoint of a trained fold (runs/.../checkpoints/*.ckpt)")
    p.add_argument("--edf", required=True, help="the recording to score (EDF)")
    p.add_argument("--out", default=None, help="SzCORE events TSV to write (default: <edf stem>_events.tsv)")
    p.add_argument("--ecam", default=None, help="PNG panel of the activation maps around the strongest detection")
    p.add_argument("--threshold", type=float, default=None,
                   help="event threshold (default: the one the fold tuned on its validation patients, else 0.5)")


def run(args) -> int:
    from datamodules.preprocessing import PreprocessingConfig

    ckpt = Path(args.ckpt)
    if not ckpt.exists():
        raise FileNotFoundError(f"checkpoint {ckpt} does not exist")
    if not Path(args.edf).exists():
        raise FileNotFoundError(f"EDF file {args.edf} does not exist")
    cfg = _run_config(ckpt)
    pre = PreprocessingConfig.from_mapping(cfg.data.preprocessing) if cfg is not None else None
    post = dict(cfg.postprocess) if cfg is not None else {}
    post["threshold"] = args.threshold if args.threshold is not None else _fold_threshold(ckpt)
    post = PostprocessConfig(**{**PostprocessConfig().__dict__, **post})
    module = load_checkpoint(ckpt)
    pred, x, sfreq, channels = predict_recording(module, args.edf, pre, post)
    out = Path(args.out or Path(args.edf).with_suffix("").name + "_events.tsv")
    write_events_tsv(out, pred.events, pred.duration_s)
    print(f"{pred.recording}: {len(pred.events)} seizure event(s) in {pred.duration_s / 60:.1f} min -> {out}")
    for e in pred.events:
        print(f"  {e.onset_s:8.1f} s - {e.offset_s:8.1f} s  confidence {e.confidence:.2f}")
    if args.ecam:
        from callbacks.panels import render_activation_panel, save_panel

        centre = pred.events[int(np.argmax([e.confidence for e in pred.events]))].onset_s if pred.events \
            else float(pred.start_s[int(np.argmax(pred.probability))]) if pred.probability.size else 0.0
        a = max(0, int((centre - 30) * sfreq))
        b = min(x.shape[1], int((centre + 60) * sfreq))
        maps = module.activation_maps(x[:, a:b], sfreq, channels)
        if maps is None:
            print("this model gives no activation maps; no panel written")
        else:
            fig = render_activation_panel(x[:, a:b], sfreq, channels, maps, segment_start_s=a / sfreq,
                                          onset_s=centre if pred.events else None,
                                          recording_id=pred.recording)
            print(f"panel -> {save_panel(fig, args.ecam)}")
    return 0
