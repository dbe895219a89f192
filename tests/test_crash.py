"""Nothing paid for is lost: kill -9 at random points, Ctrl-C, a full disk, and the API key."""

from __future__ import annotations

import random
import resource
import signal
import subprocess
import time

import pytest

from creatorproc import (
    REPO,
    check_records,
    creator_cmd,
    creator_env,
    line_count,
    read_jsonl,
    read_summary,
    run_creator,
    run_on_a_terminal,
    start_creator,
    wait_for_lines,
)
from benchmarks.simproc import start_simulator

YESNO = ["--data_dir", str(REPO / "data/yesno_close"), "--data_name", "example"]


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_kill_9_at_random_points_then_resume(seed, tmp_path):
    """Several kills per run, each at a random moment; every resume continues the same file."""
    rng = random.Random(seed)
    out = tmp_path / "out.jsonl"
    target = 400
    # ~100 records/s: a run lasts seconds, so each kill lands while records are being written
    with start_simulator(ttft=0.1, jitter=0.8, seed=seed) as sim:
        args = [*YESNO, "--setting", rng.choice(["tree", "random", "naive"]),
                "--target", str(target), "--concurrency", "4", "--base_url", sim.base_url,
                "--output", str(out)]
        for round_ in range(3):  # bounded: three kills
            before = line_count(out)
            proc = start_creator(*args, *(["--resume"] if round_ else []), cwd=tmp_path)
            wait_for_lines(out, before + 1, timeout=30)  # it is writing
            time.sleep(rng.uniform(0.0, 0.5))
            proc.kill()
            proc.wait(10)
            assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
            assert before < line_count(out) < target
        done = run_creator(*args, "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    check_records(out, target)


def test_ctrl_c_flushes_and_says_how_to_resume(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(ttft=0.05, seed=14) as sim:
        args = [*YESNO, "--setting", "random", "--target", "300", "--concurrency", "4",
                "--base_url", sim.base_url, "--output", str(out)]
        proc = start_creator(*args, cwd=tmp_path)
        wait_for_lines(out, 10)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 130
        assert "--resume" in stderr and "Traceback" not in stderr
        assert read_summary(out)["status"] == "interrupted"
        read_jsonl(out)  # whole lines only
        assert run_creator(*args, "--resume", cwd=tmp_path).returncode == 0
    check_records(out, 300)


def _limit_file_size(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_write_failure_gives_a_clear_error_and_a_resumable_file(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=15) as sim:
        args = creator_cmd(*YESNO, "--setting", "tree", "--target", "300", "--base_url",
                           sim.base_url, "--output", str(out))
        full = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              env=creator_env(), preexec_fn=_limit_file_size(20_000))
        assert full.returncode == 1, full.stderr
        assert "cannot write to" in full.stderr and "--resume" in full.stderr
        assert "Traceback" not in full.stderr
        done = subprocess.run(args + ["--resume"], cwd=tmp_path, capture_output=True, text=True,
                              env=creator_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    check_records(out, 300)


def test_full_disk_on_a_small_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the RLIMIT_FSIZE test covers writes")
    try:
        out = mnt / "out.jsonl"
        with start_simulator(seed=16) as sim:
            args = [*YESNO, "--setting", "naive", "--target", "2000", "--base_url",
                    sim.base_url, "--output", str(out)]
            full = run_creator(*args, cwd=tmp_path)
            assert full.returncode == 1, full.stderr
            assert "disk is full" in full.stderr and "Traceback" not in full.stderr
            subprocess.run(["mount", "-o", "remount,size=4m", str(mnt)], check=True)
            done = run_creator(*args, "--resume", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        check_records(out, 2000)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_the_api_key_never_appears_anywhere(tmp_path):
    key = "sk-test-SECRET-0123456789abcdef"
    out = tmp_path / "out.jsonl"
    with start_simulator(api_key=key, p_500=0.2, seed=17) as sim:
        ok = run_creator(*YESNO, "--setting", "tree", "--target", "60", "--base_url",
                         sim.base_url, "--output", str(out), cwd=tmp_path, api_key=key)
        assert ok.returncode == 0, ok.stderr
        refused = run_creator(*YESNO, "--setting", "tree", "--target", "60",
                              "--base_url", sim.base_url, "--output", str(tmp_path / "b.jsonl"),
                              cwd=tmp_path, api_key=key + "-wrong")
        assert refused.returncode == 1
        # on a terminal, with the progress bar and every message it shows
        shown = run_on_a_terminal(
            creator_cmd(*YESNO, "--setting", "naive", "--target", "30", "--base_url",
                        sim.base_url, "--output", str(tmp_path / "tty.jsonl"), quiet=False),
            tmp_path, env=creator_env(key))
        assert "30/30" in shown, shown[-2000:]
    texts = [ok.stdout, ok.stderr, refused.stdout, refused.stderr, shown]
    texts += [p.read_text() for p in tmp_path.iterdir() if p.is_file()]
    assert all(key not in text for text in texts)
    assert check_records(out, 60)
