"""The offline course sites: lesson notebooks rendered to static HTML (nothing is executed), with an
index, previous/next links and a contents list on every lesson page.

Two sites come from the same code:

- the **student site** (``make site``, ``site/``) renders ``student/``: stubs where the solutions
  were, no hidden tests, every exercise cell visibly marked, and each *predict, then run* answer
  collapsed in a ``<details>`` element that the reader opens. The figures and printed results of
  the other code cells are taken from the teacher's notebook of the same name (``notebooks/``),
  cell by cell (the cell with the same id) and only where the code is the same; exercise and check
  cells keep no output. A notebook that still holds solution or hidden-test markers is refused,
  and the teacher's guide is not part of it (it shows solutions).
- the **teacher's site** (``make site-teacher``, ``site-teacher/``) renders ``notebooks/`` as they
  are, with the teacher's guide ``docs/teaching.md``.

Nothing is loaded from the network: no CDN (nbconvert's require.js, widget manager and mermaid
scripts are left out), math is typeset by the MathJax 2 copy that the ``jupyter-server-mathjax``
package ships, copied into ``OUT/mathjax/``, and images are embedded as data URIs. The pages are
byte-identical from one build to the next. Open ``site/index.html`` in a browser, or serve the
folder (``python -m http.server -d site``).
"""

from __future__ import annotations

import copy
import html
import importlib.util
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

from minildm.classroom.exercises import BEGIN_HIDDEN, BEGIN_SOLUTION, is_check, is_solution
from minildm.classroom.student import read_notebook

MATHJAX_DIR = "mathjax"
MATHJAX_URL = f"{MATHJAX_DIR}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
INDEX = "index.html"
TEACHING = "teaching.html"
#: cell tags the site adds to its copy of an exercise's cells (styled below)
EXERCISE_TAG, CHECK_TAG, ANSWER_TAG = "minildm-exercise", "minildm-check", "minildm-answer"
NAV_PLACEHOLDER = "<!-- minildm-nav -->"
# nbconvert's "lab" page without the network: no require.js, widget or mermaid scripts, and a
# MathJax configuration for the fonts jupyter-server-mathjax ships (STIX-Web, as Jupyter used)
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  tex2jax: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
            processEscapes: true, processEnvironments: true},
  displayAlign: "center",
  messageStyle: "none",
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
               linebreaks: {automatic: true}},
  menuSettings: {zoom: "None"}
});
</script>
<script src="{{ resources.mathjax_url }}"></script>
{%- endblock html_head_js_mathjax -%}
{% block extra_css %}
<style>
.minildm-nav { padding: 8px 16px; font-family: sans-serif; }
.minildm-nav .minildm-pages a { margin-right: 1.5em; }
.minildm-nav details { margin-top: 0.5em; }
.minildm-nav ul { margin: 0.2em 0; }
.celltag_minildm-exercise, .celltag_minildm-check { border-left: 6px solid #e66100; }
.celltag_minildm-exercise::before, .celltag_minildm-check::before {
  display: block; padding: 2px 8px; font: bold 0.9em sans-serif; color: #a14800; }
.jp-CodeCell.celltag_minildm-exercise::before { content: "\270E Exercise: write your code here"; }
.jp-MarkdownOutput.celltag_minildm-exercise::before { content: "\270E Exercise: write your answer here"; }
.celltag_minildm-check::before { content: "\2714 Check cell: run it to test your answer (graded)"; }
details.minildm-answer { border: 1px solid #ccc; padding: 4px 10px; margin: 4px 0; }
details.minildm-answer > summary { cursor: pointer; font-weight: bold; }
</style>
{% endblock extra_css %}
{% block markdowncell scoped %}
{%- if 'minildm-answer' in cell.metadata.get('tags', []) -%}
<details class="minildm-answer"><summary>Answer (open it once you have run the code above)</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{% endblock markdowncell %}
{%- block body_header -%}
{{ super() }}
<!-- minildm-nav -->
{%- endblock body_header -%}
"""
_EXTERNAL = re.compile(
    r"""<(?:script|img|iframe|embed|source|audio|video)\b[^>]*?\bsrc\s*=\s*["']?((?:https?:)?//[^"'\s>]+)"""
    r"""|<link\b[^>]*?\bhref\s*=\s*["']?((?:https?:)?//[^"'\s>]+)"""
    r"""|@import\s+(?:url\()?["']?((?:https?:)?//[^"')\s]+)"""
    r"""|url\(\s*["']?((?:https?:)?//[^"')\s]+)""",
    re.IGNORECASE,
)
_NOTEBOOK_LINK = re.compile(r'href="(?!https?:|//|#)(?:[^"]*/)?(\d\d_[\w\-]+)\.ipynb(#[^"]*)?"')
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
# a section heading as nbconvert renders it: <h2 id="...">text<a class="anchor-link" ...>
_RENDERED_HEADING = re.compile(r'<h([23]) id="([^"]+)">(.*?)<a class="anchor-link"', re.DOTALL)


def mathjax_folder() -> Path:
    """The MathJax 2 files of the ``jupyter-server-mathjax`` package (found without importing it:
    its ``__init__`` loads jupyter_server)."""
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" if spec else None
    if folder is None or not (folder / "MathJax.js").is_file():
        raise RuntimeError("the site needs MathJax from the jupyter-server-mathjax package: "
                           "pip install -e '.[dev]' (or pip install jupyter-server-mathjax)")
    return folder


def notebook_title(nb: Any, default: str) -> str:
    """The first markdown heading of ``nb`` (its text, without the #'s), else ``default``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (match := _HEADING.search(cell.source)):
            return match.group(1)
    return default


def external_resources(page: str) -> list[str]:
    """The URLs that ``page`` (HTML) would load from the network: script, image, frame and
    stylesheet sources and CSS imports or url()s that are absolute (http, https or //)."""
    return [next(g for g in match.groups() if g) for match in _EXTERNAL.finditer(page)]


def html_exporter() -> Any:
    """An nbconvert HTMLExporter for offline pages (see TEMPLATE)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"minildm_offline.html.j2": TEMPLATE})],
        template_file="minildm_offline.html.j2",
        mathjax_url=MATHJAX_URL,
        embed_images=True,
    )


def is_answer(cell: Any) -> bool:
    """A markdown cell that explains a *predict, then run* question (tagged ``answer``, or hidden)."""
    return cell.cell_type == "markdown" and ("answer" in cell.metadata.get("tags", [])
                                             or bool(cell.metadata.get("jupyter", {}).get("source_hidden")))


def _add_tag(cell: Any, tag: str) -> None:
    cell.metadata["tags"] = [*cell.metadata.get("tags", []), tag]


def student_page_notebook(nb: Any, name: str = "notebook", teacher: Any | None = None) -> Any:
    """The copy of a student notebook that the student site renders: exercise cells tagged (and so
    marked on the page), answers wrapped in a collapsed ``<details>``, and, with ``teacher`` (the
    teacher's notebook of the same lesson), the stored outputs of every code cell whose source is
    the same in both (the cell with the same id) and that is not an exercise or check cell.
    RuntimeError when ``nb`` holds solution or hidden-test markers (a teacher's notebook)."""
    for index, cell in enumerate(nb.cells):
        for marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if marker in cell.source:
                raise RuntimeError(f"{name}: cell {index} (0-based index) holds {marker!r}: the student "
                                   "site is built from the student notebooks (student/, `make student`)")
    nb = copy.deepcopy(nb)
    by_id = {c.get("id"): c for c in teacher.cells if c.get("id")} if teacher is not None else {}
    for cell in nb.cells:
        if is_solution(cell):
            _add_tag(cell, EXERCISE_TAG)
        elif is_check(cell):
            _add_tag(cell, CHECK_TAG)
        elif is_answer(cell):
            _add_tag(cell, ANSWER_TAG)  # the template wraps it in a closed <details>
        elif cell.cell_type == "code" and (same := by_id.get(cell.get("id"))) is not None:
            if same.cell_type == "code" and same.source == cell.source:
                cell.outputs = copy.deepcopy(same.outputs)
                cell.execution_count = same.execution_count
    return nb


def teacher_page_notebook(nb: Any) -> Any:
    """The copy of a teacher's notebook that the teacher's site renders: exercise cells marked."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if is_solution(cell):
            _add_tag(cell, EXERCISE_TAG)
        elif is_check(cell):
            _add_tag(cell, CHECK_TAG)
    return nb


def contents(page: str) -> list[tuple[int, str, str]]:
    """The section headings of a rendered page: ``(level, id, inner HTML)`` for each h2 and h3."""
    return [(int(level), anchor, inner.strip()) for level, anchor, inner in _RENDERED_HEADING.findall(page)]


def _nav(page: str, previous: tuple[str, str] | None, following: tuple[str, str] | None) -> str:
    links = ['<a href="index.html">&uarr; all lessons</a>']
    if previous:
        links.append(f'<a rel="prev" href="{previous[0]}">&larr; {html.escape(previous[1])}</a>')
    if following:
        links.append(f'<a rel="next" href="{following[0]}">{html.escape(following[1])} &rarr;</a>')
    items, open_sub = [], False
    for level, anchor, inner in contents(page):
        if level == 3 and not open_sub and items:
            items[-1] = items[-1].removesuffix("</li>") + "<ul>"
            open_sub = True
        elif level == 2 and open_sub:
            items.append("</ul></li>")
            open_sub = False
        items.append(f'<li><a href="#{anchor}">{inner}</a></li>')
    if open_sub:
        items.append("</ul></li>")
    toc = (f'<details class="minildm-contents" open><summary>Contents</summary>\n<ul>\n{"".join(items)}\n'
           "</ul></details>") if items else ""
    return (f'<nav class="minildm-nav">\n<div class="minildm-pages">{" ".join(links)}</div>\n{toc}\n</nav>')


def render_page(nb: Any, title: str, exporter: Any, folder: str | Path = ".",
                previous: tuple[str, str] | None = None, following: tuple[str, str] | None = None) -> str:
    """One notebook as an offline HTML page (its stored outputs, widget state left out); links
    to other lessons (``NN_name.ipynb``) point to their pages; a navigation bar links the index,
    ``previous`` and ``following`` (``(href, title)`` pairs) and lists the page's sections.
    ``folder`` is where relative image paths in markdown are found."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    resources = {"metadata": {"name": title, "path": str(folder)}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    body = _NOTEBOOK_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body)
    return body.replace(NAV_PLACEHOLDER, _nav(body, previous, following), 1)


def _index(lessons: list[tuple[str, str]], teaching: str | None, student: bool) -> str:
    items = "\n".join(f'<li><a href="{html.escape(href)}">{html.escape(title)}</a></li>'
                      for href, title in lessons)
    guide = (f'<p>For teachers: <a href="{TEACHING}">{html.escape(teaching)}</a></p>'
             if teaching else "")
    about = ("The lessons, with the figures and results of the lesson code (nothing here runs code). "
             "The exercises are left for you: solve them in Jupyter, in <code>student/NN_*.ipynb</code>, "
             "and run the check cell under each."
             if student else
             "The teacher's version of the lessons: solutions, check cells with their hidden tests, and the "
             "outputs stored in <code>notebooks/NN_*.ipynb</code> (nothing here runs code).")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>minildm: the lessons</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46em; margin: 2em auto; padding: 0 1em;
       line-height: 1.5; color: #222; }}
ul.lessons {{ list-style: none; padding-left: 0; }}
li {{ margin: 0.4em 0; font-size: 1.1em; }}
a {{ color: #1a5fb4; }}
</style>
</head>
<body>
<h1>minildm: build a tiny Stable Diffusion, one notebook at a time</h1>
<p>{about}</p>
<ul class="lessons">
{items}
</ul>
{guide}
</body>
</html>
"""


def _write_page(path: Path, page: str) -> None:
    external = external_resources(page)
    if external:
        raise RuntimeError(f"{path.name} would load {external[0]} from the network (the site is offline)")
    path.write_bytes(page.encode("utf-8"))


def build_site(notebooks: Sequence[str | Path], out: str | Path = "site",
               teaching: str | Path | None = None, student: bool = False,
               outputs_from: str | Path | None = None) -> Path:
    """Render ``notebooks`` (with their stored outputs) into ``out/NN_name.html``, the teacher's
    guide ``teaching`` (a markdown file, optional) into ``out/teaching.html``, copy MathJax into
    ``out/mathjax/`` and write ``out/index.html``; return the index's path.

    With ``student``, the notebooks are student versions (see :func:`student_page_notebook`;
    ``outputs_from`` is the folder of the teacher's notebooks whose outputs are shown) and a
    ``teaching`` guide is refused. Pages in ``out`` that this build does not write (an earlier
    build's) are removed, so that a teacher's page never stays in a student site."""
    if student and teaching is not None:
        raise ValueError("teaching: the teacher's guide shows solutions; it belongs to the teacher's site")
    out = Path(out)
    paths = [Path(p) for p in notebooks]
    pages = [(f"{p.stem}.html", p) for p in paths]
    loaded = [read_notebook(p) for p in paths]
    titles = [notebook_title(nb, p.stem) for nb, p in zip(loaded, paths)]
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(mathjax_folder(), out / MATHJAX_DIR, dirs_exist_ok=True)
    exporter = html_exporter()
    for i, ((href, path), nb) in enumerate(zip(pages, loaded)):
        if student:
            source = Path(outputs_from) / path.name if outputs_from is not None else None
            teacher = read_notebook(source) if source is not None and source.is_file() else None
            nb = student_page_notebook(nb, str(path), teacher)
        else:
            nb = teacher_page_notebook(nb)
        previous = (pages[i - 1][0], titles[i - 1]) if i > 0 else None
        following = (pages[i + 1][0], titles[i + 1]) if i + 1 < len(pages) else None
        _write_page(out / href, render_page(nb, titles[i], exporter, path.parent, previous, following))
    guide = None
    if teaching is not None:
        teaching = Path(teaching)
        cell = nbformat.v4.new_markdown_cell(teaching.read_text(encoding="utf-8"))
        cell.id = "teachers-guide"  # a fixed id: the page is the same from one build to the next
        nb = nbformat.v4.new_notebook(cells=[cell])
        guide = notebook_title(nb, "Teacher's guide")
        _write_page(out / TEACHING, render_page(nb, guide, exporter, teaching.parent))
    lessons = [(href, title) for (href, _), title in zip(pages, titles)]
    _write_page(out / INDEX, _index(lessons, guide, student))
    written = {href for href, _ in pages} | {INDEX} | ({TEACHING} if guide else set())
    for stale in out.glob("*.html"):  # an earlier build's page (a teacher's page in a student site)
        if stale.name not in written:
            stale.unlink()
    return out / INDEX


def check_site(out: str | Path, screenshots: str | Path | None = None, jobs: int = 4) -> list[str]:
    """Open every page of the site in ``out`` in headless, offline Chromium (``jobs`` at a time):
    RuntimeError unless its images loaded and its math was typeset (no MathJax error, no TeX left
    as text); one summary line per page. With ``screenshots``, save a screenshot of each page there
    (``NAME.png``)."""
    from concurrent.futures import ThreadPoolExecutor

    from minildm.classroom.browser import page_report

    if screenshots is not None:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
    pages = sorted(p for p in Path(out).glob("*.html") if not p.name.startswith("_check_"))

    def one(page: Path) -> dict[str, Any]:
        png = Path(screenshots) / f"{page.stem}.png" if screenshots is not None else None
        return page_report(page, png)[0]

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        reports = list(pool.map(one, pages))
    lines, failures = [], []
    for page, report in zip(pages, reports):
        lines.append(f"{page.name}: {report['images']} images ({len(report['broken'])} broken), "
                     f"{report['math']} formulas ({report['math_errors']} errors, "
                     f"{len(report['raw_math'])} left as TeX)")
        if report["broken"] or report["math_errors"] or report["raw_math"]:
            failures.append(lines[-1] + (f": {report['raw_math'][:3]}" if report["raw_math"] else ""))
    if failures:
        raise RuntimeError("pages that do not render offline: " + "; ".join(failures))
    return lines
