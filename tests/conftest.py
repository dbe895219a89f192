"""Shared test fixtures: where the repo and the benchmark data are, and how to run the CLI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"

sys.path.insert(0, str(TESTS))  # tests import their helpers (creatorproc) by name

# No test may reach the internet: the hub libraries, in process and in every child process
# (which inherit the environment), stay offline; trainer.resolve_model then refuses an unknown
# hub name without trying huggingface.co.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not present at {SHARED_DATA}")
    return SHARED_DATA
