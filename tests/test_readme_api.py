"""The Python API block of README.md runs as it is, on the embedded default, from a working
directory where ../shared/data is the benchmark data (as from the repository)."""

from __future__ import annotations

import re

import pytest

import creatorproc

pytestmark = pytest.mark.slow


def readme_block() -> str:
    text = (creatorproc.REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "README.md: one python block under '## Python API'"
    assert len(blocks[0].splitlines()) < 20, "the API in under 20 lines"
    return blocks[0]


def test_the_readme_api_block_runs_as_it_is(shared_data, tmp_path, monkeypatch, capsys):
    (tmp_path / "shared").symlink_to(shared_data.parent)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the embedded default
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    namespace: dict = {}
    exec(compile(readme_block(), "README.md Python API", "exec"), namespace)
    run, quality, dataset = namespace["run"], namespace["quality"], namespace["dataset"]
    assert run.completed and run.accepted == 40 and len(dataset) == 40
    assert quality.created.valid == 40 and (work / "out/api/hub/README.md").is_file()
    assert namespace["model"].finished and (work / "out/api/model/metrics.json").is_file()
    assert 0 <= namespace["scores"].datasets["creak"]["test"].acc <= 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("completed 40 ")
