"""Shared test fixtures: where the repo and the benchmark data are, and how to run the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"

sys.path.insert(0, str(TESTS))  # tests import their helpers (creatorproc) by name


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not present at {SHARED_DATA}")
    return SHARED_DATA
