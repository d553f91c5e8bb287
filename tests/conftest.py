"""Shared test helpers: where the real fixtures live.

The real fixtures (``shared/fixtures/``) sit *beside* the repository, never inside it:
``<repo>/../shared/fixtures``. A fresh clone has no ``../shared``; tests that need it skip
cleanly there. ``BILGE_SHARED_FIXTURES`` may point somewhere else.

Nothing here touches the Docker engine or does I/O at import time: unit tests stay fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# CI systems set CI=true, which turns on `bilge analyze`'s CI gates (exit 1 when a rule fails, as dive
# does). Every test that runs bilge in a subprocess would then depend on where the suite runs; the
# tests that mean to exercise CI mode set CI (or --ci) themselves. Removed at import, before any
# fixture or test copies os.environ.
os.environ.pop("CI", None)


def shared_fixtures_dir() -> Path | None:
    """The ``shared/fixtures`` directory beside the repository, or None when absent."""
    override = os.environ.get("BILGE_SHARED_FIXTURES")
    path = Path(override) if override else REPO_ROOT.parent / "shared" / "fixtures"
    return path if path.is_dir() else None


def require_shared_fixtures(*parts: str) -> Path:
    """Path to ``shared/fixtures/<parts...>``; skips the calling test when it is absent."""
    base = shared_fixtures_dir()
    if base is None:
        pytest.skip("shared fixtures not found (expected <repo>/../shared/fixtures)")
    path = base.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixture not found: {path}")
    return path


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """``<repo>/../shared/fixtures`` (skips when absent)."""
    return require_shared_fixtures()


@pytest.fixture(scope="session")
def fixture_images(shared_fixtures: Path) -> Path:
    """``<repo>/../shared/fixtures/images`` (skips when absent)."""
    return require_shared_fixtures("images")


@pytest.fixture(scope="session")
def fixture_dockerfiles(shared_fixtures: Path) -> Path:
    """``<repo>/../shared/fixtures/dockerfiles`` (skips when absent)."""
    return require_shared_fixtures("dockerfiles")
