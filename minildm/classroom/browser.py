"""Headless Chromium, kept offline, to look at the course site as a student's browser shows it:
the page's DOM after its scripts ran (MathJax), whether its images loaded, and a screenshot.

Chromium is run with every network name resolving to nothing and a dead proxy, so a page that
needs the network fails here as it would in a classroom without one.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
OFFLINE_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--no-sandbox",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--hide-scrollbars",
)
REPORT_ID = "minildm-page-check"
# appended to a copy of the page: once MathJax has typeset the page (or at load, without MathJax),
# write what a reader would see into a <pre> that --dump-dom prints
CHECK_SCRIPT = r"""<script>
window.addEventListener('load', function () {
  function rawMath() {  // text still showing TeX delimiters outside code: math MathJax missed
    var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT), found = [], node;
    while ((node = walker.nextNode())) {
      if (node.parentElement.closest('script, style, pre, code, textarea')) continue;
      var m = /\$\$?[^$\s][^$]*\$|\\\(|\\\[/.exec(node.nodeValue);
      if (m) found.push(m[0].slice(0, 40));
    }
    return found;
  }
  function report() {
    var images = Array.prototype.slice.call(document.images);
    var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
      .map(function (i) { return (i.getAttribute('src') || '').slice(0, 80); });
    var hub = window.MathJax && window.MathJax.Hub;
    var out = document.createElement('pre');
    out.id = 'REPORT_ID';
    out.hidden = true;
    out.textContent = JSON.stringify({
      images: images.length, broken: broken, mathjax: !!hub,
      math: document.querySelectorAll('.MathJax, .MathJax_Display, mjx-container').length,
      math_errors: document.querySelectorAll('.MathJax_Error, merror, mjx-merror').length,
      raw_math: rawMath(),
      font: hub && MathJax.OutputJax['HTML-CSS'] ? MathJax.OutputJax['HTML-CSS'].fontInUse || null : null
    });
    document.body.appendChild(out);
  }
  if (window.MathJax && window.MathJax.Hub) {
    MathJax.Hub.Register.StartupHook('End', function () { MathJax.Hub.Queue(report); });
  } else {
    report();
  }
});
</script>""".replace("REPORT_ID", REPORT_ID)


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) executable, None when there is none."""
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def run_chromium(page: str | Path, *flags: str, budget_ms: int = 10000, timeout: float = 120.0) -> str:
    """Load ``page`` (a local file) in headless, offline Chromium with ``flags`` (e.g.
    ``--dump-dom``, ``--screenshot=PATH``); give its scripts ``budget_ms`` of virtual time and
    return what Chromium printed on stdout. RuntimeError when Chromium is missing or fails."""
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("no Chromium found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="minildm-chromium-") as profile:
        command = [chromium, *OFFLINE_FLAGS, f"--user-data-dir={profile}",
                   f"--virtual-time-budget={budget_ms}", *flags, Path(page).resolve().as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        tail = " ".join(result.stderr.strip().splitlines()[-2:])[-300:]
        raise RuntimeError(f"chromium failed on {page} (exit {result.returncode}): {tail}")
    return result.stdout


def screenshot(page: str | Path, png: str | Path, size: tuple[int, int] = (1280, 1600),
               budget_ms: int = 10000) -> Path:
    """Save a ``size`` (width, height) screenshot of the page as ``png``; return its path."""
    png = Path(png).resolve()
    run_chromium(page, f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", budget_ms=budget_ms)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {page}")
    return png


def page_report(page: str | Path, png: str | Path | None = None, budget_ms: int = 10000,
                size: tuple[int, int] = (1280, 1600)) -> tuple[dict[str, Any], str]:
    """Open ``page`` in Chromium and return ``(report, dom)``: ``report`` says how many images it
    has and which did not load (``broken``, their sources), how many MathJax elements
    (``math``) and math errors (``math_errors``) it shows, the TeX left untypeset outside code
    (``raw_math``, snippets) and MathJax's font; ``dom`` is the page's DOM after MathJax ran (with
    the report's ``<pre>`` at the end of the body). With ``png``, also save a screenshot there.

    The page is opened as a copy with a small checking script, written beside it (so that its
    relative links still work) and removed afterwards."""
    page = Path(page)
    source = page.read_text(encoding="utf-8")
    at = source.lower().rfind("</body>")
    checked = source[:at] + CHECK_SCRIPT + source[at:] if at >= 0 else source + CHECK_SCRIPT
    copy = page.with_name(f"_check_{page.name}")
    copy.write_text(checked, encoding="utf-8")
    flags = ["--dump-dom"]
    if png is not None:
        flags += [f"--screenshot={Path(png).resolve()}", f"--window-size={size[0]},{size[1]}"]
    try:
        dom = run_chromium(copy, *flags, budget_ms=budget_ms)
    finally:
        copy.unlink(missing_ok=True)
    match = re.search(rf'<pre id="{REPORT_ID}"[^>]*>(.*?)</pre>', dom, re.DOTALL)
    if match is None:
        raise RuntimeError(f"the checking script did not run in {page.name} (no report in its DOM)")
    return json.loads(html.unescape(match.group(1))), dom
