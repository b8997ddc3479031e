"""Leave-one-patient-out splits. Patients, not recordings, are the unit: nothing of the held-out
patient (CHB-MIT chb21 included, which is chb01 recorded later) ever reaches training."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .recording import DatasetError


@dataclass(frozen=True)
class Split:
    """One fold: the held-out (test) patient, validation patients and training patients."""

    test: tuple[str, ...]
    val: tuple[str, ...]
    train: tuple[str, ...]


def loso_split(patients: list[str], test_patient: str, val_patients: int | list[str] | tuple = 1,
               seed: int = 0, test_recording: str | None = None) -> Split:
    """The fold holding out ``test_patient``; ``val_patients`` is a count (drawn per seed and
    fold from the others) or explicit names. With ``test_recording`` (a patient-specific fold) the
    patient's other recordings train: ``train`` is the test patient, and the validation patients
    are drawn as in the patient's LOSO fold."""
    patients = sorted(set(patients))
    if test_patient not in patients:
        raise DatasetError(f"patient {test_patient!r} is not in the dataset (patients: {', '.join(patients)})")
    others = [p for p in patients if p != test_patient]
    if isinstance(val_patients, (list, tuple)):
        val = [p for p in val_patients]
        bad = [p for p in val if p not in others]
        if bad:
            raise DatasetError(f"validation patient(s) {', '.join(bad)} are not other patients of the dataset")
    else:
        k = int(val_patients)
        rng = np.random.default_rng([seed, patients.index(test_patient)])
        val = sorted(rng.choice(others, size=min(k, len(others)), replace=False).tolist()) if k else []
    train = [p for p in others if p not in val] if test_recording is None else [test_patient]
    if not train:
        raise DatasetError(f"holding out {test_patient} and validating on {', '.join(val)} leaves no training patient")
    if not val:
        raise DatasetError("at least one validation patient is needed (early stopping and thresholds)")
    return Split((test_patient,), tuple(val), tuple(train))


def recording_folds(recordings, usable: set[str] | None = None) -> list[str]:
    """The folds of a patient-specific study: every seizure-bearing recording whose patient has
    another seizure-bearing recording to train on (``usable``: the recording ids in the cache;
    None: all), sorted by recording id."""
    usable_recs = [r for r in recordings if r.annotated and (usable is None or r.recording_id in usable)]
    bearing: dict[str, list[str]] = {}
    for r in usable_recs:
        if r.seizures:
            bearing.setdefault(r.patient, []).append(r.recording_id)
    return sorted(rid for rids in bearing.values() if len(rids) > 1 for rid in rids)
