"""``python -m bench``: run the benchmark and write ``bench/results.json`` and ``bench/results.md``."""
from __future__ import annotations

import argparse
import sys

from .harness import SECTIONS, BenchConfig, run_bench
from .peer import PeerMissing


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _sections(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [n for n in names if n not in SECTIONS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(bad)}; choose from {', '.join(SECTIONS)}")
    return names


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    d = BenchConfig()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--work", default=d.work, help="scratch folder: corpus, caches (default %(default)s)")
    p.add_argument("--out", default=d.out, help="where results.json and results.md go (default %(default)s)")
    p.add_argument("--hours", type=float, default=d.hours, help="synthetic corpus length (default %(default)s)")
    p.add_argument("--recording-minutes", type=float, default=d.recording_minutes,
                   help="length of one recording (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--repeats", type=int, default=d.repeats, help="repetitions per figure (default %(default)s)")
    p.add_argument("--scale-factors", type=_ints, default=d.scale_factors,
                   help="corpus multiples for ours (default 1,2,4)")
    p.add_argument("--braindecode-scale-factors", type=_ints, default=d.braindecode_scale_factors,
                   help="corpus multiples for braindecode (default 1,2)")
    p.add_argument("--scale-repeats", type=int, default=d.scale_repeats,
                   help="interleaved rounds of scale builds (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--loader-workers", type=_ints, default=d.loader_workers, help="default 0,2")
    p.add_argument("--loader-seconds", type=float, default=d.loader_seconds)
    p.add_argument("--inference-seconds", type=float, default=d.inference_seconds)
    p.add_argument("--szloc-batch", type=int, default=d.szloc_batch, help="45 s clips per SZLoc batch")
    p.add_argument("--train-steps", type=int, default=d.train_steps)
    p.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--sections", type=_sections, default=d.sections,
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--no-braindecode", action="store_true", help="measure ours only (ratios are null)")
    p.add_argument("--main-job", default=d.main_job, help="study of the main_job section (default %(default)s)")
    p.add_argument("--main-job-args", nargs="*", default=list(d.main_job_args),
                   help="its key=value overrides, as make experiment's ARGS")
    a = p.parse_args(argv)
    return BenchConfig(work=a.work, out=a.out, hours=a.hours, recording_minutes=a.recording_minutes,
                       seed=a.seed, repeats=a.repeats, scale_factors=a.scale_factors,
                       braindecode_scale_factors=a.braindecode_scale_factors, scale_repeats=a.scale_repeats,
                       batch_size=a.batch_size, loader_workers=a.loader_workers,
                       loader_seconds=a.loader_seconds, inference_seconds=a.inference_seconds,
                       szloc_batch=a.szloc_batch, train_steps=a.train_steps, torch_threads=a.torch_threads,
                       braindecode=not a.no_braindecode, sections=a.sections, main_job=a.main_job,
                       main_job_args=tuple(a.main_job_args))


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
    except ValueError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    try:
        res = run_bench(cfg)
    except PeerMissing as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    print(f"wrote {cfg.out}/results.json and {cfg.out}/results.md ({res['total_s'] / 60:.1f} min)")
    for t in res.get("targets", []):
        state = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        value = "n/a" if t["value"] is None else f"{t['value']:,.2f}"
        print(f"  {t['what']}: {value} (target {t['target']}): {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
