"""Grading with nbgrader itself: ``nbgrader generate_assignment`` and ``nbgrader autograde`` (the
commands docs/teaching.md gives) on a lesson, in a course folder of its own, with a correct and a
wrong submission; the scores come from nbgrader's gradebook.

The lesson is 01 (its whole notebook runs in seconds in the quick budget). The correct submission is
the released notebook with the teacher's solutions typed in; the wrong one makes the mistake
exercise 1.1's check names: abar_t and 1 - abar_t without their square roots."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from minildm.classroom.exercises import BEGIN_SOLUTION, END_SOLUTION, nbgrader

pytest.importorskip("nbgrader", reason="nbgrader is not installed: pip install -e '.[dev]' "
                    "(or pip install nbgrader)")
from nbgrader.api import Gradebook  # noqa: E402

pytestmark = pytest.mark.slow  # nbgrader's commands in child processes, lesson 01 executed

ROOT = Path(__file__).resolve().parents[1]
LESSON = "01_forward_diffusion"
WRONG_ID = "01-ex-1-solution"  # my_q_sample(x0, t, noise, alphas_cumprod)
WRONG_BODY = ("abar = alphas_cumprod[t].reshape(-1, *([1] * (x0.ndim - 1)))",
              "return abar * x0 + (1 - abar) * noise  # the square roots forgotten")
STUB = re.compile(r"^(\s*)# YOUR CODE HERE\n\s*raise NotImplementedError\(\)$", re.MULTILINE)


def nbgrader_command(course: Path, *args: str) -> str:
    # nbgrader runs `alembic` (its database migrations) from PATH: the one installed beside this Python
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "MINILDM_BUDGET": "quick", "MINILDM_PROGRESS": "0",
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def solution_body(source: str) -> list[str]:
    """The lines between the solution markers, without their indentation."""
    lines = source.split("\n")
    begin = next(i for i, line in enumerate(lines) if line.strip() == BEGIN_SOLUTION)
    end = next(i for i, line in enumerate(lines) if line.strip() == END_SOLUTION)
    return [line.strip() and line[len(lines[begin]) - len(lines[begin].lstrip()):]
            for line in lines[begin + 1: end]]


def submission(released: Path, teacher: Path, wrong: dict[str, tuple[str, ...]]) -> nbformat.NotebookNode:
    """The released notebook with each stub filled in: the teacher's solution, or ``wrong[grade_id]``."""
    nb = nbformat.read(str(released), as_version=4)
    cells = nbformat.read(str(teacher), as_version=4).cells
    solutions = {nbgrader(c).get("grade_id"): c.source for c in cells
                 if nbgrader(c).get("solution") and c.cell_type == "code"}
    filled = 0
    for cell in nb.cells:
        grade_id = nbgrader(cell).get("grade_id")
        if cell.cell_type != "code" or not nbgrader(cell).get("solution"):
            continue
        body = wrong.get(grade_id) or solution_body(solutions[grade_id])
        match = STUB.search(cell.source)
        assert match, f"{grade_id}: no '# YOUR CODE HERE' stub in the released notebook"
        filling = "\n".join(match.group(1) + line if line else line for line in body)
        cell.source = cell.source[:match.start()] + filling + cell.source[match.end():]
        filled += 1
    assert filled >= 2, "the lesson should have graded code exercises"
    return nb


def cell_scores(submission) -> dict[str, tuple[float, float]]:
    """``{grade_id: (score, max_score)}`` of a submitted assignment (nbgrader's gradebook)."""
    return {g.name: (g.score, g.max_score) for nb in submission.notebooks for g in nb.grades}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.CourseDirectory.db_url = {'sqlite:///' + str(course / 'gradebook.db')!r}\n"
        "c.CourseDirectory.course_id = 'minildm'\n"
        "c.ExecutePreprocessor.timeout = 600\n")
    teacher = ROOT / "notebooks" / f"{LESSON}.ipynb"
    (course / "source" / LESSON).mkdir(parents=True)
    (course / "source" / LESSON / teacher.name).write_bytes(teacher.read_bytes())
    nbgrader_command(course, "generate_assignment", LESSON)
    released = course / "release" / LESSON / teacher.name
    text = released.read_text()
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    for student, wrong in (("right", {}), ("wrong", {WRONG_ID: WRONG_BODY})):
        folder = course / "submitted" / student / LESSON
        folder.mkdir(parents=True)
        nbformat.write(submission(released, teacher, wrong), str(folder / teacher.name))
    nbgrader_command(course, "autograde", LESSON)
    return course


def test_correct_submission_gets_full_marks(graded):
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gradebook:
        result = gradebook.find_submission(LESSON, "right")
        assert result.max_score >= 3
        assert result.score == result.max_score, cell_scores(result)


def test_wrong_answer_loses_exactly_its_exercise(graded):
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gradebook:
        result = gradebook.find_submission(LESSON, "wrong")
        scores = cell_scores(result)
        check = WRONG_ID.replace("solution", "check")
        assert scores[check][0] == 0 and scores[check][1] > 0, scores
        lost = {name: s for name, s in scores.items() if s[0] != s[1]}
        assert set(lost) == {check}, f"only {check} should lose points: {lost}"
        assert result.score == result.max_score - scores[check][1]
    autograded = graded / "autograded" / "wrong" / LESSON / f"{LESSON}.ipynb"
    cells = nbformat.read(str(autograded), as_version=4).cells
    errors = [o for c in cells if nbgrader(c).get("grade_id") == check for o in c.outputs
              if o.output_type == "error"]
    assert errors and errors[0].ename == "AssertionError", "the check fails on the values, not on a typo"
    assert "square roots" in errors[0].evalue  # the check's helpful message reaches the feedback
