"""bench/notebook_memory.py: the kernel's peak RSS is measured, on tiny notebooks (no lesson is run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbclient", reason="the bench executes notebooks with nbclient (Jupyter's)")
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

pytestmark = pytest.mark.slow  # each test starts a Jupyter kernel

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("notebook_memory", ROOT / "bench" / "notebook_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(tmp_path: Path, name: str, *cells) -> Path:
    path = tmp_path / name
    nbformat.write(new_notebook(cells=list(cells)), str(path))
    return path


def test_peak_counts_the_kernels_memory(bench, tmp_path):
    # 300 MB touched in the kernel (np.ones writes every page), then freed: the peak must still see it
    path = write(tmp_path, "big.ipynb", new_markdown_cell("# big"),
                 new_code_cell("import numpy as np\nx = np.ones(300_000_000 // 8)\nprint(x.sum())"),
                 new_code_cell("del x\nprint('done')"))
    before = path.read_text()
    result = bench.measure_notebook(path, cwd=tmp_path, timeout=60)
    assert result["error"] is None
    assert 300e6 <= result["peak_bytes"] < 3e9, result
    assert 300e6 <= result["cells_peak_bytes"] <= result["peak_bytes"], result
    assert result["wall_s"] > 0
    assert result["torch_threads"] is None  # the notebook never imported torch, nor did the probe
    assert path.read_text() == before  # executed into a temporary copy
    assert "PASS" in bench.format_row(result, 2.0) and "FAIL" in bench.format_row(result, 0.1)


def test_failing_cell_is_an_error_not_a_measurement(bench, tmp_path):
    path = write(tmp_path, "broken.ipynb", new_code_cell("y = 1"), new_code_cell("1 / 0"),
                 new_code_cell("print('never')"))
    out = tmp_path / "out"
    result = bench.measure_notebook(path, output_dir=out, cwd=tmp_path, timeout=60)
    assert result["error"] is not None and result["error"].startswith("cell 1: ZeroDivisionError")
    assert result["peak_bytes"] is not None  # the kernel's peak up to the failure is still known
    assert result["cells_peak_bytes"] is None  # the probe after the last cell never ran
    row = bench.format_row(result, 2.0)
    assert "ERROR (cell 1: ZeroDivisionError" in row and "PASS" not in row and "FAIL" not in row
    executed = nbformat.read(str(out / "broken.ipynb"), as_version=4)
    assert executed.cells[1].outputs[0].output_type == "error"
