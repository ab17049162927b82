"""The lessons' prose: short cells, a lean core, no word of how the project is run, and every measured
figure backed by an output of the same notebook.

The rules, checked on every ``notebooks/*.ipynb`` (rule 3 also on ``student/*.ipynb``):

1. **No markdown cell over 400 words** (words = ``str.split`` on the cell's source).
2. **A lean core.** In lessons 06-11 the markdown before the first heading that starts with "Appendix"
   (a line ``#... Appendix``) totals at most 3,500 words. The appendix is optional reading and is checked
   by rules 1, 3 and 4 like the core.
3. **No process words** in any cell source or output: ``issue``, ``session``, ``we shipped``, a ``#12``-style
   reference, and ``target`` in the sense of a goal set for the lesson (``the course's target``,
   ``this lesson's targets``, ``the target is met``, ``short of the target``...). ``target`` in the machine
   learning sense (the training target, the target network, ``cases.targets``) is fine.
4. **Numbers come from the outputs.** A *figure* is a number followed by a unit, matched by ``FIGURE``:
   a number (``12``, ``10.9``, ``12,000``), optionally a range start (``93-99 ms``, ``93 to 99 ms``: both ends
   are figures), then one of ``%`` (or ``\\%``), ``ms``, ``s``, ``min``, ``h``, ``KB``/``MB``/``GB``/``KiB``/
   ``MiB``/``GiB``, ``it/s`` (each optionally after one space), or ``x``/``×`` right after the number
   (``2.2x``; ``64x64`` is not a figure). Every figure in a notebook's markdown must be *printed* by the same
   notebook: a number in a code cell's outputs (``text/plain`` of results, stream text; the source of a code
   cell does not count) equal to it, or rounding to it when the output carries more decimals (``93%`` is
   backed by ``93.0%`` or ``92.97``; for ``%``, a fraction printed with at least two more decimals counts
   too: ``0.9297`` backs ``93%``). A figure that is not ours is exempt when its sentence (or table row)
   carries a citation, either an author-year reference such as ``(Ho et al., 2020)``, ``Song et al. (2021)``
   or ``(Karras, 2022)``, or the marker ``<!-- cited -->`` at the end of the sentence. A figure that is not
   a measurement at all, one worked out in the sentence itself (``$0.7^3 = 34.3\\%$``) or a value chosen
   by the lesson (a threshold the run must pass, a fraction of the data), carries ``<!-- not measured -->``
   the same way.

What remains to fix is listed in ``ALLOWED`` (per notebook, with a count), so the list is the work queue.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STUDENTS = sorted((ROOT / "student").glob("[0-9][0-9]_*.ipynb"))
LEAN = {"06", "07", "08", "09", "10", "11", "12"}
MAX_CELL_WORDS = 400
MAX_CORE_WORDS = 3500

NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
UNIT = r"(?:\s?\\?%|\s?(?:ms|s|min|h|KB|MB|GB|KiB|MiB|GiB|it/s)\b|(?:x|×)(?![\w\d]))"
FIGURE = re.compile(rf"(?<![\w.,$\\^_{{])({NUMBER})(?:\s?(?:-|–|to)\s?({NUMBER}))?({UNIT})")
OUTPUT_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
CITATION = re.compile(
    r"\(?[A-Z][\w\-]+(?: et al\.| and [A-Z][\w\-]+)?,? \(?(?:19|20)\d\d[a-z]?\)"
    r"|<!--\s*(?:cited|not measured)\s*-->")
# a sentence ends at . ! ? before a capital, a bracket, markup or the end; a table row or list item
# is its own sentence; a trailing <!-- cited --> belongs to the sentence it follows
SENTENCE_END = re.compile(
    r"[.!?](?:\s*<!--[^>]*-->)?(?=\s+[A-Z(\[*`$_]|\s*$)|\n\s*\n|\n(?=\s*(?:[|#]|[-*] |\d+\. ))")

PROCESS = re.compile(
    r"\bissues?\b|\bsessions?\b|\bwe shipped\b|(?<![\w&/])#\d+\b(?![0-9a-fA-F])"
    r"|\b(?:course|lesson|issue|project)'s\s+(?:\w+\s+)?targets?\b|\bour\s+targets?\b"
    r"|\btargets?\b[^.\n]{0,40}\b(?:is|are|was|were)\s+(?:not\s+)?(?:met|reached|missed)\b"
    r"|\b(?:meets?|met|miss(?:es|ed)?|short of|reach(?:es|ed)?)\s+(?:all\s+|two\s+|both\s+)?(?:of\s+)?"
    r"(?:the|this|its|these|our)\s+(?:\w+'s\s+)?(?:\w+\s+)?targets?\b"
    r"|\btargets? of this\b",
    re.IGNORECASE)

# Figures not yet backed by an output, per notebook: (notebook stem, figure as written). Keep it short.
ALLOWED: dict[str, list[str]] = {}


def _cells(path: Path) -> list:
    return nbformat.read(path, as_version=4).cells


def _words(text: str) -> int:
    return len(text.split())


def _is_appendix(cell) -> bool:
    heading = re.search(r"^#+\s*Appendix", cell.source, re.MULTILINE)
    return cell.cell_type == "markdown" and heading is not None


def _outputs_text(cells) -> str:
    parts = []
    for cell in cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence (or table row, or list item) of text that holds text[start:end]."""
    begin = 0
    for m in SENTENCE_END.finditer(text, 0, start):
        begin = m.end()
    m = SENTENCE_END.search(text, end)
    return text[begin:m.end() if m else len(text)]


def _decimals(number: str) -> int:
    return len(number.split(".")[1]) if "." in number else 0


def _backed(figure: str, percent: bool, printed: list[str]) -> bool:
    """Whether a number printed by the notebook equals figure or rounds to it."""
    d = _decimals(figure)
    value = float(figure.replace(",", ""))
    for number in printed:
        x, dx = float(number.replace(",", "")), _decimals(number)
        if dx >= d and abs(round(x, d) - value) < 1e-9:
            return True
        if percent and dx >= d + 2 and abs(round(100 * x, d) - value) < 1e-9:
            return True
    return False


def unbacked_figures(path: Path) -> list[str]:
    """The figures of path's markdown that no output of path prints and no citation covers."""
    cells = _cells(path)
    printed = OUTPUT_NUMBER.findall(_outputs_text(cells))
    missing = []
    for cell in cells:
        if cell.cell_type != "markdown":
            continue
        text = re.sub(r"```.*?```", "", cell.source, flags=re.DOTALL)
        for m in FIGURE.finditer(text):
            if CITATION.search(_sentence(text, m.start(), m.end())):
                continue
            percent = "%" in m.group(3)
            for figure in (m.group(1), m.group(2)):
                if figure and not _backed(figure, percent, printed):
                    missing.append(f"{figure}{m.group(3).strip()}")
    return missing


def process_words(path: Path) -> list[str]:
    """Each cell source or output passage of path that names the project's process."""
    found = []
    for i, cell in enumerate(_cells(path)):
        texts = [cell.source]
        if cell.cell_type == "code":
            texts.append(_outputs_text([cell]))
        for text in texts:
            for m in PROCESS.finditer(text):
                found.append(f"cell {i}: ...{text[max(0, m.start() - 40):m.end() + 20]!r}...")
    return found


def test_figure_pattern_reads_units_and_ranges() -> None:
    """The figure pattern finds what a reader would call a measured figure, and only that."""
    found = [m.group(0) for m in FIGURE.finditer(
        "kept 93.0% and 329 ms per step, 10.9 s in all, 2.2x faster, 93-99 ms, 12,000 steps, 64x64 pixels, "
        "$t=0.5$, 50\\% of the time, version 3.10")]
    assert found == ["93.0%", "329 ms", "10.9 s", "2.2x", "93-99 ms", "50\\%"]


def test_backing_rounds_but_does_not_invent() -> None:
    assert _backed("93", True, ["93.0"]) and _backed("93", True, ["0.9297"])
    assert _backed("10.9", False, ["10.93"])
    assert not _backed("10.9", False, ["11"]) and not _backed("66", False, ["65.4", "10.9"])
    assert not _backed("93.0", True, ["93"])


def test_citation_exempts_its_sentence_only() -> None:
    text = "Their model took 3.5 s (Ho et al., 2020). We measured 12%."
    first, second = FIGURE.finditer(text)
    assert CITATION.search(_sentence(text, first.start(), first.end()))
    assert not CITATION.search(_sentence(text, second.start(), second.end()))
    assert CITATION.search(_sentence("It took 2 h. <!-- cited --> Next.", 7, 10))
    assert CITATION.search(_sentence("We ask for 95%. <!-- not measured --> Next.", 11, 14))


def test_process_pattern_spares_the_training_target() -> None:
    for ok in ("the training target is eps", "the target network", "cases.targets", "colour #1f77b4"):
        assert not PROCESS.search(ok), ok
    for bad in ("this lesson's issue", "the course's target for this edit", "the target is met",
                "Two of the targets of this lesson", "the first model we shipped", "see #15", "in session 9",
                "fell well short of the target"):
        assert PROCESS.search(bad), bad


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_long_markdown_cell(path: Path) -> None:
    long = [(i, _words(c.source)) for i, c in enumerate(_cells(path))
            if c.cell_type == "markdown" and _words(c.source) > MAX_CELL_WORDS]
    assert not long, f"{path.name}: markdown cells over {MAX_CELL_WORDS} words (cell, words): {long}"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in LEAN], ids=lambda p: p.stem)
def test_lean_core(path: Path) -> None:
    core = 0
    for cell in _cells(path):
        if _is_appendix(cell):
            break
        if cell.cell_type == "markdown":
            core += _words(cell.source)
    assert core <= MAX_CORE_WORDS, f"{path.name}: {core} words of markdown before the appendix"


@pytest.mark.parametrize("path", NOTEBOOKS + STUDENTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_process_words(path: Path) -> None:
    found = process_words(path)
    assert not found, f"{path.parent.name}/{path.name}:\n" + "\n".join(found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_figures_come_from_outputs(path: Path) -> None:
    missing = unbacked_figures(path)
    allowed = list(ALLOWED.get(path.stem, []))
    left = []
    for figure in missing:
        if figure in allowed:
            allowed.remove(figure)
        else:
            left.append(figure)
    assert not left, (f"{path.name}: figures in the markdown that no output prints and no citation covers: "
                      f"{left}")
    assert not allowed, f"{path.name}: ALLOWED lists figures that are now backed, remove them: {allowed}"
