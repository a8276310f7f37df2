"""Fixtures shared by every test module."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def example_site(tmp_path: Path) -> Path:
    """A copy of the bundled example site, safe to build into and change."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(REPO / "publisher.toml", site / "publisher.toml")
    shutil.copytree(REPO / "events", site / "events")
    shutil.copytree(REPO / "media", site / "media")
    return site
