"""Student versions of the lesson notebooks: check a notebook's exercises, then write it with every
solution replaced by a stub, hidden tests removed and all outputs cleared.

The result is what ``nbgrader generate_assignment`` releases (ClearSolutions, ClearHiddenTests,
ClearOutput), with the nbgrader cell metadata kept; it is deterministic: the same notebook gives
byte-identical files. Nothing here imports torch or the rest of minildm.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

from minildm.classroom.exercises import (
    BEGIN_SOLUTION,
    CODE_STUB,
    TEXT_STUB,
    ExerciseError,
    Region,
    find_regions,
    is_check,
    is_solution,
    metadata_problems,
    nbgrader,
    replace_regions,
)

NOTEBOOKS = Path("notebooks")
STUDENT = Path("student")
LESSON_GLOB = "[0-9][0-9]_*.ipynb"
Problems = list[tuple[int | None, str]]


def lesson_notebooks(folder: str | Path = NOTEBOOKS) -> list[Path]:
    """The lessons ``folder/NN_*.ipynb``, sorted by name."""
    return sorted(Path(folder).glob(LESSON_GLOB))


def read_notebook(path: str | Path) -> Any:
    """Read and validate a notebook (nbformat 4); ExerciseError naming the file when it cannot be
    read or is not a valid notebook."""
    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except FileNotFoundError:
        raise ExerciseError(str(path), [(None, "no such file")]) from None
    except Exception as error:  # NotJSONError, ValidationError, UnicodeDecodeError, OSError...
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise ExerciseError(str(path), [(None, f"not a valid notebook ({type(error).__name__}: {first})")]) \
            from None
    return nb


def _next_code_cell(cells: Sequence[Any], index: int) -> int | None:
    return next((j for j in range(index + 1, len(cells)) if cells[j].get("cell_type") == "code"), None)


def _cell_problems(cells: Sequence[Any], index: int, regions: list[Region]) -> list[str]:
    """The convention's rules for one cell whose markers parsed."""
    cell, kinds = cells[index], {r.kind for r in regions}
    problems = []
    if regions and cell.get("cell_type") not in ("code", "markdown"):
        problems.append(f"markers in a {cell.get('cell_type')} cell (only code and markdown cells)")
    if "solution" in kinds and not is_solution(cell):
        problems.append("holds a solution region but is not tagged as a solution cell "
                        "(nbgrader solution: true; use minildm.classroom.mark_solution)")
    if is_solution(cell) and "solution" not in kinds:
        problems.append(f"is tagged as a solution cell but has no {BEGIN_SOLUTION!r} region "
                        "(nbgrader would replace the whole cell)")
    if "hidden tests" in kinds and not is_check(cell):
        problems.append("hidden tests outside a check cell (the cell holding '### BEGIN HIDDEN TESTS' "
                        "must be a code cell tagged nbgrader grade: true)")
    if cell.get("cell_type") == "code" and ("solution" in kinds or is_solution(cell)) and not is_check(cell):
        following = _next_code_cell(cells, index)
        if following is None:
            problems.append("solution cell has no check cell after it (no code cell follows it)")
        elif not is_check(cells[following]):
            problems.append(f"solution cell has no check cell after it: the next code cell, cell "
                            f"{following}, is not tagged as a check cell (nbgrader grade: true; use "
                            "minildm.classroom.mark_check)")
    return problems


def _duplicate_ids(cells: Sequence[Any]) -> Problems:
    seen: dict[str, int] = {}
    problems: Problems = []
    for index, cell in enumerate(cells):
        meta = nbgrader(cell)
        grade_id = meta.get("grade_id")
        tagged = any(meta.get(key) is True for key in ("grade", "solution", "locked"))
        if not isinstance(grade_id, str) or not tagged:
            continue
        if grade_id in seen:
            problems.append((index, f"duplicate grade_id {grade_id!r} (cell {seen[grade_id]} has it too)"))
        else:
            seen[grade_id] = index
    return problems


def exercise_regions(nb: Any, name: str = "notebook") -> list[list[Region]]:
    """The marker regions of every cell (in cell order), after checking the whole notebook
    against the convention; ExerciseError listing every problem found."""
    regions: list[list[Region]] = []
    problems: Problems = []
    for index, cell in enumerate(nb.cells):
        try:
            found = find_regions(cell.get("source", ""))
        except ValueError as error:
            problems.append((index, str(error)))
            found = []
        else:
            problems += [(index, text) for text in _cell_problems(nb.cells, index, found)]
        regions.append(found)
        problems += [(index, text) for text in metadata_problems(cell)]
    problems += _duplicate_ids(nb.cells)
    if problems:
        problems.sort(key=lambda p: -1 if p[0] is None else p[0])
        raise ExerciseError(name, problems)
    return regions


def validate_exercises(nb: Any, name: str = "notebook") -> None:
    """Raise ExerciseError (naming ``name``, each cell's 0-based index and the problem) when the
    notebook breaks the exercise convention."""
    exercise_regions(nb, name)


def make_student(nb: Any, name: str = "notebook") -> Any:
    """The student version of ``nb`` (a new notebook; ``nb`` is unchanged): solution regions
    replaced by ``# YOUR CODE HERE`` / ``raise NotImplementedError()`` (code) or
    ``YOUR ANSWER HERE`` (markdown) at the BEGIN marker's indentation, hidden tests removed,
    outputs, execution counts, per-cell timings and notebook widget state cleared."""
    regions = exercise_regions(nb, name)
    student = copy.deepcopy(nb)
    student.metadata.pop("widgets", None)
    for cell, cell_regions in zip(student.cells, regions):
        if cell_regions:
            stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
            cell.source = replace_regions(cell.source, cell_regions, stub)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.validate(student)
    return student


def notebook_text(nb: Any) -> str:
    """The file contents nbformat.write gives ``nb`` (always ending with a newline)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def student_text(path: str | Path) -> str:
    """The student version of the notebook at ``path``, as file contents."""
    return notebook_text(make_student(read_notebook(path), str(path)))


def write_student(path: str | Path, out_dir: str | Path = STUDENT) -> Path:
    """Write the student version of ``path`` to ``out_dir/<same name>``; return where."""
    text = student_text(path)
    target = Path(out_dir) / Path(path).name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text.encode("utf-8"))
    return target


def stale_students(notebooks: Sequence[str | Path], out_dir: str | Path = STUDENT,
                   extra: bool = True) -> list[str]:
    """The student files in ``out_dir`` that differ from what :func:`write_student` would write
    (each as ``'PATH (why)'``); with ``extra``, also lesson files there that no notebook makes."""
    out_dir = Path(out_dir)
    stale = []
    for path in notebooks:
        target = out_dir / Path(path).name
        expected = student_text(path).encode("utf-8")
        if not target.exists():
            stale.append(f"{target} (missing)")
        elif target.read_bytes() != expected:
            stale.append(f"{target} (differs)")
    if extra:
        names = {Path(p).name for p in notebooks}
        stale += [f"{p} (no notebook of that name)" for p in lesson_notebooks(out_dir) if p.name not in names]
    return stale
