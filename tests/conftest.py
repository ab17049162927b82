"""The unit tests' speed tiers: every test under tests/ is ``fast`` unless it is marked ``slow``.

A new test is fast by default; one that runs a notebook, a child process, a real training loop or a
browser is marked ``slow`` where it is written (``pytestmark = pytest.mark.slow`` for a whole file, the
decorator for one test), with the reason beside it. ``student`` tests (the student notebooks executed)
are slow too. ``make unit`` runs ``-m fast``; ``make test`` runs everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``student`` tests ``slow``, and every other test under tests/ that is not ``slow`` ``fast``."""
    for item in items:
        if not item.path.is_relative_to(TESTS):  # nbval's notebook cells: neither tier
            continue
        if item.get_closest_marker("student") is not None:
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.fast)
