"""How much of a server's rate limit the creator holds, whatever the server enforces and says.

    python -m benchmarks limits [--quick] [--out DIR]

Issue 15's matrix, against the simulator (benchmarks/simserver.py), one simulator process per
case and the client as its own process, stopped with SIGINT after the case's duration:

- every enforcement mode (a per-minute bucket starting full; fixed windows of 1 s and of 10 s; a
  sliding window of 60 s; GCRA with 2 s of burst) x what the client knows (the limit given as
  --rpm/--tpm, the server's x-ratelimit-* headers only, nothing: no headers, no Retry-After) x what
  binds (1,200 RPM, or 300,000 TPM with refunded reservations);
- header dialects (Anthropic, Together per second, IETF) with headers only; Retry-After as
  seconds or an HTTP-date, and a 429 without its "try again in" hint, on a server that states no
  limits; the token limit counting max_tokens without refund (`reserve`, as Azure does) with the
  limit given; refused requests that still count (`--count_rejected`) with nothing known;
- each provider's limits as its documentation describes them, all at once (`PROFILES`: OpenAI per
  second, counting max(prompt, max_tokens) and the 429s; Azure RPM per 10 s and a token count per
  minute, prompt + max_tokens kept; Anthropic GCRA of 1 s and token buckets, OTPM counted as
  generated, its own headers; Together per second, per-second headers; Groq, its requests per day in
  OpenAI's headers and its RPM unstated; OpenRouter, a minute of requests stated on its 429s only,
  reset in Unix ms; Cerebras, the day's requests and the minute's tokens under names that say so,
  its RPM unstated; Fireworks, prompt and generated tokens apart, the generated ones binding),
  the limit given, in headers only, or (OpenAI, Together)
  nothing; and Azure's minute of tokens reported as its own count (falling to the minute's end)
  rather than as a bucket's per-minute figures;
- a limit on requests in flight rather than a rate (16 at once; a bare 429 that names it, W&B
  Inference's, or does not, DeepInfra's), held as the share of it kept busy;
- faults on a per-second limit (20% 5xx, 20% of the replies truncated mid-object);
- replies as slow as an LLM's (1-3 s), and one such case, a sliding minute of tokens with nothing
  known, for five minutes instead of two (a second blackout, and the window's echo of the first);
- two endpoints, 600 and 1,200 RPM, behind one creator;
- limits enforced by code this project did not write, the `limits` library (API gateways'
  engine: simserver.LibraryWindow): a window from the first request (1 s, 60 s), a log over a
  minute, Cloudflare's sliding window counter over a second; each way known, RPM-bound, and
  tokens (prompt + max_tokens, kept) on the per-second ones, the limit given or nothing known;
- in the same run, the popular AsyncOpenAI loop (semaphore, the SDK's 2 retries) on the
  per-second RPM case with the limit given and with nothing known, and the same loop with a
  smooth pacer at the given limit; and that paced loop on the Together-like token limit with
  nothing known and slow replies, paced at 91% and 94% of the requests the limit allows (at
  TOKENS_PER_REQUEST): what a client that knew the rate exactly could hold there.

Cases run four at once (each is light: tens of requests a second), the longest first; the
AsyncOpenAI loop without a pacer, which sends hundreds of requests a second into 429s, runs
alone after them.

Everything is measured from the server's side, GET /stats/timeline (per-second admitted, 429s,
completions, tokens), between the first request the server saw and the SIGINT:

- held: units the server admitted per second / the limit per second. Units are requests for an
  RPM limit, tokens for a TPM limit: with `refund` accounting a request costs what it used
  (prompt + completion; admitted x the server's mean tokens per completed request), with
  `reserve` prompt + max_tokens as each request asked (the server's reserved_tokens), with `max`
  the larger of the two, with `actual` what was used; an OTPM limit counts output tokens. Over
  the whole run, and after the first 60 s ("steady") for runs
  of >= 90 s. A server whose bucket starts full lets a client exceed 100% early on.
- 429s per 1,000 requests the server saw; lost: requests the client gave up (the creator's
  failed_requests, the baseline's errors) plus records the creator's summary counts that are not
  in its output file.
- converge: the start (seconds after the first request) of the first 5-s window from which on
  every 5-s window (trailing, 1-s steps, whole seconds) averages within [90%, 105%] of the limit
  until the SIGINT; none if the last one is outside.
- low 5 s: the lowest 5-s average after the first 60 s; below 50%: the longest run of whole
  seconds after the first 60 s each under half the limit.
- ceiling: what a client that sends evenly, asking for max_tokens 1,024 (the default) on every
  request, could hold at most under the server's token accounting (1 for request limits). The
  creator asks for less where a token limit applies (creator/replysize.py: 1.1 x the longest
  recent reply), so it can pass this ceiling; "asked" is the mean max_tokens its requests asked,
  and "ceil@asked" the same ceiling for a client asking for that. With refunds a request holds
  prompt + max_tokens (~1,127 tokens) while in flight and gives back ~860 when it completes; a
  window that closes while it is in flight keeps the whole reservation. So in a W-second window
  (fixed or sliding), for latency L, used tokens a and unused reservation d per request, at most
  1 / (1 + L d / (W a)) of the limit can be held; for GCRA with burst B the in-flight
  reservations must fit in the burst.

This file is also the child process of the AsyncOpenAI baselines:
    python -m benchmarks.limits --role aoai --base_url URL [--pace_rpm R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .common import (
    REPO,
    Simulator,
    Target,
    check,
    child_env,
    format_table,
    log,
    machine_info,
    python,
    targets_table,
)

DATA = ["--data_dir", str(REPO / "data" / "yesno_close"), "--data_name", "example"]
K = 5
MAX_TOKENS = 1024  # the creator's default, and the baseline's: a request reserves prompt + this
TOKENS_PER_REQUEST = 265.0  # prompt + completion as the simulator serves them: 265.2-265.5
CONCURRENCY = 64
MINUTE_S = 60.0
CLIENT_START_S = 0.4  # from starting the creator to its first request reaching a server (0.34-0.4 s)
RPM = 1200.0  # RPM-bound: 20 requests/s
FREE_RPM = 30.0  # a free plan's: one request every 2 s
TPM = 300000.0  # TPM-bound: 5,000 tokens/s, ~19 requests/s of ~265 tokens; a 1-s window holds 4
OTPM = 180000.0  # OTPM-bound (Anthropic-like): 3,000 output tokens/s, ~18 requests/s of ~162
ITPM = 10_000_000.0  # the input-token limit beside it, never reached
GROQ_RPD = 500_000.0  # Groq-like: the requests a day its request headers state (5.8 a second)
GROQ_OTHER_TPM = 1_000_000.0  # ... the TPM beside an RPM that binds (3x what 20 requests/s use)
GROQ_OTHER_RPM = 2400.0  # ... the RPM beside a TPM that binds (2x the ~19 requests/s it allows)
MAX_ACTIVE = 16  # a limit on requests in flight (W&B Inference, DeepInfra), under --concurrency
TARGET_RECORDS = 10_000_000  # never reached: every run ends with SIGINT
LATENCY_S = 0.5
LATENCY_NOTHING_S = 0.1  # the example for the case where nothing is known
GCRA_BURST_S = 2.0  # a request of ~1,127 tokens and the reservations in flight fit in it
BAND = (0.90, 1.05)  # converged: every later 5-s average within this share of the limit
SMOOTH_S = 5
STEADY_AFTER_S = 60.0
P_500, P_TRUNCATED = 0.2, 0.2
# replies as an LLM's take: a time to the first token plus one per token generated, varying by
# half either way ("generating tokens is almost always the highest latency step",
# platform.openai.com/docs/guides/latency-optimization): ~162 tokens, 2.1 s (1.7 s where nothing
# is known) on average, from under half that to over one and a half times it
SLOW = {"tpot": 0.01, "jitter": 0.5}
RTT_S = 0.2  # a network round trip to a provider on another continent (--rtt)
# long answers, a reasoning model: ~8 s a reply (0.05 s a token), the first one slower than the
# 5 s the creator's first request waits alone for its reply (creator/ratelimit.py PROBE_GIVE_UP_S)
LONG = {"tpot": 0.05, "jitter": 0.3}

MODES: dict[str, dict[str, Any]] = {
    "bucket": {"limit_mode": "bucket"},
    "fixed 1s": {"limit_mode": "fixed", "window_s": 1},
    "fixed 10s": {"limit_mode": "fixed", "window_s": 10},
    "fixed 60s": {"limit_mode": "fixed", "window_s": 60},  # the clock's minutes (OpenRouter's resets)
    "sliding 60s": {"limit_mode": "sliding", "window_s": 60},
    "gcra": {"limit_mode": "gcra", "burst": GCRA_BURST_S},
    "gcra 1s": {"limit_mode": "gcra", "burst": 1.0},  # Anthropic's "1 request per second"
    # enforced by the `limits` library, not by the simulator's code (simserver.LibraryWindow):
    # a window from the first request, of a second or of a minute; a log over a minute; a
    # sliding window counter over a second (Cloudflare's arithmetic, on a quantized limit)
    "limits fixed 1s": {"limit_mode": "limits-fixed", "window_s": 1},
    "limits fixed 60s": {"limit_mode": "limits-fixed", "window_s": 60},
    "limits moving 60s": {"limit_mode": "limits-moving", "window_s": 60},
    "limits counter 1s": {"limit_mode": "limits-counter", "window_s": 1},
}
LIBRARY_MODES = ("limits fixed 1s", "limits fixed 60s", "limits moving 60s", "limits counter 1s")
MATRIX_MODES = ("bucket", "fixed 1s", "fixed 10s", "sliding 60s", "gcra")
KNOWLEDGE = ("given", "headers", "nothing")
NOTHING = {"headers": "none", "retry_after": "none"}
LONG_RUN_S = 300.0  # a case where what a learnt rate holds over minutes is the question


@dataclass
class Params:
    duration_s: float  # cases where something is known
    nothing_duration_s: float  # cases where the server states no limit (the target says 2 min)
    parallel: int  # cases at once
    quick: bool


FULL = Params(duration_s=90.0, nothing_duration_s=120.0, parallel=4, quick=False)
QUICK = Params(duration_s=18.0, nothing_duration_s=18.0, parallel=4, quick=True)


@dataclass
class Case:
    name: str
    # matrix | dialect | retry_after | accounting | count_rejected | faults | endpoints | low | slow
    # | network | providers | baseline
    group: str
    mode: str  # a key of MODES
    knowledge: str  # given | headers | nothing | retry-after (no x-ratelimit headers, a Retry-After)
    bound: str  # rpm | tpm
    client: str = "creator"  # creator | aoai | aoai_paced
    pace_share: float = 1.0  # aoai_paced: the share of the requests the limit allows it sends
    latency_s: float = LATENCY_S
    duration_s: float = 90.0
    sim_flags: dict[str, Any] = field(default_factory=dict)  # beyond the mode and the knowledge
    endpoint_rpms: list[float] = field(default_factory=list)  # two endpoints: each one's RPM
    accounting: str = "refund"
    token_limit: str = "tpm"  # tpm | otpm: the token limit that binds (OTPM: output tokens only)
    # the client is started so that its first request goes about this long before the clock's
    # minute begins (windows of the clock's minute); None: wherever in the minute the case starts
    minute_after_s: float | None = None

    @property
    def limits_in_file(self) -> bool:
        """The creator is given an OTPM limit, which has no flag: in an endpoints file."""
        return self.client == "creator" and self.knowledge == "given" and \
            self.bound == "tpm" and self.token_limit == "otpm"

    def limit_per_s(self) -> float:
        if self.bound == "active":  # units: seconds of requests in flight, a second
            return float(MAX_ACTIVE)
        if self.endpoint_rpms:
            return sum(self.endpoint_rpms) / 60.0
        if self.bound == "tpm" and self.token_limit == "otpm":
            return OTPM / 60.0
        return (RPM if self.bound == "rpm" else TPM) / 60.0

    def pace_rpm(self) -> float:
        """The requests per minute the paced baseline sends (a token limit's requests at
        TOKENS_PER_REQUEST each)."""
        allowed = RPM if self.bound == "rpm" else TPM / TOKENS_PER_REQUEST
        return self.pace_share * allowed


def matrix_cases(p: Params) -> list[Case]:
    cases = []
    for bound in ("rpm", "tpm"):
        for knowledge in KNOWLEDGE:
            for mode in MATRIX_MODES:
                nothing = knowledge == "nothing"
                cases.append(Case(
                    f"{mode}, {knowledge}, {bound.upper()}", "matrix", mode, knowledge, bound,
                    latency_s=LATENCY_NOTHING_S if nothing else LATENCY_S,
                    duration_s=p.nothing_duration_s if nothing else p.duration_s))
    return cases


def extra_cases(p: Params) -> list[Case]:
    d, dn = p.duration_s, p.nothing_duration_s
    ln = LATENCY_NOTHING_S
    return [
        # header dialects, headers only
        Case("anthropic headers, bucket, RPM", "dialect", "bucket", "headers", "rpm", duration_s=d,
             sim_flags={"headers": "anthropic", "retry_after": "seconds"}),
        Case("together headers (per second), fixed 1s, RPM", "dialect", "fixed 1s", "headers",
             "rpm", duration_s=d, sim_flags={"headers": "together", "headers_report": "window",
                                              "retry_after": "seconds"}),
        Case("ietf headers, fixed 10s, RPM", "dialect", "fixed 10s", "headers", "rpm",
             duration_s=d, sim_flags={"headers": "ietf"}),
        # no x-ratelimit headers: Retry-After forms, and nothing at all (no hint in the message)
        Case("Retry-After seconds only, fixed 1s, RPM", "retry_after", "fixed 1s", "retry-after",
             "rpm", latency_s=ln, duration_s=dn,
             sim_flags={"headers": "none", "retry_after": "seconds"}),
        Case("Retry-After date only, fixed 1s, RPM", "retry_after", "fixed 1s", "retry-after",
             "rpm", latency_s=ln, duration_s=dn, sim_flags={"headers": "none", "retry_after": "date"}),
        Case("nothing, no body hint, fixed 1s, RPM", "retry_after", "fixed 1s", "nothing", "rpm",
             latency_s=ln, duration_s=dn, sim_flags={**NOTHING, "no_body_hint": True}),
        # max_tokens counted and kept (Azure), the limit given
        Case("reserve accounting, fixed 10s, given, TPM", "accounting", "fixed 10s", "given",
             "tpm", duration_s=d, accounting="reserve"),
        # OpenAI's count (max(prompt, max_tokens), kept) on a bucket of a minute, not quantized:
        # a count cheaper than the client's own that no 429 teaches: tried where the headers
        # can check it (creator/ratelimit.py Limits._check_charge)
        *[Case(f"max accounting, bucket, {know}, TPM", "accounting", "bucket", know, "tpm",
               duration_s=d, accounting="max", sim_flags={"count_rejected": True})
          for know in ("given", "headers")],
        # a 429 still costs a request (OpenAI, Azure), nothing known
        Case("count rejected, fixed 1s, nothing, RPM", "count_rejected", "fixed 1s", "nothing",
             "rpm", latency_s=ln, duration_s=dn, sim_flags={"count_rejected": True}),
        # faults on a per-second limit, headers
        Case(f"faults {P_500:.0%} 5xx + {P_TRUNCATED:.0%} truncated, fixed 1s, headers, RPM",
             "faults", "fixed 1s", "headers", "rpm", duration_s=d,
             sim_flags={"p_500": P_500, "p_truncated": P_TRUNCATED}),
        # ... and with nothing known (no headers, no Retry-After), as in the example
        Case(f"faults {P_500:.0%} 5xx + {P_TRUNCATED:.0%} truncated, fixed 1s, nothing, RPM",
             "faults", "fixed 1s", "nothing", "rpm", latency_s=ln, duration_s=dn,
             sim_flags={**NOTHING, "p_500": P_500, "p_truncated": P_TRUNCATED}),
        # a provider across a network (RTT): a 429 comes back a round trip after its request
        # left, not at once as on 127.0.0.1; meanwhile the requests sent after it reach the
        # window it found full
        *[Case(f"round trip {RTT_S:g} s, {mode}, {know}, {bound.upper()}", "network", mode, know,
               bound, latency_s=ln if know == "nothing" else LATENCY_S,
               duration_s=dn if know == "nothing" else d,
               sim_flags={**(NOTHING if know == "nothing" else {}), "rtt": RTT_S})
          for mode, know, bound in (("fixed 1s", "nothing", "rpm"), ("sliding 60s", "nothing", "rpm"),
                                    ("fixed 1s", "nothing", "tpm"), ("gcra", "nothing", "rpm"),
                                    ("fixed 1s", "headers", "rpm"), ("fixed 1s", "given", "tpm"))],
        # two endpoints with their own limits, headers; and nothing known, each learnt apart
        Case("two endpoints 600 + 1,200 RPM, fixed 1s, headers", "endpoints", "fixed 1s",
             "headers", "rpm", duration_s=d, endpoint_rpms=[600.0, 1200.0]),
        Case("two endpoints 600 + 1,200 RPM, fixed 1s, nothing", "endpoints", "fixed 1s",
             "nothing", "rpm", latency_s=ln, duration_s=dn, endpoint_rpms=[600.0, 1200.0]),
        # a free plan's limit, nothing known: one request every two seconds (Groq's free plan
        # allows 30 requests a minute per model, https://console.groq.com/docs/rate-limits)
        *[Case(f"free plan 30 RPM, {mode}, nothing, RPM", "low", mode, "nothing", "rpm",
               latency_s=ln, duration_s=dn, endpoint_rpms=[FREE_RPM])
          for mode in ("gcra", "bucket")],
        Case("free plan 30 RPM, replies of 8 s, sliding 60s, headers, RPM", "low", "sliding 60s",
             "headers", "rpm", duration_s=d, endpoint_rpms=[FREE_RPM], sim_flags=LONG),
        # slow replies that vary (SLOW): the storms' probes and the ramp wait seconds for them
        *[Case(f"slow replies, {mode}, {know}, {bound.upper()}", "slow", mode, know, bound,
               latency_s=ln if know == "nothing" else LATENCY_S,
               duration_s=dn if know == "nothing" else d, sim_flags={**extra, **SLOW},
               accounting=acct)
          for mode, know, bound, acct, extra in (
              ("fixed 1s", "nothing", "rpm", "refund", {}),
              ("gcra", "nothing", "rpm", "refund", {}),
              ("fixed 1s", "nothing", "tpm", "max", {"count_rejected": True}),  # OpenAI-like
              ("sliding 60s", "nothing", "tpm", "refund", {}),
              ("bucket", "headers", "tpm", "refund", {}),
              ("sliding 60s", "headers", "tpm", "refund", {}),
              ("bucket", "given", "tpm", "refund", {}),
              ("sliding 60s", "given", "tpm", "refund", {}))],
        # ... and for five minutes: a sliding minute lets through the echo of what it let through
        # a minute before, and the rows above end before a second blackout (at afccb36 a run
        # from Python took twice as long as the limit allows)
        Case("five minutes, slow replies, sliding 60s, nothing, TPM", "slow", "sliding 60s",
             "nothing", "tpm", latency_s=ln, duration_s=LONG_RUN_S, sim_flags=SLOW),
    ]


def library_cases(p: Params) -> list[Case]:
    """Limits enforced by code this project did not write (the `limits` library: API gateways'),
    each way known: a check on the figures that the simulator's own modes give. RPM-bound; and
    tokens on the per-second ones, counted prompt + max_tokens and kept (the library refunds
    nothing)."""
    cases = []
    for mode in LIBRARY_MODES:
        for know in KNOWLEDGE:
            nothing = know == "nothing"
            cases.append(Case(f"{mode}, {know}, RPM", "library", mode, know, "rpm",
                              latency_s=LATENCY_NOTHING_S if nothing else LATENCY_S,
                              duration_s=p.nothing_duration_s if nothing else p.duration_s))
    for mode in ("limits fixed 1s", "limits counter 1s"):
        for know in ("given", "nothing"):
            nothing = know == "nothing"
            cases.append(Case(f"{mode}, {know}, TPM (reserve)", "library", mode, know, "tpm",
                              latency_s=LATENCY_NOTHING_S if nothing else LATENCY_S,
                              duration_s=p.nothing_duration_s if nothing else p.duration_s,
                              accounting="reserve"))
    return cases


def concurrency_cases(p: Params) -> list[Case]:
    """A limit on requests in flight, not on a rate: MAX_ACTIVE at once, one more refused with a
    bare 429 (no headers, no Retry-After) that names it (W&B Inference: "Concurrency limit reached
    for requests") or does not (DeepInfra: "Rate limited"); replies of 0.5 s, or slow ones."""
    return [Case(f"concurrency {MAX_ACTIVE}, 429 says {words!r}, {speed}", "concurrency",
                 "bucket", "nothing", "active", duration_s=p.duration_s,
                 sim_flags={"max_active_message": words, **extra})
            for words in ("Concurrency limit reached for requests", "Rate limited")
            for speed, extra in (("replies of 0.5 s", {"jitter": 0.2}), ("slow replies", SLOW))]


def baseline_cases(p: Params) -> list[Case]:
    d, dn = p.duration_s, p.nothing_duration_s
    # Together's per-second token count takes each completion when it is written, so with slow
    # replies its seconds overflow at random: what does an even sender that knows the rate hold?
    together = next(c for c in provider_cases(p)
                    if c.name == "together-like, slow replies, nothing, TPM")
    return [
        Case("AsyncOpenAI+semaphore, fixed 1s, given, RPM", "baseline", "fixed 1s", "given",
             "rpm", client="aoai", duration_s=d),
        Case("AsyncOpenAI+semaphore+pacer, fixed 1s, given, RPM", "baseline", "fixed 1s", "given",
             "rpm", client="aoai_paced", duration_s=d),
        Case("AsyncOpenAI+semaphore, fixed 1s, nothing, RPM", "baseline", "fixed 1s", "nothing",
             "rpm", client="aoai", latency_s=LATENCY_NOTHING_S, duration_s=dn),
        *[replace(together, name=f"AsyncOpenAI+pacer at {share:.0%}, {together.name}",
                  group="baseline", client="aoai_paced", pace_share=share)
          for share in (0.91, 0.94)],
    ]


def quick_cases(p: Params) -> list[Case]:
    """A handful that cover each kind: given, headers, nothing, faults, two endpoints, baselines."""
    d = p.duration_s
    return [
        Case("fixed 1s, given, RPM", "matrix", "fixed 1s", "given", "rpm", duration_s=d),
        Case("gcra, headers, TPM", "matrix", "gcra", "headers", "tpm", duration_s=d),
        Case("fixed 1s, nothing, RPM", "matrix", "fixed 1s", "nothing", "rpm",
             latency_s=LATENCY_NOTHING_S, duration_s=d),
        Case(f"faults {P_500:.0%} 5xx + {P_TRUNCATED:.0%} truncated, fixed 1s, headers, RPM",
             "faults", "fixed 1s", "headers", "rpm", duration_s=d,
             sim_flags={"p_500": P_500, "p_truncated": P_TRUNCATED}),
        Case("two endpoints 600 + 1,200 RPM, fixed 1s, headers", "endpoints", "fixed 1s",
             "headers", "rpm", duration_s=d, endpoint_rpms=[600.0, 1200.0]),
        Case("AsyncOpenAI+semaphore, fixed 1s, given, RPM", "baseline", "fixed 1s", "given",
             "rpm", client="aoai", duration_s=d),
        Case("AsyncOpenAI+semaphore+pacer, fixed 1s, given, RPM", "baseline", "fixed 1s", "given",
             "rpm", client="aoai_paced", duration_s=d),
        # a provider profile, given in an endpoints file (OTPM has no flag)
        *[c for c in provider_cases(p) if c.name == "anthropic-like, given, OTPM"],
    ]


# Each provider's limits as its documentation describes them, all at once (the matrix varies one
# thing at a time). Sources and quotes: benchmarks/simserver.py's module docstring and _costs.
PROFILES: dict[str, dict[str, Any]] = {
    # OpenAI: "60,000 requests/minute may be enforced as 1,000 requests/second" (help 6891753),
    # tokens "the maximum of max_tokens and the estimated number of tokens", and "unsuccessful
    # requests contribute to your per-minute limit" (platform.openai.com/docs/guides/rate-limits);
    # x-ratelimit-* with per-minute figures, "Please try again in 5.289s."
    "openai": {"mode": "fixed 1s", "accounting": "max", "sim_flags": {"count_rejected": True}},
    # Azure OpenAI: RPM over "typically 1 or 10 seconds", TPM a count "reset each minute",
    # prompt + max_tokens kept, refused requests count, retry-after-ms (learn.microsoft.com quota)
    "azure": {"mode": "fixed 10s", "accounting": "reserve",
              "sim_flags": {"token_window_s": 60, "count_rejected": True}},
    # Anthropic: token buckets, "60 RPM might be enforced as 1 request per second", input and
    # output tokens limited apart, OTPM counted as generated, anthropic-ratelimit-* headers with
    # RFC 3339 resets, Retry-After in seconds (platform.claude.com/docs/en/api/rate-limits)
    "anthropic": {"mode": "gcra 1s", "accounting": "actual", "token_limit": "otpm",
                  "sim_flags": {"token_limit_mode": "bucket", "headers": "anthropic",
                                "retry_after": "seconds"}},
    # Together: requests and tokens per second ("1 RPS internally"), per-second header figures,
    # Retry-After in seconds; how tokens are counted is not said: as generated
    "together": {"mode": "fixed 1s", "accounting": "actual",
                 "sim_flags": {"headers": "together", "headers_report": "window",
                               "retry_after": "seconds"}},
    # Groq: OpenAI's header names, but the request figures are a day's ("Always refers to Requests
    # Per Day (RPD)"), and RPM is stated nowhere (console.groq.com/docs/rate-limits); how it
    # enforces RPM is not said: per second here, as OpenAI may. Tokens on a bucket of a minute
    # (its 429s' "try again in" fits one), counted as the simulator does by default. Both limits
    # are there in each case, as on Groq (`beside`): the RPM-bound one with a TPM that does not
    # bind, stated; the TPM-bound one with an RPM that does not bind, unstated
    "groq": {"mode": "fixed 1s", "accounting": "refund", "unstated": ("rpm",),
             "sim_flags": {"headers": "groq", "rpd": GROQ_RPD, "retry_after": "seconds",
                           "token_limit_mode": "bucket"},
             "beside": {"rpm": {"tpm": GROQ_OTHER_TPM}, "tpm": {"rpm": GROQ_OTHER_RPM}}},
    # OpenRouter: limits stated only when it refuses ("X-RateLimit-* headers on the error
    # response", openrouter.ai/docs/api-reference/limits), the reset in Unix milliseconds at the
    # refusing window's end (whole minutes in the 429s its users quote), no Retry-After, nothing
    # on a 200; its own limits count requests only. How the minute is enforced is not said: a
    # window of the clock's minute here, as those resets show
    "openrouter": {"mode": "fixed 60s", "accounting": "refund", "bounds": ("rpm",),
                   "sim_flags": {"headers": "openrouter", "retry_after": "none"}},
    # Cerebras: OpenAI's names with the period after them, the requests a day's and the tokens a
    # minute's, resets in seconds; RPM enforced and stated nowhere
    # (inference-docs.cerebras.ai/support/rate-limits). Its text says "token bucketing", but the
    # resets of its example are the clock's minute and UTC day ("11.382867097854614" and
    # "33011.382867097855"), and "Available quota = Rate limit - Usage in current time window":
    # windows of the clock's minute here, reported as themselves. Its 429s quoted in public
    # issues ("Requests per minute limit exceeded - too many requests sent.") carry no wait, and
    # no Retry-After is documented. Both limits in each case, as for Groq
    "cerebras": {"mode": "fixed 60s", "accounting": "refund", "unstated": ("rpm",),
                 "sim_flags": {"headers": "cerebras", "headers_report": "window", "rpd": GROQ_RPD,
                               "retry_after": "none", "no_body_hint": True},
                 "beside": {"rpm": {"tpm": GROQ_OTHER_TPM}, "tpm": {"rpm": GROQ_OTHER_RPM}}},
    # Fireworks: prompt and generated tokens a minute, apart, "in the response headers
    # X-Ratelimit-Limit-Tokens-Prompt and X-Ratelimit-Limit-Tokens-Generated"; its starting
    # limits, 36,000 generated against 3.6 million prompt tokens a minute, make the output tokens
    # bind (docs.fireworks.ai/serverless/rate-limits). How it enforces them ("adaptive") and
    # whether a 429 says when to retry is not said: a bucket, counted as generated, no wait
    "fireworks": {"mode": "bucket", "accounting": "actual", "token_limit": "otpm",
                  "bounds": ("tpm",),
                  "sim_flags": {"headers": "fireworks", "retry_after": "none",
                                "no_body_hint": True}},
}


def provider_cases(p: Params) -> list[Case]:
    """Each provider profile x (given, headers; nothing where the provider may send no headers)
    x (RPM-bound, TPM-bound); and all that again with replies as slow as an LLM's (SLOW)."""
    cases = []
    for slow in (False, True):
        for name, prof in PROFILES.items():
            knowledge = ("given", "headers", "nothing") if name in ("openai", "together") else (
                "given", "headers")
            for bound in prof.get("bounds", ("rpm", "tpm")):
                for know in knowledge:
                    nothing = know == "nothing"
                    label = "OTPM" if bound == "tpm" and prof.get("token_limit") == "otpm" else (
                        bound.upper())
                    cases.append(Case(
                        f"{name}-like, {'slow replies, ' if slow else ''}{know}, {label}",
                        "providers slow" if slow else "providers", prof["mode"], know, bound,
                        latency_s=LATENCY_NOTHING_S if nothing else LATENCY_S,
                        duration_s=p.nothing_duration_s if nothing else p.duration_s,
                        sim_flags={**prof["sim_flags"], **prof.get("beside", {}).get(bound, {}),
                                   **(NOTHING if nothing else {}), **(SLOW if slow else {})},
                        accounting=prof["accounting"],
                        token_limit=prof.get("token_limit", "tpm") if bound == "tpm" else "tpm"))
    # Azure's token count "reset each minute", reported as itself (its remaining count falls to
    # the minute's end, then is whole again) rather than as a bucket's per-minute figures: its
    # documentation says neither way
    azure = PROFILES["azure"]
    for know in ("given", "headers"):
        cases.append(Case(f"azure-like, minute count in headers, {know}, TPM", "providers",
                          azure["mode"], know, "tpm", duration_s=p.duration_s,
                          accounting=azure["accounting"],
                          sim_flags={**azure["sim_flags"], "headers_report": "window"}))
    # Cerebras's minute begun ~22 s before the clock's: at ~62 requests a second the ramp spends
    # the first minute a second or two before it ends, so that its storm is as short as a window
    # of 10 s may refuse (elsewhere in the minute the case starts where the clock has it)
    cerebras = PROFILES["cerebras"]
    cases.append(Case("cerebras-like, begun 22 s before the clock's minute, headers, RPM",
                      "providers", cerebras["mode"], "headers", "rpm", duration_s=p.duration_s,
                      accounting=cerebras["accounting"], minute_after_s=22.0,
                      sim_flags={**cerebras["sim_flags"], **cerebras["beside"]["rpm"]}))
    return cases


# Gemini: RPM, TPM (input tokens) and RPD a project, stated nowhere but in a 429's body, in Google's
# error model (QuotaFailure: the quota's id and value; RetryInfo: when to retry; "Please retry in
# 39.84s." in the message), no Retry-After (ai.google.dev/gemini-api/docs/rate-limits; the bodies
# public issues quote: simserver.py's _gemini_429). How it enforces a minute is not said; Google
# Cloud's rate quotas refill "at the start of the next synchronized interval, such as 10:01:00"
# (docs.cloud.google.com/compute/api-quota): windows of the clock's minute. RPM-bound only (its
# token limit counts input tokens, which no case here binds on)
GEMINI = {"mode": "fixed 60s", "accounting": "refund",
          "sim_flags": {"headers": "gemini", "retry_after": "none"}}


def gemini_cases(p: Params) -> list[Case]:
    return [Case(f"gemini-like, {'slow replies, ' if slow else ''}{know}, RPM",
                 "providers slow" if slow else "providers", GEMINI["mode"], know, "rpm",
                 duration_s=p.duration_s, accounting=GEMINI["accounting"],
                 sim_flags={**GEMINI["sim_flags"], **(SLOW if slow else {})})
            for slow in (False, True) for know in ("given", "headers")]


def all_cases(p: Params) -> list[Case]:
    if p.quick:
        return quick_cases(p)
    # (the library's and Gemini's last: each case's seed follows its place in the list, and the
    # runs before them keep theirs)
    return matrix_cases(p) + extra_cases(p) + provider_cases(p) + concurrency_cases(p) + \
        baseline_cases(p) + library_cases(p) + gemini_cases(p)


# --- one case -------------------------------------------------------------------------------------


def sim_flags(case: Case, rpm: float | None, seed: int) -> dict[str, Any]:
    flags: dict[str, Any] = {"ttft": case.latency_s, "seed": seed, **MODES[case.mode]}
    if case.bound == "rpm":
        flags["rpm"] = rpm
    elif case.bound == "active":
        flags["max_active"] = MAX_ACTIVE
    elif case.token_limit == "otpm":
        flags.update(otpm=OTPM, itpm=ITPM, token_accounting=case.accounting)
    else:
        flags["tpm"] = TPM
        flags["token_accounting"] = case.accounting
    if case.knowledge == "nothing":
        flags.update(NOTHING)
    flags.update(case.sim_flags)
    return flags


def endpoints_file(output: Path) -> Path:
    """Where the limits that have no flag (ITPM, OTPM) are given, beside the case's output."""
    return output.with_suffix(".endpoints.json")


def client_cmd(case: Case, urls: list[str], output: Path) -> list[str]:
    if case.client == "creator":
        cmd = [python(), "-m", "creator", "create", *DATA, "--setting", "naive",
               "--target", str(TARGET_RECORDS), "--concurrency", str(CONCURRENCY), "--quiet",
               "--output", str(output), "--overwrite"]
        if case.limits_in_file:
            return cmd + ["--endpoints", str(endpoints_file(output))]
        for url in urls:
            cmd += ["--base_url", url]
        if case.knowledge == "given":
            cmd += ["--rpm", f"{RPM:g}"] if case.bound == "rpm" else ["--tpm", f"{TPM:g}"]
        return cmd
    cmd = [python(), "-m", "benchmarks.limits", "--role", "aoai", "--base_url", urls[0],
           "--concurrency", str(CONCURRENCY), "--max_s", str(case.duration_s * 3 + 60)]
    if case.client == "aoai_paced":
        cmd += ["--pace_rpm", f"{case.pace_rpm():g}"]
    return cmd


def get_json(url: str, timeout: float = 10.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def run_case(case: Case, workdir: Path, seed: int) -> dict[str, Any]:
    """Start the simulator(s) and the client, SIGINT the client `duration_s` after the first
    request reached a server, and measure from the servers' timelines."""
    rpms = case.endpoint_rpms or [RPM]
    sims = [Simulator(**sim_flags(case, rpm, seed + i)) for i, rpm in enumerate(rpms)]
    load_before = os.getloadavg()[0]
    output = workdir / f"case{seed}.jsonl"
    out_file = open(workdir / f"case{seed}.stdout", "w+b")  # noqa: SIM115
    err_file = open(workdir / f"case{seed}.stderr", "w+b")  # noqa: SIM115
    proc = None
    try:
        for sim in sims:
            sim.start()
        cpu_sim0 = [sim.cpu_s() for sim in sims]
        if case.limits_in_file:
            endpoints_file(output).write_text(
                json.dumps([{"base_url": sims[0].base_url, "itpm": ITPM, "otpm": OTPM}]))
        if case.minute_after_s is not None:
            time.sleep((-case.minute_after_s - CLIENT_START_S - time.time()) % MINUTE_S)
        started = time.time()
        proc = subprocess.Popen(client_cmd(case, [s.base_url for s in sims], output), cwd=REPO,
                                env=child_env(), stdin=subprocess.DEVNULL, stdout=out_file,
                                stderr=err_file)
        t_first = first_request(sims, proc, started)
        t_stop = t_first + case.duration_s if t_first is not None else time.time()
        while proc.poll() is None and time.time() < t_stop:  # bounded by the case's duration
            time.sleep(min(0.5, max(0.01, t_stop - time.time())))
        t_stop = time.time()
        exited_early = proc.poll() is not None
        if not exited_early:
            proc.send_signal(signal.SIGINT)
        status, usage = wait_for(proc, timeout=30.0)
        timelines = [get_json(s.root_url + "/stats/timeline") for s in sims]
        stats = [s.stats() for s in sims]
        sim_cpu = [round(s.cpu_s() - c0, 2) for s, c0 in zip(sims, cpu_sim0)]
    finally:
        if proc is not None and proc.returncode is None and proc.poll() is None:
            proc.kill()  # (only on an error above)
            proc.wait(10)
        for sim in sims:
            sim.close()
    out_file.seek(0)
    err_file.seek(0)
    stdout = out_file.read().decode(errors="replace")
    stderr = err_file.read().decode(errors="replace")
    out_file.close()
    err_file.close()
    figures = (creator_figures(output) if case.client == "creator"
               else baseline_figures(stdout))
    figures.update({"exit_code": status, "exited_before_sigint": exited_early,
                   "cpu_s": round(usage.ru_utime + usage.ru_stime, 2) if usage else None,
                   "stderr_tail": stderr.strip().splitlines()[-3:]})
    result = {
        "name": case.name, "group": case.group, "mode": case.mode, "knowledge": case.knowledge,
        "bound": case.bound, "client": case.client, "latency_s": case.latency_s,
        "duration_s": case.duration_s, "accounting": case.accounting,
        "limit_per_s": round(case.limit_per_s(), 3),
        "limit_units": {"rpm": "requests", "active": "requests in flight"}.get(case.bound,
                                                                            "tokens"),
        "endpoint_rpms": case.endpoint_rpms or None,
        "sim_flags": [sim_flags(case, rpm, seed + i) for i, rpm in enumerate(rpms)],
        "client_cmd": " ".join(client_cmd(case, ["URL"] * len(rpms), Path("OUT.jsonl"))[1:]),
        "first_request_unix": t_first, "sigint_unix": round(t_stop, 3),
        "clock_minute_after_first_s": round(-t_first % MINUTE_S, 2) if t_first else None,
        "measured_s": round(t_stop - t_first, 2) if t_first else None,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "sim_cpu_s": sim_cpu,
        "figures": figures,  # the client's own account (the creator's summary, the baseline's)
        "server": [{k: st.get(k) for k in ("requests", "admitted", "ok", "rate_limited",
                                            "errors_5xx", "truncated", "too_large",
                                            "rejected_counted", "prompt_tokens",
                                            "completion_tokens")} for st in stats],
    }
    if t_first is None:
        result["error"] = f"no request reached the server (exit {status}): {stderr[-500:]}"
        return result
    result.update(measure(case, timelines, stats, t_first, t_stop))
    result["lost"] = (figures.get("failed_requests") or 0) + (figures.get("records_missing") or 0)
    return result


def first_request(sims: list[Simulator], proc: subprocess.Popen, started: float) -> float | None:
    """When the first request reached a server (polled every 0.05 s; the midpoint of the poll
    that saw it). None if none came within 60 s or the client died first."""
    last = started
    while time.time() - started < 60.0 and proc.poll() is None:
        try:
            seen = sum(s.stats()["requests"] for s in sims)
        except OSError:
            seen = 0
        now = time.time()
        if seen:
            return round((last + now) / 2, 3)
        last = now
        time.sleep(0.05)
    return None


def wait_for(proc: subprocess.Popen, timeout: float) -> tuple[int | None, Any]:
    """Reap the child with its resource usage; SIGKILL after `timeout` s. A child that died
    early was reaped by `first_request`'s poll: its exit code, no usage (os.wait4 would raise
    ChildProcessError, which hid the client's own error behind "No child processes")."""
    if proc.returncode is not None:
        return proc.returncode, None
    deadline = time.time() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage
        if time.time() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage
        time.sleep(0.05)


def creator_figures(output: Path) -> dict[str, Any]:
    summary_file = output.with_name(output.stem + ".summary.json")
    if not summary_file.exists():
        return {"summary": None, "failed_requests": None, "records_missing": None}
    s = json.loads(summary_file.read_text())
    lines = torn = 0
    if output.exists():
        for line in output.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                json.loads(line)
                lines += 1
            except ValueError:
                torn += 1
    return {
        "status": s["status"], "requests": s["requests"], "completions": s["completions"],
        "retries": s["retries"], "rate_limited": s["rate_limited"],
        "server_errors": s["server_errors"], "failed_requests": s["failed_requests"],
        "failed_by_reason": s.get("failed") or {}, "accepted": s["accepted"],
        "records_in_file": lines, "torn_lines": torn,
        "records_missing": max(0, s["accepted"] - lines) + torn,
        "rejected": s.get("rejected") or {},
        # what the limiter learnt of each endpoint (refund_share, token_charge, learned_rpm ...)
        "endpoints": [{k: v for k, v in e.items() if k not in ("base_url", "model", "api_key_env")}
                      for e in (s.get("config") or {}).get("endpoints") or []],
    }


def baseline_figures(stdout: str) -> dict[str, Any]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"failed_requests": None, "records_missing": 0}
    data = json.loads(lines[-1])
    return {**data, "failed_requests": data["errors"], "records_missing": 0}


# --- what the timelines say ------------------------------------------------------------------------


def per_second(timelines: list[dict[str, Any]], units: str, accounting: str
               ) -> tuple[dict[int, dict[str, float]], dict[str, float]]:
    """{whole Unix second: admitted, rate_limited, ok, units} summed over the servers, and the
    tokens per request used to turn admitted requests into tokens."""
    out: dict[int, dict[str, float]] = {}
    info: dict[str, float] = {}
    for tl in timelines:
        ok = sum(tl["ok"])
        admitted = sum(tl["admitted"])
        prompt = sum(tl["input_tokens"]) / ok if ok else 0.0
        used = (sum(tl["input_tokens"]) + sum(tl["output_tokens"])) / ok if ok else 0.0
        reserved = sum(tl["reserved_tokens"]) / admitted if admitted else 0.0
        output = sum(tl["output_tokens"]) / ok if ok else 0.0
        per_request = {"requests": 1.0, "output_tokens": output}.get(units, used)
        busy = tl.get("active_ms") or [0] * tl["seconds"]
        info = {"prompt_tokens_per_request": round(prompt, 1),
                "tokens_per_request": round(used, 1),
                # the creator asks for less than --max_tokens under a token limit (replysize.py)
                "max_tokens_asked": round(reserved - prompt, 1) if admitted and ok else None}
        for i in range(tl["seconds"]):
            row = out.setdefault(tl["t0"] + i, {"admitted": 0, "rate_limited": 0, "ok": 0,
                                                "units": 0.0})
            row["admitted"] += tl["admitted"][i]
            row["rate_limited"] += tl["rate_limited"][i]
            row["ok"] += tl["ok"][i]
            # what `reserve` charges is what each request asked for, as the server counted it;
            # `max` charges max(prompt, max_tokens), max_tokens here (the mean prompt is ~103)
            if units == "active":  # seconds of requests in flight
                row["units"] += busy[i] / 1000.0
            elif units == "tokens" and accounting == "reserve":
                row["units"] += tl["reserved_tokens"][i]
            elif units == "tokens" and accounting == "max":
                asked = tl["reserved_tokens"][i] - tl["admitted"][i] * prompt
                row["units"] += max(asked, tl["admitted"][i] * prompt)
            else:
                row["units"] += tl["admitted"][i] * per_request
    return out, info


def ceiling(case: Case, info: dict[str, float], max_tokens: float = MAX_TOKENS) -> float:
    """The share of the limit a client that sends evenly, asking for `max_tokens`, can hold at
    most (module docstring)."""
    if case.bound in ("rpm", "active"):
        return 1.0
    limit = case.limit_per_s()
    reserved = info["prompt_tokens_per_request"] + max_tokens
    if case.accounting == "actual":  # nothing is reserved: what is used is what is charged
        return 1.0
    if case.accounting in ("reserve", "max"):
        flags = {**MODES[case.mode], **case.sim_flags}
        charge = reserved if case.accounting == "reserve" else max(
            max_tokens, info["prompt_tokens_per_request"])
        share = limit * (flags.get("token_window_s") or flags.get("window_s", 60))
        if flags["limit_mode"] in ("fixed", "limits-fixed"):  # whole charges per window
            return math.floor(share / charge) * charge / share
        if flags["limit_mode"] == "limits-counter":
            # n evenly a window: a request at phase f of its window finds the last window's n
            # weighted by 1 - f, and those of its own before it, c (n - f) in all; it fits while
            # floor(c (n - f)) + c <= share for every f > 0: n <= (share + 1) / c - 1
            return max(0, math.floor((share + 1) / charge) - 1) * charge / share
        return 1.0
    used = info["tokens_per_request"]
    unused = max(0.0, reserved - used)
    if not used:
        return 1.0
    flags = MODES[case.mode]
    if flags["limit_mode"] in ("fixed", "sliding"):
        return min(1.0, 1.0 / (1.0 + case.latency_s * unused / (flags["window_s"] * used)))
    if flags["limit_mode"] == "gcra":
        room = flags["burst"] * limit - reserved
        return max(0.0, min(1.0, room * used / (case.latency_s * unused * limit)))
    return 1.0


def measure(case: Case, timelines: list[dict[str, Any]], stats: list[dict[str, Any]],
            t_first: float, t_stop: float) -> dict[str, Any]:
    units = {"rpm": "requests", "active": "active"}.get(case.bound, "tokens")
    if units == "tokens" and case.token_limit == "otpm":
        units = "output_tokens"
    rows, info = per_second(timelines, units, case.accounting)
    limit = case.limit_per_s()
    first_sec, stop_sec = math.floor(t_first), math.floor(t_stop)

    def u(s: int) -> float:
        return rows.get(s, {}).get("units", 0.0)

    # whole run: [t_first, stop_sec): the partial first second holds only what came after t_first
    span = stop_sec - t_first
    whole = sum(u(s) for s in range(first_sec, stop_sec)) / (limit * span) if span > 0 else None
    full = [u(s) for s in range(first_sec + 1, stop_sec)]  # whole seconds only
    starts = [s - t_first for s in range(first_sec + 1, stop_sec)]  # each one's start, from t_first
    steady_idx = [j for j, t in enumerate(starts) if t >= STEADY_AFTER_S]
    steady = (sum(full[j] for j in steady_idx) / (limit * len(steady_idx))
              if case.duration_s >= 90 and steady_idx else None)
    avgs = [sum(full[j:j + SMOOTH_S]) / SMOOTH_S / limit for j in range(len(full) - SMOOTH_S + 1)]
    converge = None
    for j in range(len(avgs) - 1, -1, -1):  # walk back from the end while within the band
        if not BAND[0] <= avgs[j] <= BAND[1]:
            break
        converge = round(starts[j], 1)
    late = [a for j, a in enumerate(avgs) if starts[j] >= STEADY_AFTER_S]
    longest = run = 0
    for j in steady_idx:
        run = run + 1 if full[j] < 0.5 * limit else 0
        longest = max(longest, run)
    sent = sum(r["admitted"] + r["rate_limited"] for r in rows.values())
    refused = sum(r["rate_limited"] for r in rows.values())
    ceil = ceiling(case, info)
    asked = info.get("max_tokens_asked")
    ceil_asked = ceiling(case, info, asked) if asked else None
    out: dict[str, Any] = {
        "held_whole": round(whole, 4) if whole is not None else None,
        "held_steady": round(steady, 4) if steady is not None else None,
        "ceiling": round(ceil, 4),
        # the same for a client asking for the max_tokens the creator asked (on average)
        "ceiling_asked": round(ceil_asked, 4) if ceil_asked is not None else None,
        "held_vs_ceiling": round(whole / ceil, 4) if whole is not None and ceil else None,
        "server_requests": sent, "server_429s": refused,
        "per_1000_429": round(1000 * refused / sent, 2) if sent else None,
        "converge_s": converge,
        "low_5s_after_60s": round(min(late), 4) if late else None,
        "below_50pct_after_60s_s": longest if steady_idx else None,
        **info,
    }
    if case.group == "faults":
        ok = sum(r["ok"] for r in rows.values())
        admitted = sum(r["admitted"] for r in rows.values())
        errors = sum(st["errors_5xx"] for st in stats)  # drawn when a request is admitted
        share_5xx = errors / admitted if admitted else 0.0
        could = limit * (1 - share_5xx) * max(1e-9, t_stop - t_first - case.latency_s)
        out["share_5xx"] = round(share_5xx, 4)
        # 200s per second / what the limit allows once the 5xx share is taken off; a request
        # admitted in the last latency before the SIGINT could not complete
        out["goodput_vs_limit_after_5xx"] = round(ok / could, 4)
    # the per-second series, from the second of the first request (t = its start - t_first)
    secs = range(first_sec, max(rows) + 1 if rows else first_sec)
    out["series"] = {
        "t": [round(s - t_first, 2) for s in secs],
        "admitted": [rows.get(s, {}).get("admitted", 0) for s in secs],
        "rate_limited": [rows.get(s, {}).get("rate_limited", 0) for s in secs],
        "ok": [rows.get(s, {}).get("ok", 0) for s in secs],
        "units": [round(u(s), 1) for s in secs],
        "sigint_t": round(t_stop - t_first, 2),
    }
    return out


# --- the AsyncOpenAI baselines (run as children) ----------------------------------------------------


async def aoai_loop(base_url: str, concurrency: int, max_s: float, pace_rpm: float | None,
                    k: int = K) -> dict[str, Any]:
    """The popular bulk client: AsyncOpenAI (the SDK's default transport and 2 retries) and a
    semaphore of `concurrency`, sending until SIGINT (or `max_s`); with `pace_rpm`, a smooth
    pacer in front: requests leave evenly at pace_rpm / 60 per second. Replies parsed with the
    creator's parser (the throughput benchmark's loop, made to run for a time)."""
    import openai

    from creator.parse import parse_reply, question_key
    from creator.task import detect_format, record_from_json, render_messages

    from .throughput import _exemplar

    record = record_from_json(_exemplar(), "exemplar")
    fmt = detect_format(record)
    messages = render_messages(record, fmt, k)
    echo = {question_key(record.question)}
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x")
    sem = asyncio.Semaphore(concurrency)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    seen: set[str] = set()
    counts = {"calls": 0, "completions": 0, "errors": 0}
    t0 = loop.time()

    async def one() -> None:
        counts["calls"] += 1
        try:
            response = await client.chat.completions.create(
                model="sim-model", messages=messages, temperature=1, top_p=1,
                max_tokens=MAX_TOKENS)
        except asyncio.CancelledError:
            counts["calls"] -= 1  # stopped by the SIGINT, not given up
            raise
        except Exception:  # noqa: BLE001 - what such a loop does: count it and move on
            counts["errors"] += 1
            return
        counts["completions"] += 1
        result = parse_reply(response.choices[0].message.content, fmt, seen, echo)
        seen.update(question_key(r.question) for r in result.records)

    async def worker() -> None:  # = gather(many) under the semaphore, for as long as it runs
        while not stop.is_set() and loop.time() - t0 < max_s:
            async with sem:
                await one()

    async def paced() -> None:
        interval = 60.0 / pace_rpm  # type: ignore[operator]
        tasks: set[asyncio.Task] = set()
        next_at = loop.time()
        while not stop.is_set() and loop.time() - t0 < max_s:
            await sem.acquire()
            delay = next_at - loop.time()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    sem.release()
                    break
                except asyncio.TimeoutError:
                    pass
            next_at = max(next_at + interval, loop.time())  # evenly; no catch-up burst

            async def released() -> None:
                try:
                    await one()
                finally:
                    sem.release()

            task = asyncio.ensure_future(released())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    if pace_rpm:
        main = asyncio.ensure_future(paced())
    else:
        main = asyncio.ensure_future(asyncio.gather(*(worker() for _ in range(concurrency))))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({main, stopper}, timeout=max_s + 5, return_when=asyncio.FIRST_COMPLETED)
    main.cancel()
    await asyncio.gather(main, return_exceptions=True)
    stopper.cancel()
    await client.close()
    return {**counts, "accepted": len(seen), "duration_s": round(loop.time() - t0, 3)}


def role_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.limits")
    p.add_argument("--role", required=True, choices=("aoai",))
    p.add_argument("--base_url", required=True)
    p.add_argument("--concurrency", type=int, default=CONCURRENCY)
    p.add_argument("--max_s", type=float, default=300.0, help="stop by itself after this long")
    p.add_argument("--pace_rpm", type=float, help="send evenly at this many requests per minute")
    a = p.parse_args(argv)
    out = asyncio.run(aoai_loop(a.base_url, a.concurrency, a.max_s, a.pace_rpm))
    print(json.dumps(out), flush=True)
    return 0


# --- the benchmark ----------------------------------------------------------------------------------


@dataclass
class LimitsResult:
    benchmark: str
    command: str
    quick: bool
    machine: dict[str, Any]
    params: dict[str, Any]
    cases: list[dict[str, Any]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    wall_s: float = 0.0


def chosen_cases(p: Params, only: str | None = None,
                 duration_s: float | None = None) -> list[Case]:
    """All cases, or those whose name contains `only` or one of its |-separated parts, each
    run for `duration_s` if given (what a learnt rate holds over minutes)."""
    parts = only.split("|") if only else None
    cases = [c for c in all_cases(p) if parts is None or any(t in c.name for t in parts)]
    if not cases:
        raise SystemExit(f"limits: no case's name contains {only!r}")
    return [replace(c, duration_s=duration_s) for c in cases] if duration_s else cases


def run(quick: bool, command: str, only: str | None = None,
        duration_s: float | None = None) -> LimitsResult:
    p = QUICK if quick else FULL
    began = time.monotonic()
    cases = chosen_cases(p, only, duration_s)
    result = LimitsResult("limits", command, quick, machine_info(), {
        **p.__dict__, "rpm": RPM, "tpm": TPM, "concurrency": CONCURRENCY, "k": K,
        "max_tokens": MAX_TOKENS, "latency_s": LATENCY_S, "latency_nothing_s": LATENCY_NOTHING_S,
        "gcra_burst_s": GCRA_BURST_S, "band": list(BAND), "smooth_s": SMOOTH_S,
        "steady_after_s": STEADY_AFTER_S, "p_500": P_500, "p_truncated": P_TRUNCATED,
        "modes": MODES, "data": "data/yesno_close/example", "setting": "naive"})
    # the AsyncOpenAI loop without a pacer sends hundreds of requests a second into 429s and
    # takes a core for it: it runs after the others, alone, so as not to slow them down
    heavy = [i for i, c in enumerate(cases) if c.client == "aoai"]
    light = sorted((i for i in range(len(cases)) if i not in heavy),
                   key=lambda i: -cases[i].duration_s)  # the longest first: the lanes end together
    total = sum(cases[i].duration_s for i in light) / p.parallel + sum(
        cases[i].duration_s for i in heavy)
    log(f"limits: {len(cases)} cases, {len(light)} {p.parallel} at once, then {len(heavy)} alone "
        f"(~{total / 60:.0f} min)")
    done = [0]
    lock = threading.Lock()
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:

        def one(i: int) -> None:
            try:
                r = run_case(cases[i], Path(tmp), seed=100 + 10 * i)
            except Exception as e:  # noqa: BLE001 - one broken case is recorded, not fatal
                c = cases[i]
                r = {"name": c.name, "group": c.group, "mode": c.mode, "knowledge": c.knowledge,
                     "bound": c.bound, "client": c.client, "duration_s": c.duration_s,
                     "error": f"{type(e).__name__}: {e}", "load_average": []}
            with lock:
                results[i] = r
                done[0] += 1
                log(f"  [{done[0]}/{len(cases)}] {r['name']}: held {fmt(r.get('held_whole'))} "
                    f"(steady {fmt(r.get('held_steady'))}), 429s/1k {r.get('per_1000_429')}, "
                    f"converge {r.get('converge_s')} s, lost {r.get('lost')}, "
                    f"load {r['load_average']}")

        for lane, width in ((light, p.parallel), (heavy, 1)):
            with ThreadPoolExecutor(width) as pool:
                for future in [pool.submit(one, i) for i in lane]:
                    future.result()
    result.cases = [results[i] for i in range(len(cases))]
    result.targets = targets(result.cases)
    result.wall_s = round(time.monotonic() - began, 1)
    return result


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _worst(rows: list[dict[str, Any]], key: str, low: bool) -> tuple[float | None, str]:
    rows = [r for r in rows if r.get(key) is not None]
    if not rows:
        return None, "no case"
    r = (min if low else max)(rows, key=lambda r: r[key])
    return r[key], f"worst: {r['name']} ({len(rows)} cases)"


def binding_unstated(case: dict[str, Any]) -> bool:
    """A provider profile whose headers state other limits than the one that binds (Groq's and
    Cerebras's RPM, stated nowhere): as to that limit, nothing is known."""
    profile = PROFILES.get(case["name"].split("-like,", 1)[0], {})
    return case["knowledge"] == "headers" and case["bound"] in profile.get("unstated", ())


def targets(cases: list[dict[str, Any]]) -> list[Target]:
    creator = [c for c in cases if c["client"] == "creator" and "error" not in c]
    known = [c for c in creator if c["knowledge"] in ("given", "headers")
             and c["group"] not in ("faults", "endpoints", "low") and not binding_unstated(c)]
    # a limit on requests in flight, its 429s saying so (those that do not: in the table only)
    named = [c for c in creator if c["group"] == "concurrency" and "Concurrency" in c["name"]]
    # (not a free plan's 30 RPM, here or above: in a run ~45-100 requests, where one 429 is 10-22
    # per 1,000 and the ramp's first 429s alone 50; its rows show that no such limit collapses)
    unknown = [c for c in creator if (c["knowledge"] in ("nothing", "retry-after")
                                      or binding_unstated(c))
               and c["group"] not in ("low", "concurrency")]
    faults = [c for c in creator if c["group"] == "faults"]
    two = [c for c in creator if c["group"] == "endpoints"]
    out = []
    for bound in ("rpm", "tpm"):
        rows = [c for c in known if c["bound"] == bound]
        if rows:
            v, note = _worst(rows, "held_whole", True)
            worst = next(c for c in rows if c["held_whole"] == v) if v is not None else None
            if worst is not None and worst["ceiling"] < 0.999:
                note += f"; its ceiling {worst['ceiling']:.1%}"
                if worst.get("ceiling_asked"):
                    note += f" ({worst['ceiling_asked']:.1%} at the max_tokens asked)"
            out.append(check(f"limit given or in headers, {bound.upper()}-bound: lowest held "
                             "over the run", v, ">=", 0.97, note))
    if known:
        v, note = _worst(known, "per_1000_429", False)
        out.append(check("limit given or in headers: most 429s per 1,000 requests", v, "<=", 5.0,
                         note))
        out.append(check("limit given or in headers: requests or records lost",
                         float(sum(c["lost"] for c in known)), "==", 0.0, f"{len(known)} cases"))
    if unknown:
        long_runs = [c for c in unknown if c["duration_s"] >= 120]
        note = "" if long_runs else " (runs shorter than the 2 minutes the target asks)"
        v, n = _worst(unknown, "held_whole", True)
        out.append(check("no headers, no limit: lowest held over the run", v, ">=", 0.90, n + note))
        v, n = _worst(unknown, "per_1000_429", False)
        out.append(check("no headers, no limit: most 429s per 1,000 requests", v, "<=", 20.0, n))
        v, n = _worst(unknown, "below_50pct_after_60s_s", False)
        out.append(check("no headers, no limit: longest time under 50% of the limit after "
                         "60 s, s", v, "<=", 5.0, n))
    if named:
        v, note = _worst(named, "held_whole", True)
        out.append(check("a concurrency limit its 429s name: lowest share of it kept busy over "
                         "the run", v, ">=", 0.97, note))
        v, note = _worst(named, "per_1000_429", False)
        out.append(check("a concurrency limit its 429s name: most 429s per 1,000 requests", v,
                         "<=", 5.0, note))
    for c in faults:
        out.append(check("faults: 200s per second / what the limit allows after the 5xx share",
                         c.get("goodput_vs_limit_after_5xx"), ">=", 0.95,
                         f"5xx share {c.get('share_5xx')}"))
        out.append(check("faults: requests or records lost", float(c["lost"]), "==", 0.0))
    for c in two:
        out.append(check(f"two endpoints (600 + 1,200 RPM), {c['knowledge']}: held of their "
                         "sum over the run", c.get("held_whole"), ">=", 0.95))
    return out


# --- tables ----------------------------------------------------------------------------------------


COLUMNS = [
    ("name", "case", ""), ("duration_s", "s", ".0f"), ("held_whole", "held", ".1%"),
    ("held_steady", "steady", ".1%"), ("ceiling", "ceiling", ".0%"),
    ("max_tokens_asked", "asked", ".0f"), ("ceiling_asked", "ceil@asked", ".0%"),
    ("per_1000_429", "429s/1k", ".1f"), ("converge_s", "converge s", ".1f"),
    ("low_5s_after_60s", "low 5s", ".0%"), ("below_50pct_after_60s_s", "<50% s", "d"),
    ("lost", "lost", "d"), ("load", "load", ""),
]


def _row(c: dict[str, Any]) -> dict[str, Any]:
    row = dict(c)
    if "error" in c:
        row["name"] = c["name"] + " (ERROR: " + c["error"][:60] + ")"
    la = c.get("load_average") or []
    row["load"] = "/".join(f"{x:.1f}" for x in la)
    return row


def tables(data: dict[str, Any]) -> str:
    p = data["params"]
    cases = data["cases"]
    out = [f"limits: the creator (--concurrency {p['concurrency']}, naive, k={p['k']}, "
           f"max_tokens {p['max_tokens']}) against the simulator; RPM-bound {p['rpm']:g} RPM, "
           f"TPM-bound {p['tpm']:g} TPM (refund unless said); latency {p['latency_s']:g} s "
           f"({p['latency_nothing_s']:g} s where nothing is known); measured by the server from "
           "the first request to the SIGINT"]
    for title, group in (("matrix: RPM-bound", ("matrix", "rpm")),
                         ("matrix: TPM-bound (units: tokens; ceiling: even sending of max_tokens "
                          "1,024 under the refund accounting; asked: mean max_tokens asked)",
                          ("matrix", "tpm")),
                         ("header dialects, Retry-After forms, accounting, rejected requests "
                          "that count", None),
                         ("providers as documented (openai: fixed 1 s, max(prompt, max_tokens) "
                          "kept, 429s count; azure: fixed 10 s, tokens per minute, prompt + "
                          "max_tokens kept, 429s count; anthropic: GCRA 1 s, token buckets, "
                          "OTPM as generated; together: fixed 1 s, per-second headers, tokens as "
                          "generated)", ("providers",)),
                         ("providers as documented, slow replies (~162 tokens at 0.01 s each, "
                          "+-50%)", ("providers slow",)),
                         ("enforced by the `limits` library (API gateways' code, not the "
                          "simulator's): a window from the first request, a log, a sliding "
                          "window counter; TPM: prompt + max_tokens kept", ("library",)),
                         ("faults and two endpoints", ("faults", "endpoints")),
                         (f"a limit on requests in flight, {MAX_ACTIVE} at once, a bare 429 "
                          "(held: the share of them kept busy)", ("concurrency",)),
                         ("slow replies (~162 tokens at 0.01 s each, +-50%)", ("slow",)),
                         (f"across a network: every answer, a 429 too, a round trip ({RTT_S:g} s "
                          "+-20%) after its request left", ("network",)),
                         ("a free plan's limit, 30 RPM (~45-100 requests in a run: one 429 is "
                          "10-22 per 1,000)", ("low",)),
                         ("baselines: AsyncOpenAI + semaphore (c=64, SDK's 2 retries), "
                          "with and without a pacer at the limit (at a share of the requests a "
                          f"token limit allows, ~{TOKENS_PER_REQUEST:.0f} tokens each)",
                          ("baseline",))):
        if group == ("matrix", "rpm") or group == ("matrix", "tpm"):
            rows = [c for c in cases if c["group"] == "matrix" and c["bound"] == group[1]]
        elif group is None:
            rows = [c for c in cases if c["group"] in ("dialect", "retry_after", "accounting",
                                                        "count_rejected")]
        else:
            rows = [c for c in cases if c["group"] in group]
        if not rows:
            continue
        out += ["", title, format_table([_row(c) for c in rows], COLUMNS)]
    extra = [c for c in cases if c["group"] == "faults" and "goodput_vs_limit_after_5xx" in c]
    for c in extra:
        out.append(f"faults: 5xx share {c['share_5xx']:.1%}, 200s per second "
                   f"{c['goodput_vs_limit_after_5xx']:.1%} of what the limit allows after it; "
                   f"truncated replies {sum(s['truncated'] or 0 for s in c['server'])}")
    base = [c for c in cases if c["client"] != "creator"]
    if base:
        out.append("baselines: " + "; ".join(
            f"{c['name']}: {c['figures'].get('errors')} of {c['figures'].get('calls')} calls "
            "given up" for c in base))
    out += ["", targets_table(data["targets"])]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(role_main(sys.argv[1:]))
