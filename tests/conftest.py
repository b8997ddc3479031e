"""Shared fixtures: tiny synthetic CHB-MIT-shaped corpora built once per test session."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """3 patients x 2 recordings x 5 min: the smallest corpus a LOSO fold can use
    (one test, one validation and one training patient)."""
    from datamodules.synthetic import generate_corpus

    root = tmp_path_factory.mktemp("corpus") / "synthetic"
    truth = generate_corpus(root, n_patients=3, n_recordings=2, minutes=5.0, seed=7)
    return root, truth
