"""Shared fixtures: tiny synthetic CHB-MIT-shaped corpora built once per test session."""
from __future__ import annotations

import os

import pytest

import tests.support.slurm_cluster as slurm_cluster_mod

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """3 patients x 2 recordings x 5 min: the smallest corpus a LOSO fold can use
    (one test, one validation and one training patient)."""
    from datamodules.synthetic import generate_corpus

    root = tmp_path_factory.mktemp("corpus") / "synthetic"
    truth = generate_corpus(root, preset="easy", n_patients=3, n_recordings=2, minutes=5.0, seed=7)
    return root, truth


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running SLURM cluster; the daemons this fixture started are stopped at the end of the session."""
    try:
        cluster = slurm_cluster_mod.ensure_cluster()
    except slurm_cluster_mod.SlurmUnavailable as e:
        if os.environ.get("SEIZURE_REQUIRE_SLURM", "") not in ("", "0"):
            pytest.fail(f"SEIZURE_REQUIRE_SLURM is set but no SLURM cluster could be started: {e}")
        pytest.skip(f"no SLURM cluster: {e}")
    print(f"\nSLURM cluster: node {cluster.node}, started {cluster.started or 'nothing (reused)'}, "
          f"apt {cluster.install_s:.1f} s, start {cluster.start_s:.1f} s\n{cluster.sinfo()}")
    yield cluster
    cluster.stop()
