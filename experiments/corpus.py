"""The synthetic corpus an experiment runs on when no dataset is configured: built once, safely."""
from __future__ import annotations

import fcntl
import shutil
from pathlib import Path

from omegaconf import DictConfig

_DONE = ".complete"


def ensure_synthetic(cfg: DictConfig) -> Path:
    """Build ``cfg.synthetic`` under its root unless a complete build is there. Several processes
    (sweep jobs) may call it at once: one builds, the others wait and reuse."""
    from datamodules.synthetic import generate_corpus

    s = cfg.synthetic
    root = Path(s.root)
    stamp = f"patients={s.patients} recordings={s.recordings} minutes={s.minutes} seed={s.seed}"
    done = root / _DONE
    if done.exists() and done.read_text().strip() == stamp:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists() and done.read_text().strip() == stamp:
            return root
        tmp = root.with_name(root.name + ".building")
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"building the synthetic CHB-MIT-shaped corpus ({stamp}) in {root} ...", flush=True)
        generate_corpus(tmp, n_patients=int(s.patients), n_recordings=int(s.recordings),
                        minutes=float(s.minutes), seed=int(s.seed))
        (tmp / _DONE).write_text(stamp + "\n")
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    return root


def data_root(cfg: DictConfig) -> Path:
    """The dataset an experiment reads: ``data_root`` if set (it must exist), else the synthetic corpus."""
    from .config import ConfigError

    if cfg.data_root:
        root = Path(str(cfg.data_root)).expanduser()
        if not root.exists():
            raise ConfigError(f"DATA_ROOT {root} does not exist; point it at the CHB-MIT folder "
                              "(holding chb01/, chb02/, ...) or leave it unset for the synthetic corpus")
        return root
    return ensure_synthetic(cfg)
