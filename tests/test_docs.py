"""The README is a front door and the docs are for learners: the README stays short, its quick start is
the two commands CI runs, no word of how the project is run leaks into them, and every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: what a learner reads: the README and docs/*.md (CHANGELOG.md keeps the project's history)
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_BYTES = 14_000
QUICK_START = ["make demo", "make test"]

#: words of the project's process: issue/session/ticket, "we shipped", "#12"-style references, commit hashes
#: (7-40 hex digits with at least one letter and one digit, so plain numbers and words pass)
PROCESS_WORDS = re.compile(
    r"\bissues?\b|\bsessions?\b|\btickets?\b|\bwe shipped\b|(?<![\w&])#\d+\b"
    r"|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b",
    re.IGNORECASE,
)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _section(text: str, title: str) -> str:
    """The text of the ``## title`` section (up to the next heading of level 2)."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def _commands(block: str) -> list[str]:
    """The command lines of a fenced code block, without their comments."""
    lines = block.strip("`").split("\n")[1:]  # drop the fence's language line
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def _make_targets(makefile: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", makefile, re.MULTILINE))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(path: Path) -> list[str]:
    """Relative link targets in a markdown page (code blocks and inline code left out)."""
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", path.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE)]


def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= MAX_README_BYTES, (
        f"README.md is {size:,} bytes, more than {MAX_README_BYTES:,}: move detail to docs/"
    )


def test_quick_start_is_the_two_commands_ci_runs():
    quick = _section(README.read_text(), "Quick start")
    commands = [c for block in FENCE.findall(quick) for c in _commands(block)]
    assert commands == QUICK_START, f"the quick start's commands are {commands}, expected {QUICK_START}"
    targets = _make_targets((ROOT / "Makefile").read_text())
    for command in commands:
        assert command.split()[1] in targets, f"README's `{command}` is not a Makefile target"
    ci = re.findall(r"^\s*make\s+([\w-]+)", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)
    assert ci, ".ci/run runs no make target"
    assert all(f"make {target}" in commands for target in ci), f".ci/run runs make {ci}, not the README's"


def test_process_word_pattern_catches_what_it_should():
    caught = ["see issue 12", "the Session ended", "a ticket", "what we shipped", "as #15 asked",
              "landed in 766c8fe", "commit e5982dd0"]
    passed = ["a make target", "1234567 images", "the shipped checkpoints", "deadbeef", "#fff",
              "[section](#the-shipped-checkpoints)", "&#8203;"]
    assert all(PROCESS_WORDS.search(text) for text in caught)
    assert not any(PROCESS_WORDS.search(text) for text in passed)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_process_words(page: Path):
    found = [
        f"{page.name}:{number}: {match.group(0)!r}"
        for number, line in enumerate(page.read_text().splitlines(), 1)
        for match in PROCESS_WORDS.finditer(line)
    ]
    assert not found, "words of the project's process in learner-facing docs:\n" + "\n".join(found)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path):
    broken = []
    for target in _links(page):
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target} (no heading with that anchor)")
    assert not broken, f"{page.name}: broken links: {broken}"


def test_link_check_sees_links():
    """The link parser finds the README's links (a parser that found none would pass every page)."""
    links = _links(README)
    assert "docs/training.md" in links and "docs/results.md" in links


def test_lessons_table_has_one_row_per_notebook():
    """One unbroken table (a blank line inside it would end it) with a row for every lesson notebook."""
    section = _section(README.read_text(), "The lessons")
    table = re.search(r"^\|.*?(?=\n[^|]|\Z)", section.strip(), re.MULTILINE | re.DOTALL)
    assert table, "README's lessons section has no table"
    rows = table.group(0).splitlines()[2:]  # after the header and its rule
    names = [re.search(r"`(\d\d_\w+)`", row).group(1) for row in rows]
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert names == notebooks, f"the lessons table lists {names}, notebooks/ holds {notebooks}"
