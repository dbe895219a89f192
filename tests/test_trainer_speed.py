"""The trainer throughput benchmark in --quick mode: `python -m benchmarks.trainer_speed --quick
--out DIR` trains every variant (ours with 1 and 2 processes, a plain transformers Trainer) on a few
real examples, writes its JSON (the schema below) and its PNG, and its numbers are sane.

No timing thresholds: the machine is shared and small, so examples/s are noisy (see
benchmarks/TRAINER_SPEED.md). Skips when the benchmark data beside the repository is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
TIMEOUT_S = 420  # a bound on a shared 2-core machine (about 90 s alone), not a speed target

RUN_KEYS = ("name", "client", "dataset", "format", "round", "processes", "threads_per_process",
            "train_examples", "train_seconds", "examples_per_second", "optimizer_updates", "wall_s",
            "cpu_s", "peak_rss_mb", "peak_rss_mb_per_process", "returncode", "command")  # fmt: skip
VARIANTS = {"ours": (1, "ours"), "hf Trainer": (1, "hf_trainer"), "ours omp1": (1, "ours"),
            "hf Trainer omp1": (1, "hf_trainer"), "ours 2p omp1": (2, "ours")}  # fmt: skip
RATIOS = ("ours_vs_hf_trainer", "ours_vs_hf_trainer_omp1", "two_vs_one_process_omp1",
          "two_processes_vs_one_default_threads", "one_thread_vs_default_threads")  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """One quick benchmark run for the whole module: (process, its JSON, the output folder)."""
    if not (DATA / "yesno_close" / "strategyqa" / "train.jsonl").is_file():
        pytest.skip(f"benchmark data not present at {DATA}")
    from creator.assets import MissingAsset, minilm_dir

    try:
        minilm_dir()
    except MissingAsset as error:
        pytest.skip(str(error))
    out = tmp_path_factory.mktemp("trainer_speed")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.trainer_speed", "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    path = out / "trainer_speed.json"
    return proc, json.loads(path.read_text()) if path.exists() else {}, out


def test_quick_run_writes_json_png_and_table(quick_run):
    proc, data, out = quick_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert data["benchmark"] == "trainer_speed" and data["quick"] is True
    assert data["command"] == f"python -m benchmarks.trainer_speed --quick --out {out}"
    machine = data["machine"]
    for key in ("cpu", "cores", "python", "packages", "date"):
        assert machine.get(key), key
    for package in ("torch", "transformers", "accelerate"):
        assert machine["packages"][package], package
    params = data["params"]
    assert params["train"]["max_seq_length"] == 128 and params["train"]["num_train_epochs"] == 1
    assert [v["name"] for v in params["variants"]] == list(VARIANTS)
    assert (out / "trainer_speed.png").stat().st_size > 10_000, "the plot was not drawn"
    assert "## trainer_speed" in proc.stdout and "ours / Trainer" in proc.stdout  # the tables


def test_every_variant_trained_the_same_examples(quick_run):
    _, data, _ = quick_run
    runs = data["runs"]
    assert sorted(r["name"] for r in runs) == sorted(VARIANTS)
    examples = {r["train_examples"] for r in runs}
    assert examples == {data["params"]["datasets"][0]["train_examples"]}, examples
    for run in runs:
        for key in RUN_KEYS:
            assert key in run, f"{run['name']}: no {key}"
        assert "error" not in run["extra"], (run["name"], run["extra"].get("error"))
        processes, client = VARIANTS[run["name"]]
        assert run["returncode"] == 0 and run["client"] == client
        assert run["processes"] == processes and run["extra"]["num_processes"] == processes
        assert run["format"] == "yesno" and run["dataset"] == "yesno_close/strategyqa"
        assert run["examples_per_second"] > 0 and run["train_seconds"] > 0
        assert run["wall_s"] > run["train_seconds"] and run["cpu_s"] > 0
        assert run["peak_rss_mb"] > 100 and run["peak_rss_mb_per_process"] > 100
        assert run["optimizer_updates"] >= 1 and run["first_loss"] > 0
    by_name = {r["name"]: r for r in runs}
    assert by_name["ours 2p omp1"]["extra"]["distributed_type"] == "MULTI_CPU"
    assert by_name["ours 2p omp1"]["command"].split()[1:5] == [
        "--standalone", "--nproc_per_node", "2", "-m"]
    assert by_name["hf Trainer omp1"]["extra"]["torch_threads"] == 1
    # the whole tree is measured: torchrun's two workers hold more memory than one process
    assert by_name["ours 2p omp1"]["peak_rss_mb"] > by_name["ours omp1"]["peak_rss_mb"]


def test_summary_and_ratios(quick_run):
    _, data, _ = quick_run
    assert {row["name"] for row in data["summary"]} == set(VARIANTS)
    for row in data["summary"]:
        assert row["failed"] == 0 and row["examples_per_second"] > 0
        assert row["examples_per_second_rounds"] == [row["examples_per_second"]]  # one round
    (ratios,) = data["ratios"]
    for key in RATIOS:
        assert ratios[key] is not None and ratios[key] > 0, key
    eps = {row["name"]: row["examples_per_second"] for row in data["summary"]}
    assert ratios["ours_vs_hf_trainer"] == pytest.approx(eps["ours"] / eps["hf Trainer"], abs=1e-3)


def test_replot_from_json(quick_run):
    """The PNG and the table come from the JSON alone."""
    _, _, out = quick_run
    (out / "trainer_speed.png").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.trainer_speed", "--plot", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "trainer_speed.png").stat().st_size > 10_000
    assert "ours 2p omp1" in proc.stdout
