"""docs/teaching.md's lesson table is generated from the notebooks (minildm.classroom.teaching): the
committed guide must be what the generator writes, and each column is read as documented."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from minildm.classroom import mark_check, mark_solution
from minildm.classroom.cli import main
from minildm.classroom.student import lesson_notebooks
from minildm.classroom.teaching import (
    PIPELINE_DEFAULTS,
    duration,
    fill_guide,
    lesson_exercises,
    lessons_table,
    loaded_checkpoints,
    read_lesson,
    run_time,
)

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "teaching.md"


def test_committed_guide_is_what_the_notebooks_give():
    notebooks = lesson_notebooks(ROOT / "notebooks")
    text = GUIDE.read_text(encoding="utf-8")
    expected = fill_guide(text, notebooks, ROOT / "data" / "checkpoints")
    assert text == expected, ("docs/teaching.md's lesson table is not what the notebooks say now: run "
                              "`make teaching` (python -m minildm.classroom teaching) and commit it")
    for path in notebooks:  # one row per lesson, with a run time measured by its last execution
        row = next(line for line in text.splitlines() if f"](../notebooks/{path.name}) |" in line)
        assert row.count(" | ") == 5, row


def stamp(second: float) -> str:
    return f"2026-11-28T12:{int(second) // 60:02d}:{second % 60:09.6f}Z"


def timed(cell, start: float, end: float):
    cell.metadata["execution"] = {"iopub.status.busy": stamp(start), "iopub.execute_input": stamp(start),
                                  "shell.execute_reply": stamp(end), "iopub.status.idle": stamp(end)}
    return cell


def lesson(number: int = 7) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[
        new_markdown_cell(f"# {number:02d} · A lesson\n\nAs lesson 03 showed, and lessons 04 to 06; "
                          "not lesson 09."),
        timed(new_code_cell('UNET = checkpoint_dir() / "text2img_unet"\n'
                            "pipe = TextToImagePipeline.from_pretrained(UNET, device=device)\n"
                            'toy = load_pretrained("toy2d", device="cpu")'), 0, 4.5),
        new_markdown_cell("## 1. The first idea\n\n### Exercise 7.1 (warm-up, 2 points, a minute): one step"),
        timed(new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"), 5, 5.1),
        timed(new_code_cell("assert f(1) == 1"), 5.2, 5.3),
        new_markdown_cell("## 2. The second idea\n\n### Predict, then run: what now?"),
        timed(new_code_cell("dit = TextToImagePipeline.from_pretrained(device=device)"), 6, 70.0),
        new_markdown_cell("### Exercise 7.2: no label\n\nWrite g."),
        timed(new_code_cell("def g(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
              71, 72),
        timed(new_code_cell("assert g(1) == 2"), 72, 72.5),
        new_markdown_cell("## 3. Further exercises\n\n1. Try more."),
    ])
    mark_solution(nb.cells[3], "ex1")
    mark_check(nb.cells[4], "ex1_check", points=2)
    mark_solution(nb.cells[8], "ex2")
    mark_check(nb.cells[9], "ex2_check", points=1)
    return nb


@pytest.fixture()
def checkpoints(tmp_path) -> Path:
    for name, config in {"text2img_unet": {"vae": {}, "text_encoder": {"kind": "clip"}},
                         "text2img": {"vae": {}, "text_encoder": {"kind": "clip"}}, "toy2d": {}}.items():
        (tmp_path / "ckpt" / name).mkdir(parents=True)
        (tmp_path / "ckpt" / name / "config.json").write_text(json.dumps(config))
    return tmp_path / "ckpt"


def test_each_column_is_read_from_the_notebook(tmp_path, checkpoints):
    path = tmp_path / "07_lesson.ipynb"
    nbformat.write(lesson(), str(path))
    facts = read_lesson(path, checkpoints)
    assert facts.title == "07 · A lesson"
    assert facts.objectives == ["The first idea", "The second idea"]  # "Further exercises" left out
    assert facts.prerequisites == "03, 04, 05, 06"  # lesson 09 comes later
    assert facts.checkpoints == ["text2img_unet", "toy2d", "text2img", "vae", "clip"]
    assert [(e.number, e.title, e.difficulty, e.points) for e in facts.exercises] == [
        ("7.1", "one step", "warm-up", 2), ("7.2", "no label", "", 1)]
    assert facts.exercises[0].time == "a minute"
    assert facts.predict == 1 and facts.seconds == pytest.approx(72.5) and facts.date == "2026-11-28"
    row = lessons_table([path], checkpoints).splitlines()[2]
    assert row == ("| [07 · A lesson](../notebooks/07_lesson.ipynb) | The first idea; The second idea | "
                   "03, 04, 05, 06 | `text2img_unet`, `toy2d`, `text2img`, `vae`, `clip` | 7.1 one step "
                   "(warm-up, 2 points, a minute); 7.2 no label (1 point); 1 predict-then-run question "
                   "(not graded); 3 points in all | 1 min 12 s (2026-11-28) |")


def test_metadata_overrides_objectives_and_prerequisites(tmp_path, checkpoints):
    nb = lesson()
    nb.metadata["minildm"] = {"objectives": ["derive the step", "check it"], "prerequisites": "02; Gaussians"}
    nbformat.write(nb, str(tmp_path / "07_lesson.ipynb"))
    facts = read_lesson(tmp_path / "07_lesson.ipynb", checkpoints)
    assert facts.objectives == ["derive the step", "check it"] and facts.prerequisites == "02; Gaussians"


def test_heading_points_must_agree_with_the_check_cells(tmp_path, checkpoints):
    nb = lesson()
    nb.cells[2].source = nb.cells[2].source.replace("2 points", "3 points")
    nbformat.write(nb, str(tmp_path / "07_lesson.ipynb"))
    with pytest.raises(ValueError, match="exercise 7.1's text says 3 points, its check cells give 2"):
        read_lesson(tmp_path / "07_lesson.ipynb", checkpoints)


@pytest.mark.parametrize(("text", "expected"), [
    ("*Difficulty: core · CPU time: about 1 s · 2 points*", ("core", "about 1 s", 2)),
    ("Write it by hand. Difficulty: warm-up. CPU time: under a second.", ("warm-up", "under a second", 2)),
    ("No label here.", ("", "", 2)),
])
def test_difficulty_line_in_the_exercise_text(text, expected):
    nb = lesson()
    nb.cells[2].source = f"## 1. The first idea\n\n### Exercise 7.1: one step\n\n{text}"
    first = lesson_exercises(nb)[0][0]
    assert (first.difficulty, first.time, first.points) == expected
    nb.cells[2].source = nb.cells[2].source.replace("2 points", "1 point")
    if "points" in text:
        with pytest.raises(ValueError, match="7.1's text says 1 points, its check cells give 2"):
            lesson_exercises(nb, "07.ipynb")


def test_run_time_needs_one_whole_run():
    nb = lesson()
    assert run_time(nb) == (pytest.approx(72.5), "2026-11-28")
    timed(nb.cells[4], 1, 2)  # re-run alone earlier than the cell above it ended: a different run
    assert run_time(nb) == (None, "")
    nb = lesson()
    del nb.cells[6].metadata["execution"]
    assert run_time(nb) == (None, "")
    assert [duration(s) for s in (6.4, 59.6, 152, 3600)] == ["6 s", "1 min 00 s", "2 min 32 s", "60 min 00 s"]


def test_tokenizer_vae_and_pipeline_defaults():
    nb = new_notebook(cells=[new_code_cell("tok = load_tokenizer()\nvae, _ = load_vae(device=device)\n"
                                           "pipe = LatentDiffusionPipeline.from_pretrained()")])
    assert loaded_checkpoints(nb, "/nonexistent") == ["vae", "latent_ddpm", "data/tokenizer"]
    assert loaded_checkpoints(new_notebook(cells=[new_markdown_cell('load_pretrained("clip")')])) == []


def test_pipeline_defaults_are_the_pipelines_own():
    from minildm import pipelines

    for name, kind in PIPELINE_DEFAULTS.items():
        assert getattr(pipelines, name).checkpoint_kind == kind, name


def test_cli_writes_and_checks_the_guide(tmp_path, checkpoints, capsys, monkeypatch):
    notebook = tmp_path / "07_lesson.ipynb"
    nbformat.write(lesson(), str(notebook))
    guide = tmp_path / "guide.md"
    guide.write_text("# Guide\n\nBy hand.\n\n<!-- BEGIN GENERATED lessons (generated) -->\nold\n"
                     "<!-- END GENERATED lessons -->\n\nAfter.\n")
    monkeypatch.setattr("minildm.classroom.teaching.CHECKPOINTS", checkpoints)
    assert main(["teaching", str(notebook), "--out", str(guide), "--check"]) == 1
    assert "guide.md is not what the notebooks give; run `make teaching`" in capsys.readouterr().err
    assert main(["teaching", str(notebook), "--out", str(guide)]) == 0
    text = guide.read_text()
    assert text.startswith("# Guide\n\nBy hand.\n\n<!-- BEGIN GENERATED lessons (generated) -->\n| lesson |")
    assert text.endswith("3 points in all | 1 min 12 s (2026-11-28) |\n"
                         "<!-- END GENERATED lessons -->\n\nAfter.\n")
    assert main(["teaching", str(notebook), "--out", str(guide), "--check"]) == 0
    guide.write_text("# Guide without a generated region\n")
    assert main(["teaching", str(notebook), "--out", str(guide)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no '<!-- BEGIN GENERATED lessons" in err
    assert main(["teaching", str(notebook), "--out", str(tmp_path / "missing.md")]) == 2
    assert "--out" in capsys.readouterr().err
