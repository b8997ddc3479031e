"""Experiment configs: one path from config to objects, checked before any data is touched."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.config import available, load_config
from experiments.factory import build_model, check_buildable, plain
from experiments.instantiate import SECTIONS, ConfigError, parameters, section_target

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", available())
def test_every_shipped_config_instantiates(name):
    """Every experiment resolves completely and builds each of its objects (no data needed)."""
    cfg = load_config(name, env={})
    assert cfg.name == name
    check_buildable(cfg)
    for section, spec in SECTIONS.items():
        node = plain(cfg[section])
        if node is None or not spec.fill_defaults:
            continue
        target = section_target(section, node, plain(cfg.models))
        if isinstance(target, type) and hasattr(target, "__dataclass_fields__"):
            settable = set(target.__dataclass_fields__)
        else:
            settable = {k for k in parameters(target) if k not in spec.reserved}
        # every constructor argument is reachable, and recorded with its value
        assert settable <= set(node), (section, settable - set(node))


def test_defaults_live_in_the_constructors():
    from experiments.launchers import SlurmSettings
    from lightning_modules.detection import SeizureDetectionModule
    from lightning_modules.localization import SeizureLocalizationModule

    det, loc = load_config("chb_loso", env={}), load_config("chb_loso_szloc", env={})
    assert det.module.lr == parameters(SeizureDetectionModule)["lr"].default
    assert det.module.weight_decay == parameters(SeizureDetectionModule)["weight_decay"].default
    assert loc.module.lr == parameters(SeizureLocalizationModule)["lr"].default
    assert det.launcher.slurm.timeout_min == SlurmSettings().timeout_min
    assert loc.data.window_s == 1.0  # the clip DataModule's own default, not forced by the runner


def test_overrides_environment_and_optional_sections():
    cfg = load_config("chb_loso", ["trainer.max_epochs=3", "folds=[chb02]", "model.dropout=0.1",
                                   "pruning._target_=kernel_pruning", "pruning.target_sparsity=0.5",
                                   "activation_maps=null"],
                      env={"DATA_ROOT": "/data/chbmit", "WANDB_MODE": "disabled"})
    assert cfg.trainer.max_epochs == 3 and list(cfg.folds) == ["chb02"]
    assert cfg.data_root == "/data/chbmit" and cfg.wandb.mode == "disabled"
    assert cfg.model.dropout == 0.1 and cfg.pruning.target_sparsity == 0.5 and cfg.activation_maps is None
    # a single-choice section can be switched on without naming its target
    assert load_config("chb_loso", ["pruning.amount=0.3"], env={}).pruning._target_ == "kernel_pruning"


def test_the_model_gets_the_shape_the_data_decides():
    class Shape:
        channels = tuple(f"c{i}" for i in range(5))

        def model_shape(self):
            return {"n_chans": 5, "n_times": 256, "sfreq": 128.0}

    model, spec = build_model(load_config("chb_loso", env={}), Shape())
    assert (model.n_chans, model.n_times, model.sfreq) == (5, 256, 128.0)
    assert spec["name"] == "lsn" and spec["kwargs"]["n_chans"] == 5 and "n_windows" not in spec["kwargs"]


@pytest.mark.parametrize("overrides, message", [
    (["data.window_s=-2"], "data.window_s must be > 0, got -2"),
    (["data.batch_size=0"], "data.batch_size must be > 0, got 0"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs must be an integer or null, got 'abc'"),
    (["module._target_=detectoin"], "module._target_ is 'detectoin' (did you mean 'detection'?)"),
    (["postprocess.threshold=1.5"], "postprocess.threshold must be a probability in (0, 1) or 'auto', got 1.5"),
    (["run_id=../x"], "run_id '../x' must be a plain name"),
    (["trainer.max_epoch=3"], "unknown config key 'trainer.max_epoch'. Did you mean trainer.max_epochs"),
    (["model.dropuot=0.1"], "Did you mean model.dropout"),
    (["taks=detection"], "unknown config key 'taks'"),
    (["model.n_chans=5"], "model.n_chans is set by the runner"),
    (["trainer.callbacks=[]"], "trainer.callbacks is set by the runner"),
    (["model._target_=subprocess.Popen"], "model._target_ is 'subprocess.Popen'"),
    (["module.scheduler=step"], "module.scheduler must be one of 'cosine', 'onecycle', 'none', got 'step'"),
    (["data.preprocessing.l_freq=50"], "l_freq (50.0 Hz) must be below h_freq (40.0 Hz)"),
    (["data._target_=clips"], "module._target_=detection trains on data._target_=windows"),
    (["launcher=local"], "launcher must be a mapping of settings, got 'local'"),
    (["launcher.name=slrum"], "launcher.name must be one of 'local', 'slurm', 'inline', got 'slrum'"),
    (["launcher.slurm.mem_gb=0"], "slurm.mem_gb must be > 0"),
    (["monitor.mode=maximum"], "monitor.mode must be one of 'max', 'min'"),
    (["trainer.accelerator=gpu"], "trainer:"),
    (["pruning.target_sparsity=1.5"], "pruning.target_sparsity must be in [0, 1), got 1.5"),
    (["module.loss_weights.attn_pos=1"], "unknown config key 'module.loss_weights'"),
])
def test_bad_values_are_one_sentence_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        check_buildable(load_config("chb_loso", overrides, env={}))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_user_models_join_the_allow_list_only_by_name():
    with pytest.raises(ConfigError, match="model._target_ is 'tiny'"):
        load_config("chb_loso", ["model._target_=tiny"], env={})
    cfg = load_config("chb_loso", ["models={tiny: tests.support.models.TinyNet}", "model._target_=tiny"], env={})
    check_buildable(cfg)
    assert cfg.model._target_ == "tiny" and cfg.model.hidden == 4
    with pytest.raises(ConfigError, match="lsn.* is a built-in model"):
        load_config("chb_loso", ["models={lsn: tests.support.models.TinyNet}"], env={})


def test_unknown_experiment_lists_available():
    with pytest.raises(ConfigError, match="available: .*chb_loso"):
        load_config("chb_los", env={})
    with pytest.raises(ConfigError, match="no experiment named"):
        load_config("../base", env={})


def _cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "experiments", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120, cwd=cwd)


def test_cli_errors_are_one_sentence_before_any_data(tmp_path, capsys, monkeypatch):
    """Bad input: exit 2, one line on stderr, no traceback, and nothing written (no corpus, no
    cache, no run folder)."""
    from experiments.__main__ import main

    common = [f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
              f"runs_dir={tmp_path / 'runs'}"]
    for args, env, needle in (
        (("run", "nope"), None, "no experiment named 'nope'"),
        (("run", "smoke", "trainer.bogus=1", *common), None, "unknown config key 'trainer.bogus'"),
        (("run", "smoke", "data.window_s=-2", *common), None, "data.window_s must be > 0"),
        (("run", "smoke", "data.batch_size=0", *common), None, "data.batch_size must be > 0"),
        (("run", "smoke", "trainer.max_epochs=abc", *common), None, "trainer.max_epochs must be an integer"),
        (("run", "smoke", "module._target_=detectoin", *common), None, "did you mean 'detection'"),
        (("sweep", "smoke", "postprocess.threshold=1.5", *common), None, "postprocess.threshold must be"),
        (("run", "smoke", "run_id=../x", *common), None, "must be a plain name"),
        (("run", "smoke", *common), {"DATA_ROOT": str(tmp_path / "missing")}, "does not exist"),
        (("run", "smoke", "trainer.max_epochs", *common), None, "is not of the form key=value"),
        (("aggregate", str(tmp_path)), None, "is not a run folder"),
    ):
        with monkeypatch.context() as m:
            for k, v in (env or {}).items():
                m.setenv(k, v)
            code = main(list(args))
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, (args, err)
        assert not any(tmp_path.joinpath(d).exists() for d in ("corpus", "cache", "runs")), args
    r = _cli("--debug", "run", "smoke", "data.batch_size=0", *common)
    assert r.returncode != 0 and "Traceback" in r.stderr  # --debug shows where
    r = _cli("run", "smoke", "data.batch_size=0", *common)  # the real command line, same sentence
    assert r.returncode == 2 and r.stderr.strip() == "error: data.batch_size must be > 0, got 0"


def test_show_prints_the_complete_config(capsys):
    from experiments.__main__ import main

    assert main(["show", "chb_loso_szloc", "model.d_model=80"]) == 0
    out = capsys.readouterr().out
    assert "d_model: 80" in out and "loss_weights:" in out and "timeout_min: 120" in out


def _make(*args, env=None):
    venv = Path(sys.prefix)
    return subprocess.run(["make", "-s", "-o", str(venv / ".installed"), f"VENV={venv}", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.skipif(not (Path(sys.prefix) / "bin" / "python").exists(), reason="needs a virtual environment")
def test_make_quotes_every_variable(tmp_path):
    marker = tmp_path / "pwned"
    r = _make("experiment", "NAME=smoke", f"DATA_ROOT=x;touch {marker}")
    assert r.returncode != 0 and "does not exist" in r.stderr and not marker.exists(), r.stderr
    r = _make("experiment", f"NAME=smoke;touch {marker}")
    assert r.returncode != 0 and "no experiment named" in r.stderr and not marker.exists(), r.stderr
    r = _make("-n", "sweep", "NAME=smoke", "LAUNCHER=local", "FOLD=chb02", "ARGS=trainer.max_epochs=1 run_id=z")
    assert r.returncode == 0 and '"launcher.name=$LAUNCHER"' in r.stdout


def test_another_target_starts_its_section_afresh():
    """chb_loso's YAML sets model.pooling for LSN; switching model._target_ drops what was written
    for the old target (as switching a Hydra config group does), naming the same target keeps it."""
    assert load_config("chb_loso", env={}).model.pooling == "lse"
    assert load_config("chb_loso", ["model._target_=lsn"], env={}).model.pooling == "lse"
    other = load_config("chb_loso", ["model._target_=line_length"], env={})
    assert other.model._target_ == "line_length" and "pooling" not in other.model
    # keys given after the switch apply to the new target
    mean = load_config("chb_loso", ["model._target_=lsn", "model.pooling=mean"], env={})
    assert mean.model.pooling == "mean"
