"""A real single-node SLURM cluster on this machine, for integration tests.

:func:`ensure_cluster` brings up Debian's ``slurm-wlm`` (``slurmctld`` + ``slurmd``) and
``munge`` on localhost so that the SLURM launcher (:mod:`experiments.launchers`) is tested
against a real scheduler: real ``sbatch`` job arrays, ``srun`` steps, signals and requeue.

What it does, in order (each step is skipped when already done, so calling it twice is cheap
and a running cluster is reused):

1. a cluster whose controller answers ``scontrol ping`` and has a usable node: reuse it;
2. otherwise, as root: install ``slurm-wlm`` and ``munge`` with apt if missing
   (``--no-install-recommends``: 9 packages instead of 43, the optional plugins pull in
   HDF5, RRD, IPMI, ROCm...);
3. create the munge key if absent, start ``munged`` as user ``munge`` (``/run/munge`` owned by
   ``munge``: munged refuses other owners);
4. write a minimal ``/etc/slurm/slurm.conf`` (the node as ``slurmd -C`` reports it, one
   ``debug`` partition, ``proctrack/linuxproc`` + ``task/none`` so no cgroup setup is needed,
   ``select/cons_tres``, no accounting), marked as ours so a real site config is never
   overwritten;
5. start ``slurmctld`` then ``slurmd`` (after munged: both authenticate through it) and wait
   until ``sinfo`` shows the node idle, resuming it when it registers down or drained.

When it cannot (not root, no apt, install failed, daemons do not come up) it raises
:class:`SlurmUnavailable` whose message says why, so a test can ``pytest.skip`` with it.

No accounting database means ``sacct`` does not work here; the launcher does not depend on
it (it polls ``squeue`` and submitit's result files).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CONF_PATH = Path("/etc/slurm/slurm.conf")
CONF_MARKER = "# Written by the seizure-lightning test support: a single-node test cluster."
# What every version of the marker says (the helper once lived in experiments/): a file holding it is ours.
_MARKER_TAIL = "(seizure-lightning): a single-node test cluster."
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN_DIR = Path("/run/munge")
MUNGED_PIDFILE = MUNGE_RUN_DIR / "munged.pid"
SLURMCTLD_PIDFILE = Path("/run/slurmctld.pid")
SLURMD_PIDFILE = Path("/run/slurmd.pid")
LOG_DIR = Path("/var/log/slurm")
STATE_DIR = Path("/var/spool/slurmctld")
SLURMD_SPOOL = Path("/var/spool/slurmd")
PARTITION = "debug"
APT_PACKAGES = ("slurm-wlm", "munge")
REQUIRED_BINARIES = ("slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol",
                     "scancel", "munged", "munge", "unmunge")
_READY_STATES = ("idle", "mixed", "allocated", "completing")


class SlurmUnavailable(RuntimeError):
    """A local SLURM cluster cannot be brought up here; the message says why."""


@dataclass(frozen=True)
class SlurmCluster:
    """A reachable SLURM cluster (ours or one that was already running).

    Attributes
    ----------
    node : str
        Name of the compute node (``slurmd -C``) or, for a reused cluster, its first node.
    partition : str or None
        Partition to submit to; ``None`` means the cluster's default partition.
    started : tuple of str
        Daemons this call started (``munged``, ``slurmctld``, ``slurmd``); :meth:`stop` stops
        only these, so a cluster that was already running is left alone.
    install_s : float
        Seconds spent in ``apt-get`` (0 when nothing was installed).
    start_s : float
        Seconds from the end of the install to the node being idle.
    """

    node: str
    partition: str | None
    started: tuple[str, ...] = ()
    install_s: float = 0.0
    start_s: float = 0.0
    conf_path: Path | None = field(default=None, compare=False)

    def sinfo(self) -> str:
        """``sinfo`` output (partitions and node states)."""
        return _run(["sinfo"], check=True).stdout

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the daemons this helper started (slurmd and slurmctld first, munged last)."""
        if "slurmctld" in self.started or "slurmd" in self.started:
            # Jobs on a cluster we started are ours: cancel them first, or their slurmstepd would
            # outlive slurmd waiting to report back.
            if self.partition:
                _run(["scancel", f"--partition={self.partition}"], check=False)
                _wait(lambda: not _run(["squeue", "-h"], check=False).stdout.strip(), timeout_s,
                      "jobs did not leave the queue", LOG_DIR / "slurmctld.log", fail=False)
            # ``scontrol shutdown`` stops the controller and every slurmd it knows.
            _run(["scontrol", "shutdown"], check=False)
            _wait_pids_gone([SLURMCTLD_PIDFILE, SLURMD_PIDFILE], timeout_s)
            for pidfile in (SLURMD_PIDFILE, SLURMCTLD_PIDFILE):
                _kill_pidfile(pidfile, signal.SIGTERM)
        if "munged" in self.started:
            _kill_pidfile(MUNGED_PIDFILE, signal.SIGTERM)
            _wait_pids_gone([MUNGED_PIDFILE], timeout_s)


def ensure_cluster(*, install: bool = True, ready_timeout_s: float = 90.0,
                   apt_timeout_s: float = 900.0) -> SlurmCluster:
    """Reuse or bring up a single-node SLURM cluster on this machine.

    Parameters
    ----------
    install : bool
        Install ``slurm-wlm`` and ``munge`` with apt when they are missing (root only).
    ready_timeout_s : float
        How long to wait for the controller to answer and the node to become idle.
    apt_timeout_s : float
        Limit for ``apt-get update`` and ``apt-get install`` each.

    Returns
    -------
    SlurmCluster
        The cluster, with what was started and how long the install and start took.

    Raises
    ------
    SlurmUnavailable
        Not root, no apt, the install failed, a foreign ``slurm.conf`` is present, or the
        daemons did not come up (the message includes the relevant log lines).
    """
    reused = _running_cluster()
    if reused is not None:
        return reused
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            f"no SLURM controller answers and this process is not root (uid {os.geteuid()}): "
            "starting munged, slurmctld and slurmd needs root")

    install_s = 0.0
    missing = [b for b in REQUIRED_BINARIES if _which(b) is None]
    if missing:
        if not install:
            raise SlurmUnavailable(f"SLURM/munge binaries missing ({', '.join(missing)}) and install=False")
        install_s = _apt_install(apt_timeout_s)
        still = [b for b in REQUIRED_BINARIES if _which(b) is None]
        if still:
            raise SlurmUnavailable(f"apt installed {' '.join(APT_PACKAGES)} but these are still missing: "
                                   f"{', '.join(still)}")

    t0 = time.monotonic()
    started: list[str] = []
    if _start_munged():
        started.append("munged")
    node_line = _node_hardware()
    node = _field(node_line, "NodeName")
    _write_conf(node_line)
    for d in (LOG_DIR, STATE_DIR, SLURMD_SPOOL):
        d.mkdir(parents=True, exist_ok=True)
    if not _controller_up():
        _start_daemon("slurmctld", SLURMCTLD_PIDFILE)
        started.append("slurmctld")
        _wait(_controller_up, ready_timeout_s, "slurmctld did not answer `scontrol ping`",
              LOG_DIR / "slurmctld.log")
    if not _pid_alive(SLURMD_PIDFILE):
        _start_daemon("slurmd", SLURMD_PIDFILE)
        started.append("slurmd")
    _wait_node_ready(node, ready_timeout_s)
    return SlurmCluster(node=node, partition=PARTITION, started=tuple(started), install_s=install_s,
                        start_s=time.monotonic() - t0, conf_path=CONF_PATH)


# ---------------------------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------------------------

def _running_cluster() -> SlurmCluster | None:
    """A cluster that already answers and has a usable node, else None."""
    if _which("scontrol") is None or _which("sinfo") is None or not _controller_up():
        return None
    out = _run(["sinfo", "-h", "-N", "-o", "%N|%P|%T"], check=False)
    if out.returncode != 0:
        return None
    rows = [line.split("|") for line in out.stdout.split() if line.count("|") == 2]
    usable = [(n, p) for n, p, s in rows if s.rstrip("*~#").lower() in _READY_STATES]
    if not usable:
        return None
    defaults = [p.rstrip("*") for _, p in usable if p.endswith("*")]
    return SlurmCluster(node=usable[0][0], partition=defaults[0] if defaults else None,
                        conf_path=CONF_PATH if CONF_PATH.exists() else None)


def _apt_install(timeout_s: float) -> float:
    if _which("apt-get") is None:
        raise SlurmUnavailable("SLURM is not installed and there is no apt-get to install "
                               f"{' '.join(APT_PACKAGES)} (not a Debian/Ubuntu machine?)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # The packages' postinst runs `invoke-rc.d <daemon> start || exit 1`; Debian's policy-rc.d hook
    # (exit 101) tells it not to start services: we start the daemons ourselves, configured, below.
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\n# temporary (tests.support.slurm_cluster): no service starts during install\n"
                          "exit 101\n")
        policy.chmod(0o755)
    t0 = time.monotonic()
    try:
        for cmd in (["apt-get", "update"],
                    ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]):
            try:
                res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise SlurmUnavailable(f"`{' '.join(cmd)}` did not finish within {timeout_s:.0f} s") from None
            if res.returncode != 0:
                raise SlurmUnavailable(f"`{' '.join(cmd)}` failed (exit {res.returncode}):\n"
                                       f"{_tail(res.stdout + res.stderr)}")
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)
    return time.monotonic() - t0


def _start_munged() -> bool:
    """Make munge authentication work; True when this call started munged."""
    if _munge_works():
        return False
    try:
        import grp
        import pwd
        uid, gid = pwd.getpwnam("munge").pw_uid, grp.getgrnam("munge").gr_gid
    except KeyError:
        raise SlurmUnavailable("user/group `munge` does not exist (the munge package creates it)") from None
    for d, mode in ((MUNGE_RUN_DIR, 0o755), (Path("/var/lib/munge"), 0o700), (Path("/var/log/munge"), 0o700),
                    (MUNGE_KEY.parent, 0o700)):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, uid, gid)
        d.chmod(mode)
    if not MUNGE_KEY.exists():
        # 128 random bytes: the size `mungekey` writes by default (1024 bits).
        MUNGE_KEY.write_bytes(os.urandom(128))
    os.chown(MUNGE_KEY, uid, gid)
    MUNGE_KEY.chmod(0o400)
    _kill_pidfile(MUNGED_PIDFILE, signal.SIGTERM)  # a stale munged that no longer answers
    # munged forks into the background itself; it must run as munge, not root.
    res = subprocess.run([_which("munged")], user="munge", group="munge", extra_groups=[],
                         capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise SlurmUnavailable(f"munged failed to start (exit {res.returncode}): {_tail(res.stderr)}")
    _wait(_munge_works, 20, "munged started but `munge -n | unmunge` still fails",
          Path("/var/log/munge/munged.log"))
    return True


def _munge_works() -> bool:
    if _which("munge") is None or _which("unmunge") is None:
        return False
    cred = _run(["munge", "-n"], check=False)
    if cred.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, text=True).returncode == 0


def _node_hardware() -> str:
    """The ``NodeName=... CPUs=... RealMemory=...`` line that ``slurmd -C`` prints."""
    res = _run(["slurmd", "-C"], check=False)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("NodeName=")), None)
    if res.returncode != 0 or line is None:
        raise SlurmUnavailable(f"`slurmd -C` did not report the node (exit {res.returncode}): "
                               f"{_tail(res.stdout + res.stderr)}")
    return line.strip()


def _write_conf(node_line: str) -> None:
    text = CONF_PATH.read_text(errors="replace") if CONF_PATH.exists() else ""
    if CONF_PATH.exists() and CONF_MARKER not in text and _MARKER_TAIL not in text:
        raise SlurmUnavailable(f"{CONF_PATH} exists and was not written by this helper: not overwriting "
                               "a site configuration (start that cluster yourself, then rerun)")
    node = _field(node_line, "NodeName")
    # Addresses pinned to loopback: no dependence on the hostname resolving (CI containers).
    text = "\n".join([
        CONF_MARKER,
        "ClusterName=seizurelightning",
        f"SlurmctldHost={node}(127.0.0.1)",
        "AuthType=auth/munge",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={STATE_DIR}",
        f"SlurmdSpoolDir={SLURMD_SPOOL}",
        f"SlurmctldPidFile={SLURMCTLD_PIDFILE}",
        f"SlurmdPidFile={SLURMD_PIDFILE}",
        f"SlurmctldLogFile={LOG_DIR / 'slurmctld.log'}",
        f"SlurmdLogFile={LOG_DIR / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "SchedulerType=sched/backfill",
        "MpiDefault=none",
        "ReturnToService=2",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        # short grace between SIGTERM and SIGKILL: tests cancel and requeue jobs
        "KillWait=5",
        "InactiveLimit=0",
        f"{node_line} NodeAddr=127.0.0.1 State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])
    CONF_PATH.parent.mkdir(parents=True, exist_ok=True)
    if not CONF_PATH.exists() or CONF_PATH.read_text() != text:
        tmp = CONF_PATH.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(CONF_PATH)


def _start_daemon(name: str, pidfile: Path) -> None:
    _kill_pidfile(pidfile, signal.SIGTERM)  # stale instance that does not answer
    res = _run([name], check=False)  # daemonizes itself
    if res.returncode != 0:
        raise SlurmUnavailable(f"{name} failed to start (exit {res.returncode}): {_tail(res.stderr)}\n"
                               f"{_log_tail(LOG_DIR / (name + '.log'))}")


def _controller_up() -> bool:
    res = _run(["scontrol", "ping"], check=False, timeout=20)
    return res.returncode == 0 and " is UP" in res.stdout


def _node_state(node: str) -> str:
    res = _run(["sinfo", "-h", "-N", "-n", node, "-o", "%T"], check=False)
    return res.stdout.strip().splitlines()[0].rstrip("*~#").lower() if res.stdout.strip() else ""


def _wait_node_ready(node: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    resumed = False
    state = ""
    while time.monotonic() < deadline:
        state = _node_state(node)
        if state in _READY_STATES:
            return
        if ("down" in state or "drain" in state) and not resumed:
            # a node that registered once before (or with a changed config) comes back down/drained
            _run(["scontrol", "update", f"nodename={node}", "state=resume"], check=False)
            resumed = True
        time.sleep(1.0)
    reason = _run(["sinfo", "-h", "-R"], check=False).stdout.strip()
    raise SlurmUnavailable(f"node {node} not idle after {timeout_s:.0f} s (state {state!r}; reason {reason!r})\n"
                           f"{_log_tail(LOG_DIR / 'slurmd.log')}\n{_log_tail(LOG_DIR / 'slurmctld.log')}")


# ---------------------------------------------------------------------------------------------
# small utilities
# ---------------------------------------------------------------------------------------------

def _which(name: str) -> str | None:
    # daemons live in /usr/sbin, which a non-login root PATH may lack
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")


def _run(cmd: list[str], *, check: bool, timeout: float = 60) -> subprocess.CompletedProcess:
    exe = _which(cmd[0])
    if exe is None:
        if check:
            raise SlurmUnavailable(f"`{cmd[0]}` not found")
        return subprocess.CompletedProcess(cmd, 127, "", f"{cmd[0]}: not found")
    try:
        res = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"`{' '.join(cmd)}` timed out after {timeout} s")
    if check and res.returncode != 0:
        raise SlurmUnavailable(f"`{' '.join(cmd)}` failed (exit {res.returncode}): {_tail(res.stderr)}")
    return res


def _field(line: str, key: str) -> str:
    m = re.search(rf"\b{key}=(\S+)", line)
    if m is None:
        raise SlurmUnavailable(f"no {key}= in {line!r}")
    return m.group(1)


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pidfile: Path) -> bool:
    pid = _read_pid(pidfile)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited daemon nobody reaped (containers whose init does not) is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _kill_pidfile(pidfile: Path, sig: int) -> None:
    pid = _read_pid(pidfile)
    if pid is not None and _pid_alive(pidfile):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_pids_gone(pidfiles: list[Path], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pidfiles):
        time.sleep(0.2)


def _wait(predicate, timeout_s: float, what: str, log: Path, fail: bool = True) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    if fail:
        raise SlurmUnavailable(f"{what} within {timeout_s:.0f} s\n{_log_tail(log)}")
    return False


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _log_tail(path: Path, n: int = 15) -> str:
    try:
        return f"last lines of {path}:\n{_tail(path.read_text(errors='replace'), n)}"
    except OSError:
        return f"({path} not readable)"
