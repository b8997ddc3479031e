"""Experiment configs: base + experiment + environment + overrides, and clear errors."""
from __future__ import annotations

import subprocess
import sys

import pytest

from experiments.config import ConfigError, available, load_config


def test_every_experiment_loads():
    names = available()
    assert {"chb_loso", "chb_loso_pruned", "chb_loso_szloc", "smoke"} <= set(names)
    for name in names:
        cfg = load_config(name, env={})
        assert cfg.name == name and cfg.task in ("detection", "localization")


def test_overrides_and_environment():
    cfg = load_config("chb_loso", ["trainer.max_epochs=3", "folds=[chb02]", "model.kwargs.dropout=0.1"],
                      env={"DATA_ROOT": "/data/chbmit", "WANDB_MODE": "disabled"})
    assert cfg.trainer.max_epochs == 3 and list(cfg.folds) == ["chb02"]
    assert cfg.data_root == "/data/chbmit" and cfg.wandb.mode == "disabled"
    assert cfg.model.kwargs.dropout == 0.1


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError) as e:
        load_config("chb_loso", ["trainer.max_epoch=3"], env={})
    msg = str(e.value)
    assert "trainer.max_epoch" in msg and "Did you mean trainer.max_epochs" in msg and "Valid keys:" in msg


def test_unknown_experiment_lists_available():
    with pytest.raises(ConfigError, match="available: .*chb_loso"):
        load_config("chb_los", env={})


def _cli(*args, env=None):
    import os
    return subprocess.run([sys.executable, "-m", "experiments", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_cli_errors_are_one_sentence_not_tracebacks(tmp_path):
    for args, env, needle in (
        (("run", "nope"), None, "no experiment named 'nope'"),
        (("run", "smoke", "trainer.bogus=1"), None, "unknown config key 'trainer.bogus'"),
        (("run", "smoke"), {"DATA_ROOT": str(tmp_path / "missing")}, "does not exist"),
    ):
        r = _cli(*args, env=env)
        assert r.returncode == 2, r.stderr
        assert needle in r.stderr and "Traceback" not in r.stderr
