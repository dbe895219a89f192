"""`creator create` on bad input and refusing servers: one clear line, the right exit code, and
never a clobbered file.

Exit codes: 0 done; 1 the run stopped early (API refused, unreachable); 2 bad input.
Every case runs the real CLI in a subprocess with cwd = tmp_path and a timeout; the bad-input
cases run next to an existing output (a real earlier run + its summary) passed with the
destructive --overwrite, and check that not one byte under tmp_path changed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from creatorproc import (  # noqa: E402
    EXAMPLES,
    assert_argparse_error,
    assert_no_traceback,
    assert_run_failed,
    assert_unchanged,
    assert_usage_error,
    check_completed,
    check_records,
    closed_port_url,
    creator_env,
    example_args,
    read_jsonl,
    read_summary,
    run_creator,
    snapshot,
    summary_path,
)
from benchmarks.simproc import start_simulator  # noqa: E402

GOOD = {"question": "Is water wet?", "context": None, "options": ["True", "False"], "label": True}
EARLIER_TARGET = 10


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> tuple[bytes, bytes]:
    """A finished naive run on the yes/no exemplar: (JSONL bytes, summary bytes)."""
    folder = tmp_path_factory.mktemp("earlier")
    out = folder / "out.jsonl"
    with start_simulator(seed=1) as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", EARLIER_TARGET,
                        "--output", out, "--base_url", sim.base_url, cwd=folder)
    assert r.returncode == 0, r.stderr
    check_completed(out, EARLIER_TARGET)
    return out.read_bytes(), summary_path(out).read_bytes()


@pytest.fixture
def existing(tmp_path, earlier_run) -> Path:
    """tmp_path/out.jsonl (+ out.summary.json): an earlier run's output, not to be clobbered."""
    out = tmp_path / "out.jsonl"
    out.write_bytes(earlier_run[0])
    summary_path(out).write_bytes(earlier_run[1])
    return out


# ---------------------------------------------------------------------------- bad data / files


def _data(tmp: Path, name: str, content: str | None) -> list[str]:
    """A data dir tmp/data/NAME with train.jsonl = content (None: the folder only)."""
    folder = tmp / "data" / name
    folder.mkdir(parents=True)
    if content is not None:
        (folder / "train.jsonl").write_text(content)
    return ["--data_dir", str(tmp / "data"), "--data_name", name]


def _lines(*rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _file(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _folder(path: Path) -> str:
    path.mkdir(parents=True)
    return str(path)


EX = example_args()  # the project's yes/no exemplar: valid data
EX5 = [*EX, "--target", "5"]

# name -> (tmp_path -> extra arguments, words the one-line message must contain)
BAD_INPUT = {
    "data_dir_missing": (
        lambda t: ["--data_dir", str(t / "no_such_dir"), "--data_name", "example"],
        ["not found", "no_such_dir"]),
    "data_name_missing": (
        lambda t: [*_data(t, "real", _lines(GOOD))[:2], "--data_name", "no_such_name"],
        ["not found", "no_such_name"]),
    "no_train_or_dev_file": (lambda t: _data(t, "nofile", None), ["train.jsonl"]),
    "train_empty": (lambda t: _data(t, "empty", ""), ["train.jsonl", "no records"]),
    "train_blank_lines_only": (lambda t: _data(t, "blank", "\n  \n\n"), ["no records"]),
    "train_not_json": (
        lambda t: _data(t, "notjson", _lines(GOOD) + "{'question': 'single quotes'}\n"),
        ["train.jsonl:2", "not valid JSON"]),
    "train_not_an_object": (
        lambda t: _data(t, "list", "[1, 2, 3]\n"), ["train.jsonl:1", "object"]),
    "train_record_missing_label": (
        lambda t: _data(t, "nolabel", _lines({"question": "Q?", "options": ["True", "False"]})),
        ["train.jsonl:1", "missing", "label"]),
    "train_record_missing_options": (
        lambda t: _data(t, "noopts", _lines({"question": "Q?", "label": "a"})),
        ["missing", "options"]),
    "train_label_not_in_options": (
        lambda t: _data(t, "badlabel", _lines(
            GOOD, {"question": "Q?", "context": None, "options": ["a", "b"], "label": "c"})),
        ["train.jsonl:2", "not one of the options"]),
    "train_options_not_a_list": (
        lambda t: _data(t, "optstr", _lines({**GOOD, "options": "True", "label": "True"})),
        ["options"]),
    "train_empty_question": (
        lambda t: _data(t, "emptyq", _lines({**GOOD, "question": "   "})), ["question"]),
    "exemplar_missing": (
        lambda t: [*EX5, "--exemplar", str(t / "nope.jsonl")], ["nope.jsonl"]),
    "exemplar_empty": (
        lambda t: [*EX5, "--exemplar", _file(t / "ex" / "empty.jsonl", "")],
        ["empty.jsonl", "no exemplar"]),
    "exemplar_not_json": (
        lambda t: [*EX5, "--exemplar", _file(t / "ex.jsonl", "Question: x?\n")],
        ["ex.jsonl:1", "not valid JSON"]),
    "exemplar_label_not_in_options": (
        lambda t: [*EX5, "--exemplar", _file(t / "bad.jsonl", _lines({**GOOD, "label": "Maybe"}))],
        ["bad.jsonl:1", "not one of the options"]),
    "exemplar_is_a_folder": (lambda t: [*EX5, "--exemplar", str(t)], ["cannot read"]),
    "exemplar_without_target": (
        lambda t: [*EX, "--exemplar", _file(t / "ok.jsonl", _lines(GOOD))], ["--target"]),
    "output_under_a_file": (
        lambda t: [*EX, "--output", str(Path(_file(t / "f.txt", "x")) / "such" / "out.jsonl")],
        ["cannot be made", "is a file"]),
    "output_is_a_folder": (lambda t: [*EX, "--output", _folder(t / "outdir")], ["folder"]),
    "resume_and_overwrite_together": (
        lambda t: [*EX, "--resume"], ["--resume", "--overwrite"]),
    "openai_config_not_json": (
        lambda t: [*EX, "--openai_config", _file(t / "cfg" / "openai_config.json", "{nope")],
        ["openai_config.json", "not valid JSON"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_one_line_exit_2_nothing_clobbered(case, tmp_path, existing):
    build, words = BAD_INPUT[case]
    extra = build(tmp_path)
    before = snapshot(tmp_path)
    # --output first so that a case's own --output wins (argparse keeps the last one)
    r = run_creator("--output", existing, "--setting", "naive", "--overwrite",
                    "--base_url", closed_port_url(), *extra, cwd=tmp_path, timeout=30)
    assert_usage_error(r, *words)
    assert_unchanged(before, tmp_path)


def _unreadable(folder: Path) -> Path:
    """A file this process may not read (EACCES): mode 000 for a user, in `folder` (outside the
    tree a test snapshots, which must read every file); root reads anything, so for root a
    write-only kernel file (read by nobody, written by nothing here)."""
    if os.geteuid() != 0:
        path = Path(_file(folder / "secret.jsonl", _lines(GOOD)))
        path.chmod(0)
        return path
    for candidate in map(Path, ("/proc/sys/vm/compact_memory", "/proc/sys/vm/drop_caches")):
        try:
            candidate.open("rb").close()
        except PermissionError:
            return candidate
        except OSError:
            continue
    pytest.skip("running as root and no write-only kernel file to stand for an unreadable one")


def _link(link: Path, target: Path) -> str:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return str(link)


UNREADABLE = {
    "train_file": lambda t, locked: (_link(t / "data" / "locked" / "train.jsonl", locked),
                                     ["--data_dir", str(t / "data"), "--data_name", "locked"])[1],
    "exemplar": lambda t, locked: [*EX5, "--exemplar", _link(t / "ex" / "ex.jsonl", locked)],
    "openai_config": lambda t, locked: [*EX, "--openai_config",
                                        _link(t / "cfg" / "openai_config.json", locked)],
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_unreadable_file_is_one_line(case, tmp_path, tmp_path_factory, existing):
    extra = UNREADABLE[case](tmp_path, _unreadable(tmp_path_factory.mktemp("locked")))
    before = snapshot(tmp_path)
    r = run_creator("--output", existing, "--setting", "naive", "--overwrite",
                    "--base_url", closed_port_url(), *extra, cwd=tmp_path, timeout=30)
    assert_usage_error(r, "cannot read", "permission denied")
    assert_unchanged(before, tmp_path)


# ---------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("option,value", [
    ("--setting", "bogus"),
    ("--target", "0"),
    ("--target", "-3"),
    ("--target", "abc"),
    ("--concurrency", "0"),
    ("--num_examples", "0"),
    ("--temperature", "5"),
    ("--top_p", "0"),
    ("--top_p", "1.5"),
    ("--rpm", "0"),
    ("--timeout", "0"),
    ("--max_retries", "-1"),
])
def test_bad_argument_is_refused_by_argparse(option, value, tmp_path, existing):
    before = snapshot(tmp_path)
    args = ["--setting", "naive", *example_args(), "--output", existing, "--overwrite",
            "--base_url", closed_port_url(), f"{option}={value}"]
    r = run_creator(*args, cwd=tmp_path, timeout=30)
    assert_argparse_error(r, f"argument {option}", value)  # names the option and what it got
    assert_unchanged(before, tmp_path)


def test_missing_required_arguments(tmp_path):
    r = run_creator("--setting", "naive", cwd=tmp_path, timeout=30)
    assert_argparse_error(r, "required", "--data_dir", "--data_name")
    assert list(tmp_path.iterdir()) == []


def test_unknown_option_is_one_line(tmp_path):
    r = run_creator(*example_args(), "--setting", "naive", "--targte", "5", cwd=tmp_path, timeout=30)
    assert_argparse_error(r, "unrecognized arguments", "--targte")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- existing outputs


def test_existing_output_without_resume_is_refused_untouched(tmp_path, existing):
    before = snapshot(tmp_path)
    r = run_creator(*example_args(), "--setting", "naive", "--output", existing,
                    "--base_url", closed_port_url(), cwd=tmp_path, timeout=30)
    line = assert_usage_error(r, "already exists", "--resume", "--overwrite")
    assert existing.name in line
    assert_unchanged(before, tmp_path)


def test_existing_foreign_file_without_resume_is_refused_untouched(tmp_path):
    """Not a creator file at all (e.g. someone's notes): still never overwritten silently."""
    out = tmp_path / "notes.jsonl"
    out.write_bytes(b"my own notes, not JSON\n")
    before = snapshot(tmp_path)
    r = run_creator(*example_args(), "--setting", "naive", "--output", out,
                    "--base_url", closed_port_url(), cwd=tmp_path, timeout=30)
    assert_usage_error(r, "already exists")
    assert_unchanged(before, tmp_path)


@pytest.mark.parametrize("option,value", [
    ("--setting", "tree"),
    ("--setting", "random"),
    ("--num_examples", "3"),
    ("--data_dir", str(EXAMPLES / "mcqa_5")),  # another exemplar
], ids=["tree", "random", "num_examples", "other_exemplar"])
def test_resume_with_other_settings_is_refused_untouched(option, value, tmp_path, existing):
    args = {"--setting": "naive", "--data_dir": str(EXAMPLES / "yesno_close"),
            "--data_name": "example", option: value}
    before = snapshot(tmp_path)
    r = run_creator(*[x for kv in args.items() for x in kv], "--output", existing, "--resume",
                    "--target", "50", "--base_url", closed_port_url(), cwd=tmp_path, timeout=30)
    line = assert_usage_error(r, "other settings", "--output")
    if option != "--data_dir":
        assert option.lstrip("-") in line, line  # names what differs
    assert_unchanged(before, tmp_path)


def test_resume_of_an_edited_file_is_refused_untouched(tmp_path, existing):
    """A line that is not JSON in the middle (not a torn last line) is not silently dropped."""
    lines = existing.read_bytes().splitlines(keepends=True)
    existing.write_bytes(b"".join(lines[:3] + [b"{oops\n"] + lines[3:]))
    before = snapshot(tmp_path)
    r = run_creator(*example_args(), "--setting", "naive", "--output", existing, "--resume",
                    "--target", "50", "--base_url", closed_port_url(), cwd=tmp_path, timeout=30)
    assert_usage_error(r, "out.jsonl:4", "not valid JSON")
    assert_unchanged(before, tmp_path)


def test_tpm_below_max_tokens_is_refused_before_touching_the_output(tmp_path, existing):
    before = snapshot(tmp_path)
    r = run_creator(*example_args(), "--setting", "naive", "--output", existing, "--overwrite",
                    "--tpm", "100", "--max_tokens", "1024", "--base_url", closed_port_url(),
                    cwd=tmp_path, timeout=30)
    assert_usage_error(r, "--tpm", "--max_tokens")
    assert_unchanged(before, tmp_path)


def test_bad_data_is_reported_before_starting_the_embedded_server(tmp_path):
    r = run_creator("--data_dir", tmp_path / "no_such_dir", "--data_name", "example",
                    "--setting", "naive", "--output", tmp_path / "out.jsonl",
                    cwd=tmp_path, timeout=60, env=creator_env(TMPDIR=str(tmp_path)))
    assert_usage_error(r, "not found", "no_such_dir")
    assert "llama" not in r.stderr.lower()


# ---------------------------------------------------------------------------- servers that refuse


def test_unreachable_server_exits_1_quickly(tmp_path):
    out = tmp_path / "out.jsonl"
    url = closed_port_url()
    r = run_creator(*example_args(), "--setting", "naive", "--target", "5", "--output", out,
                    "--base_url", url, cwd=tmp_path, timeout=30)
    assert_run_failed(r, "cannot reach", url)
    assert r.duration < 30
    # nothing was written, so there is nothing to resume and no message says there is
    assert not out.exists() and "--resume" not in r.stderr


def test_unreachable_server_on_resume_keeps_the_records(tmp_path, existing):
    before = existing.read_bytes()
    r = run_creator(*example_args(), "--setting", "naive", "--target", "50", "--output", existing,
                    "--resume", "--base_url", closed_port_url(), cwd=tmp_path, timeout=30)
    assert_run_failed(r, "cannot reach")
    assert existing.read_bytes() == before


def test_overwrite_keeps_the_old_output_when_the_run_cannot_start(tmp_path, existing):
    before = existing.read_bytes()
    r = run_creator(*example_args(), "--setting", "naive", "--target", "5", "--output", existing,
                    "--overwrite", "--base_url", closed_port_url(), cwd=tmp_path, timeout=30)
    assert_run_failed(r, "cannot reach")
    assert existing.read_bytes() == before


WRONG_KEY = "sk-wrong-0123456789abcdefWRONG"
RIGHT_KEY = "sk-right-9876543210fedcbaRIGHT"


def _all_text(folder: Path, r) -> str:
    files = "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
    return r.stdout + r.stderr + files


def test_wrong_api_key_exits_1_and_never_shows_the_key(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(api_key=RIGHT_KEY) as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "10", "--output", out,
                        "--base_url", sim.base_url, cwd=tmp_path, timeout=30, api_key=WRONG_KEY)
        stats = sim.stats()
    line = assert_run_failed(r, "API key")
    assert "401" in line or "refused" in line.lower(), line
    assert stats["ok"] == 0 and stats["unauthorized"] >= 1
    # no output was made, so no line sends the user to it (issue 16, item 8)
    assert not out.exists() and "records so far" not in r.stderr, r.stderr
    assert r.duration < 30
    text = _all_text(tmp_path, r)
    assert WRONG_KEY not in text and RIGHT_KEY not in text
    assert "0123456789abcdef" not in text  # not even a part of it


def test_right_api_key_works_and_is_not_written_anywhere(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(api_key=RIGHT_KEY) as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "10", "--output", out,
                        "--base_url", sim.base_url, cwd=tmp_path, timeout=30, api_key=RIGHT_KEY)
        stats = sim.stats()
    assert r.returncode == 0, r.stderr
    assert stats["unauthorized"] == 0 and stats["ok"] >= 2
    check_completed(out, 10)
    assert RIGHT_KEY not in _all_text(tmp_path, r)


def test_quota_exhausted_exits_1_and_the_file_resumes(tmp_path):
    out = tmp_path / "out.jsonl"
    target = 40
    common = [*example_args(), "--setting", "naive", "--target", str(target), "--output", out]
    with start_simulator(quota=3, seed=2) as sim:
        r = run_creator(*common, "--base_url", sim.base_url, cwd=tmp_path, timeout=30)
        stats = sim.stats()
    assert_run_failed(r, "quota")
    assert "--resume" in r.stderr
    assert stats["quota_exceeded"] >= 1 and stats["ok"] == 3
    first = check_records(out)  # what was written is whole and valid ...
    assert 0 < len(first) < target
    summary = read_summary(out)
    assert summary["status"] == "failed" and "quota" in (summary["error"] or "")
    assert summary["accepted"] == len(first)
    head = out.read_bytes()

    with start_simulator(seed=3) as sim:  # ... and resumable once the quota is back
        r2 = run_creator(*common, "--resume", "--base_url", sim.base_url, cwd=tmp_path, timeout=30)
    assert r2.returncode == 0, r2.stderr
    assert_no_traceback(r2)
    assert out.read_bytes().startswith(head), "resume rewrote the records it had"
    summary = check_completed(out, target)
    assert summary["sessions"] == 2


class _EchoKeyHandler(BaseHTTPRequestHandler):
    """A server that quotes the caller's whole Authorization header back in its errors, as
    careless proxies do: the creator must still never print or store the key."""

    refuse_on = "models"  # "models": 401 on GET /models; "chat": 401 on POST; "bad": 400 on POST

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: int) -> None:
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        self._reply(status, {"error": {
            "message": f"Incorrect API key provided: {key}. You passed {key}!",
            "type": "invalid_request_error", "code": "invalid_api_key" if status == 401 else None}})

    def do_GET(self) -> None:
        if self.refuse_on == "models":
            self._refuse(401)
        else:
            self._reply(200, {"object": "list", "data": [{"id": "echo", "object": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._refuse(401 if self.refuse_on == "chat" else 400)


@pytest.mark.parametrize("refuse_on", ["models", "chat", "bad"])
def test_a_server_that_echoes_the_key_never_gets_it_printed(refuse_on, tmp_path):
    handler = type("Handler", (_EchoKeyHandler,), {"refuse_on": refuse_on})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = tmp_path / "out.jsonl"
        r = run_creator(*example_args(), "--setting", "naive", "--target", "5", "--output", out,
                        "--base_url", f"http://127.0.0.1:{server.server_address[1]}/v1",
                        cwd=tmp_path, timeout=30, api_key=WRONG_KEY)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    first = assert_run_failed(r)
    assert ("API key" in first) if refuse_on != "bad" else ("400" in first), first
    assert WRONG_KEY not in _all_text(tmp_path, r)


def test_wrong_base_url_path_fails_fast_with_the_status(tmp_path):
    """A server that is there but has no chat endpoint at that path (forgot /v1, typo)."""
    out = tmp_path / "out.jsonl"
    with start_simulator() as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "5", "--output", out,
                        "--base_url", sim.root_url + "/v9", cwd=tmp_path, timeout=30)
    first = assert_run_failed(r, "404")
    assert r.duration < 30, first
    if out.exists():
        assert read_jsonl(out) == []


def test_a_server_that_only_talks_nonsense_stalls_with_exit_1(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(p_garbage=1.0) as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "20", "--output", out,
                        "--patience", "6", "--concurrency", "2", "--base_url", sim.base_url,
                        cwd=tmp_path, timeout=30)
    first = assert_run_failed(r, "stalled")
    assert "--resume" in r.stderr, first
    summary = read_summary(out)
    assert summary["status"] == "stalled" and summary["accepted"] == 0
    assert summary["rejected"].get("no_json_object", 0) >= 6


def test_request_budget_spent_exits_3_and_resumes(tmp_path):
    out = tmp_path / "out.jsonl"
    common = [*example_args(), "--setting", "naive", "--target", "30", "--output", out,
              "--concurrency", "2"]
    with start_simulator(seed=4) as sim:
        r = run_creator(*common, "--max_requests", "2", "--base_url", sim.base_url,
                        cwd=tmp_path, timeout=30)
        assert_no_traceback(r)
        assert r.returncode == 3, r.stderr  # budget_spent: its own status and exit code
        assert r.lines[-1].startswith("creator: budget spent: ") and "--max_requests" in \
            r.lines[-1], r.stderr
        assert read_summary(out)["status"] == "budget_spent"
        assert 0 < len(check_records(out)) < 30
        r2 = run_creator(*common, "--resume", "--base_url", sim.base_url, cwd=tmp_path, timeout=30)
    assert r2.returncode == 0, r2.stderr
    check_completed(out, 30, 2)


@pytest.mark.parametrize("flag", ["--resume", "--overwrite"])
def test_the_input_split_is_never_the_output(flag, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(EXAMPLES / "yesno_close", data / "yesno_close")
    train = data / "yesno_close" / "example" / "train.jsonl"
    before = snapshot(tmp_path)
    with start_simulator(seed=1) as sim:
        r = run_creator("--data_dir", data / "yesno_close", "--data_name", "example",
                        "--setting", "naive", "--target", "10", "--output", train, flag,
                        "--base_url", sim.base_url, cwd=tmp_path, timeout=30)
    assert_usage_error(r, "train.jsonl")
    assert_unchanged(before, tmp_path)
