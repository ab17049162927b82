"""The offline course site: every lesson notebook rendered with its stored outputs (nothing is
executed) to static HTML, an index page, and the teacher's guide.

It loads nothing from the network: no CDN (nbconvert's require.js, widget manager and mermaid
scripts are left out), math is typeset by the MathJax 2 copy that the ``jupyter-server-mathjax``
package ships, copied into ``site/mathjax/``, and images are embedded as data URIs. Open
``site/index.html`` in a browser, or serve the folder (``python -m http.server -d site``).
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

from minildm.classroom.student import read_notebook

MATHJAX_DIR = "mathjax"
MATHJAX_URL = f"{MATHJAX_DIR}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
INDEX = "index.html"
TEACHING = "teaching.html"
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
{%- block body_header -%}
{{ super() }}
<nav class="minildm-nav" style="padding: 8px 16px; font-family: sans-serif;">
<a href="index.html">&larr; all lessons</a></nav>
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


def render_page(nb: Any, title: str, exporter: Any, folder: str | Path = ".") -> str:
    """One notebook as an offline HTML page (its stored outputs, widget state left out); links
    to other lessons (``NN_name.ipynb``) point to their pages. ``folder`` is where relative
    image paths in markdown are found."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    resources = {"metadata": {"name": title, "path": str(folder)}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return _NOTEBOOK_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body)


def _index(lessons: list[tuple[str, str]], teaching: str | None) -> str:
    items = "\n".join(f'<li><a href="{html.escape(href)}">{html.escape(title)}</a></li>'
                      for href, title in lessons)
    guide = (f'<p>For teachers: <a href="{TEACHING}">{html.escape(teaching)}</a></p>'
             if teaching else "")
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
<p>The lessons, with the outputs stored in the notebooks (nothing here runs code).
Run them yourself in Jupyter: <code>notebooks/NN_*.ipynb</code>.</p>
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
    path.write_text(page, encoding="utf-8")


def build_site(notebooks: Sequence[str | Path], out: str | Path = "site",
               teaching: str | Path | None = None) -> Path:
    """Render ``notebooks`` (with their stored outputs) into ``out/NN_name.html``, the teacher's
    guide ``teaching`` (a markdown file, optional) into ``out/teaching.html``, copy MathJax into
    ``out/mathjax/`` and write ``out/index.html``; return the index's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(mathjax_folder(), out / MATHJAX_DIR, dirs_exist_ok=True)
    exporter = html_exporter()
    lessons = []
    for path in notebooks:
        path = Path(path)
        nb = read_notebook(path)
        title = notebook_title(nb, path.stem)
        _write_page(out / f"{path.stem}.html", render_page(nb, title, exporter, path.parent))
        lessons.append((f"{path.stem}.html", title))
    guide = None
    if teaching is not None:
        teaching = Path(teaching)
        text = teaching.read_text(encoding="utf-8")
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
        guide = notebook_title(nb, "Teacher's guide")
        _write_page(out / TEACHING, render_page(nb, guide, exporter, teaching.parent))
    _write_page(out / INDEX, _index(lessons, guide))
    return out / INDEX


def check_site(out: str | Path, screenshots: str | Path | None = None) -> list[str]:
    """Open every page of the site in ``out`` in headless, offline Chromium: RuntimeError unless
    its images loaded and its math was typeset (no MathJax error, no TeX left as text); one
    summary line per page. With ``screenshots``, save a screenshot of each page there
    (``NAME.png``)."""
    from minildm.classroom.browser import page_report

    lines, failures = [], []
    if screenshots is not None:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
    for page in sorted(Path(out).glob("*.html")):
        png = Path(screenshots) / f"{page.stem}.png" if screenshots is not None else None
        report, _ = page_report(page, png)
        lines.append(f"{page.name}: {report['images']} images ({len(report['broken'])} broken), "
                     f"{report['math']} formulas ({report['math_errors']} errors, "
                     f"{len(report['raw_math'])} left as TeX)")
        if report["broken"] or report["math_errors"] or report["raw_math"]:
            failures.append(lines[-1] + (f": {report['raw_math'][:3]}" if report["raw_math"] else ""))
    if failures:
        raise RuntimeError("pages that do not render offline: " + "; ".join(failures))
    return lines
