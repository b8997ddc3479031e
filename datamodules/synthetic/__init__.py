"""Synthetic CHB-MIT-shaped corpus: the offline default and the test bed of the framework.

``generate_corpus(root, preset="realistic", ...)`` writes a folder laid out exactly like the
PhysioNet CHB-MIT Scalp EEG Database (Shoeb 2009; Goldberger et al. 2000): ``chbNN/chbNN_MM.edf``
(EDF, 256 Hz, 1 s data records, the 23-channel bipolar montage with the duplicated ``T8-P8``,
physical range -800..800 uV, values on the real files' 12-bit steps), ``chbNN/chbNN-summary.txt``,
``SUBJECT-INFO``, ``RECORDS`` and ``RECORDS-WITH-SEIZURES``, plus ``soz.tsv`` with each patient's
true seizure onset zone and a hidden ``.synthetic.json`` with the full truth
(:class:`CorpusTruth`: true and annotated seizure times, ictal band, morphology, spread, every
artifact and vigilance period).

Signals are simulated per 10-20 electrode (referential) and then montaged, so what a clinician
sees in the double banana follows from the physiology. One module per job:

* :mod:`.params`: every knob and the two presets (``realistic``, the default, and ``easy``);
* :mod:`.physiology`: background, alpha, drowsiness and sleep;
* :mod:`.artifacts`: eye, muscle, chewing, movement, electrode artifacts and hard negatives;
* :mod:`.seizures`: seizure plan, morphology, spread, post-ictal period, marking error;
* :mod:`.annotations` and :mod:`.truth`: the summaries and the truth file;
* :mod:`.corpus`: layout, EDF files (through :func:`datamodules.edf.write_edf`), atomic build
  and reuse;
* :mod:`.cli`: ``python -m datamodules synth``;
* :mod:`.realism`: ``python -m datamodules.synthetic.realism``, the comparison with a real
  recording.

Generation is deterministic per seed (same bytes), and patient ``k`` of a corpus does not
depend on how many patients are generated.
"""
from __future__ import annotations

from .cli import add_arguments, run
from .corpus import PHYSICAL_RANGE_UV, QUANTUM_UV, generate_corpus
from .params import EVENT_KINDS, GENERATOR_VERSION, MORPHOLOGIES, PRESETS, GenerationParams, resolve
from .primitives import ELECTRODES, SFREQ, to_bipolar
from .truth import (
                    TRUTH_FILE,
                    CorpusTruth,
                    EventTruth,
                    PatientTruth,
                    RecordingTruth,
                    SeizureTruth,
                    StateTruth,
                    load_truth,
)

__all__ = [
    "generate_corpus", "load_truth", "resolve", "add_arguments", "run",
    "GenerationParams", "PRESETS", "MORPHOLOGIES", "EVENT_KINDS", "GENERATOR_VERSION",
    "CorpusTruth", "PatientTruth", "RecordingTruth", "SeizureTruth", "EventTruth", "StateTruth", "TRUTH_FILE",
    "ELECTRODES", "SFREQ", "PHYSICAL_RANGE_UV", "QUANTUM_UV", "to_bipolar",
]
