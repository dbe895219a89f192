"""examples/walkthrough.py runs from start to end, as a user runs it, on the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import creatorproc

pytestmark = pytest.mark.slow


def test_the_walkthrough_runs(shared_data, tmp_path):
    env = creatorproc.creator_env(WALKTHROUGH_DATA=str(shared_data),
                                  WALKTHROUGH_OUT=str(tmp_path / "out"),
                                  TOKENIZERS_PARALLELISM="false")
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.run([sys.executable, str(creatorproc.REPO / "examples/walkthrough.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "completed: 60/60 records" in proc.stdout
    assert "dev accuracy" in proc.stdout and "creak" in proc.stdout
    assert (tmp_path / "out/hub/README.md").is_file()
    assert os.path.isfile(tmp_path / "out/model/metrics.json")
