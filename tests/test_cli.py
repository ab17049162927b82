"""The command line: demo, train, evaluate, and the programs it forwards to (retrain, classroom)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minildm.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_demo_writes_its_picture(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out


def test_train_then_resume(tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "out"
    args = ["train", "toy2d", "--budget", "quick", "--steps", "6", "--run-dir", str(run), "--out", str(out)]
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "toy2d" and config["steps_trained"] == 6
    assert main([*args[:5], "9", *args[6:], "--resume"]) == 0
    assert json.loads((out / "config.json").read_text())["steps_trained"] == 9
    assert "done: 3 steps" in capsys.readouterr().out


def test_train_pixel_runs_a_step(tmp_path):
    out = tmp_path / "out"
    args = ["train", "pixel", "--budget", "quick", "--steps", "1", "--batch-size", "2", "--data-size", "16"]
    assert main([*args, "--run-dir", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["kind"] == "pixel_ddpm"


def test_bad_arguments(monkeypatch, capsys):
    with pytest.raises(SystemExit) as usage:
        main(["train", "gan"])
    assert usage.value.code == 2 and "invalid choice: 'gan'" in capsys.readouterr().err
    monkeypatch.setenv("MINILDM_BUDGET", "huge")
    assert main(["train", "toy2d", "--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("minildm: error: budget (MINILDM_BUDGET) must be one of") and err.count("\n") == 1
    with pytest.raises(ValueError, match="MINILDM_BUDGET"):  # --debug: the exception itself
        main(["train", "toy2d", "--steps", "1", "--debug"])


def test_each_recipe_is_a_module_named_by_its_kind():
    from minildm.tasks import TASKS

    for name, task_fn in TASKS.items():
        assert task_fn.__module__ == f"minildm.tasks.{name}"


def _minildm(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "minildm", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_retrain_and_classroom_are_commands_of_minildm():
    listed = _minildm("--help")
    assert listed.returncode == 0 and "retrain" in listed.stdout and "classroom" in listed.stdout
    for name, option in (("retrain", "--quality-only"), ("classroom", "check-student")):
        shown = _minildm(name, "--help")
        assert shown.returncode == 0 and shown.stdout.startswith(f"usage: minildm {name}")
        assert option in shown.stdout
    for argv, error in (
        (["retrain", "--only", "gan"], "minildm retrain: error: argument --only: invalid choice"),
        (["classroom", "grade"], "minildm classroom: error: argument command: invalid choice"),
    ):
        bad = _minildm(*argv)
        assert bad.returncode == 2 and bad.stderr.splitlines()[-1].startswith(error), bad.stderr


def test_classroom_runs_from_minildm(tmp_path):
    """``minildm classroom student`` writes a student notebook that ``check-student`` then finds current."""
    lesson = sorted((ROOT / "notebooks").glob("0[0-9]_*.ipynb"))[0]
    written = _minildm("classroom", "student", str(lesson), "--out", str(tmp_path))
    assert written.returncode == 0, written.stderr
    assert (tmp_path / lesson.name).is_file()
    checked = _minildm("classroom", "check-student", str(lesson), "--out", str(tmp_path))
    assert checked.returncode == 0 and "1 student notebooks" in checked.stdout, checked.stderr


def test_a_retrain_error_is_one_line(tmp_path, capsys):
    """Nothing retrained in --out-dir: the quality table names the missing checkpoint, in one line."""
    argv = ["retrain", "--quality-only", "--only", "toy2d", "--n", "10", "--out-dir", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("minildm retrain: error: no config.json in") and err.count("\n") == 1
