"""A local OpenAI-compatible chat-completions SIMULATOR for tests and benchmarks.

Run:  python -m benchmarks.simserver --port 0 [flags]
When it listens it prints exactly one line ``READY http://127.0.0.1:PORT/v1`` and flushes.
It stops cleanly on SIGTERM / SIGINT.

It answers the prompts the creator renders (a system instruction containing
"You are creating K more examples that follow the format of the example provided" plus one
JSON exemplar as the user message) with K new JSON objects that have the exemplar's keys in the
exemplar's order, joined by blank lines, like the paper's GPT replies.

Models, all optional and off by default:
  * latency: ttft + completion_tokens * tpot (+- jitter), optional slot limit (--max_concurrency)
  * OpenAI-style rate limits: --rpm / --tpm token buckets, 429 + Retry-After + x-ratelimit-*
  * auth (--api_key) and a hard quota (--quota -> 429 insufficient_quota)
  * fault injection: 5xx, hung requests, dropped connections, malformed / duplicate / empty /
    wrongly formatted / garbage content
Counters: GET /stats, POST /stats/reset.

Embedding: ``build_app(SimConfig(...))`` returns an aiohttp ``web.Application``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import random
import re
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

__all__ = ["SimConfig", "Simulator", "build_app", "main", "parse_args", "serve"]


# --------------------------------------------------------------------------- config


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    model: str = "sim-model"
    seed: int = 0
    # latency model
    ttft: float = 0.0
    tpot: float = 0.0
    jitter: float = 0.0
    max_concurrency: int = 0  # 0 = unlimited
    # rate limits (0 = unlimited)
    rpm: float = 0.0
    tpm: float = 0.0
    default_max_tokens: int = 1024
    no_retry_after: bool = False
    no_ratelimit_headers: bool = False
    # auth / quota
    api_key: str | None = None
    quota: int = 0  # 0 = unlimited
    # fault injection probabilities
    p_500: float = 0.0
    p_timeout: float = 0.0
    p_drop: float = 0.0
    p_malformed: float = 0.0
    p_duplicate: float = 0.0
    p_empty: float = 0.0
    p_wrong_format: float = 0.0
    p_garbage: float = 0.0
    hang_s: float = 300.0
    fault_burst: int = 1  # a fired fault also hits the next fault_burst-1 admitted requests
    # server
    backlog: int = 8192
    shutdown_timeout: float = 1.0


FAULTS = ("timeout", "drop", "500", "garbage", "empty", "malformed", "wrong_format", "duplicate")
_FAULT_COUNTER = {
    "timeout": "timeouts",
    "drop": "drops",
    "500": "errors_5xx",
    "garbage": "garbage",
    "empty": "empty",
    "malformed": "malformed",
    "wrong_format": "wrong_format",
    "duplicate": "duplicates",
}
STAT_KEYS = (
    "requests", "ok", "rate_limited", "quota_exceeded", "unauthorized", "bad_request",
    "too_large", "errors_5xx", "errors_500", "errors_502", "errors_503", "timeouts", "drops",
    "malformed", "duplicates", "empty", "wrong_format", "garbage", "truncated", "prompt_tokens",
    "completion_tokens", "in_flight", "max_in_flight", "questions_served",
)

K_RE = re.compile(r"creating\s+(\d+)\s+more\s+examples", re.IGNORECASE)

# --------------------------------------------------------------------------- words

_ADJ = (
    "red blue green quiet loud small large ancient modern frozen heavy light bright dark sweet "
    "bitter wooden metal paper silver golden tiny giant rapid slow gentle wild calm noisy empty "
    "full hollow round square narrow wide sharp soft rough smooth young old hungry sleepy clever "
    "brave shy lucky rare common hidden famous local foreign northern southern urban rural"
).split()
_NOUN = (
    "cat dog river mountain teacher bicycle lamp garden ocean violin doctor castle bridge forest "
    "pencil engine farmer island robot kettle camel library window tiger painter rocket glacier "
    "bakery sailor desert clock spider planet mirror pilot volcano harbor cactus pirate museum "
    "lantern falcon tractor mushroom compass dolphin ladder scarf turtle cottage comet orchard"
).split()
_VERB = (
    "carry lift paint cross climb repair follow measure protect visit build borrow cook clean "
    "open describe feed sell find hide watch draw catch fix count push pull swallow survive "
    "outrun remember"
).split()
_PLACE = (
    "market school village station kitchen valley beach factory stadium hospital tunnel "
    "cathedral laboratory airport meadow"
).split()
_TIME = "morning evening night winter summer weekend holiday spring autumn".split()

_TAILS = (
    " during the {time}",
    " near the {place}",
    " without any help",
    " if it were {adj}",
    " in a {adj} {place}",
    " after the {noun} leaves",
    " before the {time} ends",
)

_Q_TEMPLATES = (
    "Would a {adj} {noun} {n} {verb} the {noun2}",
    "Can a {noun} {n} {verb} a {adj} {noun2}",
    "Is the {adj} {noun} number {n} {adj2}",
    "Which {noun} would {verb} the {adj} {noun2} {n}",
    "Does every {adj} {noun2} {verb} a {noun} {n}",
    "Why would the {noun} {n} {verb} a {adj2} {noun2}",
    "How many {noun}s {n} can {verb} one {adj} {noun2}",
)

_GARBAGE = (
    "I'm sorry, but I can't help with creating those examples right now. ",
    "Sure! Let me think about {noun}s for a moment. ",
    "Creating good examples is an interesting challenge, and the {adj} {noun} is a fine topic. ",
    "As an AI language model, I find the {noun} and the {noun2} equally {adj}. ",
    "Here is a short story instead: a {adj} {noun} went to the {place} one {time}. ",
    "Honestly, the {place} is the best place to {verb} a {noun2}. ",
)


def _fmt_duration(seconds: float) -> str:
    """OpenAI-style duration: '120ms', '1.5s', '20s', '6m0s', '1m30.5s'."""
    if seconds <= 0:
        return "0s"
    ms = math.ceil(seconds * 1000 - 1e-9)
    if ms < 1000:
        return f"{ms}ms"
    s = ms / 1000.0
    if s < 60:
        return f"{s:g}s"
    m = int(s // 60)
    rest = round(s - 60 * m, 3)
    return f"{m}m{rest:g}s"


def _err(message: str, type_: str, code: str | None = None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


# --------------------------------------------------------------------------- rate limiting


class Bucket:
    """Token bucket: capacity = per-minute limit, refilled continuously at limit/60 per second."""

    __slots__ = ("capacity", "rate", "level", "t")

    def __init__(self, per_minute: float) -> None:
        self.capacity = float(per_minute)
        self.rate = float(per_minute) / 60.0
        self.level = float(per_minute)
        self.t = time.monotonic()

    def refill(self, now: float) -> None:
        if now > self.t:
            self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
            self.t = now

    def wait_for(self, amount: float) -> float:
        """Seconds until the bucket holds `amount` (inf if it never can)."""
        if amount > self.capacity:
            return math.inf
        short = amount - self.level
        return 0.0 if short <= 0 else short / self.rate

    def reset_in(self) -> float:
        return (self.capacity - self.level) / self.rate if self.rate > 0 else 0.0


# --------------------------------------------------------------------------- simulator


class _Drop(Exception):
    pass


class Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.n_question = 0
        self.n_completion = 0
        self.served: list[str] = []  # recent served questions (for duplicate faults)
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self.started = time.time()
        self.req_bucket = Bucket(config.rpm) if config.rpm > 0 else None
        self.tok_bucket = Bucket(config.tpm) if config.tpm > 0 else None
        self.quota_used = 0
        self.quota_pending = 0
        self.sem = asyncio.Semaphore(config.max_concurrency) if config.max_concurrency > 0 else None
        self.burst_left: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self.fault_p = {
            "timeout": config.p_timeout, "drop": config.p_drop, "500": config.p_500,
            "garbage": config.p_garbage, "empty": config.p_empty, "malformed": config.p_malformed,
            "wrong_format": config.p_wrong_format, "duplicate": config.p_duplicate,
        }
        self.auth_header = f"Bearer {config.api_key}" if config.api_key else None
        self.tasks: set[asyncio.Task] = set()

    # ---------------------------------------------------------------- helpers

    def _ratelimit_headers(self, now: float) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.cfg.no_ratelimit_headers:
            return h
        rb, tb = self.req_bucket, self.tok_bucket
        if rb is not None:
            rb.refill(now)
            h["x-ratelimit-limit-requests"] = str(int(rb.capacity))
            h["x-ratelimit-remaining-requests"] = str(max(0, int(rb.level)))
            h["x-ratelimit-reset-requests"] = _fmt_duration(rb.reset_in())
        if tb is not None:
            tb.refill(now)
            h["x-ratelimit-limit-tokens"] = str(int(tb.capacity))
            h["x-ratelimit-remaining-tokens"] = str(max(0, int(tb.level)))
            h["x-ratelimit-reset-tokens"] = _fmt_duration(tb.reset_in())
        return h

    def _json(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)

    def _fault(self, name: str) -> bool:
        p = self.fault_p[name]
        if p <= 0:
            return False
        if self.burst_left[name] > 0:
            self.burst_left[name] -= 1
            return True
        if self.rng.random() < p:
            self.burst_left[name] = max(0, self.cfg.fault_burst - 1)
            return True
        return False

    def _words(self) -> dict[str, Any]:
        r = self.rng
        return {
            "adj": r.choice(_ADJ), "adj2": r.choice(_ADJ), "noun": r.choice(_NOUN),
            "noun2": r.choice(_NOUN), "verb": r.choice(_VERB), "place": r.choice(_PLACE),
            "time": r.choice(_TIME),
        }

    def _question(self, exemplar_q_norm: str | None) -> str:
        r = self.rng
        while True:
            self.n_question += 1
            w = self._words()
            q = r.choice(_Q_TEMPLATES).format(n=self.n_question, **w)
            for _ in range(r.randint(0, 2)):
                q += r.choice(_TAILS).format(**self._words())
            q += "?"
            if exemplar_q_norm is None or _norm(q) != exemplar_q_norm:
                return q

    def _sentence(self) -> str:
        r = self.rng
        parts = []
        for _ in range(r.randint(1, 3)):
            w = self._words()
            parts.append(
                r.choice((
                    "The {adj} {noun} likes to {verb} the {noun2} near the {place}.",
                    "Every {time}, a {noun} in the {place} tries to {verb} a {adj} {noun2}.",
                    "Most {noun}s are {adj}, but the {noun2} is usually {adj2}.",
                    "A {adj} {noun2} was seen at the {place} during the {time}.",
                )).format(**w)
            )
        return " ".join(parts)

    def _options(self, n: int) -> list[str]:
        r = self.rng
        out: list[str] = []
        seen: set[str] = set()
        for _ in range(n * 8):
            if len(out) >= n:
                break
            o = r.choice(("{adj} {noun}", "the {noun}", "{verb} the {noun}", "a {adj} {noun2}")).format(
                **self._words()
            )
            if o not in seen:
                seen.add(o)
                out.append(o)
        while len(out) < n:  # pragma: no cover - extremely unlikely
            out.append(f"option {len(out) + 1}")
        return out

    def _make_object(self, exemplar: dict, ex_q_norm: str | None) -> dict:
        r = self.rng
        ex_opts = exemplar.get("Options")
        fixed = _is_yes_no(ex_opts)
        if isinstance(ex_opts, list) and ex_opts:
            opts = list(ex_opts) if fixed else self._options(len(ex_opts))
        else:
            opts = None
        obj: dict[str, Any] = {}
        for key, val in exemplar.items():
            if key == "Question":
                q = self._question(ex_q_norm)
                obj[key] = q
            elif key == "Options":
                obj[key] = opts if opts is not None else val
            elif key == "Answer":
                obj[key] = r.choice(opts) if opts else r.choice(("True", "False"))
            elif key == "Context":
                obj[key] = self._sentence()
            elif isinstance(val, bool):
                obj[key] = r.random() < 0.5
            elif isinstance(val, (int, float)):
                obj[key] = r.randint(0, 100)
            elif isinstance(val, list):
                obj[key] = [r.choice(_NOUN) for _ in val]
            else:
                obj[key] = self._sentence()
        return obj

    def _remember(self, q: str) -> None:
        self.served.append(q)
        if len(self.served) > 20000:
            del self.served[:10000]

    # ---------------------------------------------------------------- content

    def _content(self, exemplar: dict, k: int, json_mode: bool, faults: set[str]) -> tuple[str, int]:
        """Returns (content, number of objects served)."""
        r = self.rng
        if "garbage" in faults:
            s = "".join(r.choice(_GARBAGE).format(**self._words()) for _ in range(r.randint(2, 5)))
            return s.strip(), 0
        if "empty" in faults:
            return "", 0
        ex_q = exemplar.get("Question")
        ex_q_norm = _norm(ex_q) if isinstance(ex_q, str) else None
        objs = [self._make_object(exemplar, ex_q_norm) for _ in range(k)]
        for o in objs:
            q = o.get("Question")
            if isinstance(q, str):
                self._remember(q)
        if "duplicate" in faults and "Question" in exemplar:
            self._duplicate(objs, ex_q)
        missing_field = truncate = False
        if "malformed" in faults:
            mode = r.choice(("truncate", "missing", "both"))
            missing_field = mode in ("missing", "both")
            truncate = mode in ("truncate", "both")
            if missing_field:
                victim = r.choice(objs)
                keys = [k_ for k_ in ("Question", "Options", "Answer") if k_ in victim] or list(victim)
                if keys:
                    del victim[r.choice(keys)]
        if json_mode:
            if "wrong_format" in faults:
                arr = json.dumps(objs, indent=2)
                content = arr if r.random() < 0.5 else "```json\n" + json.dumps({"examples": objs}, indent=2) + "\n```"
            else:
                content = json.dumps({"examples": objs})
        else:
            parts = [json.dumps(o) for o in objs]
            if "wrong_format" in faults:
                mode = r.choice(("array", "fence", "numbered", "lines"))
                if mode == "array":
                    content = json.dumps(objs, indent=r.choice((None, 2)))
                elif mode == "fence":
                    inner = json.dumps(objs, indent=2) if r.random() < 0.5 else "\n\n".join(parts)
                    content = "Here are the examples:\n```json\n" + inner + "\n```"
                elif mode == "numbered":
                    sep = r.choice(("\n", "\n\n"))
                    content = sep.join(f"{i + 1}. {p}" for i, p in enumerate(parts))
                else:
                    content = "\n".join(parts)
            else:
                content = "\n\n".join(parts)
        if truncate and content:
            # cut inside the last object (as if the model stopped mid-object)
            last = content.rfind("{")
            if last < 0:
                last = 0
            end = len(content) - 1
            lo = min(last + 2, end)
            cut = r.randint(lo, max(lo, end - 1))
            content = content[:cut]
        return content, len(objs)

    def _duplicate(self, objs: list[dict], ex_q: Any) -> None:
        """Make 1..K objects repeat the exemplar's question, an earlier reply's question, or a
        sibling's question; sometimes with case / white-space changes."""
        r = self.rng
        idx = list(range(len(objs)))
        r.shuffle(idx)
        earlier = len(self.served) - len(objs)  # served before this reply
        for j in idx[: r.randint(1, len(objs))]:
            src = r.random()
            if src < 0.5 and earlier > 0:
                q = self.served[r.randrange(earlier)]
            elif src < 0.7 and len(objs) > 1:
                q = objs[r.choice([i for i in idx if i != j])].get("Question")
            else:
                q = ex_q
            if not isinstance(q, str):
                q = ex_q
            if not isinstance(q, str):
                continue
            t = r.random()
            if t < 0.2:
                q = q.upper()
            elif t < 0.4:
                q = q.lower()
            elif t < 0.6:
                q = "  " + q.replace(" ", "  ", 1) + " "
            objs[j]["Question"] = q

    # ---------------------------------------------------------------- handlers

    async def chat(self, request: web.Request) -> web.StreamResponse:
        st = self.stats
        st["requests"] += 1
        st["in_flight"] += 1
        if st["in_flight"] > st["max_in_flight"]:
            st["max_in_flight"] = st["in_flight"]
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            return await self._chat(request)
        finally:
            self.tasks.discard(task)
            self.stats["in_flight"] -= 1

    def cancel_all(self) -> None:
        """Cancel every request still being handled (hung or sleeping): used at shutdown."""
        for t in list(self.tasks):
            t.cancel()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        cfg, st = self.cfg, self.stats
        if self.auth_header is not None and request.headers.get("Authorization") != self.auth_header:
            st["unauthorized"] += 1
            return self._json(401, _err("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
        if cfg.quota > 0 and self.quota_used + self.quota_pending >= cfg.quota:
            st["quota_exceeded"] += 1
            return self._json(
                429,
                _err(
                    "You exceeded your current quota, please check your plan and billing details.",
                    "insufficient_quota", "insufficient_quota",
                ),
            )
        # ---- parse
        try:
            body = orjson.loads(await request.read())
            if not isinstance(body, dict):
                raise ValueError("request body must be a JSON object")
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise ValueError("'messages' must be a non-empty array")
            chars = 0
            system = ""
            user = None
            for m in messages:
                if not isinstance(m, dict):
                    raise ValueError("each message must be an object")
                text = _text(m.get("content"))
                chars += len(text)
                role = m.get("role")
                if role == "system":
                    system += text
                elif role == "user":
                    user = text
            if user is None:
                raise ValueError("no user message")
            try:
                exemplar = json.loads(user)
            except ValueError:
                exemplar = None
            if not isinstance(exemplar, dict):
                raise ValueError("the user message must be ONE JSON object (the exemplar)")
            mk = body.get("max_tokens", body.get("max_completion_tokens"))
            max_tokens = int(mk) if mk is not None else cfg.default_max_tokens
            if max_tokens < 1:
                raise ValueError("max_tokens must be >= 1")
        except (ValueError, TypeError) as e:
            st["bad_request"] += 1
            return self._json(400, _err(f"Invalid request: {e}", "invalid_request_error"))
        km = K_RE.search(system)
        k = min(max(int(km.group(1)), 1), 200) if km else 5
        rf = body.get("response_format")
        json_mode = isinstance(rf, dict) and rf.get("type") in ("json_schema", "json_object")
        model = body.get("model") or cfg.model
        prompt_tokens = -(-chars // 4)
        # ---- rate limits
        now = time.monotonic()
        reserve = prompt_tokens + max_tokens
        rb, tb = self.req_bucket, self.tok_bucket
        if rb is not None or tb is not None:
            if rb is not None:
                rb.refill(now)
            if tb is not None:
                tb.refill(now)
            if tb is not None and reserve > tb.capacity:
                st["rate_limited"] += 1
                st["too_large"] += 1
                return self._json(
                    429,
                    _err(
                        f"Request too large for {model} on tokens per min (TPM): Limit {int(tb.capacity)}, "
                        f"Requested {reserve}. The input or output tokens must be reduced in order to run "
                        "successfully.",
                        "tokens", "rate_limit_exceeded",
                    ),
                    self._ratelimit_headers(now),
                )
            w_req = rb.wait_for(1.0) if rb is not None else 0.0
            w_tok = tb.wait_for(reserve) if tb is not None else 0.0
            if w_req > 0 or w_tok > 0:
                st["rate_limited"] += 1
                wait = max(w_req, w_tok)
                hint = _fmt_duration(wait)
                if w_req > 0:
                    msg = (
                        f"Rate limit reached for requests per min (RPM) on {model}: Limit {int(rb.capacity)}, "
                        f"Used {int(rb.capacity - rb.level)}, Requested 1. Please try again in {hint}."
                    )
                    typ = "requests"
                else:
                    msg = (
                        f"Rate limit reached for tokens per min (TPM) on {model}: Limit {int(tb.capacity)}, "
                        f"Used {int(tb.capacity - tb.level)}, Requested {reserve}. Please try again in {hint}."
                    )
                    typ = "tokens"
                headers = self._ratelimit_headers(now)
                if not cfg.no_retry_after:
                    headers["Retry-After"] = str(max(1, math.ceil(wait - 1e-9)))
                    headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000 - 1e-9)))
                return self._json(429, _err(msg, typ, "rate_limit_exceeded"), headers)
            if rb is not None:
                rb.level -= 1.0
            if tb is not None:
                tb.level -= reserve
        # ---- admitted
        if cfg.quota > 0:
            self.quota_pending += 1
        success = False
        refund = 0
        try:
            faults = {f for f in FAULTS if self._fault(f)}
            transport_fault = next((f for f in ("timeout", "drop", "500") if f in faults), None)
            if transport_fault is not None:
                faults = {transport_fault}
            for f in faults:
                st[_FAULT_COUNTER[f]] += 1
            r = self.rng
            if transport_fault == "timeout":
                refund = max_tokens
                await asyncio.sleep(cfg.hang_s)
                return self._json(504, _err("Gateway timeout (simulated hang).", "server_error"))
            if transport_fault == "500":
                refund = max_tokens
                status = r.choice((500, 502, 503))
                st[f"errors_{status}"] += 1
                if cfg.ttft > 0:
                    await asyncio.sleep(cfg.ttft)
                msg = {
                    500: "The server had an error while processing your request. Sorry about that!",
                    502: "Bad gateway.",
                    503: "The engine is currently overloaded, please try again later.",
                }[status]
                return self._json(status, _err(msg, "server_error"))
            content, n_obj = self._content(exemplar, k, json_mode, faults)
            finish = "stop"
            if "malformed" in faults and content and not _closed(content):
                finish = "length"
            completion_tokens = max(1, -(-len(content) // 4))
            if completion_tokens > max_tokens:  # the model runs out of max_tokens
                content = content[: max_tokens * 4]
                completion_tokens = max_tokens
                finish = "length"
                st["truncated"] += 1
            refund = max(0, max_tokens - completion_tokens)
            delay = cfg.ttft + completion_tokens * cfg.tpot
            if cfg.jitter > 0 and delay > 0:
                delay *= 1.0 + r.uniform(-cfg.jitter, cfg.jitter)
            self.n_completion += 1
            cid = f"chatcmpl-sim{self.n_completion:09d}"
            drop_mode = r.randint(0, 2) if transport_fault == "drop" else -1
            if delay > 0:
                if self.sem is not None:
                    async with self.sem:
                        await asyncio.sleep(max(0.0, delay))
                else:
                    await asyncio.sleep(max(0.0, delay))
            if drop_mode >= 0:
                _drop(request, drop_mode)
                return web.Response(status=200)  # never reaches the client
            st = self.stats  # (may have been reset while we slept)
            st["ok"] += 1
            st["prompt_tokens"] += prompt_tokens
            st["completion_tokens"] += completion_tokens
            st["questions_served"] += n_obj
            success = True
            if tb is not None:
                tb.refill(time.monotonic())
                tb.level = min(tb.capacity, tb.level + refund)
                refund = 0
            payload = {
                "id": cid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content},
                     "logprobs": None, "finish_reason": finish}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                "system_fingerprint": "sim",
            }
            return self._json(200, orjson.dumps(payload), self._ratelimit_headers(time.monotonic()))
        finally:
            if cfg.quota > 0:
                self.quota_pending -= 1
                if success:
                    self.quota_used += 1
            if tb is not None and refund > 0:
                tb.refill(time.monotonic())
                tb.level = min(tb.capacity, tb.level + refund)

    async def models(self, request: web.Request) -> web.Response:
        if self.auth_header is not None and request.headers.get("Authorization") != self.auth_header:
            self.stats["unauthorized"] += 1
            return self._json(401, _err("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
        body = {"object": "list", "data": [{"id": self.cfg.model, "object": "model", "created": int(self.started),
                                            "owned_by": "simulator"}]}
        return self._json(200, orjson.dumps(body))

    async def get_stats(self, request: web.Request) -> web.Response:
        out: dict[str, Any] = dict(self.stats)
        out["uptime_s"] = round(time.time() - self.started, 3)
        out["quota_used"] = self.quota_used
        return self._json(200, orjson.dumps(out))

    async def reset_stats(self, request: web.Request) -> web.Response:
        in_flight = self.stats["in_flight"]
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self.stats["in_flight"] = in_flight
        self.stats["max_in_flight"] = in_flight
        return self._json(200, orjson.dumps({"reset": True}))

    async def health(self, request: web.Request) -> web.Response:
        return self._json(200, b'{"status":"ok"}')


# --------------------------------------------------------------------------- small helpers


def _norm(s: str) -> str:
    return " ".join(s.split()).lower()


def _is_yes_no(opts: Any) -> bool:
    if not isinstance(opts, list) or len(opts) != 2:
        return False
    vals = {str(o).strip().lower() for o in opts}
    return vals == {"true", "false"} or vals == {"yes", "no"}


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    raise ValueError("message content must be a string or a list of parts")


def _closed(content: str) -> bool:
    s = content.rstrip()
    return s.endswith("}") or s.endswith("]") or s.endswith("```")


def _drop(request: web.Request, mode: int) -> None:
    """Kill the connection without a complete reply."""
    tr = request.transport
    if tr is None:
        raise _Drop()
    if mode == 1:  # partial headers
        tr.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Le")
    elif mode == 2:  # full headers, partial body
        tr.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
            b'{"id": "chatcmpl-drop", "object": "chat.completion", "choi'
        )
    tr.abort()


# --------------------------------------------------------------------------- app / server


def build_app(config: SimConfig | None = None) -> web.Application:
    config = config or SimConfig()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    sim = Simulator(config)
    app["simulator"] = sim
    app.router.add_post("/v1/chat/completions", sim.chat)
    app.router.add_post("/chat/completions", sim.chat)
    app.router.add_get("/v1/models", sim.models)
    app.router.add_get("/models", sim.models)
    app.router.add_get("/stats", sim.get_stats)
    app.router.add_post("/stats/reset", sim.reset_stats)
    app.router.add_get("/health", sim.health)
    return app


async def serve(config: SimConfig, ready: Any = None) -> None:
    """Run until SIGTERM/SIGINT. Prints the READY line once listening."""
    app = build_app(config)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, handler_cancellation=True,
        shutdown_timeout=config.shutdown_timeout,
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, backlog=config.backlog, reuse_address=True)
    await site.start()
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    line = f"READY http://{config.host}:{port}/v1"
    if ready is not None:
        ready(line)
    else:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        for site_ in list(runner.sites):
            await site_.stop()  # stop accepting first
        app["simulator"].cancel_all()
        await asyncio.sleep(0)
        await runner.cleanup()


def _add(p: argparse.ArgumentParser, name: str, **kw: Any) -> None:
    names = [f"--{name}"]
    if "_" in name:
        names.append("--" + name.replace("_", "-"))
    p.add_argument(*names, dest=name, **kw)


def parse_args(argv: list[str] | None = None) -> SimConfig:
    d = SimConfig()
    p = argparse.ArgumentParser(prog="python -m benchmarks.simserver", description=__doc__.split("\n")[0])
    _add(p, "host", default=d.host, help="bind address (default 127.0.0.1)")
    _add(p, "port", type=int, default=d.port, help="0 = pick a free port")
    _add(p, "model", default=d.model, help="model id served by /v1/models")
    _add(p, "seed", type=int, default=d.seed)
    _add(p, "ttft", type=float, default=d.ttft, help="seconds to first token")
    _add(p, "tpot", type=float, default=d.tpot, help="seconds per output token")
    _add(p, "jitter", type=float, default=d.jitter, help="uniform +- fraction on the latency")
    _add(p, "max_concurrency", type=int, default=d.max_concurrency, help="slots; 0 = unlimited")
    _add(p, "rpm", type=float, default=d.rpm, help="requests/minute; 0 = unlimited")
    _add(p, "tpm", type=float, default=d.tpm, help="tokens/minute; 0 = unlimited")
    _add(p, "default_max_tokens", type=int, default=d.default_max_tokens)
    _add(p, "no_retry_after", action="store_true", help="omit Retry-After / retry-after-ms on 429")
    _add(p, "no_ratelimit_headers", action="store_true",
         help="omit x-ratelimit-* headers (a server that does not say its limits)")
    _add(p, "api_key", default=d.api_key, help="require 'Authorization: Bearer KEY'")
    _add(p, "quota", type=int, default=d.quota, help="successful completions before insufficient_quota")
    for f in ("p_500", "p_timeout", "p_drop", "p_malformed", "p_duplicate", "p_empty", "p_wrong_format", "p_garbage"):
        _add(p, f, type=float, default=0.0)
    _add(p, "hang_s", type=float, default=d.hang_s, help="how long a p_timeout request hangs")
    _add(p, "fault_burst", type=int, default=d.fault_burst, help="a fired fault repeats for this many requests")
    _add(p, "backlog", type=int, default=d.backlog)
    _add(p, "shutdown_timeout", type=float, default=d.shutdown_timeout)
    ns = p.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(SimConfig)}
    return SimConfig(**{k: v for k, v in vars(ns).items() if k in fields})


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        asyncio.run(serve(cfg))
    except KeyboardInterrupt:  # pragma: no cover
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
