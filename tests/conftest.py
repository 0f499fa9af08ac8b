"""Shared pytest fixtures (session-scoped synthetic samples, written once per test run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from s12ls_utils.synthetic import make_sample


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic sample (about 10 patches per sensor, seed 3). Treat it as read-only:
    tests that change files copy it to their own ``tmp_path`` first."""
    out = tmp_path_factory.mktemp("sample")
    make_sample(out, n_per_sensor=10, seed=3, progress=False)
    return out
