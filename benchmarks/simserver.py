"""A local OpenAI-compatible chat-completions SIMULATOR for tests and benchmarks.

Run:  python -m benchmarks.simserver --port 0 [flags]
When it listens it prints exactly one line ``READY http://127.0.0.1:PORT/v1`` and flushes.
It stops cleanly on SIGTERM / SIGINT.

It answers the prompts the creator renders (a system instruction containing
"You are creating K more examples that follow the format of the example provided" plus one
JSON exemplar as the user message) with K new JSON objects that have the exemplar's keys in the
exemplar's order, joined by blank lines, like the paper's GPT replies. Any other user message gets
a short plain reply, as a model's would be (the faults that cut or garble content leave it alone).

Models, all optional and off by default:
  * latency: ttft + completion_tokens * tpot (+- jitter), optional slot limit (--max_concurrency)
  * the network (--rtt): every request reaches the server, and every answer (a 429 too) the
    client, half a round trip later (+- 20%); on 127.0.0.1 a 429 is otherwise back in a
    millisecond, from a provider across the internet in tens to hundreds
  * rate limits the ways providers enforce and state them (below): --rpm / --tpm / --itpm / --otpm
  * auth (--api_key) and a hard quota (--quota -> 429 insufficient_quota)
  * fault injection: 5xx, hung requests, dropped connections, malformed / duplicate / empty /
    wrongly formatted / garbage content, truncated replies (--p_truncated: a 200 whose content
    stops mid-object, finish_reason "length", every other object whole; --p_malformed mixes
    such cuts with missing fields)
Counters: GET /stats (with "limits": the configuration below), POST /stats/reset (also restarts
the timeline), GET /stats/timeline.

Data quality (issue 14), all off by default, for the creator's filters:
  * --questions_from FILE.jsonl: serve the records of a human file (in a seeded order) instead of
    made-up questions, e.g. a dev split fed back as replies
  * --p_paraphrase P: a served question is, with probability P, a paraphrase of a question served
    earlier (rule-based rewordings: synonyms, a lead-in, contractions, articles, punctuation)
  * --p_mislabel P: a served answer is, with probability P, another option than the true one
  * --label_skew S: the answer is True (yes/no), or the first option (multiple choice), with
    probability S instead of uniformly
  * verification prompts (system "Answer the question. Choose exactly one of the options...")
    are answered with the true answer of a served question, or another option with probability
    --verify_error_rate; deterministic per (seed, question, n-th time it is asked)
  GET /stats/injected lists the paraphrases ([source, paraphrase]), the mislabelled questions and
  the questions verification prompts asked about (normalised: lowercase, single spaces).

Rate limits model the PROVIDERS, not this project's client. Each limit is stated per minute and
enforced by --limit_mode (--token_limit_mode / --token_window_s for the token limits):

  flag / value                     what the server does                      provider source
  --limit_mode bucket (default)    token bucket of capacity = the minute,    Anthropic [A] "token bucket
                                   refilled at limit/60 per s, starts full   algorithm"; OpenAI's 429 waits
                                                                             fit it exactly, Groq's [G] within
                                                                             rounding
  --limit_mode fixed --window_s 1  windows aligned to the clock, each        OpenAI [O2] "60,000 requests/
                                   admitting limit*W/60, reset to zero       minute may be enforced as 1,000
                                                                             requests/second"; Together [T]
  --limit_mode fixed --window_s 10 the same over 10 s                        Azure [Z] "typically 1 or 10
                                                                             seconds"
  --token_window_s 60 (fixed)      a token count "reset each minute"         Azure [Z] TPM
  --limit_mode sliding             no W-second span holds more than its      none found; the IETF draft [I]
                                   share (a log of admissions)               allows "sliding window policies"
  --limit_mode gcra --burst 1      one unit every 60/limit s, --burst s of   none names GCRA; [A] "60 RPM
                                   tolerance (a leaky bucket)                might be enforced as 1 request
                                                                             per second", [O2]
  --limit_mode limits-fixed        enforced by the `limits` library, not     [L]; API gateways (Flask-
             limits-moving         this file: a window from the first        Limiter, slowapi); the counter:
             limits-counter        request, a log, or a sliding window       Cloudflare [CF]; charges kept
                                   counter (LibraryWindow)                   (reserve or max for tokens)
  --itpm / --otpm                  input and output tokens limited apart     [A] ITPM/OTPM; Groq [G] "some
                                                                             organizations"
  --token_accounting refund        prompt+max_tokens, unused given back      [A] older OTPM text
                     reserve       prompt+max_tokens, kept                   [Z] "includes max_tokens, even
                                                                             if your actual response is much
                                                                             shorter"
                     max           max(prompt, max_tokens), kept             [O] "the maximum of max_tokens
                                                                             and the estimated number of
                                                                             tokens"
                     actual        prompt now, completion when generated     [A] current OTPM text
  --count_rejected                 a 429 still costs one request             [O] "unsuccessful requests
                                                                             contribute to your per-minute
                                                                             limit"; [Z] the same
  --max_active N                   at most N requests in flight; one more    [W] "429 Concurrency limit
                                   gets a 429 at once (no headers, no        reached for requests"; [D]
                                   Retry-After): a limit on concurrency,     "200 concurrent requests",
                                   not on a rate; --max_active_message       "429 ... with Rate limited
                                   "Rate limited" for DeepInfra's words      message"
  --headers openai (default)       x-ratelimit-{limit,remaining,reset}-      [O], [Z], [G]
                                   {requests,tokens}, reset "1s", "6m0s"
  --headers groq --rpd N           OpenAI's names, but the request figures   [G] "Always refers to Requests
                                   are a day's bucket (--rpd); RPM unstated  Per Day (RPD)"
  --headers cerebras --rpd N       x-ratelimit-{limit,remaining,reset}-      [C] "x-ratelimit-limit-
                                   requests-day and -tokens-minute, resets   requests-day", "...-tokens-
                                   in seconds; RPM unstated; --rpd the UTC   minute", reset "Time (in
                                   day                                       seconds)"
  --headers fireworks              x-ratelimit-limit-tokens-prompt /         [F] "X-Ratelimit-Limit-Tokens-
                                   -generated (--itpm / --otpm) only: no     Prompt and X-Ratelimit-Limit-
                                   remaining count, no reset                 Tokens-Generated"
  --headers anthropic              anthropic-ratelimit-*, RFC 3339 resets,   [A]
                                   token remaining rounded to 1000
  --headers together               x-ratelimit-*, x-tokenlimit-* (seconds)   [T]
  --headers openrouter             on a 429 only: X-RateLimit-Limit, -Re-    [R] "X-RateLimit-* headers on
                                   maining, -Reset in Unix milliseconds,     the error response"; free models
                                   also in the body's error.metadata; --rpd  20 RPM, 50 or 1000 RPD
                                   a UTC day (a window reset at midnight)
  --headers ietf                   RateLimit-Policy / RateLimit              [I] draft -11
  --headers gemini                 none; a 429's body in Google's error      [GE] 429 bodies quoted in
                                   model: QuotaFailure (the quota's id,      public issues; [GR]
                                   per minute, its limit), RetryInfo         "RetryInfo ... retryDelay"
                                   retryDelay in whole seconds ("39s"), and
                                   "Please retry in 39.84s." (--body_hint)
  --headers none                   nothing                                   Together's current docs: none
                                                                             on a 200 [T2]
  --headers_report minute          per-minute figures while enforcing less   [Z] headers "per minute"; [O2],
                                                                             [A] enforce over shorter periods
  --headers_report window          the enforced window's own figures         [T] "per sec"
                                   (the 429 message's Limit / Used follow the same figures)
  --retry_after ms (default)       retry-after-ms + Retry-After (s)          [Z] "retry-after-ms"
                seconds            Retry-After, whole seconds rounded up     [A], [G] "In seconds"
                date               Retry-After as an HTTP-date               RFC 9110 section 10.2.3
                none               nothing                                   [O] guide lists none
  --body_hint (default)            "... Please try again in 5.289s."         [O], [G] 429 messages
  --no_body_hint                   the message without the wait

  [O]  https://platform.openai.com/docs/guides/rate-limits
  [O2] https://help.openai.com/en/articles/6891753
  [A]  https://platform.claude.com/docs/en/api/rate-limits (older: docs.anthropic.com/en/api/rate-limits)
  [Z]  https://learn.microsoft.com/en-us/azure/foundry-classic/openai/how-to/quota
  [G]  https://console.groq.com/docs/rate-limits
  [T]  https://docs.together.ai/docs/rate-limits
  [T2] https://docs.together.ai/docs/serverless/rate-limits
  [R]  https://openrouter.ai/docs/api-reference/limits
  [C]  https://inference-docs.cerebras.ai/support/rate-limits
  [F]  https://docs.fireworks.ai/serverless/rate-limits
  [I]  https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/
  [W]  https://docs.wandb.ai/guides/inference/usage-limits/ ("Concurrency limits")
  [D]  https://deepinfra.com/docs/advanced/rate-limits
  [L]  https://pypi.org/project/limits/ (alisaifee/limits: "Supported Strategies")
  [CF] https://blog.cloudflare.com/counting-things-a-lot-of-different-things/
  [GE] https://ai.google.dev/gemini-api/docs/rate-limits ; bodies: github.com/google-gemini/gemini-cli
       issues 13112, 22486; google-gemini/gemini-cli-action issue 36; googleapis/python-genai PR 2114
  [GR] https://cloud.google.com/java/docs/reference/proto-google-common-protos/latest/com.google.rpc.RetryInfo
The quotes are beside the code that follows them.

Combinations: OpenAI-like = defaults, or --limit_mode fixed --window_s 1 --token_accounting max
--count_rejected; Azure-like = --limit_mode fixed --window_s 10 --token_window_s 60
--token_accounting reserve --count_rejected; Anthropic-like = --itpm/--otpm --token_accounting
actual --headers anthropic --retry_after seconds (add --limit_mode gcra --token_limit_mode bucket
for its "1 request per second"); Together-like = --limit_mode fixed --window_s 1 --headers together
--headers_report window --retry_after seconds; Groq-like = --headers groq --rpd 500000
--retry_after seconds with --rpm and --tpm (how Groq enforces RPM is not documented: add
--limit_mode fixed --window_s 1 for the quantized case, --token_limit_mode bucket for its 429s'
arithmetic).

A request that could never fit a limit as enforced (more than a window's share, or than the gcra
burst) gets a 429 "Request too large" with no Retry-After, as one larger than the whole minute
does: pick windows and --burst that hold your largest request (prompt + max_tokens unless
--token_accounting actual).

GET /stats/timeline: per-second lists since start (or the last POST /stats/reset) of requests
admitted, answered 429 (rate_limited), completed (ok) and their input_tokens / output_tokens
(counted when the reply is sent), reserved_tokens (prompt + max_tokens of each admitted request,
what a limit counting max_tokens charges), with t0 (the whole Unix second of entry 0) and the configured
limits, so a benchmark can plot sent/s against limit/60 and compute the share of the limit held.
The sums equal /stats admitted, rate_limited, ok, prompt_tokens and completion_tokens.

Batch API (on unless --no_batch), as OpenAI documents it, on a time scale so a 24 h window runs in
seconds: POST /v1/files (multipart, purpose "batch"), GET /v1/files/{id}, GET /v1/files/{id}/content,
POST /v1/batches, GET /v1/batches (newest first, limit/after), GET /v1/batches/{id}, POST
/v1/batches/{id}/cancel; counters at GET /stats/batch. Times are simulated seconds, turned into real
ones by --batch_time_scale (simulated seconds per real second: 43200 runs 24 h in 2 s):

  flag                          what the server does                         source
  (always)                      lines {custom_id, method POST, url, body}    [B] request input object
                                with custom_ids unique in the file; else
                                the batch fails validation with errors.data
  (always)                      completion_window "24h" only, endpoint       [B] "Currently only 24h is
                                /v1/chat/completions; else 400                supported"
  --batch_max_requests 50000    a file of more lines (or more than           [B] "The file can contain up
  --batch_max_bytes 200000000   --batch_max_bytes) fails validation           to 50,000 requests, and can
                                                                             be up to 200 MB in size"
  --batch_validate_s 60         validating, then in_progress                 [B] statuses validating,
  --batch_line_s 1              one line finished every line_s, in order     failed, in_progress,
  --batch_finalize_s 60         finalizing, then completed                   finalizing, completed,
  --batch_window_s 86400        not finished by then: expired; the lines     expired, cancelling,
                                finished are in the output file, the rest    cancelled; [F] "remaining
                                in the error file as batch_expired           work is cancelled and any
                                                                             already completed work is
                                                                             returned"
  --batch_p_error P             a line fails (500/503/429 in its response)   [R] request output object:
  --batch_errors_in_output      ... in the output file instead of the        response {status_code,
                                error file (providers differ)                request_id, body}, error
  --batch_p_fail P              a batch fails validation                     [B] failed
  --batch_p_cancel P            a batch is cancelled while in progress (as   [B] cancelling, cancelled
                                its owner may); finished lines returned
  --no_batch                    no batch endpoints (404), as most servers    vLLM/llama.cpp serve none
  Outputs are billed at the batch price (half, [F] "50% cost discount"): /stats/batch counts
  their prompt and completion tokens apart from /stats's; lines_completed_twice counts a custom_id
  answered by two batches and batches_from_a_used_file a file submitted twice.

  [B] https://platform.openai.com/docs/api-reference/batch/create (and /object)
  [R] https://platform.openai.com/docs/api-reference/batch/request-output
  [F] https://help.openai.com/en/articles/9197833 (Batch API FAQ)

Embedding: ``build_app(SimConfig(...))`` returns an aiohttp ``web.Application``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import datetime
import email.utils
import json
import math
import random
import re
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

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
    rtt: float = 0.0  # a network round trip: half on the way in, half on the way out (+- RTT_JITTER)
    max_concurrency: int = 0  # 0 = unlimited
    # rate limits, each stated per minute (0 = unlimited)
    rpm: float = 0.0
    tpm: float = 0.0
    itpm: float = 0.0  # input (prompt) tokens per minute
    otpm: float = 0.0  # output (completion) tokens per minute
    max_active: int = 0  # requests in flight at once; one more gets a 429 (0 = unlimited)
    max_active_message: str = "Concurrency limit reached for requests"  # W&B's; DeepInfra's: "Rate limited"
    rpd: float = 0.0  # requests per day: a bucket of a day (Groq states it, not RPM: --headers groq),
    # or the UTC day with --headers openrouter or cerebras
    default_max_tokens: int = 1024
    # how the limits are enforced (see the module docstring for the provider behind each)
    limit_mode: str = "bucket"  # bucket | fixed | sliding | gcra
    window_s: float = 1.0  # fixed / sliding window length
    burst: float = 1.0  # gcra: seconds' worth of each limit that may arrive at once
    token_limit_mode: str = ""  # "" = as limit_mode; a different mode for the token limits
    token_window_s: float = 0.0  # 0 = as window_s; a different window for the token limits
    token_accounting: str = "refund"  # refund | reserve | max | actual
    count_rejected: bool = False  # a 429'd request still counts against the requests limit
    # what a rate-limited server says
    headers: str = "openai"  # openai | groq | anthropic | together | openrouter | ietf | none
    headers_report: str = "minute"  # minute | window
    retry_after: str = "ms"  # ms | seconds | date | none
    body_hint: bool = True  # "Please try again in 1.5s." in the 429 message
    no_retry_after: bool = False  # alias of retry_after="none"
    no_ratelimit_headers: bool = False  # alias of headers="none"
    # auth / quota
    api_key: str | None = None
    quota: int = 0  # 0 = unlimited
    # fault injection probabilities
    p_500: float = 0.0
    p_timeout: float = 0.0
    p_drop: float = 0.0
    p_malformed: float = 0.0
    p_truncated: float = 0.0  # content cut inside its last object, finish_reason "length"
    p_duplicate: float = 0.0
    p_empty: float = 0.0
    p_wrong_format: float = 0.0
    p_garbage: float = 0.0
    hang_s: float = 300.0
    # data quality (issue 14): content the creator's filters must catch
    questions_from: str | None = None
    p_paraphrase: float = 0.0
    p_mislabel: float = 0.0
    label_skew: float | None = None
    verify_error_rate: float = 0.0
    fault_burst: int = 1  # a fired fault also hits the next fault_burst-1 admitted requests
    # server
    backlog: int = 8192
    shutdown_timeout: float = 1.0
    # batch API (see the module docstring); times in simulated seconds
    batch: bool = True
    batch_time_scale: float = 1.0  # simulated seconds per real second
    batch_validate_s: float = 60.0
    batch_line_s: float = 1.0
    batch_finalize_s: float = 60.0
    batch_window_s: float = 86400.0
    batch_cancel_s: float = 60.0
    batch_p_error: float = 0.0
    batch_errors_in_output: bool = False
    batch_p_fail: float = 0.0
    batch_p_cancel: float = 0.0
    batch_max_requests: int = 50_000
    batch_max_bytes: int = 200_000_000

    def __post_init__(self) -> None:
        if self.no_retry_after:
            self.retry_after = "none"
        if self.no_ratelimit_headers:
            self.headers = "none"
        for name, allowed in (("limit_mode", LIMIT_MODES), ("token_accounting", TOKEN_ACCOUNTING),
                              ("headers", HEADER_DIALECTS), ("headers_report", HEADERS_REPORT),
                              ("retry_after", RETRY_AFTER)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        if self.token_limit_mode not in ("", *LIMIT_MODES):
            raise ValueError(f"token_limit_mode must be one of {', '.join(LIMIT_MODES)}")
        if self.window_s <= 0 or self.token_window_s < 0 or self.burst <= 0:
            raise ValueError("window_s and burst must be > 0 (token_window_s >= 0)")
        for name in ("rpm", "tpm", "itpm", "otpm"):
            per_minute = getattr(self, name)
            mode, window = self.mode_for(name)
            if per_minute > 0 and mode == "sliding" and per_minute * window / 60.0 < 1.0:
                raise ValueError(f"--{name} {per_minute:g} in a sliding window of {window:g} s allows less than one "
                                 f"unit per window: raise the window")
            if per_minute > 0 and mode in LIBRARY_MODES:
                if window != int(window) or per_minute * window / 60.0 < 1.0:
                    raise ValueError(f"--limit_mode {mode} takes whole seconds of window holding one unit at "
                                     f"least: --{name} {per_minute:g} over {window:g} s")
                if name != "rpm" and self.token_accounting not in ("reserve", "max"):
                    raise ValueError(f"--limit_mode {mode} keeps what it charges: token limits need "
                                     f"--token_accounting reserve or max")

    def mode_for(self, limit: str) -> tuple[str, float]:
        """(enforcement mode, window seconds) of one limit: 'rpm', 'tpm', 'itpm' or 'otpm'."""
        if limit == "rpm":
            return self.limit_mode, self.window_s
        if limit == "rpd":  # OpenRouter's and Cerebras's "per day" is the UTC day; Groq's a bucket
            return ("fixed", DAY_MINUTES * 60) if self.headers in ("openrouter", "cerebras") \
                else ("bucket", 0.0)
        return self.token_limit_mode or self.limit_mode, self.token_window_s or self.window_s


# enforced by the `limits` library rather than by this file (LibraryWindow)
LIBRARY_MODES = ("limits-fixed", "limits-moving", "limits-counter")
LIMIT_MODES = ("bucket", "fixed", "sliding", "gcra", *LIBRARY_MODES)
TOKEN_ACCOUNTING = ("refund", "reserve", "max", "actual")
HEADER_DIALECTS = ("openai", "groq", "cerebras", "fireworks", "anthropic", "together", "openrouter",
                   "ietf", "gemini", "none")
HEADERS_REPORT = ("minute", "window")
RETRY_AFTER = ("ms", "seconds", "date", "none")

RTT_JITTER = 0.2  # --rtt varies by this share either way
PLAIN_REPLY = "OK, understood."  # to a user message that is not one JSON object
FAULTS = ("timeout", "drop", "500", "garbage", "empty", "malformed", "truncated", "wrong_format",
          "duplicate")
_FAULT_COUNTER = {
    "timeout": "timeouts",
    "drop": "drops",
    "500": "errors_5xx",
    "garbage": "garbage",
    "empty": "empty",
    "malformed": "malformed",
    "truncated": "truncated",  # (also counts replies cut at max_tokens)
    "wrong_format": "wrong_format",
    "duplicate": "duplicates",
}
STAT_KEYS = (
    "requests", "ok", "rate_limited", "quota_exceeded", "unauthorized", "bad_request",
    "too_large", "errors_5xx", "errors_500", "errors_502", "errors_503", "timeouts", "drops",
    "malformed", "duplicates", "empty", "wrong_format", "garbage", "truncated", "prompt_tokens",
    "completion_tokens", "in_flight", "max_in_flight", "questions_served",
    "admitted", "rate_limited_requests", "rate_limited_tokens", "rate_limited_input_tokens",
    "rate_limited_output_tokens", "rate_limited_requests_day", "rejected_counted",
    "paraphrases", "mislabelled", "verify_requests", "verify_wrong", "verify_unknown",
    "rate_limited_active",
)

K_RE = re.compile(r"creating\s+(\d+)\s+more\s+examples", re.IGNORECASE)
VERIFY_RE = re.compile(r"answer the question\.\s+choose exactly one of the options", re.IGNORECASE)

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
#
# Every limit is stated per minute (--rpm, --tpm, --itpm, --otpm) and enforced by one limiter of the
# mode chosen with --limit_mode (--token_limit_mode for the token limits). All limiters share one
# small interface, with `now` from time.monotonic():
#   capacity          the most one request may cost and still ever be admitted
#   window_s          the length of time `capacity` belongs to (reported with --headers_report window)
#   remaining(now)    what may still be admitted now (negative = in debt)
#   wait_for(n, now)  seconds until a cost of n fits (0 = now, inf = never)
#   take(n, now)      charge n; returns a receipt for refund()
#   refund(r, n, now) give back n of what receipt r charged (if its window is still open)
#   reset_in(now)     seconds until the limiter is back to its initial (full) state
# Charges may drive a limiter below zero (a 429'd request counted by --count_rejected, or output
# tokens charged as generated by --token_accounting actual): the debt then delays later requests.

_EPS = 1e-9


class Clock:
    """Wall-clock seconds for a monotonic instant: fixed windows are aligned to the server's clock
    (window k covers [k*W, (k+1)*W) in Unix time) yet never jump when the wall clock is adjusted."""

    def __init__(self) -> None:
        self.mono0 = time.monotonic()
        self.wall0 = time.time()

    def wall(self, mono: float) -> float:
        return self.wall0 + (mono - self.mono0)


class Bucket:
    """Token bucket of `capacity` (default: the per-minute limit), starting full and refilled
    continuously at limit/60 per second: the default mode (--limit_mode bucket).

    Anthropic, https://platform.claude.com/docs/en/api/rate-limits : "The API uses the token bucket
    algorithm to do rate limiting. This means that your capacity is continuously replenished up to
    your maximum limit, rather than being reset at fixed intervals." OpenAI's 429 messages fit the
    same bucket exactly, and Groq's within rounding: "Please try again in" = (Used + Requested - Limit) /
    (Limit/60 s), checked on several reported messages, e.g. "Limit 10000, Used 8554, Requested 3082.
    Please try again in 9.816s." (https://github.com/FoundationAgents/MetaGPT/issues/523) and
    "Limit 15000, Used 11972, Requested 4351. Please try again in 5.289s."
    (https://github.com/Aider-AI/aider/issues/3265). "Starting full" is the natural reading
    of "replenished up to your maximum limit"; no provider states it.
    """

    __slots__ = ("capacity", "rate", "level", "t", "window_s")

    def __init__(self, per_minute: float, capacity: float | None = None, now: float | None = None) -> None:
        self.rate = float(per_minute) / 60.0
        self.capacity = float(per_minute if capacity is None else capacity)
        self.level = self.capacity
        self.window_s = self.capacity / self.rate
        self.t = time.monotonic() if now is None else now

    def refill(self, now: float) -> None:
        if now > self.t:
            self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
            self.t = now

    def remaining(self, now: float) -> float:
        self.refill(now)
        return self.level

    def wait_for(self, amount: float, now: float) -> float:
        if amount > self.capacity + _EPS:
            return math.inf
        self.refill(now)
        short = amount - self.level
        return 0.0 if short <= _EPS else short / self.rate

    def take(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level -= amount

    def refund(self, receipt: Any, amount: float, now: float) -> None:
        self.refill(now)
        self.level = min(self.capacity, self.level + amount)

    def reset_in(self, now: float) -> float:
        self.refill(now)
        return max(0.0, (self.capacity - self.level) / self.rate)


class FixedWindow:
    """Quantized fixed windows (--limit_mode fixed): window k = [k*W, (k+1)*W) of the server's
    clock admits limit*W/60; the count starts from zero at each window. When limit*W/60 is not a
    whole number, window k admits floor((k+1)*c) - floor(k*c) (c = limit*W/60), so that any run of
    windows admits the per-minute rate exactly.

    OpenAI, https://help.openai.com/en/articles/6891753 : "Rate limits can be quantized, meaning
    they are enforced over shorter periods of time (e.g. 60,000 requests/minute may be enforced as
    1,000 requests/second)." Azure OpenAI,
    https://learn.microsoft.com/en-us/azure/foundry-classic/openai/how-to/quota : "Azure OpenAI evaluates
    the rate of incoming requests over a small period of time, typically 1 or 10 seconds. If the
    number of requests received during that time exceeds what would be expected at the set RPM
    limit, then new requests receive a 429 response code until the next evaluation period." and,
    for tokens, a running count "that is reset each minute" (--token_window_s 60). Together,
    https://docs.together.ai/docs/rate-limits : "if your rate limit advertised is 60 Requests per
    Minute (RPM). Then we limit requests over 1 Request per Second (RPS) internally."
    """

    __slots__ = ("share", "window_s", "clock", "k", "used", "capacity")

    def __init__(self, per_minute: float, window_s: float, clock: Clock) -> None:
        self.share = float(per_minute) * window_s / 60.0
        self.window_s = float(window_s)
        self.clock = clock
        self.k: int | None = None
        self.used = 0.0
        self.capacity = float(math.ceil(self.share - _EPS))

    def allowance(self, k: int) -> float:
        c = self.share
        if abs(c - round(c)) < _EPS:
            return float(round(c))
        return float(math.floor((k + 1) * c + _EPS) - math.floor(k * c + _EPS))

    def _roll(self, now: float) -> float:
        wall = self.clock.wall(now)
        k = math.floor(wall / self.window_s)
        if k != self.k:
            self.k, self.used = k, 0.0
        return wall

    def remaining(self, now: float) -> float:
        self._roll(now)
        return self.allowance(self.k) - self.used

    def wait_for(self, amount: float, now: float) -> float:
        wall = self._roll(now)
        if amount > self.capacity + _EPS:
            return math.inf
        if self.used + amount <= self.allowance(self.k) + _EPS:
            return 0.0
        for j in range(1, 100_000):  # the next window whose allowance holds `amount`
            if self.allowance(self.k + j) + _EPS >= amount:
                return max(_EPS, (self.k + j) * self.window_s - wall)
        return math.inf  # pragma: no cover - capacity is the largest allowance

    def take(self, amount: float, now: float) -> int:
        self._roll(now)
        self.used += amount
        return self.k

    def refund(self, receipt: Any, amount: float, now: float) -> None:
        self._roll(now)
        if receipt == self.k:  # a closed window's count is gone: nothing to give back
            self.used = max(0.0, self.used - amount)

    def reset_in(self, now: float) -> float:
        wall = self._roll(now)
        return 0.0 if self.used <= _EPS else (self.k + 1) * self.window_s - wall


class SlidingWindow:
    """Sliding window (--limit_mode sliding): a log of admissions; a cost fits while the sum of
    what was admitted in the last W seconds, plus the cost, is at most limit*W/60.

    No LLM provider is known to document a sliding window; the IETF draft allows servers to implement one,
    https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/ (-11, section 4.1.2):
    "The server MAY arbitrarily alter the available quota and effective window between subsequent
    requests; for example, in case of resource saturation or to implement sliding window policies."
    It is here as the strictest reading of "per minute": no window of W seconds ever holds more
    than its share, whatever the phase.
    """

    __slots__ = ("capacity", "window_s", "log", "used")

    def __init__(self, per_minute: float, window_s: float) -> None:
        self.capacity = float(per_minute) * window_s / 60.0
        self.window_s = float(window_s)
        self.log: collections.deque[list[float]] = collections.deque()  # [admitted at, amount]
        self.used = 0.0

    def _expire(self, now: float) -> None:
        log, edge = self.log, now - self.window_s
        while log and log[0][0] <= edge:
            self.used -= log.popleft()[1]
        if not log:
            self.used = 0.0  # no float drift

    def remaining(self, now: float) -> float:
        self._expire(now)
        return self.capacity - self.used

    def wait_for(self, amount: float, now: float) -> float:
        if amount > self.capacity + _EPS:
            return math.inf
        self._expire(now)
        need = self.used + amount - self.capacity
        if need <= _EPS:
            return 0.0
        freed = 0.0
        for t, a in self.log:  # oldest first: usually stops after the first entry or two
            freed += a
            if freed + _EPS >= need:
                return max(_EPS, t + self.window_s - now)
        return max(_EPS, self.log[-1][0] + self.window_s - now) if self.log else 0.0

    def take(self, amount: float, now: float) -> list[float]:
        self._expire(now)
        entry = [now, float(amount)]
        self.log.append(entry)
        self.used += amount
        return entry

    def refund(self, receipt: Any, amount: float, now: float) -> None:
        self._expire(now)
        if receipt is not None and receipt[0] > now - self.window_s:  # still in the window
            r = min(amount, receipt[1])
            receipt[1] -= r
            self.used -= r

    def reset_in(self, now: float) -> float:
        self._expire(now)
        return max(0.0, self.log[-1][0] + self.window_s - now) if self.log else 0.0


class LibraryWindow:
    """A window enforced by a rate-limiting library this project did not write (--limit_mode
    limits-fixed | limits-moving | limits-counter): `limits`, the engine of Flask-Limiter and
    slowapi, with its in-memory storage, https://pypi.org/project/limits/ . Each window admits
    limit*W/60 (whole units) by the library's own arithmetic and clock, so our client is measured
    against enforcement code it was not tuned beside (this file's own modes model the providers'
    documents, but were written next to the client):

    - limits-fixed: "When the first request arrives, a window is started for a fixed duration ...
      when the window expires, the counter resets": windows start at a first request, not at the
      clock's seconds (FixedWindow); an API gateway's per-key counter.
    - limits-moving: a log of admissions; the nth oldest entry must be older than the window (as
      SlidingWindow, by other code).
    - limits-counter: the sliding window counter, two windows aligned to the clock, the previous
      one's count weighted by how much of it the sliding window still covers, assuming its
      requests came evenly. Cloudflare's rate limiting counts this way, "How we built rate
      limiting capable of scaling to millions of domains",
      https://blog.cloudflare.com/counting-things-a-lot-of-different-things/ .

    What it charges it keeps (the library has no refund): token limits take --token_accounting
    reserve or max. Its reset times (the headers' reset, Retry-After) are the library's
    get_window_stats figures, as slowapi's X-RateLimit-Reset are."""

    __slots__ = ("capacity", "window_s", "item", "limiter")

    def __init__(self, mode: str, per_minute: float, window_s: float) -> None:
        from limits import RateLimitItemPerSecond, storage, strategies  # the bench extra

        amount = math.floor(float(per_minute) * window_s / 60.0 + _EPS)
        self.capacity = float(amount)
        self.window_s = float(window_s)
        self.item = RateLimitItemPerSecond(amount, int(window_s))
        kind = {"limits-fixed": strategies.FixedWindowRateLimiter,
                "limits-moving": strategies.MovingWindowRateLimiter,
                "limits-counter": strategies.SlidingWindowCounterRateLimiter}[mode]
        self.limiter = kind(storage.MemoryStorage())

    def remaining(self, now: float) -> float:
        return float(self.limiter.get_window_stats(self.item).remaining)

    def wait_for(self, amount: float, now: float) -> float:
        if amount > self.capacity + _EPS:
            return math.inf
        if self.limiter.test(self.item, cost=math.ceil(amount - _EPS)):
            return 0.0
        return max(_EPS, self.limiter.get_window_stats(self.item).reset_time - time.time())

    def take(self, amount: float, now: float) -> None:
        self.limiter.hit(self.item, cost=math.ceil(amount - _EPS))

    def refund(self, receipt: Any, amount: float, now: float) -> None:
        pass  # (kept: see the class docstring)

    def reset_in(self, now: float) -> float:
        stats = self.limiter.get_window_stats(self.item)
        if stats.remaining >= self.capacity:
            return 0.0
        return max(0.0, stats.reset_time - time.time())


class GCRA:
    """Generic cell rate algorithm (--limit_mode gcra): one unit every T = 60/limit seconds, with a
    tolerance of --burst seconds; a cost n conforms when max(TAT, now) + n*T - now <= burst, where
    TAT is the theoretical arrival time. From idle that admits burst*limit/60 units at once (at
    least one), then one every T. It is a leaky bucket of depth burst*limit/60.

    No provider names GCRA. It models what OpenAI and Anthropic describe as a per-minute limit
    enforced over about a second: Anthropic, https://platform.claude.com/docs/en/api/rate-limits :
    "a rate of 60 requests per minute (RPM) might be enforced as 1 request per second. Short bursts
    of requests can exceed the limit and trigger rate limit errors."; OpenAI,
    https://help.openai.com/en/articles/6891753 : "60,000 requests/minute may be enforced as 1,000
    requests/second" - spaced evenly instead of in window-aligned lumps (compare FixedWindow).
    """

    __slots__ = ("interval", "capacity", "tau", "tat", "window_s")

    def __init__(self, per_minute: float, burst_s: float, now: float | None = None) -> None:
        self.interval = 60.0 / float(per_minute)
        self.capacity = max(1.0, burst_s * float(per_minute) / 60.0)
        self.tau = self.capacity * self.interval
        self.window_s = self.tau
        self.tat = time.monotonic() if now is None else now

    def _backlog(self, now: float) -> float:
        return max(0.0, self.tat - now)

    def remaining(self, now: float) -> float:
        return (self.tau - self._backlog(now)) / self.interval

    def wait_for(self, amount: float, now: float) -> float:
        if amount > self.capacity + _EPS:
            return math.inf
        over = self._backlog(now) + amount * self.interval - self.tau
        return 0.0 if over <= _EPS * self.interval else over

    def take(self, amount: float, now: float) -> None:
        self.tat = max(self.tat, now) + amount * self.interval

    def refund(self, receipt: Any, amount: float, now: float) -> None:
        if self.tat > now:
            self.tat = max(now, self.tat - amount * self.interval)

    def reset_in(self, now: float) -> float:
        return self._backlog(now)


# name used in headers and stats, name used in messages, short name, config field
_KINDS = {
    "requests": ("requests per min (RPM)", "RPM", "rpm"),
    "tokens": ("tokens per min (TPM)", "TPM", "tpm"),
    "input_tokens": ("input tokens per min (ITPM)", "ITPM", "itpm"),
    "output_tokens": ("output tokens per min (OTPM)", "OTPM", "otpm"),
    "requests_day": ("requests per day (RPD)", "RPD", "rpd"),
}
DAY_MINUTES = 1440.0


class Limit:
    """One stated limit (RPM, TPM, ITPM or OTPM): the limiter that enforces it, and a per-minute
    bucket charged alike that gives the per-minute figures a server reports with
    --headers_report minute (the bucket mode is its own shadow)."""

    def __init__(self, kind: str, per_minute: float, mode: str, window_s: float, burst: float,
                 clock: Clock) -> None:
        self.kind = kind
        self.per_minute = float(per_minute)
        self.label, self.short, self.field = _KINDS[kind]
        self.mode = mode
        now = time.monotonic()
        if kind == "requests_day" and mode == "fixed":  # a window of `window_s` (the UTC day)
            self.enforcer: Any = FixedWindow(per_minute / DAY_MINUTES, window_s, clock)
        elif kind == "requests_day":  # `per_minute` is the day's: a bucket of a day, starting full
            self.enforcer = Bucket(per_minute / DAY_MINUTES, capacity=per_minute, now=now)
            self.mode = "bucket"
        elif mode == "bucket":
            self.enforcer = Bucket(per_minute, now=now)
        elif mode == "fixed":
            self.enforcer = FixedWindow(per_minute, window_s, clock)
        elif mode == "sliding":
            self.enforcer = SlidingWindow(per_minute, window_s)
        elif mode in LIBRARY_MODES:
            self.enforcer = LibraryWindow(mode, per_minute, window_s)
        else:
            self.enforcer = GCRA(per_minute, burst, now=now)
        self.shadow = self.enforcer if self.mode == "bucket" else Bucket(per_minute, now=now)

    def take(self, amount: float, now: float) -> Any:
        receipt = self.enforcer.take(amount, now)
        if self.shadow is not self.enforcer:
            self.shadow.take(amount, now)
        return receipt

    def refund(self, receipt: Any, amount: float, now: float) -> None:
        if amount <= 0:
            return
        self.enforcer.refund(receipt, amount, now)
        if self.shadow is not self.enforcer:
            self.shadow.refund(None, amount, now)

    def report(self, now: float, how: str) -> tuple[float, float, float, float]:
        """(limit, remaining, seconds until fully reset, window seconds) as the headers say them:
        per minute (the shadow bucket) or for the enforced window itself."""
        if how == "window":
            e = self.enforcer
            remaining = e.remaining(now)  # (rolls a fixed window to the current one first)
            limit = e.allowance(e.k) if isinstance(e, FixedWindow) else e.capacity
            return limit, remaining, e.reset_in(now), e.window_s
        b = self.shadow
        return self.per_minute, b.remaining(now), b.reset_in(now), 60.0


# --------------------------------------------------------------------------- header dialects
#
# Each takes {kind: (limit, remaining, reset seconds, window seconds)} for the configured limits
# (kind: requests, tokens, input_tokens, output_tokens) and the wall-clock time.


def _count(x: float) -> str:
    """A whole count for a header: never negative, rounded down (a debt reads as 0)."""
    return str(max(0, int(math.floor(x + 1e-9))))


def _rfc3339(wall: float) -> str:
    """UTC instant, whole seconds rounded up, e.g. 2026-12-03T07:40:12Z."""
    return datetime.datetime.fromtimestamp(math.ceil(wall - 1e-6), tz=datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _http_date(wall: float) -> str:
    """RFC 9110 IMF-fixdate, whole seconds rounded up, e.g. Thu, 03 Dec 2026 07:40:12 GMT."""
    return email.utils.formatdate(math.ceil(wall - 1e-6), usegmt=True)


def _headers_openai(rep: dict[str, tuple], wall: float) -> dict[str, str]:
    """OpenAI, https://platform.openai.com/docs/guides/rate-limits : x-ratelimit-limit-requests,
    x-ratelimit-remaining-requests, x-ratelimit-reset-requests ("1s") and the same for -tokens;
    "x-ratelimit-reset-tokens | 6m0s | The time until the rate limit (based on tokens) resets to
    its initial state." Azure OpenAI and Groq use the same names. OpenAI states no input/output
    token limits, so --itpm / --otpm have no header in this dialect."""
    return _x_ratelimit(rep, requests="requests")


def _x_ratelimit(rep: dict[str, tuple], requests: str) -> dict[str, str]:
    """OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens}, the request figures taken
    from the limit `requests` names (the minute's, or Groq's day)."""
    return _triples(rep, {"requests": requests, "tokens": "tokens"}, _fmt_duration)


def _triples(rep: dict[str, tuple], names: dict[str, str],
             reset_text: Callable[[float], str]) -> dict[str, str]:
    """x-ratelimit-{limit,remaining,reset}-NAME for each {NAME: limit kind} configured."""
    h: dict[str, str] = {}
    for name, kind in names.items():
        if kind in rep:
            limit, remaining, reset, _ = rep[kind]
            h[f"x-ratelimit-limit-{name}"] = _count(limit)
            h[f"x-ratelimit-remaining-{name}"] = _count(remaining)
            h[f"x-ratelimit-reset-{name}"] = reset_text(reset)
    return h


def _headers_anthropic(rep: dict[str, tuple], wall: float) -> dict[str, str]:
    """Anthropic, https://platform.claude.com/docs/en/api/rate-limits :
    anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset};
    -reset is "The time when the request rate limit will be fully replenished, provided in RFC 3339
    format."; token remaining values are "rounded to the nearest thousand"; "The
    anthropic-ratelimit-tokens-* headers display the values for the most restrictive limit
    currently in effect ... If Workspace limits do not apply, the headers will return the total
    tokens remaining, where total is the sum of input and output tokens." Here tokens-* is --tpm
    when set, else the sum of the ITPM and OTPM figures (or whichever of them is set)."""
    h: dict[str, str] = {}

    def triple(name: str, limit: float, remaining: float, reset: float, thousands: bool) -> None:
        h[f"anthropic-ratelimit-{name}-limit"] = _count(limit)
        rem = max(0.0, remaining)
        h[f"anthropic-ratelimit-{name}-remaining"] = (
            str(int(math.floor(rem / 1000.0 + 0.5)) * 1000) if thousands else _count(rem))
        h[f"anthropic-ratelimit-{name}-reset"] = _rfc3339(wall + reset)

    if "requests" in rep:
        triple("requests", *rep["requests"][:3], thousands=False)
    for kind, name in (("input_tokens", "input-tokens"), ("output_tokens", "output-tokens")):
        if kind in rep:
            triple(name, *rep[kind][:3], thousands=True)
    if "tokens" in rep:
        triple("tokens", *rep["tokens"][:3], thousands=True)
    else:
        parts = [rep[k] for k in ("input_tokens", "output_tokens") if k in rep]
        if parts:
            triple("tokens", sum(p[0] for p in parts), sum(max(0.0, p[1]) for p in parts),
                   max(p[2] for p in parts), thousands=True)
    return h


def _headers_together(rep: dict[str, tuple], wall: float) -> dict[str, str]:
    """Together, https://docs.together.ai/docs/rate-limits (the version with fixed limits):
    x-ratelimit-limit "The maximum number of requests per sec that are permitted before exhausting
    the rate limit.", x-ratelimit-remaining, x-ratelimit-reset "The time until the rate limit (based
    on requests per sec) resets to its initial state.", x-tokenlimit-limit, x-tokenlimit-remaining
    (tokens per sec). Together's own figures are per second: use --limit_mode fixed --window_s 1
    --headers_report window to reproduce them; with --headers_report minute these names carry the
    per-minute figures. x-ratelimit-reset is in seconds (with decimals here, e.g. 0.25). The token
    figures are --tpm, else the ITPM/OTPM limit with the fewest remaining."""
    h: dict[str, str] = {}
    if "requests" in rep:
        limit, remaining, reset, _ = rep["requests"]
        h["x-ratelimit-limit"] = _count(limit)
        h["x-ratelimit-remaining"] = _count(remaining)
        h["x-ratelimit-reset"] = f"{math.ceil(reset * 1000 - 1e-6) / 1000.0:g}"
    tok = rep.get("tokens") or min((rep[k] for k in ("input_tokens", "output_tokens") if k in rep),
                                   key=lambda r: r[1], default=None)
    if tok is not None:
        h["x-tokenlimit-limit"] = _count(tok[0])
        h["x-tokenlimit-remaining"] = _count(tok[1])
    return h


_IETF_NAMES = {"requests": "requests", "tokens": "tokens", "input_tokens": "input-tokens",
               "output_tokens": "output-tokens"}


def _headers_ietf(rep: dict[str, tuple], wall: float) -> dict[str, str]:
    """IETF draft-ietf-httpapi-ratelimit-headers-11 (an Internet-Draft, not an RFC),
    https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/ : one quota policy per
    limit, `RateLimit-Policy: "requests";q=600;w=60, "tokens";q=90000;qu="tokens";w=60` and
    `RateLimit: "requests";r=59;t=1, ...` ("q" "the quota allocated by this policy measured in
    quota units", "w" a window in seconds where "Sub-second precision is not supported", "r" "the
    available quota", "t" "the number of seconds within which the client can use no more than the
    available quota"). The draft registers no token quota unit (only requests, content-bytes,
    concurrent-requests): qu="tokens" is this simulator's. t is the time until the limit is full
    again, rounded up; w is the window rounded (at least 1)."""
    policy, state = [], []
    for kind, (limit, remaining, reset, window) in rep.items():
        if kind not in _IETF_NAMES:
            continue
        name = _IETF_NAMES[kind]
        qu = "" if kind == "requests" else ';qu="tokens"'
        policy.append(f'"{name}";q={_count(limit)}{qu};w={max(1, round(window))}')
        state.append(f'"{name}";r={_count(remaining)};t={max(0, math.ceil(reset - 1e-6))}')
    return {"RateLimit-Policy": ", ".join(policy), "RateLimit": ", ".join(state)}


def _headers_groq(rep: dict[str, tuple], wall: float) -> dict[str, str]:
    """Groq, https://console.groq.com/docs/rate-limits : OpenAI's names, but the request figures
    are the day's: "x-ratelimit-limit-requests | 14400 | Always refers to Requests Per Day (RPD)",
    x-ratelimit-remaining-requests the same, "x-ratelimit-reset-requests | 2m59.56s | Always
    refers to Requests Per Day (RPD)"; the token figures are per minute ("Always refers to Tokens
    Per Minute (TPM)", reset "7.66s"). RPM is enforced and stated nowhere: --rpm limits, --rpd is
    what the request headers report (a bucket of a day: its reset is the time what was used takes
    to come back, as "2m59.56s" of 14,400 a day is 30 requests')."""
    return _x_ratelimit(rep, requests="requests_day")


def _headers_cerebras(rep: dict[str, tuple], wall: float) -> dict[str, str]:
    """Cerebras, https://inference-docs.cerebras.ai/support/rate-limits : OpenAI's names with the
    period after them, the requests a day's and the tokens a minute's:
    "x-ratelimit-limit-requests-day | Maximum number of requests allowed per day",
    x-ratelimit-limit-tokens-minute, x-ratelimit-remaining-requests-day, x-ratelimit-remaining-
    tokens-minute, "x-ratelimit-reset-requests-day | Time (in seconds) until your daily request limit
    resets" and x-ratelimit-reset-tokens-minute, written "33011.382867097855" and
    "11.382867097854614" in its example (both to the clock's minute: a UTC day and a minute of
    the clock). It enforces RPM ("Requests per minute/hour/day") and states it nowhere: --rpm
    limits, --rpd is the day its request headers report (the UTC day, as with --headers
    openrouter)."""
    return _triples(rep, {"requests-day": "requests_day", "tokens-minute": "tokens"},
                    lambda reset: repr(round(max(0.0, reset), 6)))


def _headers_fireworks(rep: dict[str, tuple], wall: float) -> dict[str, str]:
    """Fireworks, https://docs.fireworks.ai/serverless/rate-limits : "Total Prompt TPM - input
    tokens per minute", "Generated TPM - output tokens per minute"; "Your current effective rate
    limits are in the response headers X-Ratelimit-Limit-Tokens-Prompt and
    X-Ratelimit-Limit-Tokens-Generated" (--itpm and --otpm): the limits only, as documented (no
    remaining count, no reset); requests as OpenAI's names where --rpm is set."""
    h = {f"x-ratelimit-limit-tokens-{name}": _count(rep[kind][0])
         for kind, name in (("input_tokens", "prompt"), ("output_tokens", "generated"))
         if kind in rep}
    return {**h, **_triples(rep, {"requests": "requests"}, _fmt_duration)}


_HEADER_DIALECTS = {
    "openai": _headers_openai,
    "groq": _headers_groq,
    "cerebras": _headers_cerebras,
    "fireworks": _headers_fireworks,
    "anthropic": _headers_anthropic,
    "together": _headers_together,
    "ietf": _headers_ietf,
}


# --------------------------------------------------------------------------- timeline


class Timeline:
    """Per-second counts for GET /stats/timeline. Second i covers [t0 + i, t0 + i + 1) of the
    server's wall clock, t0 = the whole second at start or at the last POST /stats/reset, so that
    fixed windows of whole seconds fall on whole entries."""

    # reserved_tokens: prompt + max_tokens of each admitted request, what a token limit that
    # counts max_tokens charges (whatever --token_accounting then gives back)
    # active_ms: the milliseconds requests spent admitted and unanswered (the share of a --max_active
    # limit kept busy: active_ms / 1000 / max_active a second)
    FIELDS = ("admitted", "rate_limited", "ok", "input_tokens", "output_tokens", "reserved_tokens",
              "active_ms")

    def __init__(self, wall: float) -> None:
        self.t0 = math.floor(wall)
        self.cols: dict[str, list[int]] = {f: [] for f in self.FIELDS}

    def _grow(self, n: int) -> None:
        for col in self.cols.values():
            if len(col) < n:
                col.extend([0] * (n - len(col)))

    def add(self, field: str, wall: float, n: int = 1) -> None:
        i = max(0, int(wall - self.t0))
        col = self.cols[field]
        if i >= len(col):
            self._grow(i + 1)
        col[i] += n

    def to_json(self, wall: float) -> dict[str, Any]:
        self._grow(max(0, int(wall - self.t0)) + 1)
        return {"t0": self.t0, "elapsed_s": round(wall - self.t0, 3), "seconds": len(self.cols["ok"]),
                **{f: list(c) for f, c in self.cols.items()}}


# --------------------------------------------------------------------------- simulator


class _Drop(Exception):
    pass


class Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.rng_net = random.Random(f"{config.seed}|net")  # apart: --rtt leaves the replies as they were
        self.n_question = 0
        self.n_completion = 0
        self.served: list[str] = []  # recent served questions (for duplicate faults)
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self.started = time.time()
        self.clock = Clock()
        self.limits: dict[str, Limit] = {}
        for kind, (_, _, field) in _KINDS.items():
            per_minute = getattr(config, field)
            if per_minute > 0:
                mode, window = config.mode_for(field)
                self.limits[kind] = Limit(kind, per_minute, mode, window, config.burst, self.clock)
        self.timeline = Timeline(self.clock.wall(time.monotonic()))
        self.quota_used = 0
        self.quota_pending = 0
        self.sem = asyncio.Semaphore(config.max_concurrency) if config.max_concurrency > 0 else None
        self.active = 0  # admitted and not yet answered (--max_active)
        self.active_since = time.monotonic()  # when it last changed
        self.burst_left: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self.fault_p = {
            "timeout": config.p_timeout, "drop": config.p_drop, "500": config.p_500,
            "garbage": config.p_garbage, "empty": config.p_empty, "malformed": config.p_malformed,
            "truncated": config.p_truncated, "wrong_format": config.p_wrong_format,
            "duplicate": config.p_duplicate,
        }
        self.auth_header = f"Bearer {config.api_key}" if config.api_key else None
        self.tasks: set[asyncio.Task] = set()
        # issue 14: the true answer of every served question, what was injected, human records
        self.truth: dict[str, str] = {}
        self.asked: collections.Counter[str] = collections.Counter()
        self.injected: dict[str, list] = {"paraphrases": [], "mislabelled": []}
        self.pool = _read_pool(config.questions_from, config.seed) if config.questions_from else []
        self.pool_next = 0

    # ---------------------------------------------------------------- helpers

    def _ratelimit_headers(self, now: float) -> dict[str, str]:
        """The limits, in the dialect of --headers, with the figures of --headers_report."""
        cfg = self.cfg
        if cfg.headers in ("none", "openrouter", "gemini") or not self.limits:  # (429s only)
            return {}
        # (a UTC day is reported as itself: a per-minute figure of it means nothing)
        rep = {kind: lim.report(now, "window" if isinstance(lim.enforcer, FixedWindow) and
                                lim.enforcer.window_s >= DAY_MINUTES * 60 else cfg.headers_report)
               for kind, lim in self.limits.items()}
        return _HEADER_DIALECTS[cfg.headers](rep, self.clock.wall(now))

    def _retry_after_headers(self, wait: float, now: float) -> dict[str, str]:
        """Retry-After on a 429, in the form of --retry_after (none / ms / seconds / date)."""
        mode = self.cfg.retry_after
        if mode == "none":
            # OpenAI's guide lists no Retry-After among its headers; the 429 message carries the wait
            # ("Please try again in 9.816s"), https://platform.openai.com/docs/guides/rate-limits
            return {}
        seconds = str(max(1, math.ceil(wait - 1e-9)))
        if mode == "ms":
            # Azure OpenAI, https://learn.microsoft.com/en-us/azure/foundry-classic/openai/how-to/quota :
            # "retry-after-ms | 2000 | Included in 429 responses. The recommended wait time (in
            # milliseconds) before retrying." Retry-After in whole seconds goes beside it, as this
            # simulator always did (the openai-python SDK reads retry-after-ms first).
            return {"Retry-After": seconds, "retry-after-ms": str(max(1, math.ceil(wait * 1000 - 1e-9)))}
        if mode == "seconds":
            # RFC 9110 delay-seconds, "a non-negative decimal integer, representing time in seconds";
            # rounded up. Anthropic, https://platform.claude.com/docs/en/api/rate-limits : retry-after
            # "The number of seconds to wait until you can retry the request. Earlier retries will
            # fail." Groq, https://console.groq.com/docs/rate-limits : retry-after "In seconds".
            return {"Retry-After": seconds}
        # RFC 9110 section 10.2.3, https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3 : "The
        # Retry-After field value can be either an HTTP-date or a number of seconds". No LLM
        # provider is known to send the date form; clients may still meet it (proxies, gateways).
        return {"Retry-After": _http_date(self.clock.wall(now) + wait)}

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
                choices = opts or ["True", "False"]
                skew = self.cfg.label_skew
                if skew is None:
                    obj[key] = r.choice(choices)
                else:  # the first option (True for yes/no) with probability skew
                    obj[key] = choices[0] if r.random() < skew else r.choice(choices[1:])
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
        objs = [self._human_object(exemplar) or self._make_object(exemplar, ex_q_norm)
                if self.pool else self._make_object(exemplar, ex_q_norm) for _ in range(k)]
        self._inject(objs)  # remembers the true answers (verification prompts need them)
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
        if "truncated" in faults:  # a pure cut: the model stopped mid-object, nothing else wrong
            truncate = True
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

    # ---------------------------------------------------------------- data quality (issue 14)

    def _human_object(self, exemplar: dict) -> dict | None:
        """The next record of --questions_from in the exemplar's shape (None: it does not fit)."""
        rec = self.pool[self.pool_next % len(self.pool)]
        self.pool_next += 1
        ex_opts = exemplar.get("Options")
        if not isinstance(ex_opts, list) or len(ex_opts) != len(rec["options"]):
            return None
        obj: dict[str, Any] = {}
        for key in exemplar:
            if key == "Question":
                obj[key] = rec["question"]
            elif key == "Context":
                obj[key] = rec.get("context") or self._sentence()
            elif key == "Options":
                obj[key] = list(rec["options"])
            elif key == "Answer":
                obj[key] = rec["label"]
        return obj

    def _inject(self, objs: list[dict]) -> None:
        """Paraphrases of earlier questions and wrong answers; remembers every true answer."""
        r, cfg = self.rng, self.cfg
        earlier = len(self.served)
        for obj in objs:
            q, opts, answer = obj.get("Question"), obj.get("Options"), obj.get("Answer")
            if not isinstance(q, str) or not isinstance(opts, list) or answer not in opts:
                continue
            if cfg.p_paraphrase > 0 and earlier and r.random() < cfg.p_paraphrase:
                source = self.served[r.randrange(earlier)]
                obj["Question"] = q = paraphrase(source, r)
                self.stats["paraphrases"] += 1
                _bounded_append(self.injected["paraphrases"], [source, q])
            self.truth[_norm(q)] = str(answer)
            if cfg.p_mislabel > 0 and len(opts) > 1 and r.random() < cfg.p_mislabel:
                obj["Answer"] = r.choice([o for o in opts if o != answer])
                self.stats["mislabelled"] += 1
                _bounded_append(self.injected["mislabelled"], q)
        if len(self.truth) > 400000:  # bounded memory: forget the oldest half
            for key in list(self.truth)[:200000]:
                del self.truth[key]

    def _verify_content(self, shown: dict, json_mode: bool) -> str:
        """A verification prompt's answer: the true one, or with --verify_error_rate another
        option; drawn from (seed, question, how often it was asked) so reruns agree."""
        self.stats["verify_requests"] += 1
        q, opts = shown.get("Question"), shown.get("Options")
        if not isinstance(q, str) or not isinstance(opts, list) or not opts:
            return "I cannot answer that."
        key = _norm(q)
        self.asked[key] += 1
        r = random.Random(f"{self.cfg.seed}|{key}|{self.asked[key]}")
        options = [str(o) for o in opts]
        truth = self.truth.get(key)
        if truth is None or truth not in options:
            self.stats["verify_unknown"] += 1
            answer = r.choice(options)
        elif len(options) > 1 and r.random() < self.cfg.verify_error_rate:
            self.stats["verify_wrong"] += 1
            answer = r.choice([o for o in options if o != truth])
        else:
            answer = truth
        return json.dumps({"Answer": answer}) if json_mode or r.random() < 0.5 else answer

    async def get_injected(self, request: web.Request) -> web.Response:
        """What was injected, and the questions verification prompts asked about."""
        return self._json(200, orjson.dumps({**self.injected, "verified": list(self.asked)}))

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

    # ---------------------------------------------------------------- rate limits

    def _costs(self, prompt: int, max_tokens: int) -> dict[str, tuple[int, int]]:
        """What admission charges each limit, and what must fit in it: {kind: (charge, need)}.

        --token_accounting (the input tokens always count at admission; the chars/4 estimate is
        exact here, so Anthropic's "the estimate is adjusted during the request to reflect the
        actual number of input tokens used" has nothing to adjust):
          refund   prompt + max_tokens now, the unused max_tokens given back at the end. Anthropic's
                   older text, https://docs.anthropic.com/en/api/rate-limits : "OTPM rate limits
                   are estimated based on max_tokens at the beginning of each request, and the
                   estimate is adjusted at the end of the request to reflect the actual number of
                   output tokens used."
          reserve  prompt + max_tokens, never given back. Azure OpenAI,
                   https://learn.microsoft.com/en-us/azure/foundry-classic/openai/how-to/quota :
                   "The rate limit token estimate includes max_tokens, even if your actual response
                   is much shorter."
          max      max(prompt, max_tokens), never given back: OpenAI's sentence read literally,
                   https://platform.openai.com/docs/guides/rate-limits : "Your rate limit is
                   calculated as the maximum of max_tokens and the estimated number of tokens based
                   on the character count of your request."
          actual   the prompt now, the completion when it is generated (charged when the reply is
                   sent), whatever max_tokens says; a limit in debt admits nothing. Anthropic's
                   current text, https://platform.claude.com/docs/en/api/rate-limits : "OTPM rate
                   limits are evaluated in real time as output tokens are produced, counting only
                   the actual tokens generated. The max_tokens parameter does not factor into OTPM
                   rate limit calculations".
        For --itpm the charge is the prompt, for --otpm the max_tokens part (or 0 with actual).
        """
        acct = self.cfg.token_accounting
        out: dict[str, tuple[int, int]] = {}
        for kind in self.limits:
            if kind in ("requests", "requests_day"):
                cost = 1
            elif kind == "input_tokens":
                cost = prompt
            elif kind == "tokens":
                cost = max(prompt, max_tokens) if acct == "max" else prompt if acct == "actual" else prompt + max_tokens
            else:
                cost = 0 if acct == "actual" else max_tokens
            out[kind] = (cost, max(cost, 1))
        return out

    def _settle(self, receipts: dict[str, Any], max_tokens: int, produced: int, now: float) -> None:
        """At the end of an admitted request: give back the unused max_tokens (refund) or charge
        the generated tokens (actual); reserve and max keep what admission charged."""
        acct = self.cfg.token_accounting
        for kind in ("tokens", "output_tokens"):
            lim = self.limits.get(kind)
            if lim is None:
                continue
            if acct == "refund":
                lim.refund(receipts.get(kind), max_tokens - produced, now)
            elif acct == "actual" and produced > 0:
                lim.take(produced, now)

    def _count_refusal(self, kind: str, now: float, too_large: bool = False) -> None:
        st = self.stats
        st["rate_limited"] += 1
        st[f"rate_limited_{kind}"] += 1
        if too_large:
            st["too_large"] += 1
        self.timeline.add("rate_limited", self.clock.wall(now))
        if self.cfg.count_rejected and "requests" in self.limits:
            # OpenAI, https://platform.openai.com/docs/guides/rate-limits : "Note that
            # unsuccessful requests contribute to your per-minute limit, so continuously resending
            # a request won't work." Azure, https://learn.microsoft.com/en-us/azure/foundry-classic/
            # openai/how-to/quota : "Unsuccessful requests still count toward your per-minute rate
            # limit." Here a refused request costs one unit of the requests limit (not tokens).
            self.limits["requests"].take(1, now)
            st["rejected_counted"] += 1

    def _refuse(self, model: str, costs: dict[str, tuple[int, int]], now: float) -> web.Response | None:
        """A 429 if the request does not fit every limit now, else None."""
        cfg = self.cfg
        for kind, lim in self.limits.items():
            need = costs[kind][1]
            if need > lim.enforcer.capacity + _EPS:  # it can never fit: not worth retrying
                msg = f"Request too large for {model} on {lim.label}: Limit {_count(lim.per_minute)}, Requested {need}."
                if need <= lim.per_minute + _EPS:
                    msg += (f" This limit is enforced as {_count(lim.enforcer.capacity)} per "
                            f"{lim.enforcer.window_s:g}s.")
                msg += " The input or output tokens must be reduced in order to run successfully."
                self._count_refusal(kind, now, too_large=True)
                return self._json(429, _err(msg, kind, "rate_limit_exceeded"), self._ratelimit_headers(now))
        waits = {kind: lim.enforcer.wait_for(costs[kind][1], now) for kind, lim in self.limits.items()}
        if max(waits.values()) <= 0:
            return None
        kind = next(k for k in self.limits if waits[k] > 0)  # named in the message (RPM first)
        self._count_refusal(kind, now)
        if cfg.count_rejected:  # the refused request itself may have pushed the wait further out
            waits = {k: lim.enforcer.wait_for(costs[k][1], now) for k, lim in self.limits.items()}
        wait = max(waits.values())
        lim = self.limits[kind]
        if cfg.headers == "openrouter":
            return self._openrouter_429(lim, now)
        if cfg.headers == "gemini":
            return self._gemini_429(lim, model, wait, now)
        limit, remaining = lim.report(now, cfg.headers_report)[:2]
        msg = (f"Rate limit reached for {lim.label} on {model}: Limit {_count(limit)}, "
               f"Used {max(0, round(limit - remaining))}, Requested {costs[kind][1]}.")
        if cfg.body_hint:
            # OpenAI and Groq put the wait in the message: "... Limit 15000, Used 11972, Requested
            # 4351. Please try again in 5.289s." (https://github.com/Aider-AI/aider/issues/3265,
            # https://github.com/FoundationAgents/MetaGPT/issues/523); --no_body_hint leaves it out.
            msg += f" Please try again in {_fmt_duration(wait)}."
        headers = self._ratelimit_headers(now)
        headers.update(self._retry_after_headers(wait, now))
        return self._json(429, _err(msg, kind, "rate_limit_exceeded"), headers)

    def _active_changed(self, now: float, by: int) -> None:
        """The timeline's active_ms: the time requests spent admitted, booked when it changes."""
        if self.active:
            self.timeline.add("active_ms", self.clock.wall(self.active_since),
                              round(1000 * self.active * (now - self.active_since)))
        self.active += by
        self.active_since = now

    def _too_many_active(self, now: float) -> web.Response:
        """A limit on requests in flight, not on a rate. W&B Inference [W]: "If you exceed the rate
        limit, the API returns a 429 Concurrency limit reached for requests response. To fix this
        error, reduce the number of concurrent requests"; DeepInfra [D]: "200 concurrent requests"
        per model, "HTTP 429 response status code with Rate limited message"; DeepSeek's limits are
        per-model concurrency too. None documents a header or a Retry-After for it."""
        st = self.stats
        st["rate_limited"] += 1
        st["rate_limited_active"] += 1
        self.timeline.add("rate_limited", self.clock.wall(now))
        return self._json(429, _err(self.cfg.max_active_message, "rate_limit_error",
                                    "rate_limit_exceeded"))

    def _openrouter_429(self, lim: Limit, now: float) -> web.Response:
        """OpenRouter, https://openrouter.ai/docs/api-reference/limits : its rate limits show as
        "X-RateLimit-* headers on the error response" (none on a 200); free models 20 requests
        a minute and 50 or 1,000 a day, "the UTC day". Its 429s as public bug reports and client
        tests quote them: the reset is the refusing window's end in Unix milliseconds (a whole
        minute, "1789138080000"; a UTC midnight, "1788220800000"), and the body repeats the
        three: {"error":{"message":"Rate limit exceeded: free-models-per-min. ","code":429,
        "metadata":{"headers":{"X-RateLimit-Limit":"20","X-RateLimit-Remaining":"0",
        "X-RateLimit-Reset":"1789138080000"}}}}. No wait in the message; a Retry-After only as
        --retry_after says (OpenRouter-like: none)."""
        limit, remaining, reset, _ = lim.report(now, "window")
        headers = {"X-RateLimit-Limit": _count(limit),
                   "X-RateLimit-Remaining": _count(max(0.0, remaining)),
                   "X-RateLimit-Reset": str(math.ceil((self.clock.wall(now) + reset) * 1000))}
        what = {"requests": "free-models-per-min", "requests_day": "free-models-per-day"}.get(
            lim.kind, lim.short)
        body = orjson.dumps({"error": {"message": f"Rate limit exceeded: {what}. ", "code": 429,
                                       "metadata": {"headers": headers}}})
        if self.cfg.retry_after != "none":
            headers = {**headers, **self._retry_after_headers(reset, now)}
        return self._json(429, body, headers)

    def _gemini_429(self, lim: Limit, model: str, wait: float, now: float) -> web.Response:
        """Gemini [GE]: "Rate limits are applied per project" as RPM, TPM (input tokens) and RPD;
        no rate-limit header on any reply, and a 429 in Google's error model (AIP-193): the
        message names the quota's metric and limit, and "Please retry in 39.844676573s." (left
        out with --no_body_hint), the details a QuotaFailure whose violation names the quota by
        its id (unit and period: "GenerateContentInputTokensPerModelPerMinute-FreeTier",
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier") and its value, and a RetryInfo
        whose retryDelay is whole seconds ("39s" beside 39.84 in the message: "Clients should
        wait at least this long", [GR]). How Gemini enforces a minute is not documented: as
        --limit_mode says. No Retry-After unless --retry_after says (Gemini-like: none)."""
        inputs = ("generate_content_paid_tier_input_token_count",
                  "GenerateContentPaidTierInputTokensPerModelPerMinute")  # (Gemini's TPM: input)
        metric, quota_id = {
            "requests": ("generate_content_paid_tier_requests",
                         "GenerateRequestsPerMinutePerProjectPerModel"),
            "tokens": inputs, "input_tokens": inputs,
            "requests_day": ("generate_content_paid_tier_requests",
                             "GenerateRequestsPerDayPerProjectPerModel"),
        }.get(lim.kind, (f"generate_content_{lim.kind}", f"Generate{lim.short}"))
        value = lim.per_minute  # (a day's count for requests_day)
        msg = ("You exceeded your current quota, please check your plan and billing details. For "
               "more information on this error, head to: https://ai.google.dev/gemini-api/docs/"
               f"rate-limits.\n* Quota exceeded for metric: generativelanguage.googleapis.com/"
               f"{metric}, limit: {_count(value)}, model: {model}")
        if self.cfg.body_hint:
            msg += f"\nPlease retry in {max(0.0, wait):.9f}s."
        body = orjson.dumps({"error": {"code": 429, "message": msg, "status": "RESOURCE_EXHAUSTED",
                                       "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                {"quotaMetric": f"generativelanguage.googleapis.com/{metric}", "quotaId": quota_id,
                 "quotaDimensions": {"location": "global", "model": model},
                 "quotaValue": _count(value)}]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                {"description": "Learn more about Gemini API quotas",
                 "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo",
             "retryDelay": f"{math.floor(max(0.0, wait))}s"}]}})
        return self._json(429, body, self._retry_after_headers(wait, now))

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
            await self._network()  # on its way in: the limits see it this much later
            response = await self._chat(request)
            await self._network()  # on its way out, whatever the answer
            return response
        finally:
            self.tasks.discard(task)
            self.stats["in_flight"] -= 1

    async def _network(self) -> None:
        """Half a round trip (--rtt), +- RTT_JITTER: the requests of a burst arrive, and their
        answers return, a little out of the order they left in."""
        if self.cfg.rtt > 0:
            await asyncio.sleep(0.5 * self.cfg.rtt * self.rng_net.uniform(1 - RTT_JITTER, 1 + RTT_JITTER))

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
                exemplar = None  # any other prompt: a short plain reply (PLAIN_REPLY)
            mk = body.get("max_tokens", body.get("max_completion_tokens"))
            max_tokens = int(mk) if mk is not None else cfg.default_max_tokens
            if max_tokens < 1:
                raise ValueError("max_tokens must be >= 1")
        except (ValueError, TypeError) as e:
            st["bad_request"] += 1
            return self._json(400, _err(f"Invalid request: {e}", "invalid_request_error"))
        verifying = VERIFY_RE.search(system) is not None
        km = K_RE.search(system)
        k = min(max(int(km.group(1)), 1), 200) if km else 5
        rf = body.get("response_format")
        json_mode = isinstance(rf, dict) and rf.get("type") in ("json_schema", "json_object")
        model = body.get("model") or cfg.model
        prompt_tokens = -(-chars // 4)
        # ---- rate limits
        now = time.monotonic()
        if cfg.max_active and self.active >= cfg.max_active:
            return self._too_many_active(now)
        receipts: dict[str, Any] = {}
        if self.limits:
            costs = self._costs(prompt_tokens, max_tokens)
            refused = self._refuse(model, costs, now)
            if refused is not None:
                return refused
            receipts = {kind: lim.take(costs[kind][0], now)
                        for kind, lim in self.limits.items() if costs[kind][0] > 0}
        st["admitted"] += 1
        self._active_changed(now, +1)
        self.timeline.add("admitted", self.clock.wall(now))
        self.timeline.add("reserved_tokens", self.clock.wall(now), prompt_tokens + max_tokens)
        # ---- admitted
        if cfg.quota > 0:
            self.quota_pending += 1
        success = False
        settled = False
        produced = 0  # completion tokens generated (charged or refunded by --token_accounting)
        try:
            faults = {f for f in FAULTS if self._fault(f)}
            if exemplar is None:  # (drawn all the same: the seeded sequence stays as it was)
                faults &= {"timeout", "drop", "500"}
            transport_fault = next((f for f in ("timeout", "drop", "500") if f in faults), None)
            if transport_fault is not None:
                faults = {transport_fault}
            for f in faults:
                st[_FAULT_COUNTER[f]] += 1
            r = self.rng
            if transport_fault == "timeout":
                await asyncio.sleep(cfg.hang_s)
                return self._json(504, _err("Gateway timeout (simulated hang).", "server_error"))
            if transport_fault == "500":
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
            if exemplar is None:  # a model answers any prompt; a client may send one of its
                content, n_obj = PLAIN_REPLY, 0  # own (the creator's limits read, client.py)
            elif verifying:  # issue 14: a blind answer to one created question
                content, n_obj = self._verify_content(exemplar, json_mode), 0
            else:
                content, n_obj = self._content(exemplar, k, json_mode, faults)
            finish = "stop"
            if "malformed" in faults and content and not _closed(content):
                finish = "length"
            if "truncated" in faults and content:
                finish = "length"  # it stopped mid-object, whatever character it stopped on
            completion_tokens = max(1, -(-len(content) // 4))
            if completion_tokens > max_tokens:  # the model runs out of max_tokens
                content = content[: max_tokens * 4]
                completion_tokens = max_tokens
                finish = "length"
                if "truncated" not in faults:  # (counted once)
                    st["truncated"] += 1
            produced = completion_tokens
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
            done = time.monotonic()
            self._settle(receipts, max_tokens, produced, done)
            settled = True
            wall = self.clock.wall(done)
            tl = self.timeline
            tl.add("ok", wall)
            tl.add("input_tokens", wall, prompt_tokens)
            tl.add("output_tokens", wall, completion_tokens)
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
            return self._json(200, orjson.dumps(payload), self._ratelimit_headers(done))
        finally:
            self._active_changed(time.monotonic(), -1)
            if cfg.quota > 0:
                self.quota_pending -= 1
                if success:
                    self.quota_used += 1
            if not settled:  # a fault, a hang, a dropped or cancelled request
                self._settle(receipts, max_tokens, produced, time.monotonic())

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
        out["limits"] = self.limits_info()
        return self._json(200, orjson.dumps(out))

    def limits_info(self) -> dict[str, Any]:
        """The configured limits and how they are enforced and reported."""
        cfg = self.cfg
        info: dict[str, Any] = {f: getattr(cfg, f) for f in ("rpm", "tpm", "itpm", "otpm", "rpd", "max_active")}
        info["per_second"] = {f: getattr(cfg, f) / 60.0 for f in ("rpm", "tpm", "itpm", "otpm")}
        info["enforced"] = {
            lim.field: {"mode": lim.mode, "capacity": lim.enforcer.capacity, "window_s": lim.enforcer.window_s}
            for lim in self.limits.values()
        }
        for f in ("limit_mode", "window_s", "burst", "token_limit_mode", "token_window_s", "token_accounting",
                  "count_rejected", "headers", "headers_report", "retry_after", "body_hint"):
            info[f] = getattr(cfg, f)
        return info

    async def get_timeline(self, request: web.Request) -> web.Response:
        out = self.timeline.to_json(self.clock.wall(time.monotonic()))
        out["limits"] = self.limits_info()
        return self._json(200, orjson.dumps(out))

    async def reset_stats(self, request: web.Request) -> web.Response:
        in_flight = self.stats["in_flight"]
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self.stats["in_flight"] = in_flight
        self.stats["max_in_flight"] = in_flight
        self.timeline = Timeline(self.clock.wall(time.monotonic()))
        return self._json(200, orjson.dumps({"reset": True}))

    async def health(self, request: web.Request) -> web.Response:
        return self._json(200, b'{"status":"ok"}')


# --------------------------------------------------------------------------- batch API


BATCH_STAT_KEYS = (
    "files_uploaded", "batches_created", "batch_lines", "lines_completed", "lines_errored",
    "lines_expired", "lines_cancelled", "lines_failed_validation", "prompt_tokens",
    "completion_tokens", "batches_from_a_used_file", "lines_completed_twice", "cancel_requests",
    "polls", "downloads",
)
BATCH_TERMINAL = ("completed", "failed", "expired", "cancelled")


class BatchSim:
    """OpenAI's Batch API on the simulator's clock (scaled): files, batches and their states.
    A batch's state is worked out whenever it is looked at, from when it was created; its
    replies are made (by the chat simulator's own content model) when it ends."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.cfg = sim.cfg
        self.rng = random.Random(sim.cfg.seed + 7)
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # batch ids, oldest first
        self.used_files: set[str] = set()
        self.completed_ids: set[str] = set()
        self.stats: dict[str, Any] = dict.fromkeys(BATCH_STAT_KEYS, 0)
        self.stats["statuses_seen"] = {}
        self.n = 0

    # ---------------------------------------------------------------- helpers

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n:08d}{self.rng.randrange(16**6):06x}"

    def _auth(self, request: web.Request) -> web.Response | None:
        header = self.sim.auth_header
        if header is not None and request.headers.get("Authorization") != header:
            self.sim.stats["unauthorized"] += 1
            return self.sim._json(401, _err("Incorrect API key provided.", "invalid_request_error",
                                            "invalid_api_key"))
        return None

    def _bad(self, message: str, status: int = 400) -> web.Response:
        return self.sim._json(status, _err(message, "invalid_request_error"))

    def _sim_elapsed(self, b: dict[str, Any]) -> float:
        return (time.monotonic() - b["_mono"]) * self.cfg.batch_time_scale

    def _wall(self, b: dict[str, Any], sim_s: float) -> int:
        return int(b["created_at"] + sim_s)

    def _file_object(self, f: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in f.items() if not k.startswith("_")}

    def _public(self, b: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    # ---------------------------------------------------------------- lifecycle

    def _validate(self, raw: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(lines, errors) of an input file, as OpenAI's validation reports them."""
        errors: list[dict[str, Any]] = []
        lines: list[dict[str, Any]] = []
        seen: set[str] = set()
        if len(raw) > self.cfg.batch_max_bytes:
            return [], [{"code": "file_too_large", "line": None, "param": None,
                         "message": f"The input file can be up to {self.cfg.batch_max_bytes} bytes."}]
        for number, text in enumerate(raw.splitlines(), 1):
            if not text.strip():
                continue
            try:
                line = orjson.loads(text)
            except orjson.JSONDecodeError:
                errors.append({"code": "invalid_json_line", "line": number, "param": None,
                               "message": "This line is not parseable as valid JSON."})
                continue
            cid = line.get("custom_id") if isinstance(line, dict) else None
            if not isinstance(cid, str) or not cid:
                errors.append({"code": "missing_required_parameter", "line": number,
                               "param": "custom_id", "message": "Missing custom_id."})
            elif cid in seen:
                errors.append({"code": "duplicate_custom_id", "line": number, "param": "custom_id",
                               "message": f"The custom_id {cid} is used more than once."})
            elif line.get("method") != "POST" or line.get("url") != endpoint or \
                    not isinstance(line.get("body"), dict):
                errors.append({"code": "invalid_request", "line": number, "param": "url",
                               "message": f"Each line needs method POST, url {endpoint} and a body."})
            else:
                seen.add(cid)
                lines.append(line)
        if len(lines) > self.cfg.batch_max_requests:
            errors.append({"code": "too_many_requests", "line": None, "param": None,
                           "message": f"The input file can contain up to "
                                      f"{self.cfg.batch_max_requests} requests."})
        return lines, errors

    def _advance(self, b: dict[str, Any]) -> None:
        """Bring a batch to the state its age says (simulated seconds since creation)."""
        if b["status"] in BATCH_TERMINAL:
            return
        cfg = self.cfg
        t = self._sim_elapsed(b)
        n = len(b["_lines"])
        validated = cfg.batch_validate_s
        if t < validated:
            return self._seen(b, "validating")
        if b["_fail"]:
            b["failed_at"] = self._wall(b, validated)
            b["errors"] = {"object": "list", "data": b["_fail"]}
            self.stats["lines_failed_validation"] += n
            return self._end(b, "failed", 0)
        b["in_progress_at"] = self._wall(b, validated)
        done_at = validated + n * cfg.batch_line_s
        window = cfg.batch_window_s
        cancel_at = b["_cancel_at"]
        if cancel_at is not None and t >= cancel_at and cancel_at < min(done_at, window):
            b["cancelling_at"] = self._wall(b, cancel_at)
            finished = self._finished(cancel_at)
            if t < cancel_at + cfg.batch_cancel_s:
                b["request_counts"]["completed"] = finished
                return self._seen(b, "cancelling")
            b["cancelled_at"] = self._wall(b, cancel_at + cfg.batch_cancel_s)
            return self._end(b, "cancelled", finished)
        if done_at > window and t >= window:  # [F] the rest is cancelled, the finished returned
            b["expired_at"] = self._wall(b, window)
            return self._end(b, "expired", self._finished(window))
        if t < done_at:
            b["request_counts"]["completed"] = self._finished(t)
            return self._seen(b, "in_progress")
        b["finalizing_at"] = self._wall(b, done_at)
        if t < done_at + cfg.batch_finalize_s:
            b["request_counts"]["completed"] = n
            return self._seen(b, "finalizing")
        b["completed_at"] = self._wall(b, done_at + cfg.batch_finalize_s)
        return self._end(b, "completed", n)

    def _finished(self, t: float) -> int:
        """Lines finished by simulated second t (one every batch_line_s after validation)."""
        cfg = self.cfg
        return max(0, int((t - cfg.batch_validate_s) / cfg.batch_line_s + _EPS)) if cfg.batch_line_s > 0 \
            else 10**9

    def _seen(self, b: dict[str, Any], status: str) -> None:
        b["status"] = status
        seen = self.stats["statuses_seen"]
        seen[status] = seen.get(status, 0) + 1

    def _end(self, b: dict[str, Any], status: str, finished: int) -> None:
        """The batch ends: its first `finished` lines are answered, the rest are not."""
        self._seen(b, status)
        lines = b["_lines"]
        finished = min(finished, len(lines))
        out, err = [], []
        ok = failed = 0
        for i, line in enumerate(lines):
            cid = line["custom_id"]
            rid = self._id("batch_req_")
            if i >= finished:
                if status == "failed":
                    continue  # a batch that failed validation answers no line
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                message = ("This request could not be executed before the completion window "
                           "expired." if status == "expired" else "The batch was cancelled.")
                err.append({"id": rid, "custom_id": cid, "response": None,
                            "error": {"code": code, "message": message}})
                self.stats["lines_expired" if status == "expired" else "lines_cancelled"] += 1
                failed += 1
                continue
            code, body = self._reply(line["body"])
            entry = {"id": rid, "custom_id": cid,
                     "response": {"status_code": code, "request_id": self._id("req_"), "body": body},
                     "error": None}
            if code == 200:
                out.append(entry)
                ok += 1
                self.stats["lines_completed"] += 1
                if cid in self.completed_ids:
                    self.stats["lines_completed_twice"] += 1
                self.completed_ids.add(cid)
            else:
                (out if self.cfg.batch_errors_in_output else err).append(entry)
                failed += 1
                self.stats["lines_errored"] += 1
        b["request_counts"] = {"total": len(lines), "completed": ok, "failed": failed}
        if out:
            b["output_file_id"] = self._store(out, f"batch_{b['id']}_output.jsonl", "batch_output")
        if err:
            b["error_file_id"] = self._store(err, f"batch_{b['id']}_error.jsonl", "batch_output")

    def _store(self, rows: list[dict[str, Any]], name: str, purpose: str) -> str:
        data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
        fid = self._id("file-")
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(data),
                           "created_at": int(time.time()), "filename": name, "purpose": purpose,
                           "_data": data}
        return fid

    def _reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One line's reply: what /v1/chat/completions would answer, without its latency,
        limits or transport faults (a batch has none of those); --batch_p_error fails it."""
        sim, cfg = self.sim, self.cfg
        if cfg.batch_p_error > 0 and self.rng.random() < cfg.batch_p_error:
            status = self.rng.choice((500, 503, 429))
            message = {500: "The server had an error while processing your request.",
                       503: "The engine is currently overloaded, please try again later.",
                       429: "Rate limit reached for requests."}[status]
            return status, json.loads(_err(message, "server_error" if status != 429 else "requests",
                                           None if status != 429 else "rate_limit_exceeded"))
        try:
            messages = body.get("messages") or []
            chars, system, user = 0, "", None
            for m in messages:
                text = _text(m.get("content"))
                chars += len(text)
                if m.get("role") == "system":
                    system += text
                elif m.get("role") == "user":
                    user = text
            exemplar = json.loads(user) if user else None
            mk = body.get("max_tokens", body.get("max_completion_tokens"))
            max_tokens = int(mk) if mk is not None else cfg.default_max_tokens
        except (ValueError, TypeError, AttributeError) as e:
            return 400, json.loads(_err(f"Invalid request: {e}", "invalid_request_error"))
        if not isinstance(exemplar, dict):
            return 400, json.loads(_err("Invalid request: the user message must be ONE JSON object "
                                        "(the exemplar)", "invalid_request_error"))
        km = K_RE.search(system)
        k = min(max(int(km.group(1)), 1), 200) if km else 5
        rf = body.get("response_format")
        json_mode = isinstance(rf, dict) and rf.get("type") in ("json_schema", "json_object")
        content_faults = ("garbage", "empty", "malformed", "wrong_format", "duplicate")
        faults = {f for f in content_faults if sim._fault(f)}
        content, _ = sim._content(exemplar, k, json_mode, faults)
        prompt_tokens = -(-chars // 4)
        completion_tokens = max(1, -(-len(content) // 4))
        finish = "stop"
        if completion_tokens > max_tokens:
            content, completion_tokens, finish = content[: max_tokens * 4], max_tokens, "length"
        self.stats["prompt_tokens"] += prompt_tokens
        self.stats["completion_tokens"] += completion_tokens
        sim.n_completion += 1
        return 200, {
            "id": f"chatcmpl-sim{sim.n_completion:09d}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model") or cfg.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
            "system_fingerprint": "sim-batch",
        }

    # ---------------------------------------------------------------- handlers

    async def upload(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        try:
            form = await request.post()
        except (ValueError, web.HTTPException) as e:
            return self._bad(f"expected a multipart form with 'purpose' and 'file': {e}")
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose != "batch":
            return self._bad("purpose must be 'batch' here")
        if not isinstance(upload, web.FileField):
            return self._bad("'file' must be a file")
        data = upload.file.read()
        fid = self._id("file-")
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(data),
                           "created_at": int(time.time()), "filename": upload.filename,
                           "purpose": "batch", "_data": data}
        self.stats["files_uploaded"] += 1
        return self.sim._json(200, orjson.dumps(self._file_object(self.files[fid])))

    async def get_file(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        f = self.files.get(request.match_info["file_id"])
        if f is None:
            return self._bad("No such file.", 404)
        return self.sim._json(200, orjson.dumps(self._file_object(f)))

    async def file_content(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        f = self.files.get(request.match_info["file_id"])
        if f is None:
            return self._bad("No such file.", 404)
        self.stats["downloads"] += 1
        return web.Response(status=200, body=f["_data"], content_type="application/octet-stream")

    async def create(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        try:
            body = orjson.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._bad("the body must be a JSON object")
        fid, endpoint = body.get("input_file_id"), body.get("endpoint")
        if body.get("completion_window") != "24h":
            return self._bad("completion_window: currently only 24h is supported")
        if endpoint not in ("/v1/chat/completions",):
            return self._bad("endpoint: this simulator batches /v1/chat/completions only")
        f = self.files.get(fid) if isinstance(fid, str) else None
        if f is None or f["purpose"] != "batch":
            return self._bad(f"No batch input file with id {fid!r}.", 404)
        if fid in self.used_files:
            self.stats["batches_from_a_used_file"] += 1
        self.used_files.add(fid)
        lines, errors = self._validate(f["_data"], endpoint)
        now = time.time()
        bid = self._id("batch_")
        fail = errors or None
        if fail is None and self.cfg.batch_p_fail > 0 and self.rng.random() < self.cfg.batch_p_fail:
            fail = [{"code": "token_limit_exceeded", "line": None, "param": None,
                     "message": "Enqueued token limit reached (simulated)."}]
        cancel_at = None
        if self.cfg.batch_p_cancel > 0 and self.rng.random() < self.cfg.batch_p_cancel and lines:
            span = len(lines) * self.cfg.batch_line_s
            cancel_at = self.cfg.batch_validate_s + self.rng.uniform(0.1, 0.9) * span
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
        b: dict[str, Any] = {
            "id": bid, "object": "batch", "endpoint": endpoint, "errors": None,
            "input_file_id": fid, "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": int(now),
            "in_progress_at": None, "expires_at": int(now + self.cfg.batch_window_s),
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": metadata, "model": None,
            "_mono": time.monotonic(), "_lines": lines, "_fail": fail, "_cancel_at": cancel_at,
        }
        self.batches[bid] = b
        self.order.append(bid)
        self.stats["batches_created"] += 1
        self.stats["batch_lines"] += len(lines)
        self._seen(b, "validating")
        return self.sim._json(200, orjson.dumps(self._public(b)))

    async def get(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        b = self.batches.get(request.match_info["batch_id"])
        if b is None:
            return self._bad("No such batch.", 404)
        self.stats["polls"] += 1
        self._advance(b)
        return self.sim._json(200, orjson.dumps(self._public(b)))

    async def list(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        try:
            limit = min(100, max(1, int(request.query.get("limit", "20"))))
        except ValueError:
            return self._bad("limit must be a whole number")
        ids = list(reversed(self.order))  # newest first
        after = request.query.get("after")
        if after in self.batches:
            ids = ids[ids.index(after) + 1:]
        page = ids[:limit]
        for bid in page:
            self._advance(self.batches[bid])
        data = [self._public(self.batches[bid]) for bid in page]
        return self.sim._json(200, orjson.dumps({
            "object": "list", "data": data, "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None, "has_more": len(ids) > limit}))

    async def cancel(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        b = self.batches.get(request.match_info["batch_id"])
        if b is None:
            return self._bad("No such batch.", 404)
        self.stats["cancel_requests"] += 1
        self._advance(b)
        if b["status"] not in ("validating", "in_progress", "finalizing"):
            return self._bad(f"Cannot cancel a batch with status {b['status']}.")
        t = self._sim_elapsed(b)
        if b["status"] == "validating":  # nothing ran: cancelled from the start of processing
            b["_cancel_at"] = self.cfg.batch_validate_s
            b["_mono"] -= (self.cfg.batch_validate_s - t) / self.cfg.batch_time_scale
        else:
            b["_cancel_at"] = t
        self._advance(b)
        return self.sim._json(200, orjson.dumps(self._public(b)))

    async def get_stats(self, request: web.Request) -> web.Response:
        out = dict(self.stats)
        out["by_status"] = {}
        for b in self.batches.values():
            self._advance(b)
            out["by_status"][b["status"]] = out["by_status"].get(b["status"], 0) + 1
        out["in_flight"] = sum(1 for b in self.batches.values() if b["status"] not in BATCH_TERMINAL)
        return self.sim._json(200, orjson.dumps(out))

    def add_routes(self, app: web.Application) -> None:
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/files", self.upload)
            app.router.add_get(f"{prefix}/files/{{file_id}}", self.get_file)
            app.router.add_get(f"{prefix}/files/{{file_id}}/content", self.file_content)
            app.router.add_post(f"{prefix}/batches", self.create)
            app.router.add_get(f"{prefix}/batches", self.list)
            app.router.add_get(f"{prefix}/batches/{{batch_id}}", self.get)
            app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", self.cancel)
        app.router.add_get("/stats/batch", self.get_stats)


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


def _read_pool(path: str, seed: int) -> list[dict[str, Any]]:
    """--questions_from: the file's records, shuffled with the seed; yes/no labels as text."""
    pool = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            label = rec["label"]
            if isinstance(label, bool):
                label = "True" if label else "False"
            pool.append({"question": rec["question"], "context": rec.get("context"),
                         "options": [str(o) for o in rec["options"]], "label": str(label)})
    if not pool:
        raise ValueError(f"--questions_from {path}: no records")
    random.Random(seed).shuffle(pool)
    return pool


def _bounded_append(items: list, item: Any, limit: int = 200000) -> None:
    items.append(item)
    if len(items) > limit:
        del items[: limit // 2]


_SYNONYMS = {
    "big": "large", "large": "big", "small": "little", "little": "small", "fast": "quick",
    "quick": "fast", "buy": "purchase", "purchase": "buy", "people": "individuals",
    "often": "frequently", "frequently": "often", "start": "begin", "begin": "start",
    "help": "assist", "use": "utilize", "get": "obtain", "make": "create", "create": "make",
    "many": "numerous", "children": "kids", "kids": "children", "doctor": "physician",
    "car": "automobile", "movie": "film", "film": "movie", "job": "occupation", "house": "home",
    "home": "house", "happy": "glad", "sad": "unhappy", "famous": "well-known", "old": "aged",
    "near": "close to", "usually": "typically", "typically": "usually", "always": "invariably",
    "likely": "probable", "would": "could", "could": "would", "can": "could", "might": "may",
    "may": "might", "find": "locate", "show": "display", "need": "require", "want": "wish",
    "place": "location", "eat": "consume", "tiny": "minuscule", "enough": "sufficient",
}
_CONTRACTIONS = {"is not": "isn't", "are not": "aren't", "do not": "don't", "does not": "doesn't",
                 "did not": "didn't", "can not": "can't", "cannot": "can't", "will not": "won't",
                 "was not": "wasn't", "would not": "wouldn't", "could not": "couldn't"}
_LEADS = ("Is it true that", "Would you say that", "Do you think that", "Tell me whether",
          "I wonder:", "Question:", "In your view,", "Can you tell me if")


def paraphrase(question: str, r: random.Random) -> str:
    """A rewording of `question` that keeps its meaning: two of synonyms, a lead-in,
    contractions, an article dropped, the question mark changed. Never the same text (case and
    white space aside)."""
    def synonyms(q: str) -> str:
        words = q.split(" ")
        spots = [i for i, w in enumerate(words) if w.lower().strip("?,.") in _SYNONYMS]
        for i in r.sample(spots, min(len(spots), r.randint(1, 2))):
            core = words[i].lower().strip("?,.")
            new = _SYNONYMS[core]
            if words[i][:1].isupper():
                new = new[:1].upper() + new[1:]
            words[i] = words[i].lower().replace(core, new) if words[i][:1].islower() else \
                new + words[i][len(core):]
        return " ".join(words)

    def lead(q: str) -> str:
        body = q[:1].lower() + q[1:] if q[:2] != "I " else q
        return f"{r.choice(_LEADS)} {body}"

    def contract(q: str) -> str:
        for long, short in _CONTRACTIONS.items():
            if long in q:
                return q.replace(long, short, 1)
            if short in q:
                return q.replace(short, long, 1)
        return q

    def article(q: str) -> str:
        words = q.split(" ")
        spots = [i for i, w in enumerate(words) if w.lower() in ("the", "a", "an") and i > 0]
        if spots:
            del words[r.choice(spots)]
        return " ".join(words)

    def mark(q: str) -> str:
        q = q.rstrip()
        return q.rstrip("?").rstrip() + (" ?" if r.random() < 0.5 else "") if q.endswith("?") \
            else q + "?"

    out = question
    for op in r.sample((synonyms, lead, contract, article, mark), 2):
        out = op(out)
    if _norm(out) == _norm(question):
        out = lead(out)
    return out


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


# typed keys of the app's state (aiohttp >= 3.9: plain string keys warn, NotAppKeyWarning)
SIMULATOR = web.AppKey("simulator", Simulator)
BATCHES = web.AppKey("batches", BatchSim)


def build_app(config: SimConfig | None = None) -> web.Application:
    config = config or SimConfig()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    sim = Simulator(config)
    app[SIMULATOR] = sim
    app.router.add_post("/v1/chat/completions", sim.chat)
    app.router.add_post("/chat/completions", sim.chat)
    app.router.add_get("/v1/models", sim.models)
    app.router.add_get("/models", sim.models)
    app.router.add_get("/stats", sim.get_stats)
    app.router.add_post("/stats/reset", sim.reset_stats)
    app.router.add_get("/stats/timeline", sim.get_timeline)
    app.router.add_get("/stats/injected", sim.get_injected)
    app.router.add_get("/health", sim.health)
    if config.batch:
        batches = BatchSim(sim)
        app[BATCHES] = batches
        batches.add_routes(app)
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
        app[SIMULATOR].cancel_all()
        await asyncio.sleep(0)
        await runner.cleanup()


def _add(p: argparse.ArgumentParser, name: str, **kw: Any) -> None:
    names = [f"--{name}"]
    if "_" in name:
        names.append("--" + name.replace("_", "-"))
    p.add_argument(*names, dest=name, **kw)


def parse_args(argv: list[str] | None = None) -> SimConfig:
    d = SimConfig()
    table = __doc__[__doc__.index("Rate limits model"):__doc__.index("Embedding:")]
    p = argparse.ArgumentParser(prog="python -m benchmarks.simserver", description=__doc__.split("\n")[0],
                                epilog=table, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add(p, "host", default=d.host, help="bind address (default 127.0.0.1)")
    _add(p, "port", type=int, default=d.port, help="0 = pick a free port")
    _add(p, "model", default=d.model, help="model id served by /v1/models")
    _add(p, "seed", type=int, default=d.seed)
    _add(p, "ttft", type=float, default=d.ttft, help="seconds to first token")
    _add(p, "tpot", type=float, default=d.tpot, help="seconds per output token")
    _add(p, "jitter", type=float, default=d.jitter, help="uniform +- fraction on the latency")
    _add(p, "rtt", type=float, default=d.rtt,
         help="seconds of network round trip: half before a request reaches the limits, half before "
              "any answer (a 429 too) leaves; +- 20%%")
    _add(p, "max_concurrency", type=int, default=d.max_concurrency, help="slots; 0 = unlimited")
    g = p.add_argument_group("rate limits (each stated per minute; the providers behind each mode are in the table below)")
    _add(g, "rpm", type=float, default=d.rpm, help="requests/minute; 0 = unlimited")
    _add(g, "tpm", type=float, default=d.tpm, help="tokens/minute, input + output; 0 = unlimited")
    _add(g, "itpm", type=float, default=d.itpm,
         help="input (prompt) tokens/minute, apart from --tpm (Anthropic ITPM; Groq for some organizations); 0 = unlimited")
    _add(g, "otpm", type=float, default=d.otpm,
         help="output (completion) tokens/minute, apart from --tpm (Anthropic OTPM; Groq for some organizations); "
              "0 = unlimited")
    _add(g, "max_active", type=int, default=d.max_active,
         help="requests in flight at once; one more is answered 429 'Concurrency limit reached for "
              "requests' at once, no headers, no Retry-After (W&B Inference, DeepInfra's 200 per model); "
              "0 = unlimited")
    _add(g, "max_active_message", default=d.max_active_message,
         help="the message of that 429 (DeepInfra's: 'Rate limited'). Default W&B's")
    _add(g, "rpd", type=float, default=d.rpd,
         help="requests/day, a bucket of a day that starts full: what Groq's request headers state "
              "(--headers groq); with --headers openrouter or cerebras the UTC day (a window reset at midnight); "
              "0 = unlimited")
    _add(g, "default_max_tokens", type=int, default=d.default_max_tokens, help="max_tokens when a request has none")
    _add(g, "limit_mode", choices=LIMIT_MODES, default=d.limit_mode,
         help="how every limit is enforced: bucket = per-minute token bucket starting full (Anthropic; OpenAI and "
              "Groq by their 429 arithmetic); fixed = windows of --window_s seconds aligned to the clock, each "
              "admitting limit*window_s/60 (OpenAI 'may be enforced as 1,000 requests/second', Azure '1 or 10 "
              "seconds', Together per second); sliding = no --window_s span ever holds more than its share (no "
              "provider documents it; the IETF draft allows it); gcra = one unit every 60/limit s with --burst "
              "seconds of tolerance (a per-minute limit enforced over about a second, OpenAI and Anthropic); "
              "limits-fixed / limits-moving / limits-counter = the `limits` library enforces it (a window from "
              "the first request, a log, a sliding window counter as Cloudflare's), not this file. "
              "Default bucket")
    _add(g, "window_s", type=float, default=d.window_s,
         help="fixed / sliding window in seconds (1 = OpenAI's and Together's per second; 10 = Azure's other "
              "period). Default 1")
    _add(g, "burst", type=float, default=d.burst,
         help="gcra tolerance in seconds: from idle a limit admits burst*limit/60 units at once (at least 1), "
              "then one every 60/limit s. Default 1")
    _add(g, "token_limit_mode", choices=LIMIT_MODES, default=d.token_limit_mode,
         help="a different mode for --tpm/--itpm/--otpm (e.g. Azure: --limit_mode fixed --window_s 10 "
              "--token_limit_mode fixed --token_window_s 60). Default: as --limit_mode")
    _add(g, "token_window_s", type=float, default=d.token_window_s,
         help="a different window for the token limits (Azure's TPM counter 'is reset each minute': 60). "
              "Default: as --window_s")
    _add(g, "token_accounting", choices=TOKEN_ACCOUNTING, default=d.token_accounting,
         help="what a request costs the token limits: refund = prompt + max_tokens at admission, the unused "
              "part given back at the end (Anthropic's older OTPM text); reserve = prompt + max_tokens, kept "
              "(Azure); max = max(prompt, max_tokens), kept (OpenAI's sentence read literally); actual = prompt "
              "at admission, the completion when generated, max_tokens ignored (Anthropic's current OTPM text). "
              "Default refund")
    _add(g, "count_rejected", action="store_true",
         help="a 429'd request still costs one unit of --rpm, so retrying early prolongs a storm (OpenAI: "
              "'unsuccessful requests contribute to your per-minute limit'; Azure the same)")
    g = p.add_argument_group("what a rate-limited server says")
    _add(g, "headers", choices=HEADER_DIALECTS, default=d.headers,
         help="rate-limit header dialect on every reply: openai = x-ratelimit-{limit,remaining,reset}-{requests,"
              "tokens}, reset like 1s / 6m0s (OpenAI, Azure, Groq); anthropic = anthropic-ratelimit-{requests,"
              "tokens,input-tokens,output-tokens}-{limit,remaining,reset}, reset in RFC 3339, token remaining "
              "rounded to the nearest thousand; together = x-ratelimit-limit/-remaining/-reset (seconds) and "
              "x-tokenlimit-limit/-remaining; openrouter = X-RateLimit-Limit/-Remaining/-Reset (Unix ms) on 429s only, "
              "also in the body's error.metadata.headers, --rpd the UTC day; groq = openai's names, the request "
              "figures a day's (--rpd); cerebras = x-ratelimit-{limit,remaining,reset}-requests-day and "
              "-tokens-minute, resets in seconds, --rpd the UTC day; fireworks = x-ratelimit-limit-tokens-prompt "
              "and -generated (--itpm, --otpm), limits only; ietf = RateLimit-Policy and RateLimit (draft-ietf-httpapi-"
              "ratelimit-headers-11); gemini = none, a 429 body in Google's error model (QuotaFailure, RetryInfo); "
              "none. Default openai")
    _add(g, "headers_report", choices=HEADERS_REPORT, default=d.headers_report,
         help="minute = limits and remaining as per-minute figures whatever the enforcement (OpenAI, Azure, "
              "Anthropic state per-minute limits and enforce over shorter periods); window = the enforced "
              "window's own figures (Together reports per second). Default minute")
    _add(g, "retry_after", choices=RETRY_AFTER, default=d.retry_after,
         help="Retry-After on a 429: ms = retry-after-ms plus Retry-After in whole seconds (Azure); seconds = "
              "Retry-After in whole seconds rounded up (Anthropic, Groq); date = an HTTP-date (RFC 9110); "
              "none (OpenAI's guide lists none). Default ms")
    g.add_argument("--body_hint", "--body-hint", dest="body_hint", action="store_true", default=d.body_hint,
                   help="end the 429 message with 'Please try again in 5.289s.' as OpenAI and Groq do (default)")
    g.add_argument("--no_body_hint", "--no-body-hint", dest="body_hint", action="store_false",
                   help="a 429 message without the wait, for a client that must not depend on it")
    _add(g, "no_retry_after", action="store_true", help="same as --retry_after none")
    _add(g, "no_ratelimit_headers", action="store_true", help="same as --headers none")
    _add(p, "api_key", default=d.api_key, help="require 'Authorization: Bearer KEY'")
    _add(p, "quota", type=int, default=d.quota, help="successful completions before insufficient_quota")
    for f in ("p_500", "p_timeout", "p_drop", "p_malformed", "p_duplicate", "p_empty", "p_wrong_format", "p_garbage"):
        _add(p, f, type=float, default=0.0)
    _add(p, "p_truncated", type=float, default=0.0,
         help="a 200 whose content stops inside its last object, finish_reason 'length', the other objects "
              "whole (p_malformed mixes such cuts with missing fields)")
    _add(p, "hang_s", type=float, default=d.hang_s, help="how long a p_timeout request hangs")
    g = p.add_argument_group("data quality (the creator's filters)")
    _add(g, "questions_from", metavar="FILE.jsonl", help="serve these records (question, context, "
         "options, label; a human split) in a seeded order instead of made-up questions")
    _add(g, "p_paraphrase", type=float, default=0.0,
         help="probability that a served question paraphrases an earlier one")
    _add(g, "p_mislabel", type=float, default=0.0,
         help="probability that a served answer is another option than the true one")
    _add(g, "label_skew", type=float, default=None,
         help="probability of True (yes/no) or of the first option (multiple choice) as answer")
    _add(g, "verify_error_rate", type=float, default=0.0,
         help="probability that a verification prompt is answered wrongly")
    _add(p, "fault_burst", type=int, default=d.fault_burst, help="a fired fault repeats for this many requests")
    g = p.add_argument_group("batch API (times in simulated seconds; see the table below)")
    _add(g, "no_batch", action="store_true", help="serve no batch endpoints (404), as vLLM and llama.cpp")
    _add(g, "batch_time_scale", type=float, default=d.batch_time_scale,
         help="simulated seconds per real second (43200: a 24 h window in 2 s). Default 1")
    _add(g, "batch_validate_s", type=float, default=d.batch_validate_s, help="validating lasts this long")
    _add(g, "batch_line_s", type=float, default=d.batch_line_s,
         help="one line finishes every this many seconds, in order")
    _add(g, "batch_finalize_s", type=float, default=d.batch_finalize_s, help="finalizing lasts this long")
    _add(g, "batch_window_s", type=float, default=d.batch_window_s,
         help="the completion window (24 h): a batch not done by then expires, returning what it finished")
    _add(g, "batch_cancel_s", type=float, default=d.batch_cancel_s, help="cancelling lasts this long")
    _add(g, "batch_p_error", type=float, default=d.batch_p_error,
         help="probability that a line fails (500/503/429 in its response)")
    _add(g, "batch_errors_in_output", action="store_true",
         help="failed lines go to the output file instead of the error file")
    _add(g, "batch_p_fail", type=float, default=d.batch_p_fail, help="probability that a batch fails validation")
    _add(g, "batch_p_cancel", type=float, default=d.batch_p_cancel,
         help="probability that a batch is cancelled while in progress")
    _add(g, "batch_max_requests", type=int, default=d.batch_max_requests, help="lines per batch file (50,000)")
    _add(g, "batch_max_bytes", type=int, default=d.batch_max_bytes, help="bytes per batch file (200 MB)")
    _add(p, "backlog", type=int, default=d.backlog)
    _add(p, "shutdown_timeout", type=float, default=d.shutdown_timeout)
    ns = p.parse_args(argv)
    ns.batch = not ns.no_batch
    fields = {f.name for f in dataclasses.fields(SimConfig)}
    try:
        return SimConfig(**{k: v for k, v in vars(ns).items() if k in fields})
    except ValueError as e:
        p.error(str(e))


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        asyncio.run(serve(cfg))
    except KeyboardInterrupt:  # pragma: no cover
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
