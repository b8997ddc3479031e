"""The untrained baselines of a study, run on the same cached recordings as the model.

Detectors (:data:`experiments.settings.DETECTION_BASELINES`) score every window of a recording;
their scores (ratios to the recording's typical window, 1 = typical) become probability-like
numbers in [0, 1) by ``s^2 / (1 + s^2)``, i.e. log-odds ``2 log s`` (monotone: the threshold search
and the curves see the same ranking; the log-odds threshold grid then steps the ratio by about
13 %), so one evaluation path serves a model's probabilities and a rule's scores. Localizers
score channels at a seizure's onset (:func:`localize_fold`, with the model's own activation maps
beside them).
"""
from __future__ import annotations

import numpy as np

from .settings import DETECTION_BASELINES, LOCALIZATION_BASELINES


def _import(path: str):
    from .instantiate import import_path
    return import_path(path)


def detector(name: str, dm):
    """The baseline detector ``name`` for the shape of ``dm``'s windows."""
    from .instantiate import call_with

    return call_with(_import(DETECTION_BASELINES[name]), dm.model_shape())


def to_probability(score: np.ndarray) -> np.ndarray:
    s2 = np.clip(np.asarray(score, dtype=float), 0, None) ** 2
    return s2 / (1.0 + s2)


def to_score(probability: float) -> float:
    """The ratio a probability-like threshold stands for (inverse of :func:`to_probability`)."""
    return float(np.sqrt(probability / (1.0 - probability)))


#: Scores of recordings already scored in this process: a validation patient of one fold is a
#: validation or test patient of the next, and its scores do not change (keyed by the rule's
#: parameters and the cache file's identity; a few floats per window).
_SCORED: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_SCORED_MAX = 512


def scorer_windows(scorer, recordings) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{recording_id: (start_s, probability)}`` of every whole window of each cached recording."""
    import os

    from datamodules.cache import read_signal

    out = {}
    for rec in recordings:
        if not getattr(rec, "h5_path", None):  # not in the cache: no window, no detection
            continue
        st = os.stat(rec.h5_path)
        key = (type(scorer).__qualname__, tuple(sorted(vars(scorer).items())), os.path.abspath(rec.h5_path),
               st.st_mtime_ns, st.st_size, rec.recording_id, float(rec.sfreq))
        try:
            hit = _SCORED.get(key)
        except TypeError:  # a rule with unhashable parameters is scored every time
            key, hit = None, None
        if hit is None:
            x = read_signal(rec.h5_path, rec.recording_id)
            hit = (scorer.window_starts(x.shape[1]) / rec.sfreq, to_probability(scorer.score_recording(x)))
            if key is not None:
                if len(_SCORED) >= _SCORED_MAX:
                    _SCORED.pop(next(iter(_SCORED)))
                _SCORED[key] = hit
        out[rec.recording_id] = (hit[0].copy(), hit[1].copy())
    return out


def localizer_scores(name: str, segment: np.ndarray, sfreq: float, onset_index: int,
                     onset_window_s: tuple[float, float]) -> np.ndarray:
    """Channel scores of the localization baseline ``name`` for the seizure at ``onset_index``."""
    from lightning_modules.baselines import onset_window

    fn = _import(LOCALIZATION_BASELINES[name])
    if name == "largest_amplitude":
        a, b = onset_window(onset_index, sfreq, segment.shape[1], tuple(onset_window_s))
        return fn(segment[:, a:b])
    return fn(segment, sfreq, onset_index, window_s=tuple(onset_window_s))


def localize_fold(dm, model_name: str | None, module, detections: list[dict], onset_window_s,
                  baselines) -> list[dict]:
    """Every held-out seizure with a known onset zone, localized by each method.

    The model's channel scores are its activation map averaged over the onset window, around the
    annotated onset (``<model>``) and around its own detected onset (``<model>@detected``: the
    onset of the first of its events that overlaps the seizure; an undetected seizure is a miss).
    """
    from eeg.montage import soz_channel_mask

    from .localization import score_seizure

    a, b = (float(onset_window_s[0]), float(onset_window_s[1]))
    pre, post = max(35.0, -a + 35.0), max(60.0, b + 10.0)  # the earliest-rise baseline needs 30 s before
    sfreq, channels = float(dm.sfreq), tuple(dm.channels)
    found = {(d["recording"], round(d["onset_s"], 3)): d for d in detections}
    out = []
    for rec in dm.split_recordings("test"):
        if not rec.soz:
            continue
        mask = soz_channel_mask(channels, rec.soz)
        if not mask.any():
            continue
        for on, off in rec.seizures:
            entry = {"recording": rec.recording_id, "patient": rec.patient, "onset_s": float(on),
                     "offset_s": float(off), "soz": list(rec.soz), "chance": float(mask.mean()), "methods": {}}
            seg, seg_start = dm.read_segment(rec.recording_id, on - pre, on + post)
            onset_idx = int(round((on - seg_start) * sfreq))
            for name in baselines:
                try:
                    scores = localizer_scores(name, seg, sfreq, onset_idx, (a, b))
                except ValueError as e:  # e.g. a seizure too close to the file start for a baseline
                    entry["methods"][name] = {"top1": False, "skipped": str(e)}
                    continue
                entry["methods"][name] = {**score_seizure(scores, mask, channels).as_dict(),
                                          "scores": np.asarray(scores, float).tolist()}
            if module is not None and callable(getattr(module, "activation_maps", None)):
                maps = module.activation_maps(seg, sfreq, channels)
                if maps is not None:
                    rel = on - seg_start
                    scores = maps.channel_scores(rel + a, rel + b)
                    entry["methods"][model_name] = {**score_seizure(scores, mask, channels).as_dict(),
                                                    "scores": np.asarray(scores, float).tolist()}
                    det = found.get((rec.recording_id, round(float(on), 3)), {}).get("detected_onset_s")
                    key = f"{model_name}@detected"
                    if det is None:
                        entry["methods"][key] = {"top1": False, "missed": True}
                    else:
                        dseg, dstart = dm.read_segment(rec.recording_id, det - pre, det + post)
                        dmaps = module.activation_maps(dseg, sfreq, channels)
                        drel = det - dstart
                        dscores = dmaps.channel_scores(drel + a, drel + b)
                        entry["methods"][key] = {**score_seizure(dscores, mask, channels).as_dict(),
                                                 "scores": np.asarray(dscores, float).tolist(),
                                                 "detected_onset_s": float(det)}
            out.append(entry)
    return out
