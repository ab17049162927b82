"""The offline course sites (minildm.classroom.site): built from tiny synthetic notebooks and from
the real lessons (the student site from student/, the teacher's from notebooks/; stored outputs,
nothing is executed), checked without a browser (no solution on a student page, links resolve,
previous/next and contents, byte-identical builds), then opened in headless Chromium with the
network cut off: math typeset by the bundled MathJax, images loaded, no solution shown.

Chromium is Debian's ``chromium``; when it is missing the tests try ``apt-get install -y
chromium`` once (as root), and otherwise skip the browser checks, saying why."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from minildm.classroom import mark_check, mark_solution
from minildm.classroom.browser import find_chromium, page_report
from minildm.classroom.cli import main
from minildm.classroom.exercises import find_regions, is_solution
from minildm.classroom.site import build_site, check_site, external_resources
from minildm.classroom.student import lesson_notebooks, make_student

ROOT = Path(__file__).resolve().parents[1]
# the site is built with nbconvert and the MathJax that jupyter-server-mathjax ships (the dev extra)
DEV_EXTRA = "pip install -e '.[dev]'"
pytest.importorskip("nbconvert", reason=f"the site needs nbconvert: {DEV_EXTRA}")
pytest.importorskip("jupyter_server_mathjax", reason=f"the site needs jupyter-server-mathjax: {DEV_EXTRA}")
MATH = "Inline $x^2$ and a display:\n\n$$\\sum_i a_i$$"
_SCRIPTS = re.compile(r"<script\b.*?</script>", re.DOTALL | re.IGNORECASE)
_SOURCES = re.compile(r"<(?:script|link|img)\b[^>]*?\b(?:src|href)=[\"']([^\"']*)", re.IGNORECASE)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's path; installed with apt-get once when missing and running as root."""
    found = find_chromium()
    if found is None and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(install, env=env, capture_output=True, timeout=1200).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            subprocess.run(install, env=env, capture_output=True, timeout=1200)
        found = find_chromium()
    if found is None:
        pytest.skip("no Chromium to open the site in: `apt-get install chromium` (as root) runs these checks")
    return found


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_lesson(path: Path, number: int, colour: tuple[int, int, int]) -> Path:
    png = base64.b64encode(png_bytes(colour)).decode()
    nb = new_notebook(cells=[
        new_markdown_cell(f"# {number:02d} · Tiny lesson {number}\n\n{MATH}"),
        new_code_cell("show()", execution_count=1, outputs=[
            new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})]),
        new_markdown_cell("See [the other lesson](00_tiny.ipynb)."),
    ])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    lessons = [tiny_lesson(folder / "00_tiny.ipynb", 0, (200, 30, 30)),
               tiny_lesson(folder / "01_tiny.ipynb", 1, (30, 30, 200))]
    guide = folder / "teaching.md"
    guide.write_text(f"# Teacher's guide\n\n{MATH}\n\nLesson [00](../notebooks/00_tiny.ipynb).\n")
    out = folder / "site"
    assert build_site(lessons, out, teaching=guide) == out / "index.html"
    return out


def visible_text(dom: str) -> str:
    return _SCRIPTS.sub("", dom)


def test_pages_index_and_mathjax_are_written(tiny_site):
    names = sorted(p.name for p in tiny_site.glob("*.html"))
    assert names == ["00_tiny.html", "01_tiny.html", "index.html", "teaching.html"]
    index = (tiny_site / "index.html").read_text()
    for href, title in [("00_tiny.html", "00 · Tiny lesson 0"), ("01_tiny.html", "01 · Tiny lesson 1"),
                        ("teaching.html", "Teacher&#x27;s guide")]:
        assert f'<a href="{href}">{title}</a>' in index
    assert (tiny_site / "mathjax" / "MathJax.js").is_file()
    lesson = (tiny_site / "00_tiny.html").read_text()
    assert 'src="mathjax/MathJax.js?config=' in lesson and "data:image/png;base64," in lesson
    assert 'href="00_tiny.html"' in lesson  # links between lessons point to their pages
    assert 'href="00_tiny.html"' in (tiny_site / "teaching.html").read_text()


def test_no_page_loads_anything_from_the_network(tiny_site):
    for page in tiny_site.glob("*.html"):
        text = page.read_text()
        remote = [s for s in _SOURCES.findall(text) if s.startswith(("http:", "https:", "//"))]
        assert not remote, f"{page.name} loads {remote}"
        assert external_resources(text) == []
        assert "require.js" not in text and "unpkg.com" not in text and "cdnjs" not in _SCRIPTS.sub("", text)


def test_external_resources_finds_cdn_sources():
    page = ('<script src="https://cdn.example/require.js"></script>'
            '<link rel="stylesheet" href="//fonts.x/a.css"><img src="data:image/png;base64,AAAA">'
            '<a href="https://arxiv.org/abs/1">a link is fine</a>'
            "<style>@import url('https://fonts.y/b.css');</style>")
    assert external_resources(page) == ["https://cdn.example/require.js", "//fonts.x/a.css", "https://fonts.y/b.css"]


@pytest.mark.slow  # headless Chromium
def test_math_typeset_and_images_loaded_offline(tiny_site, chromium, tmp_path):
    for page in sorted(tiny_site.glob("*.html")):
        png = tmp_path / f"{page.stem}.png"
        report, dom = page_report(page, png)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000, page.name
        assert report["broken"] == [], f"{page.name}: images that did not load: {report['broken']}"
        if page.name == "index.html":
            continue
        assert report["mathjax"] and report["math"] >= 2 and report["math_errors"] == 0, (page.name, report)
        assert report["raw_math"] == [], f"{page.name}: TeX left as text: {report['raw_math']}"
        text = visible_text(dom)
        assert 'class="MathJax' in text and "$x^2$" not in text and "$$" not in text, page.name
        if page.name != "teaching.html":
            assert report["images"] == 1, report
    assert not list(tiny_site.glob("_check_*")), "the checking copies are removed"


@pytest.mark.slow  # headless Chromium
def test_cli_site_and_its_check(tmp_path, chromium, capsys, monkeypatch):
    lesson = tiny_lesson(tmp_path / "05_tiny.ipynb", 5, (30, 200, 30))
    out = tmp_path / "site"
    monkeypatch.chdir(tmp_path)  # no docs/teaching.md here: the teacher's site is the lesson alone
    assert main(["site", "--teacher", str(lesson), "--out", str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'index.html'}" in printed
    assert "05_tiny.html: 1 images (0 broken), " in printed and "(0 errors, 0 left as TeX)" in printed
    assert (out / "screenshots" / "05_tiny.png").is_file() and not (out / "teaching.html").exists()


def test_cli_site_bad_notebook_is_one_line(tmp_path, capsys):
    assert main(["site", str(tmp_path / "missing.ipynb"), "--out", str(tmp_path / "site")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.ipynb: no such file" in err


def test_cli_site_usage_errors(tmp_path, capsys):
    lesson = tiny_lesson(tmp_path / "05_tiny.ipynb", 5, (30, 200, 30))
    (tmp_path / "afile").write_text("x")
    assert main(["site", "--teacher", str(lesson), "--out", str(tmp_path / "afile")]) == 2
    assert f"--out {tmp_path / 'afile'}: is a file; expected a folder" in capsys.readouterr().err
    assert main(["site", str(lesson), "--teaching", str(tmp_path / "g.md"), "--out", str(tmp_path)]) == 2
    assert "--teaching goes with --teacher" in capsys.readouterr().err
    missing = tmp_path / "notebookz"
    assert main(["site", str(lesson), "--outputs-from", str(missing), "--out", str(tmp_path / "s")]) == 2
    assert f"--outputs-from {missing}: no such folder" in capsys.readouterr().err


# --- the student site, on a tiny lesson with an exercise -------------------------------------------

SOLUTION = "def double(x):\n    ### BEGIN SOLUTION\n    return x + x  # the secret line\n    ### END SOLUTION"
CHECK = ("assert double(2) == 4\n### BEGIN HIDDEN TESTS\nassert double(0) == 0  # hidden check\n"
         "### END HIDDEN TESTS")


def exercise_lesson(path: Path) -> Path:
    png = base64.b64encode(png_bytes((200, 200, 30))).decode()
    nb = new_notebook(cells=[
        new_markdown_cell(f"# 03 · Exercise lesson\n\n{MATH}\n\n## 1. Doubling\n\nText."),
        new_code_cell("figure()", execution_count=1, outputs=[
            new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})]),
        new_markdown_cell("### Exercise 3.1: double"),
        new_code_cell(SOLUTION, execution_count=2),
        new_code_cell(CHECK, execution_count=3,
                      outputs=[new_output("stream", name="stdout", text="passed\n")]),
        new_markdown_cell("### Predict, then run: what is double(0)?"),
        new_markdown_cell("**Answer.** Zero, $0 + 0 = 0$.", metadata={"tags": ["answer"],
                                                                   "jupyter": {"source_hidden": True}}),
        new_markdown_cell("## 2. The end"),
    ])
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    mark_solution(nb.cells[3], "double")
    mark_check(nb.cells[4], "double_check", points=2)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_student_site(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tiny_student")
    (folder / "notebooks").mkdir()
    teacher = exercise_lesson(folder / "notebooks" / "03_ex.ipynb")
    (folder / "student").mkdir()
    student = folder / "student" / "03_ex.ipynb"
    nbformat.write(make_student(nbformat.read(str(teacher), as_version=4)), str(student))
    out = folder / "site"
    build_site([student], out, student=True, outputs_from=folder / "notebooks")
    return out, teacher


def test_student_page_has_no_solution_and_marks_exercises(tiny_student_site):
    out, _ = tiny_student_site
    page = (out / "03_ex.html").read_text()
    for secret in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "the secret line", "hidden check"):
        assert secret not in page
    assert "YOUR CODE HERE" in text_of(page)
    assert len(marked(page, "minildm-exercise")) == 1 and len(marked(page, "minildm-check")) == 1
    assert ".celltag_minildm-exercise::before" in page  # the marks are styled (a label and a border)
    assert 'Exercise: write your code here' in page
    assert "data:image/png;base64," in page, "the lesson's figure comes from the teacher's stored output"
    assert "passed" not in text_of(page), "a check cell keeps no output"
    answers = re.findall(r"<details class=\"minildm-answer\"[^>]*>", page)
    assert answers == ['<details class="minildm-answer">'], "the answer is folded away (no 'open')"
    assert "Zero," in page.split('<details class="minildm-answer">')[1].split("</details>")[0]
    assert "For teachers" not in (out / "index.html").read_text()


def test_pages_of_an_earlier_build_are_removed(tiny_student_site, tmp_path):
    out, teacher = tiny_student_site
    site = tmp_path / "site"
    build_site([teacher], site, teaching=None)
    (site / "teaching.html").write_text("the guide, with solutions")
    student = out.parent / "student" / "03_ex.ipynb"
    build_site([student], site, student=True, outputs_from=out.parent / "notebooks")
    assert sorted(p.name for p in site.glob("*.html")) == ["03_ex.html", "index.html"]
    assert "the secret line" not in (site / "03_ex.html").read_text()


def test_student_site_refuses_a_teachers_notebook(tiny_student_site, tmp_path):
    _, teacher = tiny_student_site
    with pytest.raises(RuntimeError, match=r"cell 3 \(0-based index\) holds '### BEGIN SOLUTION'"):
        build_site([teacher], tmp_path / "site", student=True)
    with pytest.raises(ValueError, match="teacher's guide shows solutions"):
        build_site([teacher], tmp_path / "site", student=True, teaching=tmp_path / "guide.md")


# --- the real lessons, with the outputs stored in them (no execution) -----------------------------


def marked(page: str, tag: str) -> list[str]:
    """The elements of a page whose class holds the cell tag ``tag``."""
    return re.findall(rf'class="[^"]*\bcelltag_{tag}\b[^"]*"', page)


def text_of(page: str) -> str:
    """What a page says, tags stripped (code highlighting splits a line into spans)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.DOTALL | re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


# solution lines a lesson shows elsewhere on purpose, by notebook name (none: a solution printed elsewhere in
# its lesson gives the exercise away)
# Solution lines that a lesson also shows on purpose: bookkeeping that gives no answer away
SHOWN_ON_PURPOSE: dict[str, set[str]] = {
    "02_reverse_diffusion.ipynb": {"abar_t = alphas_cumprod[t]"},  # an index, beside the posterior formulas
    "05_latent_diffusion.ipynb": {"generator = torch.Generator().manual_seed(seed)"},  # timing cell
    # the course's rule for noise (drawn on the CPU, then moved), needed again by the inpainting loop
    "08_img2img_and_inpainting.ipynb": {"noise = torch.randn(z0.shape, generator=generator).to(z0.device)"},
}


def solution_lines(notebooks: list[Path]) -> dict[str, list[str]]:
    """The non-trivial lines of each teacher's notebook's solution regions, by notebook name: stripped,
    16 characters or more, and not ordinary code of another lesson (``with torch.no_grad():``)."""
    inside: dict[str, list[str]] = {}
    outside: dict[str, set[str]] = {}
    for path in notebooks:
        found, other = inside.setdefault(path.name, []), outside.setdefault(path.name, set())
        for cell in nbformat.read(str(path), as_version=4).cells:
            lines = cell.source.split("\n")
            regions = [r for r in find_regions(cell.source) if r.kind == "solution"]
            taken = {n for r in regions for n in range(r.begin, r.end + 1)}
            found += [lines[n].strip() for n in sorted(taken) if len(lines[n].strip()) >= 16
                      and "SOLUTION" not in lines[n]]
            other.update(line.strip() for n, line in enumerate(lines) if n not in taken)
    return {name: [line for line in lines if line not in SHOWN_ON_PURPOSE.get(name, set())
                   and not any(line in outside[o] for o in outside if o != name)]
            for name, lines in inside.items()}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    """The lessons, student versions and guide, copied (the sites are built from a fixed copy)."""
    folder = tmp_path_factory.mktemp("snapshot")
    for name in ("notebooks", "student"):
        (folder / name).mkdir()
        for path in lesson_notebooks(ROOT / name):
            shutil.copy(path, folder / name / path.name)
    if not lesson_notebooks(folder / "notebooks") or not lesson_notebooks(folder / "student"):
        pytest.skip("no notebooks/NN_*.ipynb or student/NN_*.ipynb")
    (folder / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "teaching.md", folder / "docs" / "teaching.md")
    return folder


@pytest.fixture(scope="module")
def student_site(snapshot) -> Path:
    out = snapshot / "site"
    build_site(lesson_notebooks(snapshot / "student"), out, student=True, outputs_from=snapshot / "notebooks")
    return out


@pytest.fixture(scope="module")
def lesson_site(snapshot) -> Path:
    out = snapshot / "site-teacher"
    build_site(lesson_notebooks(snapshot / "notebooks"), out, teaching=snapshot / "docs" / "teaching.md")
    return out


@pytest.mark.slow  # builds the sites of the real lessons
def test_no_student_page_holds_a_solution(snapshot, student_site, lesson_site):
    solutions = solution_lines(lesson_notebooks(snapshot / "notebooks"))
    assert all(solutions.values()), f"a lesson's solutions were not found: {solutions}"
    teacher_text = {p.name: text_of(p.read_text()) for p in lesson_site.glob("*.html")}
    leaks = []
    for page in sorted(student_site.glob("*.html")):
        raw = page.read_text()
        assert "BEGIN SOLUTION" not in raw and "BEGIN HIDDEN TESTS" not in raw, page.name
        text = text_of(raw)
        own = solutions.get(page.stem + ".ipynb", [])
        leaks += [f"{page.name}: {line!r}" for line in own if line in text]
    assert not leaks, "solution lines on the student site:\n" + "\n".join(leaks)
    for name, lines in solutions.items():  # the search itself finds them where they are shown
        missing = [line for line in lines if line not in teacher_text[name.replace(".ipynb", ".html")]]
        assert not missing, f"the teacher's page of {name} should show {missing[:2]}"
    assert not (student_site / "teaching.html").exists()


@pytest.mark.slow  # builds the sites of the real lessons
def test_exercises_marked_and_answers_folded(snapshot, student_site):
    for path in lesson_notebooks(snapshot / "student"):
        cells = nbformat.read(str(path), as_version=4).cells
        page = (student_site / f"{path.stem}.html").read_text()
        solutions = sum(is_solution(c) for c in cells)
        assert len(marked(page, "minildm-exercise")) == solutions, path.name
        answers = sum("answer" in c.metadata.get("tags", []) for c in cells)
        assert page.count('<details class="minildm-answer">') == answers, path.name


LINK = re.compile(r"""<(?:a|link|img|script|source)\b[^>]*?\b(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)')""",
                  re.IGNORECASE)


@pytest.mark.slow  # builds the sites of the real lessons
@pytest.mark.parametrize("which", ["student_site", "lesson_site"])
def test_links_resolve_and_every_lesson_has_prev_next_and_contents(which, request, snapshot):
    site = request.getfixturevalue(which)
    lessons = sorted(p for p in site.glob("[0-9][0-9]_*.html"))
    assert len(lessons) == len(lesson_notebooks(snapshot / "notebooks"))
    for page in sorted(site.glob("*.html")):
        raw = page.read_text()
        ids = set(re.findall(r'\bid="([^"]+)"', raw))
        for link in (double or single for double, single in LINK.findall(raw)):
            if link.startswith(("http:", "https:", "mailto:", "data:", "javascript:")):
                continue
            target, _, fragment = html.unescape(link).partition("#")
            target = target.split("?")[0]
            if target:
                assert (page.parent / target).is_file(), f"{page.name}: {link} does not resolve"
            elif fragment:
                assert fragment in ids or html.escape(fragment) in ids, f"{page.name}: #{fragment}"
    for i, page in enumerate(lessons):
        raw = page.read_text()
        nav = raw.split('<nav class="minildm-nav">')[1].split("</nav>")[0]
        assert 'href="index.html"' in nav
        assert ('rel="prev"' in nav) == (i > 0) and ('rel="next"' in nav) == (i + 1 < len(lessons)), page.name
        if i > 0:
            assert f'rel="prev" href="{lessons[i - 1].name}"' in nav, page.name
        if i + 1 < len(lessons):
            assert f'rel="next" href="{lessons[i + 1].name}"' in nav, page.name
        sections = re.findall(r'<h2 id="([^"]+)"', raw)
        assert sections and all(f'href="#{anchor}"' in nav for anchor in sections), page.name


@pytest.mark.slow  # builds the sites of the real lessons
def test_builds_are_byte_identical(snapshot, student_site, tmp_path):
    again = tmp_path / "again"
    build_site(lesson_notebooks(snapshot / "student"), again, student=True,
               outputs_from=snapshot / "notebooks")
    names = sorted(p.name for p in student_site.glob("*.html"))
    assert names == sorted(p.name for p in again.glob("*.html"))
    for name in names:
        assert (student_site / name).read_bytes() == (again / name).read_bytes(), name
    teacher = lesson_notebooks(snapshot / "notebooks")[:2]  # two lessons and the guide, twice
    pages = []
    for out in (tmp_path / "t1", tmp_path / "t2"):
        build_site(teacher, out, teaching=snapshot / "docs" / "teaching.md")
        pages.append({p.name: p.read_bytes() for p in out.glob("*.html")})
    assert pages[0] == pages[1] and "teaching.html" in pages[0]


@pytest.mark.slow  # builds the sites of the real lessons
def test_lesson_site_is_complete_and_offline(snapshot, lesson_site, student_site):
    notebooks = lesson_notebooks(snapshot / "notebooks")
    for site in (lesson_site, student_site):
        index = (site / "index.html").read_text()
        for path in notebooks:
            page = (site / f"{path.stem}.html").read_text()
            assert f'href="{path.stem}.html"' in index
            assert external_resources(page) == [], path.name
    for path in notebooks:
        cells = nbformat.read(str(path), as_version=4).cells
        stored = sum("image/png" in out.get("data", {}) for cell in cells if cell.cell_type == "code"
                     for out in cell.outputs)
        page = (lesson_site / f"{path.stem}.html").read_text()
        assert page.count("data:image/png;base64,") >= stored, f"{path.name}: a stored figure is missing"
        student_page = (student_site / f"{path.stem}.html").read_text()
        assert "data:image/png;base64," in student_page, f"{path.name}: no figure on the student page"


@pytest.mark.slow  # builds the sites of the real lessons, opened in headless Chromium
def test_lesson_site_renders_in_chromium(lesson_site, chromium, tmp_path):
    lines = check_site(lesson_site, tmp_path / "screenshots")  # RuntimeError names a page that fails
    assert len(lines) == len(list(lesson_site.glob("*.html")))
    assert len(list((tmp_path / "screenshots").glob("*.png"))) == len(lines)


@pytest.mark.slow  # builds the sites of the real lessons, opened in headless Chromium
def test_student_site_renders_and_shows_no_solution_in_chromium(snapshot, student_site, chromium):
    from concurrent.futures import ThreadPoolExecutor

    solutions = solution_lines(lesson_notebooks(snapshot / "notebooks"))
    pages = sorted(student_site.glob("*.html"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        opened = list(pool.map(page_report, pages))
    shown = []
    for page, (report, dom) in zip(pages, opened):
        assert report["broken"] == [], f"{page.name}: images that did not load: {report['broken']}"
        if page.name == "index.html":
            continue
        assert report["images"] > 0 and report["math"] > 0, (page.name, report)
        assert report["math_errors"] == 0 and report["raw_math"] == [], (page.name, report)
        text = text_of(dom)
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, page.name
        own = solutions.get(page.stem + ".ipynb", [])
        shown += [f"{page.name}: {line!r}" for line in own if line in text]
        assert re.search(r'<details class="minildm-answer" open', dom) is None, page.name
    assert not shown, "the student site shows solution lines:\n" + "\n".join(shown)
