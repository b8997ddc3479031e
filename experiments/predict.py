"""Score one of a user's own recordings with a trained checkpoint:
``python -m experiments predict --ckpt PATH --edf FILE [--out events.tsv] [--panel out.png]``.

Everything comes from the checkpoint (:mod:`lightning_modules.checkpoints`): the montage the
model reads, the preprocessing and sampling rate it was trained with, its window, the
post-processing and the threshold its fold tuned on the validation patients (``model.ckpt``
of a finished fold; a training checkpoint has no tuned threshold and uses 0.5 unless
``--threshold`` is given). Any EDF the harmonizer can map works (bipolar CHB-MIT, referential
``EEG FP1-REF``, T3/T4 names, non-EEG channels first, another sampling rate: the EEG channels'
own rate is read and resampled).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .events import PostprocessConfig, probabilities_to_events, write_events_tsv


class PredictError(ValueError):
    """A bad input to ``predict``, in one sentence naming the file."""


@dataclass(frozen=True)
class Prediction:
    recording: str
    duration_s: float
    start_s: np.ndarray
    probability: np.ndarray
    events: list


def _data_spec(module) -> dict:
    data = dict((module.run_spec or {}).get("data") or {})
    if not data.get("channels"):
        raise PredictError("the checkpoint does not say which montage its model reads (no run.data.channels): "
                           "use model.ckpt or a checkpoint from a run of this version")
    return data


def predict_recording(module, edf: str | Path, post: PostprocessConfig, batch_size: int = 256):
    """Window probabilities and events of one EDF file (an EDF+D file part by part, at each part's
    own time); returns (Prediction, signal, sfreq, channels, signal_start_s): the signal is the
    harmonized, preprocessed part holding the highest probability, for the panel."""
    from datamodules.cache import load_harmonized
    from datamodules.preprocessing import PreprocessingConfig
    from datamodules.recording import DatasetError, Recording
    from datamodules.sources._common import header_facts
    from eeg.montage import MontageError

    edf = Path(edf)
    data = _data_spec(module)
    channels = tuple(data["channels"])
    model_sfreq = float(data["sfreq"])
    pre = dict(data.get("preprocessing") or {})
    pre["sfreq"] = pre.get("sfreq") or model_sfreq  # trained at a native rate: resample to it
    facts = header_facts(edf)
    if facts.header is None:
        raise PredictError(f"{edf} is not a readable EDF file: {facts.warnings[0] if facts.warnings else ''}")
    if facts.duration_s <= 0:
        raise PredictError(f"{edf} holds no samples (0 data records)")
    rec = Recording(patient="user", recording_id=edf.stem, path=str(edf), duration_s=facts.duration_s,
                    sfreq=facts.sfreq, channels=tuple(facts.channels))
    from datamodules.sources import split_discontinuous

    parts = split_discontinuous(rec)  # EDF+D: each continuous part on its own, at its own time
    times, probs, events, best = [], [], [], None
    for part in parts:
        try:
            x, sfreq = load_harmonized(part, channels, PreprocessingConfig.from_mapping(pre))
        except MontageError as e:
            raise PredictError(f"{edf} cannot give the model's {len(channels)}-channel montage: {e}") from None
        except DatasetError as e:
            raise PredictError(str(e)) from None
        t, prob, step_s = _window_probabilities(module, x, sfreq, data, part, batch_size)
        if t is None:
            if len(parts) == 1:
                raise PredictError(f"{edf} lasts {x.shape[1] / sfreq:.1f} s, shorter than one model input")
            continue  # a part shorter than one input is not scored
        offset = float(part.start_s)
        events += [replace(e, onset_s=e.onset_s + offset, offset_s=e.offset_s + offset)
                   for e in probabilities_to_events(t, prob, step_s, post, x.shape[1] / sfreq)]
        times.append(t + offset)
        probs.append(prob)
        if best is None or (prob.size and prob.max() > best[0]):
            best = (float(prob.max()) if prob.size else 0.0, x, sfreq, offset)
    if best is None:
        raise PredictError(f"{edf}: no continuous part is as long as one model input")
    _, x, sfreq, offset = best
    pred = Prediction(rec.recording_id, float(facts.duration_s), np.concatenate(times), np.concatenate(probs), events)
    return pred, x, sfreq, channels, offset


def _window_probabilities(module, x: np.ndarray, sfreq: float, data: dict, rec, batch_size: int):
    """(start_s, probability, window step) of every whole model input of ``x``; (None, None, None)
    when ``x`` is shorter than one input."""
    from .predictions import collect_predictions

    model = module.model
    if hasattr(model, "n_windows"):  # SZLoc: clips of n_windows x 1 s
        n = int(model.n_windows * model.window_samples)
        step_s = float(model.window_samples) / sfreq
    else:
        n = int(round(float(data["window_s"]) * sfreq))
        step_s = n / sfreq
    if x.shape[1] < n:
        return None, None, None
    starts = np.arange(0, x.shape[1] - n + 1, n)
    # each module's own predict_step turns inputs into per-window probabilities (LSN: one per
    # window; SZLoc: one per 1 s window of each clip), collected the way the runner does
    batches = []
    with torch.inference_mode():
        for i in range(0, len(starts), batch_size):
            chunk = starts[i:i + batch_size]
            batch = {"x": torch.from_numpy(np.stack([x[:, s:s + n] for s in chunk])),
                     "recording": [rec.recording_id] * len(chunk), "patient": [rec.patient] * len(chunk),
                     "start_s": torch.from_numpy((chunk / sfreq).astype(np.float32))}
            batches.append(module.predict_step(batch, i // batch_size))
    table = collect_predictions(batches)
    return (np.asarray(table["start_s"], dtype=float), np.asarray(table["probability"], dtype=float), step_s)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, help="checkpoint of a trained fold (runs/.../folds/<patient>/model.ckpt)")
    p.add_argument("--edf", required=True, help="the recording to score (EDF)")
    p.add_argument("--out", default=None, help="SzCORE events TSV to write (default: <edf stem>_events.tsv)")
    p.add_argument("--panel", default=None, help="PNG panel of the activation maps around the strongest detection")
    p.add_argument("--probabilities", default=None, metavar="CSV",
                   help="also write every window's start (s) and seizure probability")
    p.add_argument("--threshold", type=float, default=None,
                   help="event threshold (default: the one the fold tuned on its validation patients)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=package.module.Class",
                   help="allow your own model class by name (a checkpoint can only name it, never import it)")


def _out_path(args) -> Path:
    out = Path(args.out or Path(args.edf).with_suffix("").name + "_events.tsv")
    if out.is_dir():
        example = out / (Path(args.edf).stem + "_events.tsv")
        raise PredictError(f"--out {out} is a folder; give a file name, e.g. {example}")
    if not out.parent.exists():
        raise PredictError(f"--out {out}: the folder {out.parent} does not exist")
    return out


def run(args) -> int:
    from lightning_modules.checkpoints import load_module

    edf = Path(args.edf)
    if not edf.exists():
        raise PredictError(f"EDF file {edf} does not exist")
    if edf.is_dir():
        raise PredictError(f"--edf {edf} is a folder; give one EDF file")
    out = _out_path(args)
    for flag, path in (("--panel", args.panel), ("--probabilities", args.probabilities)):
        if path and Path(path).is_dir():
            raise PredictError(f"{flag} {path} is a folder; give a file name")
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise PredictError(f"--threshold must be a probability in (0, 1), got {args.threshold}")
    extra = {}
    for item in args.model:
        name, _, path = item.partition("=")
        if not name or not path:
            raise PredictError(f"--model {item!r} must be NAME=package.module.Class")
        extra[name] = path
    module = load_module(args.ckpt, extra_models=extra)
    spec = module.run_spec or {}
    stored = dict(spec.get("postprocess") or {})
    threshold = args.threshold if args.threshold is not None else spec.get("threshold")
    if threshold is None:
        print(f"note: {args.ckpt} holds no tuned threshold (a training checkpoint); using 0.5 "
              "(the fold's model.ckpt has the tuned one, or pass --threshold)")
        threshold = 0.5
    stored["threshold"] = float(threshold)
    post = PostprocessConfig(**{k: v for k, v in stored.items() if k in PostprocessConfig.__dataclass_fields__})
    pred, x, sfreq, channels, x_start = predict_recording(module, edf, post)
    write_events_tsv(out, pred.events, pred.duration_s)
    if args.probabilities:
        with open(args.probabilities, "w") as fh:
            fh.write("start_s,probability\n")
            fh.writelines(f"{t:.3f},{q:.6f}\n" for t, q in zip(pred.start_s, pred.probability))
    print(f"{pred.recording}: {len(pred.events)} seizure event(s) in {pred.duration_s / 60:.1f} min "
          f"(threshold {post.threshold:.2f}) -> {out}")
    for e in pred.events:
        print(f"  {e.onset_s:8.1f} s - {e.offset_s:8.1f} s  confidence {e.confidence:.2f}")
    if args.panel:
        from callbacks.panels import render_activation_panel, save_panel

        centre = pred.events[int(np.argmax([e.confidence for e in pred.events]))].onset_s if pred.events \
            else float(pred.start_s[int(np.argmax(pred.probability))]) if pred.probability.size else 0.0
        a = max(0, int((centre - x_start - 30) * sfreq))
        b = min(x.shape[1], int((centre - x_start + 60) * sfreq))
        if b - a < int(10 * sfreq):  # the strongest event lies in another part: show this part's start
            a, b = 0, min(x.shape[1], int(90 * sfreq))
        maps = module.activation_maps(x[:, a:b], sfreq, channels)
        if maps is None:
            print("this model gives no activation maps; no panel written")
        else:
            fig = render_activation_panel(x[:, a:b], sfreq, channels, maps, segment_start_s=x_start + a / sfreq,
                                          onset_s=centre if pred.events else None,
                                          recording_id=pred.recording)
            print(f"panel -> {save_panel(fig, args.panel)}")
    return 0
