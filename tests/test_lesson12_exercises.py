"""Lesson 12's exercises: each check cell accepts the teacher's solution and rejects a plausible wrong
answer with its helpful message.

The lesson's set-up cells that the checks read (the imports and the loaded lesson-06 pipeline, a few
seconds) run once; each case then runs the teacher's solution cell, edited by ``(old, new)``, and the
exercise's check cell in a copy of that namespace. Everything SD-sized is built on the meta device, so
the whole file takes seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from minildm.classroom.exercises import nbgrader

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "12_stable_diffusion.ipynb"
#: the set-up cells the checks need, by the start of their source (after any NBVAL marker)
SETUP = ("import json", "ours = TextToImagePipeline.from_pretrained")

#: (exercise, name, old, new, a part of the check's message)
WRONG = [
    ("1", "biases-on-qkv", "attn1 = 3 * width * width + width * width + width",
     "attn1 = 3 * (width * width + width) + width * width + width", "Which Linear layers have a bias?"),
    ("1", "geglu-not-doubled", "geglu = width * (2 * 4 * width) + 2 * 4 * width",
     "geglu = width * (4 * width) + 4 * width", "How wide is GEGLU's projection?"),
    ("2", "std-not-squared", "theirs = data_std**2 * snr[t]", "theirs = data_std * snr[t]",
     "How does the variance of sqrt(alpha_bar) * x_0 change"),
    ("2", "tensor-not-int", "return int((snr.log() - theirs.log()).abs().argmin())",
     "return (snr.log() - theirs.log()).abs().argmin()", "return a Python int"),
    ("3", "up-path-like-down-path", "transformers = 2 * cfg.num_res_blocks + 1 if",
     "transformers = 2 * cfg.num_res_blocks if", "the up path's extra block per level"),
    ("3", "no-middle-block", "transformers += level == deepest", "transformers += 0", "middle block"),
    ("3", "self-attention-only", "(positions + context_tokens)", "positions", "Count both attentions"),
]


def _source(cell) -> str:
    return cell.source.removeprefix("# NBVAL_CHECK_OUTPUT\n")


@pytest.fixture(scope="module")
def lesson():
    """The lesson's cells by exercise (solution, check) and a namespace after its set-up cells."""
    import matplotlib

    matplotlib.use("Agg")
    import torch

    cells = nbformat.read(str(LESSON), as_version=4).cells
    exercises: dict[str, dict[str, str]] = {}
    for cell in cells:
        grade_id = nbgrader(cell).get("grade_id", "")
        if grade_id.startswith("12-ex-"):
            _, _, number, kind = grade_id.split("-")
            exercises.setdefault(number, {})[kind] = cell.source
    namespace: dict = {}
    threads, cwd = torch.get_num_threads(), os.getcwd()
    deterministic = torch.are_deterministic_algorithms_enabled()  # (the set-up seeds and asks for it)
    saved = os.environ.get("MINILDM_PROGRESS")
    os.environ["MINILDM_PROGRESS"] = "0"
    os.environ.pop("MINILDM_SD_PATH", None)
    os.chdir(LESSON.parent)
    try:
        for start in SETUP:
            cell = next(c for c in cells if c.cell_type == "code" and _source(c).startswith(start))
            exec(compile(cell.source, f"lesson 12: {start}", "exec"), namespace)
        yield exercises, namespace
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        if saved is None:
            os.environ.pop("MINILDM_PROGRESS", None)
        else:
            os.environ["MINILDM_PROGRESS"] = saved


def _run(exercises: dict, namespace: dict, number: str, solution: str) -> None:
    scope = dict(namespace)
    exec(compile(solution, f"exercise 12.{number}: solution", "exec"), scope)
    exec(compile(exercises[number]["check"], f"exercise 12.{number}: check", "exec"), scope)


def test_three_exercises_each_with_a_solution_and_a_check(lesson):
    exercises, _ = lesson
    assert sorted(exercises) == ["1", "2", "3"]
    assert all(set(cells) == {"solution", "check"} for cells in exercises.values())


@pytest.mark.parametrize("number", ["1", "2", "3"])
def test_the_solution_passes_its_check(lesson, number, capsys):
    exercises, namespace = lesson
    _run(exercises, namespace, number, exercises[number]["solution"])
    assert f"Exercise 12.{number} passed" in capsys.readouterr().out


@pytest.mark.parametrize(("number", "name", "old", "new", "expect"), WRONG,
                         ids=[f"12.{w[0]}-{w[1]}" for w in WRONG])
def test_a_wrong_answer_fails_with_a_helpful_message(lesson, number, name, old, new, expect):
    exercises, namespace = lesson
    solution = exercises[number]["solution"]
    assert solution.count(old) == 1, f"{name}: {old!r} is not once in the solution of 12.{number}"
    with pytest.raises(AssertionError) as failure:
        _run(exercises, namespace, number, solution.replace(old, new))
    assert expect in str(failure.value), f"{name}: the message does not say {expect!r}:\n{failure.value}"
