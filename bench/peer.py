"""The peer library, braindecode, imported lazily: it is a benchmark-only dependency.

braindecode 1.x needs torchaudio at import, which has no build for the CPU torch this project
pins; 0.8.1 is the last release without it. ``make bench`` installs it with ``--no-deps`` next to
the ``bench`` extra (skorch, torchinfo, docstring-inheritance, psutil).
"""
from __future__ import annotations

INSTALL_HINT = ('install it for the benchmark with: .venv/bin/python -m pip install -e ".[bench]" && '
                ".venv/bin/python -m pip install --no-deps braindecode==0.8.1  (or run `make bench`)")


class PeerMissing(RuntimeError):
    """braindecode (or one of its dependencies) cannot be imported."""


def require_braindecode() -> str:
    """Import braindecode or raise :class:`PeerMissing` saying how to install it; returns its version."""
    try:
        import braindecode
    except ImportError as e:
        raise PeerMissing(f"braindecode cannot be imported ({e}); {INSTALL_HINT}") from e
    return str(getattr(braindecode, "__version__", "unknown"))


def load_windows(path: str, preload: bool):
    """A windows dataset saved with ``BaseConcatDataset.save``, lazy (``preload=False``: every
    window is read from the saved FIF file when asked for) or loaded into memory."""
    require_braindecode()
    from braindecode.datautil import load_concat_dataset

    return load_concat_dataset(path, preload=preload)
