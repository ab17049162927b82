"""Hidden tests: every lesson 00-11 grades at least one exercise with a hidden-test block (nbgrader's
``### BEGIN HIDDEN TESTS``), always inside a check cell, and the student versions hold none.

The blocks themselves run with the teacher's solutions wherever the notebooks run (nbval)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from minildm.classroom.exercises import BEGIN_HIDDEN, END_HIDDEN, is_check

ROOT = Path(__file__).resolve().parents[1]
LESSONS = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if int(p.name[:2]) <= 11]
STUDENT = sorted((ROOT / "student").glob("[0-9][0-9]_*.ipynb"))


def hidden_blocks(path: Path) -> list[int]:
    """The indices of the cells of ``path`` that hold a hidden-test block."""
    cells = nbformat.read(str(path), as_version=4).cells
    return [i for i, cell in enumerate(cells) if BEGIN_HIDDEN in cell.source]


def test_lessons_00_to_11_are_all_here():
    assert [p.name[:2] for p in LESSONS] == [f"{n:02d}" for n in range(12)]


@pytest.mark.parametrize("path", LESSONS, ids=[p.name[:2] for p in LESSONS])
def test_every_lesson_has_hidden_tests_in_its_check_cells(path):
    cells = nbformat.read(str(path), as_version=4).cells
    found = hidden_blocks(path)
    assert found, f"{path.name}: no check cell holds a '{BEGIN_HIDDEN}' block"
    for index in found:
        assert is_check(cells[index]), f"{path.name}: cell {index} (0-based index) holds hidden tests " \
                                       "but is not a check cell"
        assert cells[index].source.startswith("# Check: exercise "), f"{path.name}: cell {index}"
        assert END_HIDDEN in cells[index].source, f"{path.name}: cell {index} does not close its hidden tests"


@pytest.mark.skipif(not STUDENT, reason="no student/NN_*.ipynb yet (python -m minildm.classroom student)")
@pytest.mark.parametrize("path", STUDENT, ids=[p.name[:2] for p in STUDENT])
def test_student_versions_hold_no_hidden_tests(path):
    text = path.read_text(encoding="utf-8")
    assert "HIDDEN TESTS" not in text, f"student/{path.name} still holds a hidden-test marker"
