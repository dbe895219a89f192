"""Answer verification: reading a vote, the majority rule, the prompt (no label in it), and end to
end against the simulator, which answers verification prompts with the true answer except at a
configured error rate and serves mislabelled examples at a configured rate."""

from __future__ import annotations

import json
import urllib.request

import orjson
import pytest

import creatorproc
from benchmarks.simproc import start_simulator
from creator.records import YES_NO_OPTIONS, Record
from creator.verify import agrees, answer_schema, read_answer, shown_options, verify_messages
from creatorproc import read_jsonl, read_summary, run_creator

REPO = creatorproc.REPO
YESNO = ["--data_dir", str(REPO / "data/yesno_close"), "--data_name", "example"]
MCQA5 = ["--data_dir", str(REPO / "data/mcqa_5"), "--data_name", "example"]


def test_read_answer_accepts_the_shapes_models_reply_in():
    options = ["a red apple", "the river", "True"]
    assert read_answer('{"Answer": "the river"}', options) == "the river"
    assert read_answer('```json\n{"answer": "A Red Apple"}\n```', options) == "a red apple"
    assert read_answer("the river.", options) == "the river"
    assert read_answer('"The  River"', options) == "the river"
    assert read_answer("I think it is the river, clearly.", options) == "the river"
    assert read_answer("either the river or a red apple", options) is None  # two named
    assert read_answer("no idea", options) is None
    assert read_answer("", options) is None and read_answer(None, options) is None
    assert read_answer('{"Answer": true}', list(YES_NO_OPTIONS)) == "True"


def test_agrees_is_a_unique_plurality_for_the_label():
    assert agrees(["A", "A", "B"], "A")
    assert not agrees(["A", "B", "B"], "A")
    assert not agrees(["A", "B", "C"], "A")  # a tie at the top
    assert agrees(["A", "B", "C", "A", None], "A")
    assert not agrees([None, None], "A")
    assert agrees(["A"], "A") and not agrees(["B"], "A")


def test_the_prompt_shows_question_context_and_options_but_not_the_label():
    record = Record("Which is red?", "Apples are red.", ("sky", "apple", "grass", "sea", "coal"),
                    "apple")
    messages = verify_messages(record, seed=5)
    shown = orjson.loads(messages[1]["content"])
    assert set(shown) == {"Question", "Context", "Options"}
    assert sorted(shown["Options"]) == sorted(record.options)
    assert "Answer the question" in messages[0]["content"]
    # the order shown is drawn from the seed and the question, not the created order
    orders = {tuple(shown_options(record, seed)) for seed in range(20)}
    assert len(orders) > 5
    assert shown_options(record, 5) == shown_options(record, 5)
    yes_no = Record("Is the sky blue?", None, YES_NO_OPTIONS, "True")
    assert shown_options(yes_no, 1) == ["True", "False"]
    assert answer_schema(["x", "y"])["properties"]["Answer"]["enum"] == ["x", "y"]


def injected(sim) -> dict:
    url = sim.base_url.rsplit("/v1", 1)[0] + "/stats/injected"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def norm(q: str) -> str:
    return " ".join(q.split()).lower()


@pytest.mark.parametrize("fmt,votes", [("yesno", 5), ("mc", 5)])
def test_verification_removes_mislabelled_and_keeps_correct(fmt, votes, tmp_path):
    """The issue's figure: at a 20% verifier error rate, >= 90% of the mislabelled examples
    removed and >= 90% of the correct ones kept."""
    out = tmp_path / "train.jsonl"
    with start_simulator(seed=11, p_mislabel=0.2, verify_error_rate=0.2) as sim:
        proc = run_creator(*(YESNO if fmt == "yesno" else MCQA5), "--setting", "naive",
                           "--target", "400", "--verify", str(votes), "--near_dup", "off",
                           "--concurrency", "16", "--base_url", sim.base_url,
                           "--output", str(out), cwd=tmp_path, timeout=240)
        info = injected(sim)
        stats = sim.stats()
    assert proc.returncode == 0, proc.stderr
    rows = creatorproc.check_records(out, 400)
    summary = read_summary(out)
    written = {norm(r["question"]) for r in rows}
    verified = set(info["verified"])
    mislabelled = {norm(q) for q in info["mislabelled"]} & verified
    correct = verified - mislabelled
    over = summary["over_target"]  # passed every check after the target was reached
    removed = 1 - len(mislabelled & written) / len(mislabelled)
    kept = len(correct & written) / (len(correct) - over)
    assert len(mislabelled) >= 60 and len(correct) >= 300, (len(mislabelled), len(correct))
    assert removed >= 0.9, removed
    assert kept >= 0.9, kept
    ver = summary["quality"]["verification"]
    assert ver["votes_per_candidate"] == votes
    # (votes may still have been in flight for a few candidates when the target was reached)
    assert ver["candidates"] == ver["agreed"] + ver["disagreed"] + ver["unverified"]
    assert len(verified) - 16 <= ver["candidates"] <= len(verified)
    assert summary["rejected"]["failed_verification"] == ver["disagreed"]
    # every verification request went through the client: counted requests and tokens
    assert stats["verify_requests"] <= ver["vote_requests"] <= votes * (len(verified) + 16)
    assert summary["requests"] == stats["requests"]
    # (replies to requests cancelled when the target was reached are not read)
    assert summary["completions"] <= stats["ok"] <= summary["completions"] + 16


@pytest.mark.parametrize("concurrency", [4, 16])
def test_verification_respects_the_request_budget(tmp_path, concurrency):
    """Requests never exceed the budget; near it no reply is bought whose candidates could not
    be voted on, and no candidate is judged on fewer votes than asked for."""
    out = tmp_path / "train.jsonl"
    with start_simulator(seed=2) as sim:
        proc = run_creator(*YESNO, "--setting", "naive", "--target", "1000", "--verify", "3",
                           "--max_requests", "40", "--concurrency", str(concurrency),
                           "--base_url", sim.base_url, "--output", str(out), cwd=tmp_path)
        stats = sim.stats()
    assert proc.returncode == 3 and "budget spent" in proc.stderr, proc.stderr  # budget_spent
    summary = read_summary(out)
    assert stats["requests"] <= 40, stats["requests"]  # holds: never one over
    verification = summary["quality"]["verification"]
    assert verification["vote_requests"] == 3 * (verification["candidates"]
                                                  - verification["unverified"])
    # at most the candidates of the last reply or two are left unverified, not a whole wave
    assert summary["rejected"].get("unverified", 0) <= 10, summary["rejected"]
    assert len(read_jsonl(out)) == summary["accepted"] > 0


def test_verification_with_batch_is_refused(tmp_path):
    r = run_creator(*YESNO, "--setting", "naive", "--target", "10", "--verify", "3", "--batch",
                    "--base_url", "http://127.0.0.1:9/v1", "--output", str(tmp_path / "o.jsonl"),
                    cwd=tmp_path)
    assert r.returncode == 2 and "--verify 3 is not available with --batch" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o.jsonl").exists()
