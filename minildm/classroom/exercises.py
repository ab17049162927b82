"""Exercise cells: find the nbgrader marker regions in a cell, check a notebook's exercises, and
tag cells with nbgrader's metadata.

The convention itself is written down in :mod:`minildm.classroom` and ``docs/teaching.md``.
Nothing here imports torch or the rest of minildm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
#: the words nbgrader looks for (it matches them anywhere in a line)
_PHRASES = {
    "BEGIN SOLUTION": ("begin", "solution"),
    "END SOLUTION": ("end", "solution"),
    "BEGIN HIDDEN TESTS": ("begin", "hidden tests"),
    "END HIDDEN TESTS": ("end", "hidden tests"),
}
_MARKER = {"solution": (BEGIN_SOLUTION, END_SOLUTION), "hidden tests": (BEGIN_HIDDEN, END_HIDDEN)}
#: what replaces a solution region in the student version (nbgrader's default stubs)
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = ("YOUR ANSWER HERE",)
SCHEMA_VERSION = 3
GRADE_ID = re.compile(r"^[A-Za-z0-9_\-]+$")  # nbgrader's schema allows these characters only
_NBGRADER_KEYS = {"schema_version", "grade", "locked", "solution", "task", "grade_id", "points",
                  "checksum", "cell_type"}


class ExerciseError(ValueError):
    """A notebook whose exercise cells break the convention. ``problems`` holds one
    ``(cell index or None, text)`` per problem; the message names the notebook and each cell
    (0-based index) on one line."""

    def __init__(self, notebook: str, problems: list[tuple[int | None, str]]) -> None:
        self.notebook = notebook
        self.problems = problems
        parts = [text if index is None else f"cell {index} (0-based index): {text}"
                 for index, text in problems]
        super().__init__(f"{notebook}: " + "; ".join(parts))


@dataclass(frozen=True)
class Region:
    """A marker region of a cell: ``kind`` is "solution" or "hidden tests"; ``begin`` and ``end``
    are the 0-based line numbers of its two markers; ``indent`` is the BEGIN marker's."""

    kind: str
    begin: int
    end: int
    indent: str


def _marker(line: str, number: int) -> tuple[str, str] | None:
    """``(action, kind)`` for a marker line, None for an ordinary line; ValueError for a line that
    holds a marker's words without being exactly that marker alone on its line."""
    for phrase, (action, kind) in _PHRASES.items():
        if phrase in line:
            if line.strip() != "### " + phrase:
                raise ValueError(f"line {number} holds {phrase!r} but is not the marker "
                                 f"'### {phrase}' alone on its line")
            return action, kind
    return None


def find_regions(source: str) -> list[Region]:
    """The solution and hidden-test regions of a cell's source, in order. ValueError (with the
    cell's line numbers, 1-based) for unbalanced, nested or malformed markers."""
    regions: list[Region] = []
    open_kind, open_line, indent = None, -1, ""
    for n, line in enumerate(source.split("\n")):
        found = _marker(line, n + 1)
        if found is None:
            continue
        action, kind = found
        begin, end = _MARKER[kind]
        if action == "begin" and open_kind is not None:
            raise ValueError(f"nested markers: {begin!r} on line {n + 1} is inside the {open_kind} "
                             f"region opened on line {open_line + 1}")
        if action == "begin":
            open_kind, open_line, indent = kind, n, line[: len(line) - len(line.lstrip())]
        elif open_kind is None:
            raise ValueError(f"{end!r} on line {n + 1} has no {begin!r} before it")
        elif open_kind != kind:
            raise ValueError(f"{end!r} on line {n + 1} is inside the {open_kind} region opened on "
                             f"line {open_line + 1} (markers cannot be nested or crossed)")
        else:
            regions.append(Region(kind, open_line, n, indent))
            open_kind = None
    if open_kind is not None:
        begin, end = _MARKER[open_kind]
        raise ValueError(f"{begin!r} on line {open_line + 1} has no {end!r} after it")
    return regions


def replace_regions(source: str, regions: Iterable[Region], stub: tuple[str, ...]) -> str:
    """``source`` with each solution region (markers included) replaced by ``stub`` at the BEGIN
    marker's indentation and each hidden-test region (markers included) removed."""
    lines = source.split("\n")
    for region in sorted(regions, key=lambda r: r.begin, reverse=True):
        new = [region.indent + s for s in stub] if region.kind == "solution" else []
        lines[region.begin: region.end + 1] = new
    return "\n".join(lines)


def nbgrader(cell: Mapping[str, Any]) -> dict[str, Any]:
    """The cell's ``nbgrader`` metadata ({} when it has none)."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return dict(meta) if isinstance(meta, Mapping) else {}


def is_check(cell: Mapping[str, Any]) -> bool:
    """A code cell that nbgrader grades automatically (``grade: true``)."""
    return cell.get("cell_type") == "code" and nbgrader(cell).get("grade") is True


def is_solution(cell: Mapping[str, Any]) -> bool:
    """A cell whose nbgrader metadata says ``solution: true``."""
    return nbgrader(cell).get("solution") is True


def metadata_problems(cell: Mapping[str, Any]) -> list[str]:
    """What nbgrader's metadata schema (version 3) would reject in this cell's metadata."""
    meta = cell.get("metadata", {}).get("nbgrader")
    if meta is None:
        return []
    if not isinstance(meta, Mapping):
        return ["nbgrader metadata is not a mapping"]
    required = ("schema_version", "grade", "locked", "solution")
    problems = [f"nbgrader metadata lacks {key!r}" for key in required if key not in meta]
    problems += [f"unknown nbgrader metadata key {key!r}" for key in sorted(set(meta) - _NBGRADER_KEYS)]
    problems += [f"nbgrader {key!r} must be true or false" for key in ("grade", "locked", "solution", "task")
                 if key in meta and not isinstance(meta[key], bool)]
    if "schema_version" in meta and meta["schema_version"] != SCHEMA_VERSION:
        problems.append(f"nbgrader schema_version must be {SCHEMA_VERSION}")
    if any(meta.get(key) is True for key in ("grade", "solution", "locked")):
        if not isinstance(meta.get("grade_id"), str) or not GRADE_ID.match(meta["grade_id"]):
            problems.append("nbgrader grade_id missing or not made of letters, digits, '_' and '-'")
    points = meta.get("points")
    if meta.get("grade") is True and (isinstance(points, bool) or not isinstance(points, (int, float))
                                      or points < 0):
        problems.append("a graded cell needs nbgrader points (a number >= 0)")
    if cell.get("cell_type") == "markdown" and not meta.get("task", False):
        if meta.get("grade") is not meta.get("solution") and (meta.get("grade") or meta.get("solution")):
            problems.append("a markdown answer cell must be both grade and solution in nbgrader "
                            "(use mark_solution)")
    return problems


def _set(cell: Any, meta: dict[str, Any]) -> Any:
    grade_id = meta["grade_id"]
    if not isinstance(grade_id, str) or not GRADE_ID.match(grade_id):
        raise ValueError(f"grade_id must be letters, digits, '_' and '-', got {grade_id!r}")
    if "points" in meta and (isinstance(meta["points"], bool) or not isinstance(meta["points"], (int, float))
                             or meta["points"] < 0):
        raise ValueError(f"points must be a number >= 0, got {meta['points']!r}")
    cell.setdefault("metadata", {})["nbgrader"] = {**meta, "schema_version": SCHEMA_VERSION}
    return cell


def mark_solution(cell: Any, grade_id: str, points: int = 0) -> Any:
    """Tag ``cell`` (a notebook cell, changed in place and returned) as an exercise's solution cell.

    A code cell gets ``solution: true, grade: false, locked: false``. A markdown answer cell is
    also ``grade: true`` with ``points`` (nbgrader requires markdown solution cells to be graded,
    by hand); ``points`` is ignored for code cells."""
    if cell.get("cell_type") == "markdown":
        meta = {"solution": True, "grade": True, "locked": False, "points": points, "grade_id": grade_id}
    elif cell.get("cell_type") == "code":
        meta = {"solution": True, "grade": False, "locked": False, "grade_id": grade_id}
    else:
        raise ValueError(f"a solution cell must be code or markdown, not {cell.get('cell_type')!r}")
    return _set(cell, meta)


def mark_check(cell: Any, grade_id: str, points: int) -> Any:
    """Tag ``cell`` (a code cell, changed in place and returned) as the check cell of the exercise
    whose solution cell comes before it: ``solution: false, grade: true, locked: true``."""
    if cell.get("cell_type") != "code":
        raise ValueError(f"a check cell must be a code cell, not {cell.get('cell_type')!r}")
    meta = {"solution": False, "grade": True, "locked": True, "points": points, "grade_id": grade_id}
    return _set(cell, meta)
