"""Launch one job per fold (held-out patient) of a leave-one-patient-out study.

:func:`launch_folds` calls a picklable ``fn(fold)`` once per fold, with one of three launchers:

``slurm``
    One SLURM job array through submitit (``AutoExecutor(cluster="slurm").map_array``): one
    array task per fold, partition / GPUs / CPUs / memory / time limit from the ``slurm``
    settings. The launching process waits, printing a line per finished fold.
``local``
    submitit's ``LocalExecutor``: each fold in its own process (same job folder layout, logs and
    result files as on SLURM), at most ``max_parallel`` at a time.
``inline``
    In this process, one fold after the other (debugging: breakpoints and tracebacks work).

A fold that fails (exception, crash, SLURM cancellation or time limit) is recorded in its
:class:`FoldOutcome` with the error text and log paths; the other folds carry on.

Requeue on time limit / preemption
----------------------------------
submitit asks SLURM for ``--signal=USR2@<signal_delay_s>`` and, on that signal, calls the
submitted callable's ``checkpoint`` method and requeues the array task (``scontrol requeue``),
up to 3 times on time limits (submitit's ``max_num_timeout``; preemptions are unlimited). Every
fold runs through :class:`FoldCall`, a :class:`submitit.helpers.Checkpointable`, so it is
resubmitted with the same arguments; the fold function must therefore be resumable (the runner
restarts from its fold's last Lightning checkpoint). We chose this over Lightning's
``SLURMEnvironment(auto_requeue=True)`` because (1) the process that waits on the array reads
submitit's result file, which only submitit's requeue keeps on the same path, so a requeued fold
is still collected; (2) it covers work outside ``Trainer.fit`` (scoring, ECAM panels) and the
``local`` launcher alike; (3) two handlers requeueing the same task on one signal would race.
Lightning listens on SIGUSR1, which submitit never sends, so its handler stays idle; the
runner should still pass ``plugins=[SLURMEnvironment(auto_requeue=False)]`` to make that explicit.

SLURM without accounting
------------------------
submitit's own job-state polling uses ``sacct``, which needs accounting storage. Here completion is
read from submitit's result file, and a job that leaves ``squeue`` (or reaches a final state) without
writing one (killed, out of memory, node failure) is reported failed after ``grace_s``: the launcher
works on clusters with and without accounting, including the single-node test cluster
(``tests/support/slurm_cluster.py``).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import submitit
import yaml
from submitit.core.utils import pickle_load

LAUNCHERS = ("slurm", "local", "inline")
@dataclass(frozen=True)
class SlurmSettings:
    """What a study config may give under ``launcher.slurm`` (the defaults live here only)."""

    partition: str | None = None          # None: the cluster's default partition
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    mem_gb: float = 8.0
    timeout_min: int = 120                # a fold on real data can take an hour or more
    array_parallelism: int = 256          # most array tasks running at once
    signal_delay_s: int = 90              # USR2 this long before the time limit (checkpoint + requeue)
    setup: tuple[str, ...] = ()           # shell lines run before the job (module load ..., source ...)
    additional: dict = field(default_factory=dict)  # any other sbatch option, e.g. {"account": "x"}

    def __post_init__(self):
        for key in ("cpus_per_task", "timeout_min", "array_parallelism"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"slurm.{key} must be at least 1, got {getattr(self, key)!r}")
        for key in ("gpus_per_node", "signal_delay_s"):
            if int(getattr(self, key)) < 0:
                raise ValueError(f"slurm.{key} must not be negative, got {getattr(self, key)!r}")
        if float(self.mem_gb) <= 0:
            raise ValueError(f"slurm.mem_gb must be > 0, got {self.mem_gb!r}")


@dataclass(frozen=True)
class LauncherSettings:
    """``make sweep``: how the folds of a study are launched.

    name : ``local`` (parallel local processes), ``slurm`` (one array task per fold) or
        ``inline`` (this process, one after the other: for debugging)
    max_parallel : folds at once with ``local``
    slurm : :class:`SlurmSettings`
    """

    name: Literal["local", "slurm", "inline"] = "local"
    max_parallel: int = 2
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    def __post_init__(self):
        if self.name not in LAUNCHERS:
            raise ValueError(f"name must be one of {', '.join(LAUNCHERS)}, got {self.name!r}")
        if int(self.max_parallel) < 1:
            raise ValueError(f"max_parallel must be at least 1, got {self.max_parallel!r}")


SLURM_DEFAULTS: Mapping[str, Any] = {f.name: getattr(SlurmSettings(), f.name) for f in fields(SlurmSettings)}
# SLURM states after which no result file will appear any more.
_FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                           "BOOT_FAIL", "DEADLINE", "PREEMPTED", "SPECIAL_EXIT", "REVOKED"})
_LOCAL_NO_TIME_LIMIT_MIN = 60 * 24 * 365  # local runs are not time-limited; submitit needs a number


@dataclass(frozen=True)
class FoldOutcome:
    """What became of one fold's job.

    Attributes
    ----------
    fold : str
        The held-out patient.
    ok : bool
        True when ``fn(fold)`` returned.
    result : Any
        Its return value (None when it failed).
    error : str or None
        Traceback, or why the job ended without a result (SLURM state, log tail).
    job_id : str or None
        SLURM array task id (``<array>_<index>``), local controller pid, or None inline.
    stdout, stderr : Path or None
        The job's log files (None inline).
    elapsed_s : float
        Seconds from submission until the launcher saw the fold finish.
    """

    fold: str
    ok: bool
    result: Any = None
    error: str | None = None
    job_id: str | None = None
    stdout: Path | None = None
    stderr: Path | None = None
    elapsed_s: float = 0.0


class FoldCall(submitit.helpers.Checkpointable):
    """``fn(fold)`` as a submitit job that is requeued, same fold, on time limit or preemption.

    Parameters
    ----------
    fn : callable
        Picklable (module-level) function of one fold; resumable when used with requeue.
    """

    def __init__(self, fn: Callable[[str], Any]):
        self.fn = fn

    def __call__(self, fold: str) -> Any:
        return self.fn(fold)

    def __repr__(self) -> str:
        return f"FoldCall({getattr(self.fn, '__qualname__', self.fn)!r})"


def launch_folds(fn: Callable[[str], Any], folds: Iterable[str], *, launcher: str, log_dir: str | Path,
                 slurm: Mapping[str, Any] | None = None, max_parallel: int = 2, job_name: str = "seizure-lightning",
                 poll_s: float = 2.0, grace_s: float = 30.0, timeout_s: float | None = None,
                 progress: bool = True) -> list[FoldOutcome]:
    """Run ``fn(fold)`` for every fold and collect each outcome; a failed fold does not stop the others.

    Parameters
    ----------
    fn : callable
        ``fn(fold) -> result``; for ``slurm`` and ``local`` it is pickled (cloudpickle) into the job,
        so it must be importable there (a module-level function of an installed package).
    folds : iterable of str
        Held-out patients, one job each.
    launcher : {"slurm", "local", "inline"}
    log_dir : path
        submitit job folder: submission script, pickles, ``<job>_<task>_log.out/.err`` per fold.
        Use a fresh folder per sweep (e.g. inside the run directory): results are read from it by job id.
    slurm : mapping, optional
        SLURM settings (keys of :data:`SLURM_DEFAULTS`). ``gpus_per_node`` also applies to ``local``
        (each parallel slot gets its own GPUs); the rest is ignored by ``local`` and ``inline``.
    max_parallel : int
        Folds running at once with ``local``.
    job_name : str
        SLURM job name (shown by ``squeue``).
    poll_s : float
        Seconds between checks of the jobs.
    grace_s : float
        How long a job may be gone from ``squeue`` (or in a final state) without a result file
        before it is reported failed (shared file systems can show files late).
    timeout_s : float, optional
        Give up waiting after this long: unfinished jobs are cancelled and reported failed.
    progress : bool
        Print one line per finished fold to stderr.

    Returns
    -------
    list of FoldOutcome
        In the order of ``folds``.
    """
    folds = _check_folds(folds)
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
    settings = _slurm_settings(slurm)
    report = _Progress(len(folds), launcher, enabled=progress)
    if launcher == "inline":
        return [report(_run_inline(fn, fold)) for fold in folds]
    log_dir = Path(log_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    if launcher == "slurm":
        outcomes = _run_slurm(FoldCall(fn), folds, log_dir, settings, job_name, poll_s, grace_s, timeout_s, report)
    else:
        outcomes = _run_local(FoldCall(fn), folds, log_dir, settings, max_parallel, poll_s, grace_s, timeout_s,
                              report)
    return [outcomes[f] for f in folds]


# ---------------------------------------------------------------------------------------------
# launchers
# ---------------------------------------------------------------------------------------------

def _run_inline(fn: Callable[[str], Any], fold: str) -> FoldOutcome:
    t0 = time.monotonic()
    try:
        result = fn(fold)
    except Exception:  # one fold's failure is recorded, the study goes on
        return FoldOutcome(fold, False, error=traceback.format_exc(), elapsed_s=time.monotonic() - t0)
    return FoldOutcome(fold, True, result=result, elapsed_s=time.monotonic() - t0)


def _run_slurm(call: FoldCall, folds: list[str], log_dir: Path, s: dict, job_name: str, poll_s: float,
               grace_s: float, timeout_s: float | None, report: _Progress) -> dict[str, FoldOutcome]:
    executor = submitit.AutoExecutor(folder=log_dir, cluster="slurm")
    params: dict[str, Any] = dict(
        name=job_name, timeout_min=int(s["timeout_min"]), mem_gb=s["mem_gb"], cpus_per_task=int(s["cpus_per_task"]),
        tasks_per_node=1, nodes=1, slurm_array_parallelism=int(s["array_parallelism"]),
        slurm_signal_delay_s=int(s["signal_delay_s"]))
    if s["partition"]:
        params["slurm_partition"] = s["partition"]
    if int(s["gpus_per_node"]):
        # `--gpus-per-node=0` is rejected by clusters without GPU gres: only ask when > 0
        params["gpus_per_node"] = int(s["gpus_per_node"])
    if s["setup"]:
        params["slurm_setup"] = list(s["setup"])
    if s["additional"]:
        params["slurm_additional_parameters"] = dict(s["additional"])
    executor.update_parameters(**params)
    t0 = time.monotonic()
    try:
        jobs = executor.map_array(call, folds)
    except Exception as e:  # sbatch refused the array (or is missing): nothing ran, say why
        raise RuntimeError(f"could not submit the job array with sbatch ({len(folds)} folds, job folder "
                           f"{log_dir}): {e}") from e
    array_id = jobs[0].job_id.split("_")[0]
    if report.enabled:
        print(f"[slurm] submitted job array {array_id} ({len(folds)} folds), logs in {log_dir}",
              file=sys.stderr, flush=True)
    running = dict(zip(folds, jobs))
    gone_since: dict[str, float] = {}
    done: dict[str, FoldOutcome] = {}
    try:
        while running:
            states = _squeue_states(array_id)
            now = time.monotonic()
            for fold, job in list(running.items()):
                state = None if states is None else states.get(job.job_id, "GONE")
                if job.paths.result_pickle.exists():
                    done[fold] = report(_collect(fold, job, now - t0, grace_s))
                elif state is not None and (state == "GONE" or state in _FINAL_STATES):
                    first = gone_since.setdefault(fold, now)
                    if now - first >= grace_s:
                        what = "left the queue" if state == "GONE" else f"ended in state {state}"
                        done[fold] = report(_no_result(fold, job, f"SLURM job {job.job_id} {what}", now - t0))
                else:
                    gone_since.pop(fold, None)
                if fold in done:
                    del running[fold]
            if running and timeout_s is not None and now - t0 > timeout_s:
                for fold, job in running.items():
                    job.cancel(check=False)
                    done[fold] = report(_no_result(fold, job, f"not finished after {timeout_s:.0f} s: cancelled",
                                                   now - t0))
                running = {}
            if running:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        print(f"[slurm] interrupted: job array {array_id} keeps running (stop it with `scancel {array_id}`)",
              file=sys.stderr, flush=True)
        raise
    return done


def _run_local(call: FoldCall, folds: list[str], log_dir: Path, s: dict, max_parallel: int, poll_s: float,
               grace_s: float, timeout_s: float | None, report: _Progress) -> dict[str, FoldOutcome]:
    executor = submitit.LocalExecutor(folder=log_dir)
    n_gpus = int(s["gpus_per_node"])
    slots = _local_gpu_slots(n_gpus, max_parallel)
    executor.update_parameters(timeout_min=_LOCAL_NO_TIME_LIMIT_MIN, gpus_per_node=n_gpus)
    waiting = deque(folds)
    running: dict[str, tuple[Any, int, float]] = {}  # fold -> (job, slot, submit time)
    done: dict[str, FoldOutcome] = {}
    t_start = time.monotonic()
    try:
        while waiting or running:
            free = sorted(set(range(max_parallel)) - {slot for _, slot, _ in running.values()})
            while waiting and free:
                slot = free.pop(0)
                # submitit's local jobs see CUDA_VISIBLE_DEVICES = exactly their GPUs ("" for CPU folds)
                executor.update_parameters(visible_gpus=slots[slot])
                fold = waiting.popleft()
                running[fold] = (executor.submit(call, fold), slot, time.monotonic())
            now = time.monotonic()
            for fold, (job, _, t0) in list(running.items()):
                if job.paths.result_pickle.exists() or job.done():
                    done[fold] = report(_collect(fold, job, now - t0, grace_s))
                    del running[fold]
            if running and timeout_s is not None and now - t_start > timeout_s:
                for fold, (job, _, t0) in running.items():
                    job.cancel()
                    done[fold] = report(_no_result(fold, job, f"not finished after {timeout_s:.0f} s: cancelled",
                                                   now - t0))
                for fold in waiting:
                    done[fold] = report(FoldOutcome(fold, False, error=f"not started within {timeout_s:.0f} s"))
                running, waiting = {}, deque()
            if running:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        for job, _, _ in running.values():  # local jobs are ours: stop them with us
            job.cancel()
        raise
    return done


# ---------------------------------------------------------------------------------------------
# outcomes
# ---------------------------------------------------------------------------------------------

def _collect(fold: str, job: Any, elapsed_s: float, grace_s: float) -> FoldOutcome:
    """Outcome from submitit's result file, waiting up to ``grace_s`` for it to appear."""
    deadline = time.monotonic() + grace_s
    while not job.paths.result_pickle.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    if not job.paths.result_pickle.exists():
        return _no_result(fold, job, f"job {job.job_id} ended", elapsed_s)
    tag, payload = pickle_load(job.paths.result_pickle)
    common = dict(job_id=job.job_id, stdout=job.paths.stdout, stderr=job.paths.stderr, elapsed_s=elapsed_s)
    if tag == "success":
        return FoldOutcome(fold, True, result=payload, **common)
    return FoldOutcome(fold, False, error=str(payload), **common)


def _no_result(fold: str, job: Any, what: str, elapsed_s: float) -> FoldOutcome:
    err = job.paths.stderr
    return FoldOutcome(fold, False, error=f"{what} without a result; {_tail(err)}", job_id=job.job_id,
                       stdout=job.paths.stdout, stderr=err, elapsed_s=elapsed_s)


def _tail(path: Path, n: int = 20) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"no log at {path}"
    return f"last lines of {path}:\n" + "\n".join(lines[-n:])


class _Progress:
    """Prints ``[slurm] 2/3 chb02 ok (job 12_1, 35.2 s)`` as folds finish."""

    def __init__(self, total: int, launcher: str, enabled: bool):
        self.total, self.launcher, self.enabled, self.count = total, launcher, enabled, 0

    def __call__(self, outcome: FoldOutcome) -> FoldOutcome:
        self.count += 1
        if self.enabled:
            job = f"job {outcome.job_id}, " if outcome.job_id else ""
            line = f"[{self.launcher}] {self.count}/{self.total} {outcome.fold} "
            if outcome.ok:
                line += f"ok ({job}{outcome.elapsed_s:.1f} s)"
            else:
                last = (outcome.error or "").strip().splitlines()[-1:] or [""]
                line += f"FAILED ({job}{outcome.elapsed_s:.1f} s): {last[0]}"
                if outcome.stderr:
                    line += f" [log: {outcome.stderr}]"
            print(line, file=sys.stderr, flush=True)
        return outcome


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _check_folds(folds: Iterable[str]) -> list[str]:
    folds = list(folds)
    if not folds:
        raise ValueError("no folds to launch")
    bad = [f for f in folds if not isinstance(f, str) or not f]
    if bad:
        raise ValueError(f"folds must be non-empty strings (patient ids), got {bad!r}")
    dupes = sorted({f for f in folds if folds.count(f) > 1})
    if dupes:
        raise ValueError(f"folds listed twice: {dupes}")
    return folds


def _slurm_settings(slurm: Mapping[str, Any] | SlurmSettings | None) -> dict[str, Any]:
    if isinstance(slurm, SlurmSettings):
        given = asdict(slurm)
    else:
        given = {k: v for k, v in dict(slurm or {}).items() if v is not None}  # None: the default
    unknown = sorted(set(given) - set(SLURM_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown slurm settings {unknown}; known: {sorted(SLURM_DEFAULTS)} "
                         "(other sbatch options go under `additional`)")
    if isinstance(given.get("setup"), str):
        given["setup"] = [given["setup"]]
    return asdict(SlurmSettings(**given))


def _squeue_states(array_id: str) -> dict[str, str] | None:
    """``{"<array>_<index>": state}`` for the array's tasks still known to slurmctld; None if squeue fails."""
    try:
        res = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", array_id, "-o", "%i|%T"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        # a job purged from slurmctld's memory is "Invalid job id": all its tasks are gone
        return {} if "Invalid job id" in res.stderr else None
    rows = (line.split("|", 1) for line in res.stdout.split() if "|" in line)
    return {job_id: state for job_id, state in rows}


def _local_gpu_slots(n_gpus: int, max_parallel: int) -> list[tuple[int, ...]]:
    """GPU indices for each local parallel slot, round-robin over the visible GPUs."""
    if n_gpus == 0:
        return [()] * max_parallel
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip():
        try:
            gpus = [int(g) for g in visible.split(",")]
        except ValueError:
            raise ValueError(f"the local launcher needs integer GPU indices in CUDA_VISIBLE_DEVICES, "
                             f"got {visible!r}") from None
    else:
        import torch  # only when GPUs are asked for: keeps job start-up light otherwise
        gpus = list(range(torch.cuda.device_count()))
    if len(gpus) < n_gpus:
        raise ValueError(f"slurm.gpus_per_node={n_gpus} but {len(gpus)} GPU(s) are visible on this machine")
    return [tuple(gpus[(slot * n_gpus + k) % len(gpus)] for k in range(n_gpus)) for slot in range(max_parallel)]


# ---------------------------------------------------------------------------------------------
# W&B sweep
# ---------------------------------------------------------------------------------------------

def write_wandb_sweep(path: str | Path, experiment_name: str, folds: Sequence[str],
                      extra_overrides: Sequence[str] = (), *, project: str | None = None) -> Path:
    """Write a W&B sweep YAML with a grid over the held-out patient, for ``wandb agent`` users.

    Each sweep run executes ``python -m experiments run <experiment_name> folds=[<fold>] <overrides>``:
    the grid parameter is ``folds`` with values ``"[chb01]"``..., so W&B's ``${args_no_hyphens}``
    renders it as the same ``folds=[chb01]`` override that ``make experiment FOLD=chb01`` passes.

    Parameters
    ----------
    path : path
        YAML file to write (parents created).
    experiment_name : str
        Experiment (YAML) name, e.g. ``chb_loso``.
    folds : sequence of str
        Held-out patients, one sweep run each.
    extra_overrides : sequence of str
        ``key=value`` overrides appended to every run's command.
    project : str, optional
        W&B project written into the sweep.

    Returns
    -------
    Path
        The written file. Use it with ``wandb sweep <file>`` then ``wandb agent <sweep id>``.
    """
    folds = _check_folds(folds)
    bad = [f for f in folds if any(c in f for c in ",[]= \t\n'\"")]
    if bad:
        raise ValueError(f"fold names must not contain , [ ] = quotes or spaces (they go into an override): {bad}")
    bad = [o for o in extra_overrides if "=" not in o or o.startswith("-")]
    if bad:
        raise ValueError(f"extra_overrides must be key=value overrides, got {bad}")
    sweep: dict[str, Any] = {"name": f"{experiment_name}-loso"}
    if project:
        sweep["project"] = project
    sweep.update({
        "method": "grid",
        "parameters": {"folds": {"values": [f"[{f}]" for f in folds]}},
        "command": ["${env}", "${interpreter}", "-m", "experiments", "run", experiment_name,
                    "${args_no_hyphens}", *extra_overrides],
    })
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# W&B sweep: one run per held-out patient of {experiment_name}.\n"
                    f"# wandb sweep {path.name}   then   wandb agent <entity>/<project>/<sweep id>\n"
                    + yaml.safe_dump(sweep, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------
# launcher self-test
# ---------------------------------------------------------------------------------------------

def _selftest_fold(fold: str) -> dict[str, Any]:
    """Launcher self-test job (module-level so submitit can pickle it by reference).

    ``fail*`` raises, ``crash*`` kills its process without a result (like an OOM kill), ``nap*``
    sleeps 1 s, ``slow*`` sleeps up to 120 s on its first attempt and returns at once after a
    SLURM requeue; anything else returns at once. Returns where and how it ran:
    ``{"fold", "pid", "slurm_job", "restarts", "cuda_visible", "started_at", "finished_at"}``.
    """
    started_at = time.time()
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    print(f"self-test fold {fold} started (restarts={restarts})", flush=True)
    if fold.startswith("fail"):
        raise RuntimeError(f"self-test fold {fold} fails on purpose")
    if fold.startswith("crash"):
        os._exit(3)
    if fold.startswith("nap"):
        time.sleep(1.0)
    if fold.startswith("slow") and restarts == 0:
        time.sleep(120)
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    return {"fold": fold, "pid": os.getpid(),
            "slurm_job": f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ.get("SLURM_JOB_ID"),
            "restarts": restarts, "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "started_at": started_at, "finished_at": time.time()}
