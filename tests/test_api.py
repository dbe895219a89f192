"""The Python API: creator.create in a plain script and inside a running event loop (as in
Jupyter), create_async, the documented exceptions with nothing left behind, and the records as a
datasets.Dataset that concatenates with the human data."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest

import creator
import creatorproc
from benchmarks.simproc import start_simulator

REPO = creatorproc.REPO
YESNO = dict(data_dir=str(REPO / "data/yesno_close"), data_name="example")


def test_create_in_a_plain_script(tmp_path):
    """A script, as a user writes one: its own process, no event loop of its own."""
    out = tmp_path / "train.jsonl"
    with start_simulator(seed=1) as sim:
        script = textwrap.dedent(f"""
            import creator
            result = creator.create(data_dir={YESNO['data_dir']!r}, data_name="example",
                                    setting="tree", target=30, output={str(out)!r},
                                    base_url={sim.base_url!r}, concurrency=4)
            print(result.status, result.accepted, len(result.records()))
        """)
        proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env=creatorproc.creator_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["completed", "30", "30"]
    creatorproc.check_records(out, 30)


def test_create_inside_a_running_event_loop(tmp_path):
    """Jupyter runs an event loop: a synchronous call from inside it must still work."""
    out = tmp_path / "train.jsonl"
    with start_simulator(seed=2) as sim:
        async def notebook_cell():
            return creator.create(**YESNO, setting="random", target=20, output=out,
                                  base_url=sim.base_url, concurrency=4)

        result = asyncio.run(notebook_cell())
    assert result.completed and result.accepted == 20 and result.target == 20
    assert result.requests >= 4 and result.prompt_tokens > 0
    assert result.output == out and result.summary_path.is_file()
    assert [r.question for r in result.records()] == [
        row["question"] for row in creatorproc.read_jsonl(out)]


def test_create_async_runs_on_the_callers_loop(tmp_path):
    out = tmp_path / "train.jsonl"
    with start_simulator(seed=3) as sim:
        async def pipeline():
            first = creator.create_async(**YESNO, setting="naive", target=10, output=out,
                                         base_url=sim.base_url)
            return await asyncio.wait_for(first, 60)

        result = asyncio.run(pipeline())
    assert result.completed and len(result.records()) == 10


@pytest.mark.parametrize("bad,needle", [
    (dict(setting="bogus"), "setting must be one of"),
    (dict(setting="naive", target=0), "target must be at least 1"),
    (dict(setting="naive", target="10"), "target must be a whole number"),
    (dict(setting="naive", temperature=3.0), "temperature must be between 0 and 2"),
    (dict(setting="naive", tpm="lots"), "tpm must be a number, got 'lots'"),
    (dict(setting="naive", resume=True, overwrite=True), "resume=True and overwrite=True"),
    (dict(setting="naive", taget=10), "unknown argument(s) taget"),
    (dict(setting="naive", data_name="no_such_dataset"), "data folder not found"),
])
def test_bad_arguments_raise_input_error_and_leave_nothing(bad, needle, tmp_path):
    out = tmp_path / "train.jsonl"
    args = {**YESNO, "output": out, "base_url": "http://127.0.0.1:9/v1", **bad}
    with pytest.raises(creator.InputError) as caught:
        creator.create(**args)
    assert needle in str(caught.value)
    assert isinstance(caught.value, creator.CreatorError) and isinstance(caught.value, ValueError)
    assert list(tmp_path.iterdir()) == []  # nothing written, no folder made


def test_an_api_that_refuses_the_key_raises_api_error(tmp_path):
    out = tmp_path / "train.jsonl"
    with start_simulator(api_key="sk-right-0123456789", seed=4) as sim:
        with pytest.raises(creator.APIError) as caught:
            creator.create(**YESNO, setting="naive", target=5, output=out,
                           base_url=sim.base_url, api_key="sk-wrong-0123456789")
    assert "refused the API key" in str(caught.value)
    assert "sk-wrong" not in str(caught.value)


# --- records as datasets ----------------------------------------------------------------------

FORMATS = [("yesno_close", "strategyqa"), ("yesno_open", "pubmedqa"), ("mcqa_5", "csqa")]


@pytest.mark.parametrize("fmt,name", FORMATS)
def test_created_and_human_data_concatenate_with_no_cast(fmt, name, shared_data, tmp_path):
    import datasets

    human = shared_data / fmt / name / "dev.jsonl"
    out = tmp_path / "train_tree.jsonl"
    with start_simulator(seed=5) as sim:
        creator.create(data_dir=str(shared_data / fmt), data_name=name, setting="tree",
                       target=40, output=out, base_url=sim.base_url, concurrency=8)
    created, people = creator.read_dataset(out), creator.read_dataset(human)
    both = datasets.concatenate_datasets([people, created])
    assert len(both) == len(people) + 40
    assert both.features == people.features == created.features
    if fmt.startswith("yesno"):
        assert isinstance(both.features["label"], datasets.ClassLabel)
        assert both.features["label"].names == ["False", "True"]
    # the raw files too: one label type in both, so `datasets` itself reads them alike
    raw_created = datasets.load_dataset("json", data_files=str(out), split="train")
    raw_human = datasets.load_dataset("json", data_files=str(human), split="train")
    raw = datasets.concatenate_datasets([raw_human, raw_created.remove_columns("meta")])
    assert raw.features["label"] == raw_human.features["label"]


def test_old_created_files_with_string_labels_still_read(tmp_path):
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"question": "Is it?", "context": None,
                               "options": ["True", "False"], "label": "False",
                               "meta": {"id": 1, "parent": 0, "depth": 1, "chain": 0}}) + "\n")
    dataset = creator.read_dataset(old)
    assert dataset[0]["label"] == 0 and dataset.features["label"].names == ["False", "True"]
    assert creator.read_records(old)[0].label == "False"


# --- the package -------------------------------------------------------------------------------


def test_importing_creator_is_light():
    code = ("import sys, creator; heavy = [m for m in ('torch', 'transformers', 'aiohttp', "
            "'datasets', 'creator.engine') if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=creatorproc.creator_env())
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


# --- export: a dataset folder for the hub ----------------------------------------------------


def test_export_writes_a_dataset_folder_with_a_card(tmp_path):
    import datasets

    out = tmp_path / "train_tree.jsonl"
    with start_simulator(seed=6) as sim:
        creator.create(**YESNO, setting="tree", target=25, output=out, base_url=sim.base_url,
                       seed=7)
    folder = tmp_path / "hub"
    done = creator.export(out, folder, headline={"duplicate questions": "0%"})
    assert done.records == 25 and done.data_file == folder / "data" / "train.jsonl"
    loaded = datasets.load_dataset(str(folder), split="train")
    assert len(loaded) == 25 and loaded.features == creator.read_dataset(out).features
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "task_categories:\n- text-classification" in card
    for needle in ("sim-model", "`tree`", "seed 7", "penguin", "duplicate questions: 0%",
                   "25 yes/no examples"):
        assert needle in card, needle
    with pytest.raises(creator.InputError, match="not empty"):
        creator.export(out, folder)
    proc = subprocess.run([sys.executable, "-m", "creator", "export", str(out), "--to",
                           str(tmp_path / "cli")], capture_output=True, text=True, timeout=60,
                          env=creatorproc.creator_env())
    assert proc.returncode == 0 and (tmp_path / "cli" / "README.md").is_file(), proc.stderr


def test_report_is_typed_and_feeds_the_card(shared_data, tmp_path):
    out = tmp_path / "train_tree.jsonl"
    human = shared_data / "yesno_close" / "strategyqa" / "dev.jsonl"
    with start_simulator(seed=8) as sim:
        creator.create(data_dir=str(shared_data / "yesno_close"), data_name="strategyqa",
                       setting="tree", target=60, output=out, base_url=sim.base_url)
    report = creator.report(out, reference=human)
    assert isinstance(report, creator.Report) and report.created.valid == 60
    assert report.human is not None and report.human.valid > 100
    assert report.created.duplicate_rate == 0.0  # the creator never writes a question twice
    assert 0 <= report.created.near_duplicate_rate <= 1
    assert set(report.created.label_shares) <= {"True", "False"}
    assert creator.Report.from_json(report.to_json()) == report
    assert "created" in report.table()
    done = creator.export(out, tmp_path / "hub", report=report)
    card = done.card.read_text()
    assert "## Quality (creator report)" in card and "exact duplicate questions: 0.0%" in card
    with pytest.raises(creator.InputError, match="file not found"):
        creator.report(tmp_path / "missing.jsonl")
