"""``make bench``: speed, memory and model cost of this framework side by side with braindecode.

Run ``python -m bench`` (``--help`` for the knobs). On one synthetic CHB-MIT-shaped corpus
(default about 2 h of 23-channel EEG at 256 Hz, generated once under ``bench/work/``) it measures:

1. **cache_build** - EDF to windows ready for training, each build in a fresh process: ours
   (HDF5 cache + window index) vs braindecode (MNE + ``preprocess`` with the same Butterworth
   band-pass + ``create_fixed_length_windows`` + ``save``): seconds, MB of EDF per second, peak
   resident memory (``VmHWM`` of the build process).
2. **loader** - random-access windows per second through a DataLoader (0 and 2 workers): ours vs
   braindecode's windows dataset lazy and preloaded.
3. **model_cost** - parameters and MACs per input: LightSeizureNet dense and pruned to 60 % kernel
   sparsity in two forms (whole filters -> narrower dense convolutions, the default structure;
   balanced kernels per filter -> gather + grouped convolutions, fewest MACs), SZLoc per 45 s clip,
   braindecode's EEGNetv4 / ShallowFBCSPNet / Deep4Net on 18 x 512.
4. **inference** - model only (PyTorch; LSN also through ONNX Runtime, default and "extended"
   graph optimizations) and from EDF, as hours of EEG per second and real-time factor; every LSN
   row also against dense LSN in the same runtime. "LSN dense, reference" runs the same weights as
   the modules read (:func:`lightning_modules.lsn.reference_execution`): the before row.
5. **training** - training-step windows per second on CPU: LightSeizureNet (as it runs, and as its
   modules read) beside braindecode's EEGNetv4 and ShallowFBCSPNet, same loop, optimizer, batch.
6. **scale** - cache build time and peak memory at 1x, 2x, 4x the corpus.

Every figure is the median of ``--repeats`` repetitions; ours/braindecode ratios are taken within
one run, since only they hold on a shared machine.

``results.json`` schema (``"schema": "seizure-lightning-bench/1"``)
-------------------------------------------------------------------
A *measurement* is ``{"median", "min", "max", "values": [...], "unit"}``.

- ``created``, ``command``, ``total_s``
- ``machine``: ``platform, python, cpu_count, torch, torch_threads, numpy, scipy, mne,
  braindecode, git_commit, device ("cpu"), gpu (null)``
- ``config``: :class:`bench.harness.BenchConfig` as a dict
- ``corpus``: ``root, n_recordings, n_distinct_files, hours, edf_mb, n_file_channels, sfreq``
- ``cache_build``: ``ours`` / ``braindecode``: measurements ``seconds, edf_mb_per_s,
  peak_rss_mb, work_rss_mb`` (peak minus the resident size after imports), ``import_s,
  process_s, output_mb``, and ``n_windows``; ``ratio``: ``speedup`` (braindecode s / ours s),
  ``peak_rss``, ``work_rss`` (ours / braindecode); ``what``
- ``scale.rows[]``: ``implementation, factor, hours, edf_mb, n_windows`` and measurements
  ``seconds, seconds_per_eeg_hour, peak_rss_mb, work_rss_mb, edf_mb_per_s``
- ``loader.rows[]``: ``dataset, n_windows, batch_size, num_workers, window_shape,
  vs_braindecode_lazy`` and measurements ``windows_per_s, first_batch_s``
- ``model_cost``: ``counter``; ``rows[]``: ``model, source, input, eeg_seconds, params, macs,
  macs_per_eeg_second[, note]`` and, for LSN rows, ``macs_vs_dense, params_vs_dense``
- ``inference``: ``model_only[]``: ``model, source`` (``ours``, ``braindecode``, ``ours, ONNX
  Runtime`` or ``ours, ONNX Runtime (extended optimizations)``: LSN exported by
  ``lightning_modules.export``, plus ``ort_level`` and ``max_abs_diff_vs_torch``), ``batch_size``,
  measurements ``windows_per_s, eeg_hours_per_s, realtime_factor`` and, for LSN rows,
  ``vs_dense`` (windows/s over dense LSN's in the same source); ``from_edf[]``: ``model,
  eeg_hours, n_windows`` and measurements ``realtime_factor, eeg_hours_per_s``; ``note``
- ``training``: ``model`` ("LSN dense"), ``optimizer, loss, device, torch_threads``, ``cpu: {batch_size,
  steps_per_repeat, windows_per_s}`` (LSN dense), ``rows[]: {model, source, batch_size,
  steps_per_repeat, windows_per_s, lsn_vs_this}`` (LSN dense windows/s over this row's),
  ``gpu`` (null: not measured) and ``gpu_note`` (why)
- ``targets[]``: ``name, what, target, value, met`` (null when not measured)

Sections not run are absent; braindecode figures and ratios are null with ``--no-braindecode``.
braindecode is imported lazily and never needed by the framework itself.
"""
from .harness import SCHEMA, SECTIONS, TARGETS, BenchConfig, run_bench

__all__ = ["SCHEMA", "SECTIONS", "TARGETS", "BenchConfig", "run_bench"]
