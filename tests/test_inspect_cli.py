"""``python -m datamodules inspect`` run as a user would, in a subprocess."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from datamodules.edf import read_edf_header

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "tests" / "data" / "chbmit"
CHB05_SEIZURES = {
    "chb05_06": [[417.0, 532.0]],
    "chb05_13": [[1086.0, 1196.0]],
    "chb05_16": [[2317.0, 2413.0]],
    "chb05_17": [[2451.0, 2571.0]],
    "chb05_22": [[2348.0, 2465.0]],
}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "datamodules", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_inspect_json_on_real_fixtures():
    p = cli("inspect", str(REAL), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["layout"] == "chbmit" and out["root"] == str(REAL.resolve())
    recs = out["recordings"]
    assert [r["recording_id"] for r in recs] == [f"chb05_{k:02d}" for k in range(1, 40)]
    for r in recs:
        assert r["seizures"] == CHB05_SEIZURES.get(r["recording_id"], [])
        header = read_edf_header(r["path"])
        assert r["duration_s"] == header.duration_s == 2.0
        assert r["sfreq"] == 256.0 and len(r["channels"]) == 23 and r["channels"][-1] == "T8-P8"
        assert r["patient"] == "chb05" and r["soz"] is None and r["annotated"] is True
        assert r["warnings"]  # 2 s cuts of hour-long files: the summary clocks disagree


def test_inspect_table_and_totals():
    p = cli("inspect", str(REAL), "--warnings")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["patient", "recording", "duration", "seizures", "warnings"]
    assert lines[6].split()[:4] == ["chb05", "chb05_06", "0:00:02", "1"]
    assert "1 patient(s), 39 recording(s)" in p.stdout and "5 seizure(s)" in p.stdout
    assert "warning: " in p.stdout and "chb05_06.edf" in p.stdout


@pytest.mark.parametrize("kind", ["missing", "empty", "file"])
def test_bad_root_exit_2_one_sentence(tmp_path, kind):
    root = {"missing": tmp_path / "nope", "empty": tmp_path, "file": tmp_path / "x.txt"}[kind]
    if kind == "file":
        root.write_text("x")
    p = cli("inspect", str(root))
    assert p.returncode == 2
    assert p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: ") and str(root) in p.stderr


def test_corrupt_edf_is_reported_not_crashed(tmp_path):
    root = tmp_path / "chbmit"
    shutil.copytree(REAL, root, copy_function=shutil.copyfile)  # fixtures are read-only
    (root / "chb05" / "chb05_13.edf").write_bytes(os.urandom(3000))
    p = cli("inspect", str(root), "--json")
    assert p.returncode == 0, p.stderr
    recs = {r["recording_id"]: r for r in json.loads(p.stdout)["recordings"]}
    bad = recs["chb05_13"]
    assert bad["seizures"] == [[1086.0, 1196.0]] and bad["channels"] == []
    assert any("chb05_13.edf" in w and "unreadable EDF" in w for w in bad["warnings"])
    assert len(recs) == 39


def test_bad_soz_table_exit_2_names_line(tmp_path):
    root = tmp_path / "chbmit"
    shutil.copytree(REAL, root, copy_function=shutil.copyfile)
    (root / "soz.tsv").write_text("patient\telectrodes\tregion\nchb05\tT7,Q9\t\n")
    p = cli("inspect", str(root))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "soz.tsv, line 2" in p.stderr and "'Q9'" in p.stderr


def test_soz_shows_in_json(tmp_path):
    root = tmp_path / "chbmit"
    shutil.copytree(REAL, root, copy_function=shutil.copyfile)
    (root / "soz.tsv").write_text("patient\telectrodes\tregion\nchb05\tT3,F7\tleft temporal\n")
    recs = json.loads(cli("inspect", str(root), "--json").stdout)["recordings"]
    assert {tuple(r["soz"]) for r in recs} == {("T7", "F7")}
    assert {r["soz_region"] for r in recs} == {"left temporal"}


def test_subcommands_registered_and_synth_lazy():
    from datamodules import __main__ as cli_module

    assert set(cli_module.COMMANDS) >= {"inspect", "synth"}
    help_text = cli("--help").stdout
    assert "inspect" in help_text and "synth" in help_text
    # Building the inspect parser must not import the synthetic generator.
    sys.modules.pop("datamodules.synthetic", None)
    cli_module.build_parser("inspect").parse_args(["inspect", str(REAL)])
    assert "datamodules.synthetic" not in sys.modules


# ----------------------------------------------------------------------------- every command's errors
def one_sentence(p: subprocess.CompletedProcess, code: int = 2) -> str:
    assert p.returncode == code, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    return lines[0]


@pytest.mark.parametrize("args, where", [
    (("synth", "{tmp}/s", "--patients", "0"), "n_patients"),
    (("synth", "{tmp}/x.txt"), "x.txt"),
    (("cache", "{tmp}/nope"), "nope does not exist"),
    (("cache", str(REAL), "--cache-dir", "{tmp}/x.txt"), "x.txt"),
    (("cache", str(REAL), "--cache-dir", "{tmp}/c", "--patients", "chb99"), "chb99"),
    (("cache", str(REAL), "--cache-dir", "{tmp}/c", "--jobs", "0"), "n_jobs must be >= 1"),
    (("convert", "{tmp}/nope", "--to", "bids", "{tmp}/o"), "nope does not exist"),
    (("convert", str(REAL), "--to", "bids", "{tmp}/x.txt"), "x.txt already exists"),
    (("inspect", "{tmp}/x.txt"), "x.txt is not a directory"),
])
def test_every_command_error_is_one_sentence(tmp_path, args, where):
    (tmp_path / "x.txt").write_text("not a folder")
    line = one_sentence(cli(*(a.format(tmp=tmp_path) for a in args)))
    assert where in line


def test_debug_shows_the_traceback(tmp_path):
    p = cli("inspect", str(tmp_path / "nope"), "--debug")
    assert p.returncode == 2 and "Traceback" in p.stderr and p.stderr.strip().endswith("does not exist")


def test_unexpected_failure_is_one_sentence_exit_1(capsys, monkeypatch):
    from datamodules import __main__ as cli_module

    def broken(args):
        raise RuntimeError("something\nbroke")

    monkeypatch.setitem(cli_module.COMMANDS, "inspect", ("x", cli_module.inspect_arguments, broken))
    assert cli_module.main(["inspect", str(REAL)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected RuntimeError in 'inspect': something broke" in err
    assert "--debug" in err
