"""The teacher's guide's generated parts, read from the lesson notebooks.

``docs/teaching.md`` is written by hand except between the lines ``<!-- BEGIN GENERATED lessons -->``
and ``<!-- END GENERATED lessons -->``: :func:`fill_guide` replaces what lies between them by a table
with one row per lesson, every fact read from the notebook itself:

- **objectives**: ``metadata["minildm"]["objectives"]`` of the notebook (a list of sentences) when it
  has one, else its numbered sections (the ``## N. ...`` headings, "Further exercises" left out);
- **builds on**: ``metadata["minildm"]["prerequisites"]`` (a sentence) when given, else the earlier
  lessons that its markdown refers to ("lesson 03", "lessons 06 to 09");
- **checkpoints**: the folders of ``data/checkpoints/`` its code loads: ``checkpoint_dir() / "NAME"``,
  ``load_pretrained("NAME")``, ``load_vae()`` (``vae``), ``load_text_encoder()`` (``clip``), a
  pipeline's ``from_pretrained()`` without a folder (the pipeline's default checkpoint), and, when a
  pipeline loads one, the VAE and CLIP its ``config.json`` names; ``load_tokenizer()`` adds
  ``data/tokenizer``;
- **exercises**: each ``### Exercise N.M: title`` heading with the points of its check cells (nbgrader
  metadata), its difficulty and CPU time as its text states them, either in the heading's parentheses
  (``### Exercise 10.1 (easy, 1 point, under a second): ...``) or on a line
  ``*Difficulty: core · CPU time: about 1 s · 2 points*`` (points stated there must agree with the check
  cells'), the hand-graded written answers and the *predict, then run* questions;
- **last run**: from the start of the first code cell to the end of the last, by the timestamps that
  nbclient (``jupyter nbconvert --execute``, ``make execute-notebooks``) stores in each code cell's
  ``metadata["execution"]``, and that run's date. Cells with no timestamps, or from different runs
  (a cell that started before the one above it ended), give "not recorded".

Nothing here imports torch or the rest of minildm.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from minildm.classroom.exercises import is_check, is_solution, nbgrader
from minildm.classroom.site import notebook_title
from minildm.classroom.student import read_notebook

CHECKPOINTS = Path("data/checkpoints")
#: the checkpoint a pipeline's ``from_pretrained()`` loads without a folder (``checkpoint_kind``)
PIPELINE_DEFAULTS = {"TextToImagePipeline": "text2img", "Img2ImgPipeline": "text2img",
                     "InpaintPipeline": "text2img", "LatentDiffusionPipeline": "latent_ddpm"}
REGION = re.compile(r"(<!-- BEGIN GENERATED (\w+) [^\n]*-->\n)(.*?)(<!-- END GENERATED \2 -->)", re.DOTALL)
_EXERCISE = re.compile(r"^#{2,4}\s+Exercise\s+(\d+\.\d+)\s*(?:\(([^)]*)\))?\s*:?\s*(.*?)\s*$", re.MULTILINE)
_PREDICT = re.compile(r"^#{2,4}\s+Predict, then run\b", re.MULTILINE)
_SECTION = re.compile(r"^##\s+(\d+)\.\s+(.+?)\s*$", re.MULTILINE)
_LESSON_REFS = re.compile(r"\b[Ll]essons?\s+(\d\d(?:\s*(?:-|–|to|and|,|or)\s*\d\d)*)")
_POINTS = re.compile(r"^(\d+)\s+points?$")
_TIME = re.compile(r"\b(second|minute|hour)s?\b|\b\d+\s*(?:s|min)\b")
# "*Difficulty: core · CPU time: about 1 s · 2 points*" (or "Difficulty: core. CPU time: under a second.")
_DIFFICULTY_LINE = re.compile(r"Difficulty:[^\n]*")
_LABELLED = re.compile(r"^(Difficulty|CPU time):\s*(.+)$")
_LOADS = (
    (re.compile(r'checkpoint_dir\(\)\s*/\s*["\'](\w+)["\']'), None),
    (re.compile(r'load_pretrained\(\s*["\'](\w+)["\']'), None),
    (re.compile(r"\bload_vae\("), "vae"),
    (re.compile(r"\bload_text_encoder\("), "clip"),
    (re.compile(r"\b(\w+Pipeline)\.from_pretrained\(\s*(?:\)|\w+\s*=)"), "default"),
)


@dataclass
class Exercise:
    """One graded exercise: its number ("7.1"), title, difficulty ("" when the heading gives none)
    and the points of its check cells."""

    number: str
    title: str
    difficulty: str = ""
    points: float = 0
    stated_points: int | None = None
    time: str = ""

    def describe(self, parts: list[str]) -> None:
        """Read "difficulty, points, time" parts (a heading's parentheses or a "Difficulty:" line)."""
        for part in parts:
            labelled = _LABELLED.match(part)
            if labelled:
                field_name = "difficulty" if labelled.group(1) == "Difficulty" else "time"
                setattr(self, field_name, labelled.group(2))
            elif points := _POINTS.match(part):
                self.stated_points = int(points.group(1))
            elif _TIME.search(part):
                self.time = part
            elif not self.difficulty:
                self.difficulty = part


@dataclass
class Lesson:
    """What the guide says about one lesson (see the module docstring for where each comes from)."""

    path: Path
    title: str
    objectives: list[str]
    prerequisites: str
    checkpoints: list[str]
    exercises: list[Exercise] = field(default_factory=list)
    written_points: float = 0
    predict: int = 0
    seconds: float | None = None
    date: str = ""


def _number(points: float) -> str:
    return f"{points:g}"


def lesson_exercises(nb: Any, name: str = "notebook") -> tuple[list[Exercise], float, int]:
    """``(exercises, points of the hand-graded written answers, number of predict-then-run
    questions)``; ValueError when a heading's points disagree with its check cells'."""
    exercises: list[Exercise] = []
    written, predict = 0.0, 0
    current: Exercise | None = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            predict += len(_PREDICT.findall(cell.source))
            for number, inside, title in _EXERCISE.findall(cell.source):
                current = Exercise(number, title)
                current.describe([p.strip() for p in inside.split(",") if p.strip()])
                exercises.append(current)
            for line in _DIFFICULTY_LINE.findall(cell.source) if current is not None else []:
                parts = re.split(r"\s+·\s+|\.\s+", line.strip().rstrip("*_ "))
                current.describe([p.strip().rstrip(".") for p in parts if p.strip()])
            if is_solution(cell) and is_check_markdown(cell):
                written += float(nbgrader(cell).get("points", 0))
        elif is_check(cell):
            if current is None:
                raise ValueError(f"{name}: check cell {nbgrader(cell).get('grade_id')!r} has no "
                                 "'### Exercise N.M: title' heading above it")
            current.points += float(nbgrader(cell).get("points", 0))
    for exercise in exercises:
        if exercise.stated_points is not None and exercise.stated_points != exercise.points:
            raise ValueError(f"{name}: exercise {exercise.number}'s text says {exercise.stated_points} "
                             f"points, its check cells give {_number(exercise.points)}")
    return [e for e in exercises if e.points or e.stated_points is not None], written, predict


def is_check_markdown(cell: Any) -> bool:
    """A markdown answer cell graded by hand (nbgrader ``solution`` and ``grade``)."""
    return cell.cell_type == "markdown" and nbgrader(cell).get("grade") is True


def loaded_checkpoints(nb: Any, checkpoints: str | Path | None = None) -> list[str]:
    """The folders of ``checkpoints`` (default :data:`CHECKPOINTS`) and ``data/tokenizer`` that the
    notebook's code loads, in order of first use; a pipeline also loads the VAE and the CLIP that
    its checkpoint's config names."""
    found: list[tuple[int, str]] = []
    pipeline = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        hits = []
        for pattern, kind in _LOADS:
            for match in pattern.finditer(cell.source):
                if kind == "default":
                    pipeline = True
                    if match.group(1) in PIPELINE_DEFAULTS:
                        hits.append((match.start(), PIPELINE_DEFAULTS[match.group(1)]))
                else:
                    hits.append((match.start(), kind or match.group(1)))
        if re.search(r"\b\w+Pipeline\.from_pretrained\(", cell.source):
            pipeline = True
        found += sorted(hits)
        if re.search(r"\bload_tokenizer\(", cell.source):
            found.append((len(cell.source), "data/tokenizer"))
    names = list(dict.fromkeys(name for _, name in found))
    folder = Path(CHECKPOINTS if checkpoints is None else checkpoints)
    if pipeline:
        for name in list(names):
            config_path = folder / name / "config.json"
            config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
            if "vae" in config:
                names.append("vae")
            if config.get("text_encoder", {}).get("kind") == "clip":
                names.append("clip")
    return list(dict.fromkeys(names))


def run_time(nb: Any) -> tuple[float | None, str]:
    """``(seconds, date)`` of the notebook's last execution, by its cells' stored timestamps: from
    the first code cell's start to the last one's reply; ``(None, "")`` when a code cell has no
    timestamps or the cells come from different runs."""
    spans = []
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        timing = cell.metadata.get("execution", {})
        start = timing.get("iopub.status.busy") or timing.get("iopub.execute_input")
        end = timing.get("shell.execute_reply")
        if not start or not end:
            return None, ""
        spans.append((datetime.fromisoformat(start.replace("Z", "+00:00")),
                      datetime.fromisoformat(end.replace("Z", "+00:00"))))
    if not spans or any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])):
        return None, ""
    return (spans[-1][1] - spans[0][0]).total_seconds(), spans[-1][1].date().isoformat()


def _prerequisites(nb: Any, number: int) -> str:
    refs: set[int] = set()
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for group in _LESSON_REFS.findall(cell.source):
            numbers = [int(n) for n in re.findall(r"\d\d", group)]
            refs.update(numbers)
            for a, b in zip(numbers, numbers[1:]):  # "06 to 09", "06-09"
                if re.search(rf"{a:02d}\s*(?:-|–|to)\s*{b:02d}", group):
                    refs.update(range(a, b + 1))
    earlier = sorted(n for n in refs if n < number)
    return ", ".join(f"{n:02d}" for n in earlier) if earlier else "none"


def read_lesson(path: str | Path, checkpoints: str | Path | None = None) -> Lesson:
    """Everything the guide's table says about the lesson at ``path``."""
    path = Path(path)
    nb = read_notebook(path)
    own = nb.metadata.get("minildm", {})
    number = int(path.name[:2]) if path.name[:2].isdigit() else 99
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    sections = [title for _, title in _SECTION.findall(markdown) if "further exercises" not in title.lower()]
    objectives = list(own.get("objectives") or sections)
    exercises, written, predict = lesson_exercises(nb, str(path))
    seconds, date = run_time(nb)
    return Lesson(path, notebook_title(nb, path.stem), objectives,
                  own.get("prerequisites") or _prerequisites(nb, number),
                  loaded_checkpoints(nb, checkpoints), exercises, written, predict, seconds, date)


def duration(seconds: float) -> str:
    """``52 s``, ``2 min 32 s``."""
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def lesson_row(lesson: Lesson, link_prefix: str = "../notebooks/") -> str:
    """The lesson's row of the guide's table (markdown)."""
    parts = []
    for e in lesson.exercises:
        points = f"{_number(e.points)} point{'s' if e.points != 1 else ''}"
        how = ", ".join(x for x in (e.difficulty, points, e.time) if x)
        parts.append(f"{e.number} {e.title} ({how})")
    if lesson.written_points:
        parts.append(f"written answers graded by hand ({_number(lesson.written_points)} points)")
    if lesson.predict:
        plural = "s" if lesson.predict != 1 else ""
        parts.append(f"{lesson.predict} predict-then-run question{plural} (not graded)")
    total = sum(e.points for e in lesson.exercises) + lesson.written_points
    exercises = "; ".join(parts) + (f"; {_number(total)} points in all" if total else "") if parts else "none"
    loads = ", ".join(f"`{name}`" for name in lesson.checkpoints) or "none (data generated in code)"
    ran = f"{duration(lesson.seconds)} ({lesson.date})" if lesson.seconds is not None else "not recorded"
    cells = [f"[{lesson.title}]({link_prefix}{lesson.path.name})", "; ".join(lesson.objectives),
             lesson.prerequisites, loads, exercises, ran]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def lessons_table(notebooks: Sequence[str | Path], checkpoints: str | Path | None = None) -> str:
    """The guide's table of lessons (markdown, ending with a newline)."""
    rows = [lesson_row(read_lesson(path, checkpoints)) for path in notebooks]
    head = ["| lesson | objectives | builds on | checkpoints it loads | exercises | last run |",
            "| --- | --- | --- | --- | --- | --- |"]
    return "\n".join(head + rows) + "\n"


def fill_guide(text: str, notebooks: Sequence[str | Path], checkpoints: str | Path | None = None) -> str:
    """``text`` (the guide) with each generated region filled in from ``notebooks``; ValueError when
    it has no region or an unknown one."""
    generators = {"lessons": lambda: lessons_table(notebooks, checkpoints)}
    regions = REGION.findall(text)
    if not regions:
        raise ValueError("the guide has no '<!-- BEGIN GENERATED lessons ... -->' ... "
                         "'<!-- END GENERATED lessons -->' region to fill in")
    unknown = sorted({name for _, name, _, _ in regions} - set(generators))
    if unknown:
        raise ValueError(f"the guide has generated regions no generator fills: {', '.join(unknown)}")
    return REGION.sub(lambda m: m.group(1) + generators[m.group(2)]() + m.group(4), text)


def write_guide(notebooks: Sequence[str | Path], guide: str | Path, check: bool = False,
                checkpoints: str | Path | None = None) -> bool:
    """Fill in the guide at ``guide`` from ``notebooks``; return whether its text changed. With
    ``check``, write nothing (the return value says whether it would change)."""
    guide = Path(guide)
    old = guide.read_text(encoding="utf-8")
    new = fill_guide(old, notebooks, checkpoints)
    if new != old and not check:
        _write_atomic(guide, new)
    return new != old


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path`` (an
    interrupted write leaves the old guide whole). minildm.utils.atomic_write does the same, but
    importing minildm.utils loads torch, which the classroom tools do without."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
