"""The synthetic corpus an experiment runs on when no dataset is configured."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def ensure_synthetic(cfg: DictConfig) -> Path:
    """Build the ``synthetic`` section's corpus (``datamodules.synthetic.generate_corpus``). The
    generator reuses a corpus it built with the same parameters (and generator version), builds in
    a temporary folder renamed into place (safe for parallel jobs), and replaces a corpus of other
    parameters: the folder is the project's own."""
    from .factory import plain
    from .instantiate import build

    build("synthetic", plain(cfg.synthetic), overwrite=True, progress=lambda msg: print(msg, flush=True))
    return Path(cfg.synthetic.root)


def uses_synthetic(cfg: DictConfig) -> bool:
    """True when the study reads the synthetic corpus (no dataset configured, or its folder)."""
    return not cfg.data_root or Path(str(cfg.data_root)) == Path(cfg.synthetic.root)


def dataset_folder(cfg: DictConfig) -> Path:
    """The dataset an experiment reads: ``data_root`` if set (it must exist), else the synthetic
    corpus's folder (built by :func:`ensure_synthetic`)."""
    from .config import ConfigError

    if uses_synthetic(cfg):
        return Path(cfg.synthetic.root)
    root = Path(str(cfg.data_root)).expanduser()
    if not root.exists():
        raise ConfigError(f"DATA_ROOT {root} does not exist; point it at the CHB-MIT folder "
                          "(holding chb01/, chb02/, ...) or leave it unset for the synthetic corpus")
    if not root.is_dir():
        raise ConfigError(f"DATA_ROOT {root} is a file; point it at the dataset folder")
    return root
