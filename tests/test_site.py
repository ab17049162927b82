"""The offline course site (minildm.classroom.site): built from tiny synthetic notebooks and from
the real lessons (their stored outputs: nothing is executed), then opened in headless Chromium
with the network cut off: math typeset by the bundled MathJax, images loaded, a screenshot a page.

Chromium is Debian's ``chromium``; when it is missing the tests try ``apt-get install -y
chromium`` once (as root), and otherwise skip the browser checks, saying why."""

from __future__ import annotations

import base64
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

from minildm.classroom.browser import find_chromium, page_report
from minildm.classroom.cli import main
from minildm.classroom.site import build_site, check_site, external_resources
from minildm.classroom.student import lesson_notebooks

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


def test_cli_site_and_its_check(tmp_path, chromium, capsys):
    lesson = tiny_lesson(tmp_path / "05_tiny.ipynb", 5, (30, 200, 30))
    out = tmp_path / "site"
    args = ["site", str(lesson), "--out", str(out), "--teaching", str(tmp_path / "none.md"), "--check"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'index.html'}" in printed
    assert "05_tiny.html: 1 images (0 broken), " in printed and "(0 errors, 0 left as TeX)" in printed
    assert (out / "screenshots" / "05_tiny.png").is_file() and not (out / "teaching.html").exists()


def test_cli_site_bad_notebook_is_one_line(tmp_path, capsys):
    assert main(["site", str(tmp_path / "missing.ipynb"), "--out", str(tmp_path / "site")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.ipynb: no such file" in err


# --- the real lessons, with the outputs stored in them (no execution) -----------------------------


@pytest.fixture(scope="module")
def lesson_site(tmp_path_factory) -> Path:
    notebooks = lesson_notebooks(ROOT / "notebooks")
    if not notebooks:
        pytest.skip("no notebooks/NN_*.ipynb")
    out = tmp_path_factory.mktemp("lessons") / "site"
    teaching = ROOT / "docs" / "teaching.md"
    build_site(notebooks, out, teaching=teaching if teaching.is_file() else None)
    return out


def test_lesson_site_is_complete_and_offline(lesson_site):
    notebooks = lesson_notebooks(ROOT / "notebooks")
    index = (lesson_site / "index.html").read_text()
    for path in notebooks:
        page = (lesson_site / f"{path.stem}.html").read_text()
        assert f'href="{path.stem}.html"' in index
        assert external_resources(page) == [], path.name
        cells = nbformat.read(str(path), as_version=4).cells
        stored = sum("image/png" in out.get("data", {}) for cell in cells if cell.cell_type == "code"
                     for out in cell.outputs)
        assert page.count("data:image/png;base64,") >= stored, f"{path.name}: a stored figure is missing"


def test_lesson_site_renders_in_chromium(lesson_site, chromium, tmp_path):
    lines = check_site(lesson_site, tmp_path / "screenshots")  # RuntimeError names a page that fails
    assert len(lines) == len(list(lesson_site.glob("*.html")))
    assert len(list((tmp_path / "screenshots").glob("*.png"))) == len(lines)
