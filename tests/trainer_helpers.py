"""Shared by the trainer tests: where the benchmark data is, and how to run the trainer offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"  # the benchmark datasets, beside the repository

# Small enough for 2 CPU cores; training arguments every end-to-end test starts from.
QUICK = [
    "--max_seq_length",
    "64",
    "--num_train_epochs",
    "1",
    "--per_device_train_batch_size",
    "8",
    "--per_device_eval_batch_size",
    "16",
    "--gradient_accumulation_steps",
    "1",
    "--warmup_steps",
    "0",
]


def data_dir(format_dir: str, name: str) -> Path:
    """The format folder holding dataset `name`; skips the test when the data is not there."""
    if not (DATA / format_dir / name / "dev.jsonl").is_file():
        pytest.skip(f"benchmark data not found at {DATA / format_dir / name}")
    return DATA / format_dir


def require_default_model() -> None:
    from creator.assets import MissingAsset, minilm_dir

    try:
        minilm_dir()
    except MissingAsset as error:
        pytest.skip(str(error))


def trainer_env(threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["HF_HUB_OFFLINE"] = "1"  # no test may reach the internet
    env["TOKENIZERS_PARALLELISM"] = "false"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def trainer_command(args: list[str], processes: int = 1, script: Path | None = None) -> list[str]:
    """`python -m trainer ARGS`, or `python SCRIPT ARGS`; under torchrun for several processes."""
    target = [str(script)] if script else ["-m", "trainer"]
    if processes == 1:
        return [sys.executable, *target, *args]
    # torchrun, as `python -m torch.distributed.run`, so that it runs under this very interpreter
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        *target,
        *args,
    ]


def run_trainer(
    args: list[str],
    processes: int = 1,
    timeout: float = 300,
    threads: int | None = None,
    script: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run to the end; on a timeout the whole process group (launcher and workers) is killed."""
    command = trainer_command(args, processes, script)
    with subprocess.Popen(
        command,
        env=trainer_env(threads),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"trainer did not exit within {timeout} s: {' '.join(command)}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def read_jsonl(path: Path) -> list[dict]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def metrics_of(output_dir: Path) -> dict:
    return json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))


def quarter_means(values: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last quarter of a loss curve."""
    k = max(len(values) // 4, 1)
    return sum(values[:k]) / k, sum(values[-k:]) / k
