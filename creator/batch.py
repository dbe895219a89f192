"""Batch mode (`--batch`): the requests go through an OpenAI-compatible Batch API at its price
(half the list price on OpenAI) instead of one chat completion at a time.

The API, as OpenAI documents it (https://platform.openai.com/docs/api-reference/batch):
upload a JSONL file of requests (POST /v1/files, purpose "batch"; each line
{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}), create a batch of it
(POST /v1/batches with input_file_id, endpoint and completion_window "24h", the only window), poll
it (GET /v1/batches/{id}: validating -> in_progress -> finalizing -> completed, or failed,
expired, cancelling -> cancelled), then download its output file (the lines that succeeded, each
{"custom_id", "response": {"status_code", "body"}, "error"}) and error file (those that did not).
A batch holds at most 50,000 requests and 200 MB. A batch that expires returns what it finished
("any already completed work is returned. Developers will be charged for any completed work",
OpenAI's Batch API FAQ).

How the settings map onto batches (a "round" is one or more batches submitted together, waited
for, and read before the next; its jobs are sized to the records still needed):
- naive: one round of ceil(records needed / records per reply) requests (several batches when
  that exceeds --batch_size);
- tree: one round per depth: the frontier's shallowest nodes, as many as are needed;
- random/diverse/similar: one round per step of all chains: each chain's next exemplar once.

State on disk, `{output stem}.batches.json`, written before and after every call that changes
what the provider holds: the jobs handed out (custom_id -> exemplar, chain, attempts) and every
upload and batch (file and batch IDs, custom_ids, worst-case cost). So a run that is stopped or
killed resumes by polling the batches it already submitted, never submitting them again: an
upload whose batch creation did not come back is looked up at the provider by its input file
before anything is created. Lines that failed (an error, a 429/5xx inside the output, or missing
from an expired, cancelled or failed batch) are resubmitted in the next round, and only they,
each at most --max_retries times. The summary records which batches its counters include, so a
kill between writing the two files neither loses nor double-counts what was sent or spent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .client import Completion, FatalAPIError, _error_info
from .endpoints import Endpoint
from .ratelimit import RetryPolicy
from .sink import write_json_atomic
from .spend import Hold
from .strategy import ROOT_ID, Job, Node, Tree
from .task import TaskError

log = logging.getLogger("creator")

MAX_BATCH_REQUESTS = 50_000  # "The file can contain up to 50,000 requests"
MAX_BATCH_BYTES = 200_000_000  # "... and can be up to 200 MB in size"
BATCH_ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"  # "Currently only 24h is supported"
TERMINAL = ("completed", "failed", "expired", "cancelled")
NOT_RETRYABLE = ("http_400", "http_401", "http_403", "http_404", "invalid_request_error",
                 "context_length_exceeded")
FAILED_BATCHES_IN_A_ROW = 3  # a provider that fails every batch (bad input, no batch access):
# at least this many, and --max_retries + 1 (a failed batch is retried like a failed request)
FIRST_POLL_S = 0.5
POLL_GROWTH = 1.5
STATE_VERSION = 1


def state_path(output: Path) -> Path:
    return output.with_name(output.stem + ".batches.json")


def read_state(output: Path) -> dict[str, Any] | None:
    path = state_path(output)
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError):
        raise TaskError(f"{path} is unreadable or not JSON: it lists the batches of this "
                        "output at the provider; restore it, or start over with --overwrite")
    return data if isinstance(data, dict) else None


def unfinished(state: dict[str, Any] | None) -> bool:
    """Batches at the provider still to collect, or lines still to resubmit."""
    if not state:
        return False
    return bool(state.get("jobs")) or any(not b.get("processed")
                                          for b in state.get("batches") or [])


def check_state(output: Path, resume: bool, overwrite: bool, batch: bool) -> None:
    """Refuse to start over, or to go on without --batch, while batches are outstanding."""
    if overwrite and not resume:
        return  # the run starts over: the batches are abandoned
    state = read_state(output)
    if not unfinished(state):
        return
    path = state_path(output)
    if not resume:
        raise TaskError(f"{path} lists batches of {output} still at the provider: add --resume "
                        "--batch to collect them, or --overwrite to abandon them")
    if not batch:
        raise TaskError(f"{path} lists batches of {output} still at the provider: resume with "
                        "--batch to collect them")


# --- the API --------------------------------------------------------------------------------


class BatchAPIError(FatalAPIError):
    """The Batch API refused us, or kept failing: the run stops, resumable."""


class BatchAPI:
    """The calls of an OpenAI-compatible Batch API on one endpoint, each retried on 429, 5xx,
    timeouts and dropped connections."""

    def __init__(self, endpoint: Endpoint, timeout: float, retry: RetryPolicy,
                 seed: int = 0) -> None:
        self.endpoint = endpoint
        self.base = endpoint.base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self.attempts = max(5, retry.max_retries + 1)
        self._rng = random.Random(seed)
        self._session: aiohttp.ClientSession | None = None
        self.calls = 0

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=max(self.timeout, 300.0)))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self) -> dict[str, str]:
        key = self.endpoint.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _redact(self, text: str) -> str:
        key = self.endpoint.api_key
        return text.replace(key, "***") if key else text

    async def _call(self, method: str, path: str, *, json: Any = None,
                    data: aiohttp.FormData | None = None, raw: bool = False,
                    ok_statuses: tuple[int, ...] = (200,)) -> tuple[int, Any]:
        """(status, parsed JSON or bytes); retries what may pass, raises the rest."""
        await self.open()
        assert self._session is not None
        url = f"{self.base}{path}"
        last = ""
        for attempt in range(self.attempts):
            retry_after = None
            try:
                self.calls += 1
                async with self._session.request(method, url, json=json, data=data,
                                                 headers=self._headers()) as resp:
                    body = await resp.read()
                    if resp.status in ok_statuses:
                        return resp.status, body if raw else orjson.loads(body or b"null")
                    code, message = _error_info(body)
                    if resp.status in (401, 403):
                        raise BatchAPIError(self._redact(
                            f"{self.base} refused the API key for {path} (HTTP {resp.status}): "
                            f"{message} -- check {self.endpoint.api_key_env or 'OPENAI_API_KEY'}"))
                    if resp.status == 429 and "insufficient_quota" in code:
                        raise BatchAPIError(f"the API account has no quota left at {self.base} "
                                            f"(HTTP 429 {code}): {message}")
                    if resp.status not in (408, 409, 429) and resp.status < 500:
                        raise BatchAPIError(self._redact(
                            f"{self.base} rejected {method} {path} (HTTP {resp.status} "
                            f"{code}): {message}"))
                    last = f"HTTP {resp.status} {message}".strip()
                    header = resp.headers.get("Retry-After")
                    retry_after = float(header) if header and header.isdigit() else None
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                last = str(exc) or type(exc).__name__
            except orjson.JSONDecodeError:
                last = f"{method} {path} answered something that is not JSON"
            if data is not None:  # a form is consumed once: the caller builds a new one
                break
            await asyncio.sleep(self.retry.delay(attempt, retry_after, self._rng))
        raise BatchAPIError(self._redact(f"{method} {url} kept failing: {last}"))

    async def probe(self) -> None:
        """Fail fast, in one line, when the server has no Batch API."""
        status, body = await self._call("GET", "/batches?limit=1", raw=True,
                                        ok_statuses=(200, 404, 405, 501))
        if status != 200:
            raise BatchAPIError(f"{self.base} has no Batch API (GET {self.base}/batches: HTTP "
                                f"{status}); run without --batch")
        try:
            listed = orjson.loads(body)
        except orjson.JSONDecodeError:
            listed = None
        if not isinstance(listed, dict) or not isinstance(listed.get("data"), list):
            raise BatchAPIError(f"{self.base} has no OpenAI-compatible Batch API (GET "
                                f"{self.base}/batches answered no list of batches); run without "
                                "--batch")

    async def upload(self, content: bytes, filename: str) -> str:
        last: Exception | None = None
        for attempt in range(self.attempts):
            form = aiohttp.FormData()
            form.add_field("purpose", "batch")
            form.add_field("file", content, filename=filename, content_type="application/jsonl")
            try:
                _, body = await self._call("POST", "/files", data=form)
            except BatchAPIError as exc:
                if "kept failing" not in str(exc):
                    raise
                last = exc
                await asyncio.sleep(self.retry.delay(attempt, None, self._rng))
                continue
            file_id = body.get("id") if isinstance(body, dict) else None
            if not isinstance(file_id, str):
                raise BatchAPIError(f"POST {self.base}/files answered no file id")
            return file_id
        raise last or BatchAPIError(f"POST {self.base}/files kept failing")

    async def create(self, input_file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        """Create the batch of an uploaded file, once: a call whose answer was lost is looked
        up by its input file before it is tried again."""
        payload = {"input_file_id": input_file_id, "endpoint": BATCH_ENDPOINT,
                   "completion_window": COMPLETION_WINDOW, "metadata": metadata}
        try:
            _, body = await self._call("POST", "/batches", json=payload)
        except BatchAPIError as exc:
            if "kept failing" not in str(exc):
                raise
            found = await self.find_by_input(input_file_id)
            if found is None:
                raise
            return found
        return self._batch(body)

    async def get(self, batch_id: str) -> dict[str, Any]:
        _, body = await self._call("GET", f"/batches/{batch_id}")
        return self._batch(body)

    async def cancel(self, batch_id: str) -> None:
        await self._call("POST", f"/batches/{batch_id}/cancel", ok_statuses=(200, 400, 409))

    async def find_by_input(self, input_file_id: str, pages: int = 20) -> dict[str, Any] | None:
        """The batch created from this file, if any (the newest 100 x `pages` are looked at)."""
        after = None
        for _ in range(pages):
            query = "/batches?limit=100" + (f"&after={after}" if after else "")
            _, body = await self._call("GET", query)
            items = body.get("data") if isinstance(body, dict) else None
            if not isinstance(items, list) or not items:
                return None
            for item in items:
                if isinstance(item, dict) and item.get("input_file_id") == input_file_id:
                    return self._batch(item)
            if not body.get("has_more"):
                return None
            after = items[-1].get("id")
        return None

    async def content(self, file_id: str) -> bytes:
        _, body = await self._call("GET", f"/files/{file_id}/content", raw=True)
        return body

    def _batch(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or \
                not isinstance(body.get("status"), str):
            raise BatchAPIError(f"{self.base} answered a batch without id or status")
        return body


# --- the run ------------------------------------------------------------------------------


@dataclass
class PendingJob:
    job: Job
    attempts: int = 0  # batches it was submitted in
    batch: str | None = None  # input_file_id of the batch it is in (None: to submit)


@dataclass
class BatchRecord:
    input_file_id: str
    custom_ids: list[str]
    worst_usd: float
    round: int
    id: str | None = None  # None: uploaded, creation not (yet) confirmed
    status: str = "uploaded"
    processed: bool = False
    submitted: float = 0.0  # Unix time
    counts: dict[str, int] = field(default_factory=dict)
    errors: str | None = None
    hold: Hold | None = field(default=None, repr=False)
    cancel_sent: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "input_file_id": self.input_file_id, "status": self.status,
                "round": self.round, "lines": len(self.custom_ids), "worst_usd": self.worst_usd,
                "processed": self.processed, "submitted": self.submitted, "counts": self.counts,
                "errors": self.errors, "custom_ids": self.custom_ids}

    @property
    def active(self) -> bool:
        return self.id is not None and not self.processed


def _completion(body: Any, latency: float) -> Completion | None:
    try:
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
        usage = body.get("usage") or {}
        return Completion(text, int(usage.get("prompt_tokens") or 0),
                          int(usage.get("completion_tokens") or 0), latency,
                          choice.get("finish_reason"),
                          body.get("model") if isinstance(body.get("model"), str) else None)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        return None


def parse_results(raw: bytes) -> dict[str, tuple[str, Any]]:
    """custom_id -> ("ok", body) or ("error", code) for each line of an output or error file
    (a provider may put failed lines in either)."""
    out: dict[str, tuple[str, Any]] = {}
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("custom_id"), str):
            continue
        response = obj.get("response") if isinstance(obj.get("response"), dict) else {}
        error = obj.get("error")
        status = response.get("status_code")
        body = response.get("body")
        if not error and status == 200 and isinstance(body, dict) and "choices" in body:
            out[obj["custom_id"]] = ("ok", body)
            continue
        code = ""
        if isinstance(error, dict):
            code = str(error.get("code") or error.get("type") or "")
        if isinstance(status, int) and status != 200:
            code = f"http_{status}"
        code = code or "error"
        previous = out.get(obj["custom_id"])
        if previous is None or previous[0] != "ok":
            out[obj["custom_id"]] = ("error", code)
    return out


class BatchDriver:
    """Runs an Engine's jobs through the Batch API, round after round, to the target."""

    def __init__(self, engine: Any, api: BatchAPI) -> None:
        self.engine = engine
        self.cfg = engine.cfg
        self.api = api
        self.path = state_path(self.cfg.output)
        self.jobs: dict[str, PendingJob] = {}
        self.batches: list[BatchRecord] = []
        self.next_job = 1
        self.round = 0
        self.failed_in_a_row = 0
        self.counted: set[str] = set()  # batch ids whose lines the summary's counters include
        self.settled: set[str] = set()  # ... and whose cost and tokens they include
        self.line_errors: dict[str, int] = {}
        self.resubmitted = 0
        self.started = time.time()

    # --- opening: the API is there, the earlier sessions' batches are ours again -----------

    @classmethod
    async def open(cls, engine: Any, plan: Any) -> BatchDriver:
        cfg = engine.cfg
        endpoint = cfg.endpoint_list()[0]
        api = BatchAPI(endpoint, cfg.timeout, RetryPolicy(max_retries=cfg.max_retries), cfg.seed)
        driver = cls(engine, api)
        try:
            await api.probe()
            await driver._adopt(plan)
        except BaseException:
            await api.close()
            raise
        return driver

    async def close(self) -> None:
        await self.api.close()

    def _say(self, message: str, *args: Any) -> None:
        """What the batches do, one line each (not with --quiet)."""
        if self.cfg.progress:
            log.info(message, *args)

    def lines_out(self) -> int:
        """Requests submitted in batches still at the provider."""
        return sum(len(b.custom_ids) for b in self.batches if b.active)

    async def _adopt(self, plan: Any) -> None:
        state = read_state(self.cfg.output) if self.cfg.resume else None
        if not state:
            return
        if state.get("identity") and state["identity"] != plan.identity:
            raise TaskError(f"{self.path} belongs to a run with other settings; resume with the "
                            "same --setting/--seed/--num_examples/exemplar")
        previous = plan.previous.get("batch") or {}
        prev_counted = set(previous.get("counted") or [])
        prev_settled = set(previous.get("settled") or [])
        self.next_job = int(state.get("next_job") or 1)
        self.round = int(state.get("round") or 0)
        self.resubmitted = int(previous.get("lines_resubmitted") or 0)
        self.line_errors = dict(previous.get("line_errors") or {})
        strategy = self.engine.strategy
        by_id: dict[int, Node] = {strategy.root.id: strategy.root}
        by_id.update({n.id: n for n in plan.nodes})
        for cid, item in (state.get("jobs") or {}).items():
            node = by_id.get(int(item.get("exemplar", ROOT_ID)), strategy.root)
            self.jobs[cid] = PendingJob(Job(node, int(item.get("chain", 0))),
                                        int(item.get("attempts", 0)), item.get("batch"))
        strategy.claim([p.job for p in self.jobs.values()])
        spend = self.engine.spend
        for item in state.get("batches") or []:
            rec = BatchRecord(item["input_file_id"], list(item.get("custom_ids") or []),
                              float(item.get("worst_usd") or 0.0), int(item.get("round") or 0),
                              item.get("id"), item.get("status") or "uploaded",
                              bool(item.get("processed")), float(item.get("submitted") or 0),
                              dict(item.get("counts") or {}), item.get("errors"))
            self.batches.append(rec)
            if rec.id is None and not rec.processed:  # uploaded; was the batch created?
                found = await self.api.find_by_input(rec.input_file_id)
                if found is None:
                    for cid in rec.custom_ids:  # never created: its lines go out again
                        if cid in self.jobs:
                            self.jobs[cid].batch = None
                    rec.processed, rec.status = True, "never_created"
                    continue
                rec.id, rec.status = found["id"], found["status"]
                self._say("batch %s of an earlier session found at the provider", rec.id)
            if rec.id in prev_counted:
                self.counted.add(rec.id)
            if rec.processed:
                continue
            if rec.id in prev_settled:  # the summary has it, the state's write was cut short:
                self.settled.add(rec.id)  # line its jobs up again, count nothing twice
                await self._finish(rec, await self.api.get(rec.id), replay=True)
                continue
            counted = rec.id in self.counted
            if not counted:
                self.engine.client.stats.requests += len(rec.custom_ids)
                self.counted.add(rec.id)
            rec.hold = spend.adopt(rec.worst_usd, len(rec.custom_ids), counted=counted)
        self.save()
        active = [b for b in self.batches if b.active]
        if active:
            self._say("resuming %d batch(es) submitted by an earlier session: %s", len(active),
                     ", ".join(str(b.id) for b in active))

    # --- state on disk ---------------------------------------------------------------------

    def save(self) -> None:
        data = {
            "version": STATE_VERSION, "output": str(self.cfg.output),
            "identity": self.engine.identity, "next_job": self.next_job, "round": self.round,
            "jobs": {cid: {"exemplar": p.job.exemplar.id, "chain": p.job.chain,
                           "attempts": p.attempts, "batch": p.batch}
                     for cid, p in self.jobs.items()},
            "batches": [b.to_json() for b in self.batches],
        }
        write_json_atomic(self.path, data)

    def info(self) -> dict[str, Any]:
        """For the summary."""
        by_status: dict[str, int] = {}
        for b in self.batches:
            by_status[b.status] = by_status.get(b.status, 0) + 1
        return {
            "state_file": str(self.path),
            "rounds": self.round,
            "batches": len([b for b in self.batches if b.id is not None]),
            "by_status": by_status,
            "lines_submitted": sum(len(b.custom_ids) for b in self.batches if b.id is not None),
            "lines_resubmitted": self.resubmitted,
            "line_errors": dict(sorted(self.line_errors.items())),
            "pending_jobs": len(self.jobs),
            "active": [b.id for b in self.batches if b.active],
            "counted": sorted(self.counted),
            "settled": sorted(self.settled),
        }

    def _write_summary(self) -> None:
        self.engine.batch_info = self.info()
        self.engine.write_summary("running")

    # --- the loop --------------------------------------------------------------------------

    async def run(self, stop: Any = None) -> None:
        engine = self.engine
        engine.start_progress()
        delay = FIRST_POLL_S
        cancelling = False
        try:
            while True:
                if stop is not None and stop.event.is_set():
                    active = len([b for b in self.batches if b.active])
                    raise engine.stopped("interrupted", f"stopped by {stop.reason}" + (
                        f"; {active} batch(es) keep running at the provider: --resume --batch "
                        "collects them" if active else ""))
                finished = await self._poll()
                if engine.accepted >= engine.target:
                    if not any(b.active for b in self.batches):
                        self.jobs.clear()  # what was still to resubmit is not needed
                        self.save()
                        return
                    if not cancelling:  # the target is reached: the rest is not needed
                        cancelling = True
                        await self._cancel_active()
                elif not any(b.active for b in self.batches):
                    if engine.unproductive_in_a_row >= self.cfg.stall_limit:
                        raise engine.stopped("stalled", f"the last {engine.unproductive_in_a_row} "
                                      "requests added no new example; the model does not follow "
                                      "the format or repeats itself (see 'rejected' in the "
                                      "summary)")
                    if self.failed_in_a_row:  # give a provider that failed a batch a moment
                        await self._wait(stop, min(self.cfg.batch_poll,
                                                   2.0 ** self.failed_in_a_row))
                    await self._submit_round()
                    delay = FIRST_POLL_S
                    continue
                if finished:
                    delay = FIRST_POLL_S
                await self._wait(stop, delay)
                delay = min(self.cfg.batch_poll, delay * POLL_GROWTH)
        finally:
            engine.batch_info = self.info()
            engine.progress.close()

    async def _wait(self, stop: Any, seconds: float) -> None:
        if stop is None:
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(asyncio.shield(stop.event.wait()), seconds)
        except asyncio.TimeoutError:
            pass

    async def _cancel_active(self) -> None:
        for b in self.batches:
            if b.active and not b.cancel_sent and b.status not in TERMINAL:
                b.cancel_sent = True
                await self.api.cancel(b.id)  # type: ignore[arg-type]
                self._say("target reached: cancelled batch %s (its finished lines are billed)",
                         b.id)

    async def _poll(self) -> int:
        """Look at every active batch once; read those that ended. Returns how many ended."""
        ended = 0
        for rec in [b for b in self.batches if b.active]:
            batch = await self.api.get(rec.id)  # type: ignore[arg-type]
            changed = batch["status"] != rec.status
            rec.status = batch["status"]
            counts = batch.get("request_counts")
            if isinstance(counts, dict):
                rec.counts = {k: int(v) for k, v in counts.items() if isinstance(v, int)}
            if rec.status in TERMINAL:
                await self._finish(rec, batch)
                ended += 1
            elif changed:
                self.save()
        if not ended:
            self._show()
        return ended

    def _show(self) -> None:
        engine = self.engine
        engine.progress.update(0, engine.client.stats.requests, 0, engine.started,
                               engine.cost_postfix())

    async def _finish(self, rec: BatchRecord, batch: dict[str, Any],
                      replay: bool = False) -> None:
        """A batch ended: take its lines' replies, settle its cost, line up what failed.
        `replay`: the summary already counts it (a kill came between the summary's write and
        the state's): only its jobs are put right."""
        engine = self.engine
        results: dict[str, tuple[str, Any]] = {}
        for key in ("error_file_id", "output_file_id"):  # output last: a success wins
            file_id = batch.get(key)
            if isinstance(file_id, str) and file_id:
                results.update(parse_results(await self.api.content(file_id)))
        if rec.status == "failed":
            errors = (batch.get("errors") or {}).get("data") or []
            rec.errors = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors
                                   if isinstance(e, dict))[:500] or "no reason given"
            self.failed_in_a_row += 1
            log.warning("batch %s failed: %s", rec.id, rec.errors)
        else:
            self.failed_in_a_row = 0
        latency = max(0.0, time.time() - rec.submitted) if rec.submitted else 0.0
        billed = 0.0
        stats = engine.client.stats
        for cid in rec.custom_ids:
            pending = self.jobs.get(cid)
            if pending is None:
                continue
            kind, value = results.get(cid, ("error", f"batch_{rec.status}_missing"))
            completion = _completion(value, latency) if kind == "ok" else None
            if kind == "ok" and completion is None:
                kind, value = "error", "bad_reply"
            if replay:
                if completion is not None:  # its records are in the output already
                    del self.jobs[cid]
                    await engine.strategy.on_result(pending.job, [])
                elif str(value) in NOT_RETRYABLE or pending.attempts > self.cfg.max_retries:
                    del self.jobs[cid]
                    engine.strategy.on_failure(pending.job)
                else:
                    pending.batch = None
                continue
            if completion is not None:
                stats.completions += 1
                stats.prompt_tokens += completion.prompt_tokens
                stats.completion_tokens += completion.completion_tokens
                billed += engine.spend.billed(completion.prompt_tokens,
                                              completion.completion_tokens)
                del self.jobs[cid]
                await engine.take_reply(pending.job, completion)
                continue
            code = str(value)
            self.line_errors[code] = self.line_errors.get(code, 0) + 1
            if code == "http_429":
                stats.rate_limited += 1
            elif code.startswith("http_5"):
                stats.server_errors += 1
            if code in NOT_RETRYABLE or pending.attempts > self.cfg.max_retries:
                del self.jobs[cid]
                engine.job_failed(pending.job, f"batch_{code}")
            else:
                pending.batch = None  # resubmitted in the next round
        if rec.hold is not None:
            engine.spend.settle_cost(rec.hold, billed)
        rec.processed = True
        self.settled.add(rec.id)  # type: ignore[arg-type]
        if replay:
            if rec.status == "failed":
                self.failed_in_a_row -= 1
            self.save()
            return
        engine.progress.update(0, stats.requests, stats.rate_limited, engine.started,
                               engine.cost_postfix())
        self._write_summary()  # first the summary (it counts this batch), then the state
        self.save()
        done = len(rec.custom_ids) - sum(1 for c in rec.custom_ids if c in self.jobs)
        self._say("batch %s %s: %d of %d lines answered; %d/%d records", rec.id, rec.status,
                 done, len(rec.custom_ids), engine.accepted, engine.target)
        if self.failed_in_a_row >= max(FAILED_BATCHES_IN_A_ROW, self.cfg.max_retries + 1):
            raise BatchAPIError(f"the Batch API failed {self.failed_in_a_row} batches in a row "
                                f"(last: {rec.errors}); the lines are kept: fix the cause and "
                                "add --resume")

    # --- submitting ------------------------------------------------------------------------

    def _per_reply(self) -> float:
        engine = self.engine
        if engine.answered >= 1:
            return max(0.05, engine.produced / engine.answered)
        if engine.projection is not None:
            return max(0.05, engine.projection.per_reply)
        return max(0.05, self.cfg.num_examples * self.cfg.acceptance_prior)

    def _new_jobs(self, wanted: int) -> list[Job]:
        """The next step's jobs: tree, its shallowest depth; chains, each idle chain once;
        naive, as many as wanted."""
        strategy = self.engine.strategy
        tree = isinstance(strategy, Tree)
        jobs: list[Job] = []
        depth = None
        while len(jobs) < wanted:
            if tree and jobs and strategy.next_depth() != depth:
                break
            job = strategy.next_job()
            if job is None:
                break
            depth = job.exemplar.depth if depth is None else depth
            jobs.append(job)
        return jobs

    async def _submit_round(self) -> None:
        engine = self.engine
        per_reply = self._per_reply()
        retry = [cid for cid, p in self.jobs.items() if p.batch is None]
        needed = engine.target - engine.accepted - len(retry) * per_reply
        new_jobs = self._new_jobs(max(0, math.ceil(needed / per_reply)))
        for job in new_jobs:
            cid = f"job-{self.next_job}"
            self.next_job += 1
            self.jobs[cid] = PendingJob(job)
            retry.append(cid)
        lines: list[tuple[str, bytes, float]] = []
        for cid in retry:
            pending = self.jobs[cid]
            messages = engine.messages(pending.job)
            body = {"model": self.api.endpoint.model or self.cfg.model, "messages": messages,
                    **engine.request_params}
            line = orjson.dumps({"custom_id": cid, "method": "POST", "url": BATCH_ENDPOINT,
                                 "body": body}) + b"\n"
            worst = engine.spend.worst_case(_bound(messages), self.cfg.max_tokens)
            lines.append((cid, line, worst))
        fit = len(lines)
        if engine.spend.limited:  # the budget takes the lines in order while they fit
            fit, total = 0, 0.0
            for _, _, worst in lines:
                if not engine.spend.fits((total + worst) / (fit + 1), fit + 1):
                    break
                fit, total = fit + 1, total + worst
            for cid, _, _ in lines[fit:]:
                pending = self.jobs[cid]
                if pending.attempts == 0:  # never sent: back to the strategy
                    del self.jobs[cid]
                    engine.strategy.on_failure(pending.job)
        lines = lines[:fit]
        if not lines:
            self.save()
            raise engine.budget_stop() if engine.spend.limited else \
                TaskError("nothing left to request (the strategy has no job)")
        self.round += 1
        for chunk in _chunks(lines, self.cfg.batch_size):
            await self._submit(chunk)
        self._write_summary()

    async def _submit(self, chunk: list[tuple[str, bytes, float]]) -> None:
        engine = self.engine
        worst = sum(w for _, _, w in chunk)
        hold = engine.spend.reserve(worst, len(chunk))
        if hold is None:  # checked by the caller; float rounding at the very edge
            raise engine.budget_stop()
        content = b"".join(line for _, line, _ in chunk)
        cids = [cid for cid, _, _ in chunk]
        try:
            file_id = await self.api.upload(content, f"{self.cfg.output.stem}-r{self.round}.jsonl")
        except BaseException:
            engine.spend.release(hold)
            raise
        rec = BatchRecord(file_id, cids, worst, self.round, submitted=time.time())
        self.batches.append(rec)
        for cid in cids:
            self.jobs[cid].batch = file_id
        self.save()  # the upload is known before the batch is asked for
        metadata = {"creator_output": self.cfg.output.name[:500],
                    "creator_round": str(self.round)}
        try:
            batch = await self.api.create(file_id, metadata)
        except BaseException:
            engine.spend.lose(hold) if hold.sent else engine.spend.release(hold)
            raise  # the state keeps the upload: --resume looks the batch up before creating
        engine.spend.mark_sent(hold)
        rec.hold = hold
        rec.id, rec.status = batch["id"], batch["status"]
        engine.client.stats.requests += len(cids)
        for cid in cids:
            pending = self.jobs[cid]
            if pending.attempts:
                self.resubmitted += 1
                engine.client.stats.retries += 1
            pending.attempts += 1
        self.counted.add(rec.id)  # type: ignore[arg-type]
        self.save()
        self._say("submitted batch %s: %d requests (round %d)", rec.id, len(cids), self.round)


def _bound(messages: list[dict[str, str]]) -> int:
    from .spend import prompt_token_bound

    return prompt_token_bound(messages)


def _chunks(lines: list[tuple[str, bytes, float]], size: int) -> list[list[tuple[str, bytes, float]]]:
    """Batches of at most `size` lines and MAX_BATCH_BYTES."""
    out: list[list[tuple[str, bytes, float]]] = []
    current: list[tuple[str, bytes, float]] = []
    used = 0
    for item in lines:
        if current and (len(current) >= size or used + len(item[1]) > MAX_BATCH_BYTES):
            out.append(current)
            current, used = [], 0
        current.append(item)
        used += len(item[1])
    if current:
        out.append(current)
    return out
