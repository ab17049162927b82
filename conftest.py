"""pytest configuration shared by the unit tests and nbval's notebook runs.

- stderr is never compared (tqdm progress bars and warnings differ run to run);
- notebook cells tagged ``requires-gpu`` are skipped where CUDA is absent;
- notebooks run in the quick budget unless ``MINILDM_BUDGET`` says otherwise (the default
  budget is already quick without CUDA; on a GPU machine ``make test`` trains in full).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MINILDM_PROGRESS", "1")


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="cell tagged requires-gpu and CUDA is not available")
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and "requires-gpu" in cell.get("metadata", {}).get("tags", []):
            item.add_marker(skip)
