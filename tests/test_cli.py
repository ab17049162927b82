"""The command line: demo and train."""

import json

import pytest

from minildm.cli import main


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


def test_train_knows_the_tasks_by_their_kinds():
    from minildm.cli import TRAIN_ALIASES, TRAIN_KINDS
    from minildm.tasks import ALIASES, TASKS

    assert tuple(TASKS) == TRAIN_KINDS and ALIASES == TRAIN_ALIASES
    for name, task_fn in TASKS.items():  # one module per recipe, named by the kind it writes
        assert task_fn.__module__ == f"minildm.tasks.{name}"


def test_evaluate_command_prints_the_report(capsys):
    assert main(["evaluate", "--n", "1", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "minildm evaluate: 1 prompts per kind, seed 3" in out
    assert main(["evaluate", "--n", "0"]) == 1
    assert "--n must be a positive int" in capsys.readouterr().err
