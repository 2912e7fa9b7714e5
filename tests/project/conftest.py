"""Fixtures of the whole-project checks: the scratch folder the documentation's commands run in."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import REPO


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A scratch directory standing in for the checkout's root: the documentation's commands read the
    repository's `examples/` (data files), and whatever they write lands here, not in the repository."""
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path
