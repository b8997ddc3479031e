"""Run folders that cannot lie: recorded config and hash, refusal on another config, one process
per run id, damaged files moved aside and named, resumed folds keep their whole log, signals."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from experiments.config import load_config
from experiments.factory import plain
from experiments.run_folder import RunFolder, RunFolderError, config_diff, config_hash, read_json


def _cfg(tmp_path, *extra):
    return load_config("smoke", [f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
                                 f"runs_dir={tmp_path / 'runs'}", *extra], env={})


def test_config_is_recorded_and_another_config_refused(tmp_path):
    folder = RunFolder.of(tmp_path / "runs", "smoke", "a")
    cfg = plain(_cfg(tmp_path))
    folder.record_config(cfg)
    assert (folder.path / "config.yaml").read_text().startswith("name: smoke")
    folder.record_config(cfg)  # the same config: fine
    # runtime settings are not part of what a run computes
    folder.record_config({**cfg, "folds": ["chb01"], "trainer": {**cfg["trainer"], "enable_progress_bar": False}})
    other = plain(_cfg(tmp_path, "data.window_s=4", "module.lr=0.01"))
    with pytest.raises(RunFolderError) as e:
        folder.record_config(other)
    msg = str(e.value)
    assert "data.window_s: 2.0 -> 4.0" in msg and "module.lr: 0.003 -> 0.01" in msg and "--force-new" in msg
    assert config_hash(cfg) != config_hash(other)
    assert config_diff({"a": {"b": 1}}, {"a": {"b": 2}, "c": 3}) == ["a.b: 1 -> 2", "c: '<unset>' -> 3"]


def test_force_new_gives_a_fresh_run_id(tmp_path):
    from experiments.runner import open_run

    open_run(_cfg(tmp_path, "run_id=x"))
    cfg = _cfg(tmp_path, "run_id=x", "data.window_s=4")
    with pytest.raises(RunFolderError, match="another config"):
        open_run(cfg)
    folder = open_run(cfg, force_new=True)
    assert folder.run_id == "x-2" and cfg.run_id == "x-2"


def test_a_second_process_on_the_same_run_is_refused(tmp_path, capsys):
    from experiments.__main__ import main

    cfg = _cfg(tmp_path, "run_id=busy")
    folder = RunFolder.of(cfg.runs_dir, "smoke", "busy")
    with folder.lock():
        code = main(["run", "smoke", *_overrides(tmp_path), "run_id=busy"])
    err = capsys.readouterr().err
    assert code == 2 and "is in use by pid" in err and str(os.getpid()) in err
    with folder.fold_lock("chb01"), pytest.raises(RunFolderError, match="fold chb01 of .* is in use"):
        with folder.fold_lock("chb01"):
            pass


def _overrides(tmp_path):
    return [f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
            f"runs_dir={tmp_path / 'runs'}"]


def test_damaged_json_is_moved_aside_not_deleted(tmp_path, capsys):
    f = tmp_path / "metrics.json"
    f.write_text('{"fold": "chb01", "window": {')
    assert read_json(f) is None and not f.exists()
    aside = list(tmp_path.glob("metrics.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_text().startswith('{"fold"')
    assert f"{f} is damaged: it is not valid JSON" in capsys.readouterr().out


def test_a_truncated_checkpoint_falls_back_to_the_last_good_one(tmp_path, capsys):
    from experiments.runner import _resume_point, save_model
    from lightning_modules.detection import SeizureDetectionModule
    from lightning_modules.lsn import LightSeizureNet

    d = tmp_path / "checkpoints"
    d.mkdir()
    good = save_model(SeizureDetectionModule(LightSeizureNet(18)), d / "best.ckpt")
    (d / "last.ckpt").write_bytes(good.read_bytes()[:3000])
    assert _resume_point(d) == d / "best.ckpt"
    assert "last.ckpt is damaged" in capsys.readouterr().out and list(d.glob("last.ckpt.damaged-*"))
    (d / "best.ckpt").write_bytes(b"")
    assert _resume_point(d) is None  # nothing good left: the fold starts over


def test_merged_training_log_keeps_every_epoch(tmp_path):
    from experiments.runner import merge_training_logs

    def write(k, rows):
        p = tmp_path / "csv" / f"attempt-{k}" / "metrics.csv"
        p.parent.mkdir(parents=True)
        p.write_text("epoch,step,val/auroc\n" + "".join(f"{e},{s},{v}\n" for e, s, v in rows))

    write(1, [(0, 10, 0.6), (1, 20, 0.7), (2, 25, "")])  # killed during epoch 2
    write(2, [(2, 30, 0.75), (3, 40, 0.8)])              # resumed from the end of epoch 1
    out = merge_training_logs(tmp_path).read_text().splitlines()
    assert [line.split(",")[0] for line in out[1:]] == ["0", "1", "2", "3"]
    assert out[3].endswith("0.75")


def test_unwritable_cache_is_one_sentence(tmp_path, capsys):
    from experiments.__main__ import main

    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should go")
    code = main(["run", "smoke", f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={blocker / 'cache'}",
                 f"runs_dir={tmp_path / 'runs'}", "run_id=ro"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(blocker) in err and "Traceback" not in err


def test_trainer_call_turns_sigterm_into_a_resumable_interruption():
    from experiments.runner import SIGNALS, Interrupted, trainer_call

    class Trainer:
        received_sigterm = False

    def fit():  # Lightning raises SIGTERMException (a SystemExit) at the next batch
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        raise SystemExit

    with SIGNALS, pytest.raises(Interrupted) as e:
        trainer_call(Trainer(), fit)
    assert e.value.exit_code == 143
    with SIGNALS, pytest.raises(Interrupted):  # outside a Trainer call: at once
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)


def test_sigterm_before_training_exits_143_and_records_nothing_false(tmp_path):
    """SIGTERM while the corpus is being built: non-zero exit, no summary claiming success."""
    cmd = [sys.executable, "-m", "experiments", "run", "smoke", *_overrides(tmp_path), "run_id=t"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = tmp_path / "runs/smoke/t/run.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not run.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (128 + signal.SIGTERM, -signal.SIGTERM), out
    assert not (tmp_path / "runs/smoke/t/summary.json").exists()
