"""Hostile inputs: every test here runs bilge in a child process on a crafted input and checks the
promise of docs/security.md -- one bounded ``bilge: error:`` line and exit 2 (or a clean result), no
traceback, nothing written outside the output (victim files and a private TMPDIR checked), bounded
time and memory. Marked ``hostile``; CI runs them (they are part of the default run)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.hostile)
