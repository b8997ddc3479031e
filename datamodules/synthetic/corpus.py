"""Corpus layout: patients, recordings, EDF files, built atomically and reused when unchanged.

A corpus is built in a temporary sibling folder and renamed into place, so several processes
(SLURM array tasks) may ask for the same corpus at once; a corpus already there with the same
parameters (and generator version) is reused as it is.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from datamodules.edf import write_edf
from datamodules.recording import DatasetError

from .annotations import clock, summary_text, write_corpus_files
from .artifacts import add_artifacts
from .params import GenerationParams, resolve
from .physiology import PatientModel, Vigilance, background, draw_physiology, sleep_graphoelements
from .primitives import SFREQ, montage_labels, rng_for, subject_name, to_bipolar
from .seizures import SOZ_CATALOG, add_seizure, draw_style, plan_seizures, share_of, soz_weights
from .truth import TRUTH_FILE, CorpusTruth, PatientTruth, RecordingTruth, load_truth, write_truth

#: The CHB-MIT amplifier: -800..800 uV on 12-bit values (the files store them in 16 bits here).
PHYSICAL_RANGE_UV = (-800.0, 800.0)
#: Physical value of one 12-bit step (the quantization of the real files): 1600/4095 uV.
QUANTUM_UV = (PHYSICAL_RANGE_UV[1] - PHYSICAL_RANGE_UV[0]) / 4095.0


def quantize(bipolar_uV: np.ndarray) -> np.ndarray:
    """Round to the CHB-MIT amplifier's 12-bit steps and saturate at its range, as it would."""
    lo, hi = PHYSICAL_RANGE_UV
    steps = np.clip(np.round((bipolar_uV - lo) / QUANTUM_UV), 0, 4095)
    return steps * QUANTUM_UV + lo


def _recording_lengths(rng: np.random.Generator, params: GenerationParams) -> list[int]:
    n = int(rng.integers(params.n_recordings[0], params.n_recordings[1] + 1))
    if params.minutes is not None:
        return [int(round(params.minutes * 60.0 * rng.uniform(0.85, 1.25))) for _ in range(n)]
    total = rng.uniform(*params.hours) * 3600.0
    shares = 0.6 / n + 0.4 * rng.dirichlet(np.full(n, 4.0))
    return [int(round(total * s)) for s in shares]


def _synthesize_recording(rng, model: PatientModel, style, params: GenerationParams, duration_s: int,
                          plan: list[tuple[float, float]], traits: list[tuple[bool, bool]]):
    """Electrode signals (n_electrodes, n_samples) in uV, the seizures, events and states;
    ``traits`` are (propagates, under_emg) per planned seizure."""
    n = duration_s * SFREQ
    vig = Vigilance(rng, n, model.phys)
    x = background(rng, model, vig)
    events = sleep_graphoelements(rng, x, model, vig)
    built = []
    for i, (on, off) in enumerate(plan):
        nxt = plan[i + 1][0] if i + 1 < len(plan) else None
        built.append(add_seizure(rng, x, model, style, params, on, off, nxt, duration_s, *traits[i]))
    if params.artifacts > 0:
        events += add_artifacts(rng, x, model, vig, plan, params)
    events.sort(key=lambda e: (e.onset_s, e.kind))
    return x, built, events, vig.periods


def _generate_patient(root: Path, k: int, params: GenerationParams, soz_choice: int,
                      progress: Callable[[str], None] | None) -> PatientTruth:
    subject = subject_name(k)
    rng = rng_for(params.seed, k)
    phys = draw_physiology(rng, params)
    style = draw_style(rng, params)
    region, soz = SOZ_CATALOG[soz_choice]
    weights = soz_weights(rng, len(soz))
    model = PatientModel(phys, soz, weights)
    gender = str(rng.choice(["F", "M"]))
    age = float(rng.integers(2, 44)) / 2.0  # like SUBJECT-INFO: whole or half years, 1-22
    age = float(int(age)) if rng.random() < 0.7 else age
    age = max(age, 1.5)
    durations = _recording_lengths(rng, params)
    plans = plan_seizures(rng, style, durations, params)
    n_seizures = sum(len(p) for p in plans)
    traits = list(zip(share_of(rng, n_seizures, params.propagation), share_of(rng, n_seizures, params.ictal_emg)))
    day_s = int(rng.integers(0, 86400))  # seconds since midnight of the first day
    date0 = _dt.datetime(2059, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 3650)))
    folder = root / subject
    folder.mkdir(parents=True, exist_ok=True)
    recordings = []
    for r, (dur, plan) in enumerate(zip(durations, plans)):
        rid = f"{subject}_{r + 1:02d}"
        start = date0 + _dt.timedelta(seconds=day_s)
        x, built, events, states = _synthesize_recording(rng_for(params.seed, k, r + 1), model, style, params,
                                                         dur, plan, traits[:len(plan)])
        traits = traits[len(plan):]
        bip = quantize(to_bipolar(x) if params.montage == "bipolar" else x)
        del x
        write_edf(folder / f"{rid}.edf", bip, SFREQ, montage_labels(params.montage), start=start,
                  physical_range=PHYSICAL_RANGE_UV, patient_field=subject,
                  recording_field=f"{rid} synthetic CHB-MIT-shaped recording")
        del bip
        clock_s = day_s % 86400
        recordings.append(RecordingTruth(
            recording_id=rid, path=f"{subject}/{rid}.edf", duration_s=dur, start_time=clock(clock_s, True),
            # the real summaries count end hours on from the start's day (24:21:32, 1:21:39)
            end_time=clock(clock_s + dur, False), seizure_details=tuple(built), events=tuple(events),
            states=tuple(states)))
        if progress:
            progress(f"{rid}.edf  {dur / 60:5.1f} min  {len(built)} seizure(s)  {len(events)} events")
        day_s += dur + int(rng.integers(3, 15))  # a few seconds between files, as in CHB-MIT
    patient = PatientTruth(subject, soz, region, weights, gender, age, tuple(recordings),
                           morphology=style.morphology, background_uV=round(phys.bg_uV, 3),
                           alpha_hz=round(phys.alpha_hz, 3))
    (folder / f"{subject}-summary.txt").write_text(summary_text(recordings, montage_labels(params.montage)))
    return patient


def _expected_sizes(truth: CorpusTruth) -> dict[str, int]:
    n = len(montage_labels(truth.params.montage))
    header = 256 * (n + 1)
    return {r.path: header + r.duration_s * SFREQ * n * 2 for r in truth.recordings}


def _is_complete(root: Path, truth: CorpusTruth) -> bool:
    for rel, size in _expected_sizes(truth).items():
        p = root / rel
        if not p.is_file() or p.stat().st_size != size:
            return False
    names = ["SUBJECT-INFO", "RECORDS", "RECORDS-WITH-SEIZURES", "soz.tsv"]
    names += [f"{p.patient}/{p.patient}-summary.txt" for p in truth.patients]
    return all((root / n).is_file() for n in names)


def generate_corpus(root: str | os.PathLike, *, preset: str = "realistic", n_patients: int | None = None,
                    n_recordings=None, hours=None, minutes: float | None = None, seed: int | None = None,
                    seizures_per_patient=None, seizure_free_recordings: int | None = None, seizure_s=None,
                    seizure_median_s=None, ictal_gain=None, morphologies=None, propagation: float | None = None,
                    ictal_emg: float | None = None, sleep=None, artifacts: float | None = None, rates=None,
                    onset_error_s=None, offset_error_s: float | None = None, montage: str | None = None,
                    overwrite: bool = False, progress: Callable[[str], None] | None = None, **unknown) -> CorpusTruth:
    """Write a synthetic CHB-MIT-shaped corpus to ``root`` and return its ground truth.

    Every knob is keyword-only; None keeps the preset's value (see
    :class:`~datamodules.synthetic.params.GenerationParams` for each one's meaning, and
    :data:`~datamodules.synthetic.params.PRESETS`).

    Parameters
    ----------
    root : path
        Corpus root. Built in a temporary sibling folder and renamed into place.
    preset : {"realistic", "easy"}
        ``realistic`` (hours of EEG, hard seizures, artifacts, inexact labels) or ``easy``
        (short recordings, clear seizures, exact labels: fast tests).
    n_patients, n_recordings, hours, minutes, seed, seizures_per_patient, seizure_free_recordings,
    seizure_s, seizure_median_s, ictal_gain, morphologies, propagation, ictal_emg, sleep,
    artifacts, rates, onset_error_s, offset_error_s
        Knobs replacing the preset's values; ranges are ``(min, max)`` pairs or one number;
        ``rates`` maps event kinds to events per hour (the others keep the preset's).
    montage : {"bipolar", "referential"}
        What the EDF files hold: the 23 CHB-MIT bipolar channels (default), or the 21 simulated
        electrodes each against an ideal common reference, labelled ``EEG FP1-REF`` (as TUSZ;
        for referential models such as SZLoc's re-implementation). The signals are the same.
    overwrite : bool
        Replace an existing synthetic corpus built with other parameters. A corpus with the
        same parameters is reused as it is; a folder that is not a synthetic corpus is never
        touched.
    progress : callable, optional
        Called with one line per recording written.

    Returns
    -------
    CorpusTruth
        Per patient the onset zone, per recording the seizures (annotated and true), events
        and vigilance periods.

    Raises
    ------
    ValueError
        For a bad or unknown knob (one sentence naming it; a config section passed as keyword
        arguments gets the same check).
    DatasetError
        When ``root`` holds something else than this corpus (and ``overwrite`` does not apply).
    """
    params = resolve(preset, n_patients=n_patients, n_recordings=n_recordings, hours=hours, minutes=minutes,
                     seed=seed, seizures_per_patient=seizures_per_patient,
                     seizure_free_recordings=seizure_free_recordings, seizure_s=seizure_s,
                     seizure_median_s=seizure_median_s, ictal_gain=ictal_gain, morphologies=morphologies,
                     propagation=propagation, ictal_emg=ictal_emg, sleep=sleep, artifacts=artifacts, rates=rates,
                     onset_error_s=onset_error_s, offset_error_s=offset_error_s, montage=montage, **unknown)
    root = Path(root)
    existing = _existing(root, params, overwrite)
    if existing is not None:
        return existing

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        choices = rng_for(params.seed).permutation(len(SOZ_CATALOG))
        patients = [_generate_patient(tmp, k, params, int(choices[k % len(choices)]), progress)
                    for k in range(params.n_patients)]
        write_corpus_files(tmp, patients)
        write_truth(tmp / TRUTH_FILE, CorpusTruth(str(root), params, tuple(patients)))
        _install(tmp, root, params)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_truth(root)


def _existing(root: Path, params: GenerationParams, overwrite: bool) -> CorpusTruth | None:
    """The corpus already at ``root`` when it can be reused; None when it must be (re)built."""
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return None
    if not root.is_dir():
        raise DatasetError(f"{root}: exists and is not a folder")
    if not (root / TRUTH_FILE).is_file():
        raise DatasetError(f"{root}: folder is not empty and holds no synthetic corpus "
                           f"({TRUTH_FILE} missing); refusing to write into it")
    try:
        truth = load_truth(root)
    except DatasetError:
        if not overwrite:
            raise
        return None  # a corpus of an older generator: ours to replace
    if truth.params == params:
        # ours and asked for again: reuse it, or rebuild it when files went missing
        return truth if _is_complete(root, truth) else None
    if not overwrite:
        raise DatasetError(f"{root}: holds a synthetic corpus built with other parameters "
                           f"(preset {truth.params.preset}, seed {truth.params.seed}, generator version "
                           f"{truth.params.version}); pass overwrite=True (--overwrite) to replace it")
    return None


def _install(tmp: Path, root: Path, params: GenerationParams) -> None:
    """Move the finished corpus into place atomically (another process may have won)."""
    old = None
    if root.exists() and any(root.iterdir()):
        old = root.parent / f".{root.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(root, old)
    try:
        os.rename(tmp, root)  # replaces an empty folder
    except OSError:
        # someone installed a corpus meanwhile: keep theirs if it is the one asked for
        theirs = load_truth(root)
        if theirs.params != params:
            raise DatasetError(f"{root}: another process wrote a corpus with other parameters "
                               f"while this one was being built") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
