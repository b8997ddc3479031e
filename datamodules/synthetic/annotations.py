"""The text files of a CHB-MIT-shaped corpus: per-patient summaries, SUBJECT-INFO, RECORDS,
RECORDS-WITH-SEIZURES and the onset-zone table, written the way PhysioNet's files are."""
from __future__ import annotations

from pathlib import Path

from eeg.montage import CHBMIT_23

from .primitives import SFREQ
from .truth import PatientTruth, RecordingTruth


def clock(seconds: int, pad_hours: bool) -> str:
    """``hh:mm:ss`` (``pad_hours``) or ``h:mm:ss``; hours may pass 24 as in the real summaries."""
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}" if pad_hours else f"{h}:{m:02d}:{s:02d}"


def summary_text(recordings: list[RecordingTruth], channels: tuple[str, ...] = CHBMIT_23) -> str:
    """``chbNN-summary.txt``: sampling rate, channels, and per file its times and annotated seizures."""
    lines = [f"Data Sampling Rate: {SFREQ} Hz", "*************************", "",
             "Channels in EDF Files:", "**********************"]
    lines += [f"Channel {i}: {c}" for i, c in enumerate(channels, 1)]
    for r in recordings:
        lines += ["", f"File Name: {Path(r.path).name}", f"File Start Time: {r.start_time}",
                  f"File End Time: {r.end_time}", f"Number of Seizures in File: {len(r.seizure_details)}"]
        numbered = len(r.seizure_details) > 1
        for i, s in enumerate(r.seizure_details, 1):
            tag = f"Seizure {i}" if numbered else "Seizure"
            lines += [f"{tag} Start Time: {s.onset_s} seconds", f"{tag} End Time: {s.offset_s} seconds"]
    return "\n".join(lines) + "\n"


def subject_info_text(patients: list[PatientTruth]) -> str:
    """``SUBJECT-INFO``: case, gender, age in whole or half years, tab-separated."""
    def age(a: float) -> str:
        whole = int(a)
        return f"{whole:2d}" if a == whole else f"{whole:2d}.{int(round((a - whole) * 10))}"

    return "Case\tGender\tAge (years)\n\n" + "".join(f"{p.patient}\t{p.gender}\t{age(p.age)}\n" for p in patients)


def write_corpus_files(root: Path, patients: list[PatientTruth]) -> None:
    """SUBJECT-INFO, RECORDS, RECORDS-WITH-SEIZURES and soz.tsv at the corpus root."""
    from datamodules.sources.soz import write_soz_tsv

    (root / "SUBJECT-INFO").write_text(subject_info_text(patients))
    recs = [r for p in patients for r in p.recordings]
    (root / "RECORDS").write_text("".join(f"{r.path}\n" for r in recs))
    (root / "RECORDS-WITH-SEIZURES").write_text("".join(f"{r.path}\n" for r in recs if r.seizure_details))
    write_soz_tsv(root / "soz.tsv", {p.patient: (p.soz, p.region) for p in patients})
