"""The synthetic corpus an experiment runs on when no dataset is configured."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def ensure_synthetic(cfg: DictConfig) -> Path:
    """Build ``cfg.synthetic`` under its root. The generator reuses a corpus it built with the same
    parameters (and generator version), builds in a temporary folder renamed into place (safe for
    parallel jobs), and replaces a corpus of other parameters: the folder is the project's own."""
    from datamodules.synthetic import generate_corpus

    s = cfg.synthetic
    generate_corpus(Path(s.root), n_patients=int(s.patients), n_recordings=int(s.recordings),
                    minutes=float(s.minutes), seed=int(s.seed), overwrite=True,
                    progress=lambda msg: print(msg, flush=True))
    return Path(s.root)


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
