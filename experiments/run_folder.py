"""The run folder: ``runs/<name>/<run_id>/``, and the rules that keep it honest.

* It records the resolved config (``config.yaml``) and a hash of what determines the results
  (``run.json``); rerunning the id with a different config is refused with the differing keys.
* One process at a time runs a study in it (``.lock``), and one at a time trains a fold
  (``folds/<patient>/.lock``): a second run of the same id is refused, naming the holder.
* A fold records its state (``status.json``: training, trained, interrupted, failed, done) so
  an interrupted fold is resumed, not mistaken for a finished one; files that turn out damaged
  are moved aside (``*.damaged-<time>``, nothing deleted) and named in one sentence.

Both the runner and the report read folders through this module (no import cycle between them).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .config import check_run_id, to_yaml
from .instantiate import ConfigError

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
ERROR_FILE = "error.txt"
STATUS_FILE = "status.json"
LOCK_FILE = ".lock"

#: Keys that change how a study runs, not what it computes: they stay out of the config hash,
#: so a rerun may change them (more folds, another launcher, a progress bar, offline W&B...).
RUNTIME_KEYS = ("run_id", "runs_dir", "cache_dir", "folds", "launcher", "wandb",
                "trainer.enable_progress_bar", "trainer.log_every_n_steps", "data.num_workers")


class RunFolderError(ConfigError):
    """A run folder that cannot be used as asked (in use, another config, damaged)."""


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def identity(cfg: dict) -> dict:
    """The part of a resolved config that determines a study's results."""
    out = json.loads(json.dumps(cfg, default=str))
    for key in RUNTIME_KEYS:
        node, *rest = key.split(".")
        if not rest:
            out.pop(node, None)
        elif isinstance(out.get(node), dict):
            out[node].pop(rest[0], None)
    return out


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(identity(cfg), sort_keys=True).encode()).hexdigest()[:16]


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``["data.window_s: 2.0 -> 4.0", ...]`` between two configs."""
    out = []
    for k in sorted(set(old) | set(new)):
        key = f"{prefix}{k}"
        a, b = old.get(k, "<unset>"), new.get(k, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, key + ".")
        elif a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_jsonable))
    tmp.replace(path)


def _jsonable(o):
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def read_json(path: Path) -> dict | None:
    """A JSON file of the run folder, or None when it is damaged (moved aside, with a warning)."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (ValueError, UnicodeDecodeError) as e:
        quarantine(path, f"it is not valid JSON ({str(e).splitlines()[0][:80]})")
        return None


def quarantine(path: Path, why: str) -> Path:
    """Move a damaged file aside (never delete it) and say so in one sentence."""
    aside = path.with_name(f"{path.name}.damaged-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    path.replace(aside)
    print(f"warning: {path} is damaged: {why}; moved aside to {aside.name}, that step is redone", flush=True)
    return aside


@contextmanager
def exclusive(path: Path, what: str):
    """Hold an exclusive lock on ``path`` for the block, or refuse at once naming the holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise RunFolderError(f"{what} is in use by {holder}; wait for it to finish, stop it, or use "
                             "another run_id") from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now():%Y-%m-%d %H:%M:%S}")
        fh.flush()
        yield
    finally:
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


@dataclass(frozen=True)
class RunFolder:
    """``<runs_dir>/<name>/<run_id>``."""

    path: Path

    @classmethod
    def of(cls, runs_dir: str | Path, name: str, run_id: str) -> RunFolder:
        return cls(Path(runs_dir) / name / check_run_id(run_id))

    @property
    def name(self) -> str:
        return self.path.parent.name

    @property
    def run_id(self) -> str:
        return self.path.name

    def fold_dir(self, fold: str) -> Path:
        return self.path / "folds" / fold

    def lock(self):
        return exclusive(self.path / LOCK_FILE, f"run folder {self.path}")

    def fold_lock(self, fold: str):
        return exclusive(self.fold_dir(fold) / LOCK_FILE, f"fold {fold} of {self.path}")

    # -- config -----------------------------------------------------------------------------
    def record_config(self, cfg: dict) -> None:
        """Write the config, or check it equals the one recorded; :class:`RunFolderError` with
        the differing keys otherwise."""
        self.path.mkdir(parents=True, exist_ok=True)
        run_file, cfg_file = self.path / RUN_FILE, self.path / CONFIG_FILE
        digest = config_hash(cfg)
        if run_file.exists():
            recorded = read_json(run_file)
            if recorded is not None and recorded.get("config_hash") != digest:
                diff = config_diff(identity(recorded.get("config", {})), identity(cfg))
                shown = "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")
                raise RunFolderError(
                    f"run {self.path} was made with another config ({shown or 'hash differs'}): rerun it "
                    "with the same settings, pass --force-new for a new run id, or choose another run_id")
            if recorded is not None:
                return
        write_json_atomic(run_file, {"config_hash": digest, "created": datetime.now().isoformat(timespec="seconds"),
                                     "host": socket.gethostname(), "config": cfg})
        tmp = cfg_file.with_name(f".{cfg_file.name}.tmp")
        tmp.write_text(to_yaml(cfg))
        tmp.replace(cfg_file)

    def recorded_config(self) -> dict | None:
        f = self.path / RUN_FILE
        if not f.exists():
            return None
        data = read_json(f)
        return None if data is None else data.get("config")

    # -- folds ------------------------------------------------------------------------------
    def metrics(self, fold: str) -> dict | None:
        """A finished fold's metrics (None if unfinished; a damaged file is moved aside)."""
        f = self.fold_dir(fold) / METRICS_FILE
        return read_json(f) if f.exists() else None

    def fold_done(self, fold: str) -> bool:
        return self.metrics(fold) is not None

    def status(self, fold: str) -> dict:
        f = self.fold_dir(fold) / STATUS_FILE
        if not f.exists():
            return {}
        return read_json(f) or {}

    def set_status(self, fold: str, state: str, **info) -> None:
        d = self.fold_dir(fold)
        d.mkdir(parents=True, exist_ok=True)
        prev = self.status(fold) if (d / STATUS_FILE).exists() else {}
        write_json_atomic(d / STATUS_FILE, {**prev, **info, "state": state,
                                            "updated": datetime.now().isoformat(timespec="seconds"),
                                            "host": socket.gethostname(), "pid": os.getpid()})

    def folds(self) -> list[str]:
        root = self.path / "folds"
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def wait_for(path: Path, timeout_s: float = 5.0) -> bool:
    """True once ``path`` exists (for tests and launchers polling a shared file system)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if path.exists():
            return True
        time.sleep(0.05)
    return path.exists()
