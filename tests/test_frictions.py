"""First-hour frictions a new user hit (issue 16), each run through the CLI as a user runs it."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import creatorproc
from benchmarks.simproc import free_port, start_simulator
from creatorproc import (
    assert_run_failed,
    assert_usage_error,
    example_args,
    read_summary,
    run_creator,
)


@contextlib.contextmanager
def plain_http_server(folder):
    """`python3 -m http.server`: an HTTP server that is not an OpenAI API (POST -> 501)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1"], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_an_http_server_that_is_not_an_openai_api_fails_at_once(tmp_path):
    with plain_http_server(tmp_path) as url:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "20", "--output",
                        tmp_path / "out.jsonl", "--base_url", url, cwd=tmp_path, timeout=60)
    line = assert_run_failed(r, "is not an OpenAI-compatible API", "HTTP 501")
    assert f"did you mean {url}/v1" in line and r.duration < 30


def test_a_url_with_no_scheme_gets_a_hint(tmp_path):
    r = run_creator(*example_args(), "--setting", "naive", "--target", "5",
                    "--base_url", "localhost:8000/v1", "--output", tmp_path / "o.jsonl",
                    cwd=tmp_path)
    assert_usage_error(r, "not an http(s) URL", "did you mean http://localhost:8000/v1")


def test_a_model_the_embedded_server_does_not_serve_needs_a_key(tmp_path):
    r = run_creator(*example_args(), "--setting", "naive", "--model", "gpt-4o-mini",
                    "--output", tmp_path / "o.jsonl", cwd=tmp_path)
    assert_usage_error(r, "--model gpt-4o-mini needs an API", "OPENAI_API_KEY", "--base_url")


def test_a_typo_in_the_data_folder_names_the_nearest_and_creates_nothing(tmp_path):
    data = tmp_path / "data"
    (data / "yesno_close" / "example").mkdir(parents=True)
    (data / "yesno_close" / "example" / "train.jsonl").write_text(
        (creatorproc.EXAMPLES / "yesno_close" / "example" / "train.jsonl").read_text())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    r = run_creator("--data_dir", data / "yesno_clos", "--data_name", "example", "--setting",
                    "naive", "--target", "5", cwd=tmp_path)
    assert_usage_error(r, "data folder not found", f"did you mean {data / 'yesno_close'}")
    r = run_creator("--data_dir", data / "yesno_close", "--data_name", "exampel", "--setting",
                    "naive", "--target", "5", cwd=tmp_path)
    assert_usage_error(r, "did you mean", "example")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_every_run_says_where_its_output_goes_and_ends_with_its_figures(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=1, p_malformed=0.2) as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "30", "--output", out,
                        "--base_url", sim.base_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.lines[0] == f"creator: writing {out} (summary: {tmp_path / 'out.summary.json'})"
    assert r.lines[-2].startswith("creator: done: 30/30 records")
    last = r.lines[-1]
    assert last.startswith("creator: model sim-model; rejected: ") and "estimated cost $" in last
    for reason, n in read_summary(out)["rejected"].items():
        assert f"{reason} {n}" in last


def test_resuming_with_a_smaller_target_says_so(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=2) as sim:
        args = [*example_args(), "--setting", "naive", "--output", out, "--base_url",
                sim.base_url]
        assert run_creator(*args, "--target", "8", cwd=tmp_path).returncode == 0
        r = run_creator(*args, "--target", "3", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "already has 8 records, more than the target 3: nothing to do" in r.stderr
    assert "8/3" not in r.stderr


def test_version_and_hyphenated_flags(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "creator", "--version"], capture_output=True,
                          text=True, timeout=30, env=creatorproc.creator_env())
    assert proc.returncode == 0 and proc.stdout.startswith("creator ")
    out = tmp_path / "o.jsonl"
    with start_simulator(seed=3) as sim:
        r = creatorproc.run_creator("--data-dir", creatorproc.EXAMPLES / "yesno_close",
                                    "--data-name", "example", "--setting", "naive", "--target",
                                    "5", "--output", out, "--base-url", sim.base_url,
                                    cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_serve_help_describes_itself_and_its_flags():
    proc = subprocess.run([sys.executable, "-m", "creator", "serve", "--help"],
                          capture_output=True, text=True, timeout=30,
                          env=creatorproc.creator_env())
    assert "Run the embedded default" in proc.stdout
    text = " ".join(proc.stdout.split())
    for flag, help_text in (("--host", "address to listen on"), ("--port", "port (default 8080)"),
                            ("--model_path", "GGUF file"), ("--n_ctx", "context length"),
                            ("--n_threads", "CPU threads")):
        assert flag in text and help_text in text, flag


def test_a_report_on_a_file_alone_does_not_call_it_created(tmp_path, shared_data):
    human = shared_data / "yesno_close" / "strategyqa" / "dev.jsonl"
    proc = subprocess.run([sys.executable, "-m", "creator", "report", str(human)],
                          capture_output=True, text=True, timeout=300,
                          env=creatorproc.creator_env())
    assert proc.returncode == 0, proc.stderr
    header = next(ln for ln in proc.stdout.splitlines() if "this file" in ln or "created" in ln)
    assert "this file" in header and "created" not in header


def test_the_plot_draws_created_on_top_and_says_when_it_samples(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    import numpy as np

    from creator.quality import plot_report

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at it
    side = {"labels": {"fractions": {"True": 0.5, "False": 0.5}}, "answer_positions": None}
    report = {"file": "x.jsonl", "created": side, "human": side}
    rng = np.random.default_rng(0)
    plot_report(report, rng.normal(size=(30, 8)), rng.normal(size=(500, 8)),
                tmp_path / "r.png", max_points=100)
    scatter = figures[0].axes[0]
    created, human = (c for c in sorted(scatter.collections, key=lambda c: -c.get_zorder()))
    assert created.get_zorder() > human.get_zorder()
    assert created.get_sizes()[0] > human.get_sizes()[0]
    labels = [t.get_text() for t in scatter.get_legend().get_texts()]
    assert "human (100 of 500, a random sample)" in labels and "created (30)" in labels
