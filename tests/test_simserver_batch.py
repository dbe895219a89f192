"""The simulator's Batch API (benchmarks/simserver.py, BatchSim): files, batches, the states a
provider goes through, output and error files, partial completion on expiry, cancellation,
validation failures, the time scale, and its counters. Plain HTTP (urllib) against a real
simulator process, so nothing of the creator is involved."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from benchmarks.simproc import start_simulator

EXEMPLAR = {"Options": ["True", "False"], "Answer": "False",
            "Question": "Can a penguin fly over the ocean to reach another continent?"}
SYSTEM = ("- You are creating 5 more examples that follow the format of the example provided, "
          "but with a different content.\n- The output must be in unnumbered JSON format.")


def line(cid: str, url: str = "/v1/chat/completions", **body: Any) -> dict[str, Any]:
    return {"custom_id": cid, "method": "POST", "url": url,
            "body": {"model": "sim-model", "max_tokens": 1024,
                     "messages": [{"role": "system", "content": SYSTEM},
                                  {"role": "user", "content": json.dumps(EXEMPLAR)}], **body}}


def call(url: str, method: str = "GET", body: Any = None, headers: dict | None = None,
         raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            payload = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        payload, status = exc.read(), exc.code
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload


def upload(base: str, rows: list[dict[str, Any]] | bytes, purpose: str = "batch",
           headers: dict | None = None) -> tuple[int, Any]:
    content = rows if isinstance(rows, bytes) else \
        "".join(json.dumps(r) + "\n" for r in rows).encode()
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"in.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n").encode() + \
        content + f"\r\n--{boundary}--\r\n".encode()
    return call(f"{base}/files", "POST", raw=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                         **(headers or {})})


def submit(base: str, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    status, f = upload(base, rows)
    assert status == 200, f
    status, b = call(f"{base}/batches", "POST", {"input_file_id": f["id"],
                                                 "endpoint": "/v1/chat/completions",
                                                 "completion_window": "24h", **extra})
    assert status == 200, b
    return b


def wait_for(base: str, batch_id: str, statuses: tuple[str, ...], timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        _, b = call(f"{base}/batches/{batch_id}")
        if not seen or seen[-1] != b["status"]:
            seen.append(b["status"])
        if b["status"] in statuses:
            b["_seen"] = seen
            return b
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} never reached {statuses}; seen {seen}")


def jsonl(base: str, file_id: str | None) -> list[dict[str, Any]]:
    if not file_id:
        return []
    status, raw = call(f"{base}/files/{file_id}/content")
    assert status == 200
    text = raw.decode() if isinstance(raw, bytes) else json.dumps(raw)
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def batch_stats(sim) -> dict[str, Any]:
    return call(f"{sim.root_url}/stats/batch")[1]


# time scale: 24 h in 2.4 s; a line every 100 simulated s = 2.8 ms; validating 60 s = 1.7 ms
FAST = {"batch_time_scale": 36000, "batch_line_s": 100}


def test_a_batch_goes_through_the_states_and_answers_every_line():
    with start_simulator(batch_time_scale=3600, batch_line_s=20, batch_validate_s=300,
                         batch_finalize_s=300, seed=1) as sim:
        b = submit(sim.base_url, [line(f"r{i}") for i in range(20)], metadata={"k": "v"})
        assert b["status"] == "validating" and b["completion_window"] == "24h"
        assert b["metadata"] == {"k": "v"} and b["request_counts"]["total"] == 20
        assert b["expires_at"] - b["created_at"] == 86400
        done = wait_for(sim.base_url, b["id"], ("completed",))
        # validating (0.08 s) -> in_progress (0.11 s) -> finalizing (0.08 s) -> completed
        assert done["_seen"][0] == "validating" and done["_seen"][-1] == "completed"
        assert "in_progress" in done["_seen"] or "finalizing" in done["_seen"], done["_seen"]
        assert done["request_counts"] == {"total": 20, "completed": 20, "failed": 0}
        for key in ("in_progress_at", "finalizing_at", "completed_at"):
            assert isinstance(done[key], int), key
        out = jsonl(sim.base_url, done["output_file_id"])
        assert sorted(o["custom_id"] for o in out) == sorted(f"r{i}" for i in range(20))
        assert done["error_file_id"] is None
        for o in out:
            assert o["error"] is None and o["response"]["status_code"] == 200
            body = o["response"]["body"]
            assert body["object"] == "chat.completion" and body["usage"]["prompt_tokens"] > 0
            objs = [json.loads(p) for p in body["choices"][0]["message"]["content"].split("\n\n")]
            assert len(objs) == 5 and all(set(x) == set(EXEMPLAR) for x in objs)
        stats = batch_stats(sim)
        assert stats["batches_created"] == 1 and stats["batch_lines"] == 20
        assert stats["lines_completed"] == 20 and stats["prompt_tokens"] > 0
        assert sim.stats()["requests"] == 0  # batch lines are not chat requests


def test_an_expired_batch_returns_what_it_finished_and_lists_the_rest_as_expired():
    # window 1 h, validating 60 s, a line every 100 s: 35 lines finish, the other 15 expire
    with start_simulator(batch_time_scale=36000, batch_line_s=100, batch_window_s=3600,
                         seed=2) as sim:
        b = submit(sim.base_url, [line(f"r{i}") for i in range(50)])
        done = wait_for(sim.base_url, b["id"], ("expired",))
        assert isinstance(done["expired_at"], int) and done["completed_at"] is None
        out = jsonl(sim.base_url, done["output_file_id"])
        err = jsonl(sim.base_url, done["error_file_id"])
        assert len(out) == 35 and len(err) == 15
        assert {o["custom_id"] for o in out} == {f"r{i}" for i in range(35)}
        assert all(e["error"]["code"] == "batch_expired" and e["response"] is None for e in err)
        assert done["request_counts"] == {"total": 50, "completed": 35, "failed": 15}
        stats = batch_stats(sim)
        assert stats["lines_expired"] == 15 and stats["lines_completed"] == 35


@pytest.mark.parametrize("in_output", [False, True], ids=["error_file", "output_file"])
def test_per_request_errors_go_to_the_error_file_or_the_output_file(in_output):
    with start_simulator(batch_p_error=0.3, batch_errors_in_output=in_output, seed=3,
                         **FAST) as sim:
        b = submit(sim.base_url, [line(f"r{i}") for i in range(60)])
        done = wait_for(sim.base_url, b["id"], ("completed",))
        out = jsonl(sim.base_url, done["output_file_id"])
        err = jsonl(sim.base_url, done["error_file_id"])
        failed = [o for o in out + err if o["response"]["status_code"] != 200]
        assert 5 <= len(failed) <= 35
        assert {o["response"]["status_code"] for o in failed} <= {429, 500, 503}
        assert all("error" in o["response"]["body"] for o in failed)
        assert (len(err) == 0) == in_output
        assert len(out) + len(err) == 60
        assert done["request_counts"]["failed"] == len(failed)


def test_cancel_returns_the_finished_lines():
    with start_simulator(batch_time_scale=3600, batch_line_s=20, seed=4) as sim:
        b = submit(sim.base_url, [line(f"r{i}") for i in range(500)])  # 10,000 s of work
        wait_for(sim.base_url, b["id"], ("in_progress",))
        time.sleep(0.3)
        status, c = call(f"{sim.base_url}/batches/{b['id']}/cancel", "POST", {})
        assert status == 200 and c["status"] in ("cancelling", "cancelled")
        done = wait_for(sim.base_url, b["id"], ("cancelled",))
        out = jsonl(sim.base_url, done["output_file_id"])
        err = jsonl(sim.base_url, done["error_file_id"])
        assert 0 < len(out) < 500 and len(out) + len(err) == 500
        assert all(e["error"]["code"] == "batch_cancelled" for e in err)
        status, _ = call(f"{sim.base_url}/batches/{b['id']}/cancel", "POST", {})
        assert status == 400  # a cancelled batch cannot be cancelled again


@pytest.mark.parametrize("bad", ["duplicate_custom_id", "wrong_url", "not_json"])
def test_a_bad_input_file_fails_validation_with_the_line(bad):
    rows: Any = [line("a"), line("b"), line("c")]
    if bad == "duplicate_custom_id":
        rows[2] = line("a")
    elif bad == "wrong_url":
        rows[1] = line("b", url="/v1/embeddings")
    else:
        rows = b"".join(json.dumps(r).encode() + b"\n" for r in rows[:2]) + b"{not json\n"
    with start_simulator(seed=5, **FAST) as sim:
        status, f = upload(sim.base_url, rows)
        assert status == 200
        _, b = call(f"{sim.base_url}/batches", "POST", {"input_file_id": f["id"],
                                                         "endpoint": "/v1/chat/completions",
                                                         "completion_window": "24h"})
        done = wait_for(sim.base_url, b["id"], ("failed",))
        errors = done["errors"]["data"]
        assert errors and errors[0]["line"] in (2, 3)
        assert done["output_file_id"] is None and done["error_file_id"] is None
        assert isinstance(done["failed_at"], int)


def test_limits_per_batch_and_window_and_endpoint():
    with start_simulator(batch_max_requests=10, seed=6, **FAST) as sim:
        b = submit(sim.base_url, [line(f"r{i}") for i in range(11)])
        done = wait_for(sim.base_url, b["id"], ("failed",))
        assert done["errors"]["data"][0]["code"] == "too_many_requests"
        _, f = upload(sim.base_url, [line("x")])
        for change in ({"completion_window": "1h"}, {"endpoint": "/v1/embeddings"}):
            status, body = call(f"{sim.base_url}/batches", "POST", {
                "input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                "completion_window": "24h", **change})
            assert status == 400, body
        status, body = call(f"{sim.base_url}/batches", "POST", {
            "input_file_id": "file-nope", "endpoint": "/v1/chat/completions",
            "completion_window": "24h"})
        assert status == 404
        status, _ = upload(sim.base_url, [line("x")], purpose="fine-tune")
        assert status == 400


def test_list_is_newest_first_with_pages_and_counts_a_file_submitted_twice():
    with start_simulator(seed=7, **FAST) as sim:
        _, f = upload(sim.base_url, [line("x")])
        ids = []
        for _ in range(3):
            _, b = call(f"{sim.base_url}/batches", "POST", {
                "input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                "completion_window": "24h"})
            ids.append(b["id"])
        _, page = call(f"{sim.base_url}/batches?limit=2")
        assert [b["id"] for b in page["data"]] == ids[::-1][:2] and page["has_more"]
        _, rest = call(f"{sim.base_url}/batches?limit=2&after={page['last_id']}")
        assert [b["id"] for b in rest["data"]] == [ids[0]] and not rest["has_more"]
        assert batch_stats(sim)["batches_from_a_used_file"] == 2
        for bid in ids:
            wait_for(sim.base_url, bid, ("completed",))
        assert batch_stats(sim)["lines_completed_twice"] == 2  # the same custom_id, 3 answers


def test_auth_and_no_batch():
    with start_simulator(api_key="sekret", seed=8, **FAST) as sim:
        status, body = upload(sim.base_url, [line("x")])
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        status, _ = call(f"{sim.base_url}/batches")
        assert status == 401
        status, _ = upload(sim.base_url, [line("x")], headers={"Authorization": "Bearer sekret"})
        assert status == 200
    with start_simulator(no_batch=True) as sim:
        assert call(f"{sim.base_url}/batches")[0] == 404
        assert upload(sim.base_url, [line("x")])[0] == 404


@pytest.mark.parametrize("fault", ["batch_p_fail", "batch_p_cancel"])
def test_provider_failures_and_cancellations_on_their_own(fault):
    with start_simulator(seed=9, **{fault: 0.5}, **FAST) as sim:
        ended = []
        for n in range(10):
            b = submit(sim.base_url, [line(f"b{n}-{i}") for i in range(20)])
            ended.append(wait_for(sim.base_url, b["id"], ("completed", "failed", "cancelled")))
        statuses = [b["status"] for b in ended]
        assert "completed" in statuses, statuses
        assert ("failed" if fault == "batch_p_fail" else "cancelled") in statuses, statuses
        for b in ended:
            if b["status"] == "failed":
                assert b["errors"]["data"][0]["code"] == "token_limit_exceeded"
            if b["status"] == "cancelled":
                assert 0 < b["request_counts"]["completed"] < 20
                assert isinstance(b["cancelled_at"], int)
        assert batch_stats(sim)["lines_completed_twice"] == 0
