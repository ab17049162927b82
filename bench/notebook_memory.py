"""Benchmark the peak memory of each lesson notebook, executed in the quick budget on the CPU.

    python bench/notebook_memory.py [--limit-gb 2.0] [--output-dir DIR] [NOTEBOOK ...]

Executes each notebook (default: every notebooks/NN_*.ipynb, sorted) top to bottom into a temporary
copy (the notebook in notebooks/ is never written) with MINILDM_BUDGET=quick MINILDM_PROGRESS=0
MINILDM_DEVICE=cpu, working directory notebooks/ (as nbval runs them) and a timeout of 1200 s per cell.

What counts is the peak resident memory (RSS) of the kernel process, where the notebook's code runs.
Each notebook runs in a fresh runner process (nbclient, the engine of nbconvert's ExecutePreprocessor),
whose only child is the kernel: jupyter_client waits for the kernel when it shuts it down, so the
runner's getrusage(RUSAGE_CHILDREN).ru_maxrss is the kernel's peak RSS (the high-water mark, so a
short spike between two samples is not missed; children the kernel itself waited for count too).
This covers the kernel's whole life, shutdown included: a Python process that has imported torch grows
by ~130 MB (mostly torch's library pages) while the interpreter finalises. So a probe cell appended to
the temporary copy also reads the kernel's own VmHWM from /proc/self/status after the last cell (the
peak while the cells ran) and its torch thread count.

Prints the torch version and thread count, then one line per notebook: peak RSS of the kernel in MB
(the larger of the two, what is judged), the peak while the cells ran ("in cells", MB), wall time of
the whole run (kernel start to shutdown) in s, torch threads in the kernel, and PASS or FAIL against
--limit-gb (1 GB = 10^9 bytes, 1 MB = 10^6 bytes). A notebook whose execution fails
(a cell raises, times out or kills the kernel) is not judged: its row says ERROR, names the cell
(0-based index into the notebook's cells) and the exception, and shows the peak up to the failure.
Then a summary line: the largest peak and how many notebooks are over the limit or failed.
The exit status is 0 either way: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT = 1200
ENV = {"MINILDM_BUDGET": "quick", "MINILDM_PROGRESS": "0", "MINILDM_DEVICE": "cpu"}
PROBE_MARK = "__NOTEBOOK_MEMORY_PROBE__"

# appended to the temporary copy: runs in the kernel after the notebook's last cell; imports nothing
# heavy (torch only if the notebook already did), so it does not raise the peak it reports
PROBE_CELL = f"""\
import json as _nm_json, sys as _nm_sys
_nm_hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
_nm_torch = _nm_sys.modules.get("torch")
print({PROBE_MARK!r} + _nm_json.dumps({{
    "vmhwm_kib": int(_nm_hwm[0]) if _nm_hwm else None,
    "torch_threads": _nm_torch.get_num_threads() if _nm_torch is not None else None,
}}))
"""

# the runner, started fresh for each notebook so that RUSAGE_CHILDREN holds only that notebook's kernel;
# argv: notebook, executed copy to write, result JSON to write, working directory, cell timeout (s)
RUNNER = """\
import json, resource, sys, time
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

source, output, result_path, cwd, timeout, probe_cell, probe_mark = sys.argv[1:8]
nb = nbformat.read(source, as_version=4)
nb.cells.append(nbformat.v4.new_code_cell(probe_cell))
started = {"index": None}

def on_cell_start(cell, cell_index):
    started["index"] = cell_index

result = {"error": None, "probe": None}
start = time.perf_counter()
try:
    client = NotebookClient(nb, kernel_name="python3", timeout=int(timeout), allow_errors=False,
                            resources={"metadata": {"path": cwd}}, on_cell_start=on_cell_start)
    client.execute(cwd=cwd)
except Exception as exc:
    if isinstance(exc, CellExecutionError):
        what = f"{exc.ename}: {exc.evalue}"
    else:
        what = f"{type(exc).__name__}: {exc}"
    what = " ".join(what.split())
    index = started["index"]
    where = "before the first cell" if index is None else f"cell {index}"
    if index is not None and index == len(nb.cells) - 1:
        where = "the memory probe cell"
    result["error"] = f"{where}: {what}"
result["wall_s"] = time.perf_counter() - start
result["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
for out in nb.cells[-1].get("outputs", []):
    if out.get("output_type") == "stream" and probe_mark in out.get("text", ""):
        line = next(li for li in out["text"].splitlines() if li.startswith(probe_mark))
        result["probe"] = json.loads(line[len(probe_mark):])
nbformat.write(nb, output)
with open(result_path, "w") as f:
    json.dump(result, f)
"""


def measure_notebook(
    path: Path | str,
    output_dir: Path | str | None = None,
    cwd: Path | str = NOTEBOOKS,
    timeout: int = CELL_TIMEOUT,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Execute one notebook in a fresh runner process and measure its kernel's peak RSS.

    The executed copy goes to ``output_dir`` (a temporary directory, deleted afterwards, if None).
    Returns a dict: ``name``, ``peak_bytes`` (the kernel's peak RSS over its whole life, ``None`` if
    unknown), ``cells_peak_bytes`` (its peak while the cells ran; ``None`` unless all ran), ``wall_s``,
    ``torch_threads`` (in the kernel at the end; ``None`` if it failed or never imported torch) and
    ``error`` (``None``, or a string naming the failing cell and its exception).
    """
    path = Path(path).resolve()
    run_env = dict(os.environ, **(ENV if env is None else env))
    with tempfile.TemporaryDirectory(prefix="notebook_memory_") as tmp:
        out_dir = Path(output_dir) if output_dir is not None else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        result_path = Path(tmp) / "result.json"
        args = [str(path), str(out_dir / path.name), str(result_path), str(Path(cwd).resolve()), str(timeout),
                PROBE_CELL, PROBE_MARK]
        proc = subprocess.run([sys.executable, "-c", RUNNER, *args], env=run_env, capture_output=True,
                              text=True, cwd=str(cwd))
        if not result_path.exists():
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-1:])
            return {"name": path.name, "peak_bytes": None, "cells_peak_bytes": None, "wall_s": None,
                    "torch_threads": None,
                    "error": f"runner exited with status {proc.returncode}: {tail}"}
        result = json.loads(result_path.read_text())
    probe = result.get("probe") or {}
    peaks_kib = [kib for kib in (result["ru_maxrss_kib"], probe.get("vmhwm_kib")) if kib]
    return {
        "name": path.name,
        "peak_bytes": max(peaks_kib) * 1024 if peaks_kib else None,
        "cells_peak_bytes": probe["vmhwm_kib"] * 1024 if probe.get("vmhwm_kib") else None,
        "wall_s": result["wall_s"],
        "torch_threads": probe.get("torch_threads"),
        "error": result["error"],
    }


def format_row(result: dict[str, Any], limit_gb: float, width: int = 34) -> str:
    """One table line: name, peak RSS and in cells (MB), wall time (s), torch threads, PASS / FAIL / ERROR."""
    peak = "?" if result["peak_bytes"] is None else f"{result['peak_bytes'] / 1e6:.0f} MB"
    cells = "-" if result["cells_peak_bytes"] is None else f"{result['cells_peak_bytes'] / 1e6:.0f} MB"
    wall = "?" if result["wall_s"] is None else f"{result['wall_s']:.0f} s"
    threads = "-" if result["torch_threads"] is None else str(result["torch_threads"])
    if result["error"] is not None:
        verdict = f"ERROR ({result['error'][:200]})"
    else:
        verdict = "PASS" if result["peak_bytes"] <= limit_gb * 1e9 else "FAIL"
    return f"{result['name']:<{width}} {peak:>9} {cells:>9} {wall:>7} {threads:>7}  {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to measure (default: every notebooks/NN_*.ipynb)")
    parser.add_argument("--limit-gb", type=float, default=2.0,
                        help="target peak RSS per notebook, in GB of 10^9 bytes (default 2.0)")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="keep the executed copies here (default: a temporary directory, deleted)")
    args = parser.parse_args()
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads (torch.get_num_threads(), "
          f"{os.cpu_count()} CPUs); {' '.join(f'{k}={v}' for k, v in ENV.items())}; cwd notebooks/; "
          f"cell timeout {CELL_TIMEOUT} s")
    print(f"peak RSS of the kernel process per notebook; limit {args.limit_gb:g} GB (10^9 bytes)")
    width = max(len(p.name) for p in paths) if paths else 8
    header = f"{'notebook':<{width}} {'peak RSS':>9} {'in cells':>9} {'wall':>7} {'threads':>7}  result"
    print(header, flush=True)
    results = []
    for path in paths:
        results.append(measure_notebook(path, args.output_dir))
        print(format_row(results[-1], args.limit_gb, width), flush=True)

    judged = [r for r in results if r["error"] is None]
    measured = [r for r in results if r["peak_bytes"] is not None]
    over = [r for r in judged if r["peak_bytes"] > args.limit_gb * 1e9]
    errors = len(results) - len(judged)
    if measured:
        top = max(measured, key=lambda r: r["peak_bytes"])
        largest = f"max peak RSS {top['peak_bytes'] / 1e6:.0f} MB ({top['name']})"
    else:
        largest = "no peak measured"
    names = "".join(f" ({r['name']})" for r in over)
    total = sum(r["wall_s"] or 0 for r in results)
    print(f"{largest}; {len(over)} of {len(results)} over {args.limit_gb:g} GB{names}; "
          f"{errors} failed to run; total wall {total:.0f} s")


if __name__ == "__main__":
    main()
