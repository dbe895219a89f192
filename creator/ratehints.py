"""What a server says about its rate limits, in the dialects seen in the field: pure parsing.

Every reply may carry the limit, what is left of it and when it comes back, for requests and for
tokens; a 429 may add when to retry (Retry-After in seconds or as an HTTP date, retry-after-ms,
or "try again in 5.289s" inside the error message). Each dialect is read into one `RateLimitHint`;
the limiter never sees a header name.

| dialect | requests | tokens | reset |
|---|---|---|---|
| OpenAI, Azure, Groq | x-ratelimit-{limit,remaining,reset}-requests | ...-tokens | duration "6m0s" |
| Cerebras, Mistral | x-ratelimit-{limit,remaining,reset}-requests-day, -req-minute | ...-tokens-minute | seconds |
| Anthropic | anthropic-ratelimit-requests-{limit,remaining,reset} | -tokens-, -input-tokens-, -output-tokens- | RFC 3339 time |
| Fireworks | | x-ratelimit-limit-tokens-prompt (input), -tokens-generated (output) | |
| Together | x-ratelimit-{limit,remaining,reset} | x-tokenlimit-{limit,remaining} | seconds |
| OpenRouter, and many APIs | X-RateLimit-{Limit,Remaining,Reset} (429s only; also in the body) | | Unix time, ms or s |
| IETF draft | RateLimit-Policy: "p";q=100;w=60 and RateLimit: "p";r=50;t=30 | | seconds |
| IETF, older drafts | RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset | | seconds |
| Google (Gemini) | no headers; a 429's body: QuotaFailure quotaValue, quotaId ...RequestsPerMinute... | ...InputTokensPer... | RetryInfo retryDelay "7s" |

Limits are per minute unless the dialect states a window (IETF `w=`, Together's second): a server
whose limit is per second or per day is recognised by the limiter from how its counts and resets
move. A reset may be written as a wait or as a time: Together's "0.25" is seconds to wait,
OpenRouter's "1789138080000" Unix milliseconds (a minute's end), DigitalOcean's
x-ratelimit-reset-requests a "Unix epoch timestamp ... in seconds" (docs.digitalocean.com/products/
inference/reference/quota-specific-response-headers), as GitHub-style APIs write theirs; a number
no wait could be (over 31 years) is read as a time, or the run would wait for ever.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """OpenAI's durations: "1s", "6m0s", "120ms", "1h2m3.5s", or a bare number of seconds."""
    if not text:
        return None
    text = text.strip()
    try:
        value = float(text)
        return max(0.0, value) if math.isfinite(value) else None
    except ValueError:
        pass
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in _UNITS or not number:
            return None
        try:
            total += float(number) * _UNITS[unit]
        except ValueError:
            return None
        number = ""
        i += len(unit)
    return None if number else total


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


UNIX_SECONDS = 1e9  # a wait this long is 31 years: such a number is a time (2001 on), in seconds,
UNIX_MILLISECONDS = 1e11  # ... or from this on, in milliseconds (1973 on, in ms; 5138 in s)


def _as_wait(number: float, reference: float) -> tuple[float, bool]:
    """(seconds to wait, whether the server wrote a time rather than a wait)."""
    if number >= UNIX_MILLISECONDS:
        return max(0.0, number / 1000.0 - reference), True
    if number >= UNIX_SECONDS:
        return max(0.0, number - reference), True
    return number, False


def reset_seconds(text: str | None, reference: float) -> tuple[float | None, bool]:
    """A reset as any dialect writes it, in seconds from now: a wait ("0.25", OpenAI's "6m0s"), a
    Unix time in seconds or milliseconds, or an HTTP date; and whether it was written as a time
    (None, False: not said, or unreadable)."""
    if not text:
        return None, False
    number = _number(text)
    if number is not None:
        return _as_wait(number, reference)
    wait = parse_duration(text)
    if wait is not None:
        return wait, False
    when = _seconds_until_http_date(text, reference)
    return (when, True) if when is not None else (None, False)


def _reply_time(headers: Mapping[str, str], wall_now: float) -> float:
    """The server's clock at the reply (its Date header), so an absolute reset time is read
    against the clock that wrote it; our own wall clock when there is none."""
    date = headers.get("date")
    if date:
        try:
            return email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return wall_now


def _seconds_until_http_date(text: str, reference: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - reference)


def _seconds_until_rfc3339(text: str | None, reference: float) -> float | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - reference)


@dataclass(frozen=True)
class Reading:
    """One limit as a reply states it: `limit` units per `window` seconds (None: not said; the
    limiter assumes a minute), `remaining` of them now, whole again in `reset` seconds, either
    refilling as it goes (OpenAI's and Anthropic's buckets) or all at once (a window)."""

    limit: float | None = None
    remaining: float | None = None
    reset: float | None = None
    window: float | None = None
    refills: bool = True  # a bucket that refills as it goes; False: a window reset at once

    @property
    def empty(self) -> bool:
        return self.limit is None and self.remaining is None


NOTHING = Reading()


@dataclass(frozen=True)
class RateLimitHint:
    """Everything one reply said about limits. `tokens` is the combined token limit; Anthropic and
    others also state input and output tokens apart (`input_tokens`, `output_tokens`)."""

    retry_after: float | None = None
    # a 429's own word on which limit: requests, tokens, input, output; or concurrency (requests
    # in flight at once)
    limited: str | None = None
    requests: Reading = NOTHING
    tokens: Reading = NOTHING
    input_tokens: Reading = NOTHING
    output_tokens: Reading = NOTHING
    requested: int | None = None  # a 429's "Requested N": what the server charged the request
    per_day: bool = False  # a 429's message names a limit per day ("tokens per day (TPD)")

    @property
    def states_limits(self) -> bool:
        return any(r.limit is not None for r in
                   (self.requests, self.tokens, self.input_tokens, self.output_tokens))

    @classmethod
    def from_reply(cls, headers: Mapping[str, str], body: bytes | str | None = None,
                   wall_now: float | None = None) -> "RateLimitHint":
        """`headers` must be case-insensitive (aiohttp's are) or lower-case."""
        import time

        wall = time.time() if wall_now is None else wall_now
        headers = _with_headers_in_body(headers, body)
        reference = _reply_time(headers, wall)
        retry_after = retry_after_seconds(headers, reference)
        said = retry_hint_in_message(body) if body else None
        if said is not None and (retry_after is None or (
                headers.get("retry-after-ms") is None and said <= retry_after < said + 1.0)):
            # Retry-After counts whole seconds (RFC 9110's delay-seconds; a date's are whole too),
            # so a server that also writes the wait in its message rounds it up there (Groq:
            # retry-after "In seconds", and "Please try again in 7.66s"): the message's is the
            # same wait, to the millisecond. A second's window that reopens in 0.1 s was waited
            # out for a whole second at each storm (benchmarks/README, "Groq's headers")
            retry_after = said
        google = GoogleError.read(body) if body else None
        if retry_after is None and google is not None:
            retry_after = google.retry_delay  # (the message's, above, is to the nanosecond)
        requested = requested_in_message(body) if body else None
        if google is not None and google.limited is not None:  # the quota it broke says both
            limited, per_day = google.limited, google.per_day
        else:
            limited = limit_named_in(body) if body else None
            per_day = names_a_day(body) if body else False
        requests, tokens = _openai(headers, reference)
        inputs = outputs = NOTHING
        if requests.empty and tokens.empty:
            requests, tokens, inputs, outputs = _anthropic(headers, reference)
        if requests.empty and tokens.empty:
            requests, tokens = _x_ratelimit(headers, reference)
            if retry_after is None and body is not None:  # a 429: Together's reset is the wait
                retry_after = requests.reset
        if requests.empty and tokens.empty:
            requests, tokens = _ietf(headers, reference)
        if inputs.empty and outputs.empty:
            inputs, outputs = _fireworks(headers)
        if google is not None and google.quotas and all(
                r.empty for r in (requests, tokens, inputs, outputs)):
            requests, tokens, inputs, outputs = (google.quotas.get(k, NOTHING) for k in
                                                 ("requests", "tokens", "input", "output"))
        return cls(retry_after, limited, requests, tokens, inputs, outputs, requested, per_day)


def _with_headers_in_body(headers: Mapping[str, str],
                          body: bytes | str | None) -> Mapping[str, str]:
    """OpenRouter's 429 body repeats its rate-limit headers, {"error": {"message": ...,
    "metadata": {"headers": {"X-RateLimit-Limit": "20", ...}}}}: where a proxy on the way kept
    the body but not the headers, they are read from there (the reply's own headers win)."""
    if not body or b"metadata" not in (body if isinstance(body, bytes) else body.encode()):
        return headers
    try:
        said = json.loads(body)["error"]["metadata"]["headers"]
    except (ValueError, KeyError, TypeError):
        return headers
    if not isinstance(said, dict):
        return headers
    merged = {str(k).lower(): str(v) for k, v in said.items()}
    merged.update((k.lower(), v) for k, v in headers.items())
    return merged


def retry_after_seconds(headers: Mapping[str, str], reference: float) -> float | None:
    """retry-after-ms (Azure, OpenAI) is the most precise; Retry-After is seconds (a fraction is
    tolerated) or an HTTP date (RFC 9110 10.2.3), read against the server's Date."""
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    text = headers.get("retry-after")
    if not text:
        return None
    seconds = _number(text)
    if seconds is not None:
        return _as_wait(seconds, reference)[0]
    return _seconds_until_http_date(text, reference)


# "Please try again in 5.289s." (OpenAI, Groq), "try again in 1m30.5s", "try again in 120ms",
# "Please retry after 20 seconds." (Azure)
_TRY_AGAIN = re.compile(
    r"(?:try again in|retry after|retry in)\s+([0-9][0-9.hms]*)(\s*(?:seconds?|secs?|s)\b)?",
    re.IGNORECASE)


def _text(body: bytes | str) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


def retry_hint_in_message(body: bytes | str) -> float | None:
    text = _text(body)
    match = _TRY_AGAIN.search(text[:2000])
    if not match:
        return None
    amount = match.group(1).rstrip(".")
    if match.group(2) and amount.replace(".", "", 1).isdigit():
        return float(amount)
    return parse_duration(amount)


_ERROR_TYPES = {"requests": "requests", "tokens": "tokens", "input_tokens": "input",
                "output_tokens": "output"}
_LIMIT_WORDS = (  # what a 429 message says was reached (OpenAI, Groq, Azure, Anthropic, OpenRouter)
    # a limit on requests in flight, not on a rate: W&B Inference's "Concurrency limit reached for
    # requests" (docs.wandb.ai/guides/inference/usage-limits), LiteLLM's "Max parallel request
    # limit reached", "too_many_concurrent_requests" / "Too many active inference requests"
    (re.compile(r"concurren(cy|t)|parallel request|too many active", re.I), "concurrency"),
    (re.compile(r"input[ -]tokens", re.I), "input"),
    (re.compile(r"output[ -]tokens", re.I), "output"),
    (re.compile(r"tokens per (min|minute|day)|\bTP[MD]\b|token rate limit", re.I), "tokens"),
    (re.compile(r"requests per (min|minute|day)|\bRP[MD]\b", re.I), "requests"),
    # OpenRouter's "Rate limit exceeded: free-models-per-min." (its free models' requests)
    (re.compile(r"models-per-(min|day)\b|limit_rp[md]\b", re.I), "requests"),
)


# "Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 27784, Requested 3256."
# (OpenAI, Azure, Groq write the request's charge so; the simulator follows them)
_REQUESTED = re.compile(r"\bRequested:?\s+([0-9][0-9,]*)\b", re.IGNORECASE)


def requested_in_message(body: bytes | str) -> int | None:
    """What the server says the refused request would have cost ("Requested 3256"), if it says."""
    text = _text(body)
    match = _REQUESTED.search(text[:2000])
    return int(match.group(1).replace(",", "")) if match else None


# "... on tokens per day (TPD): Limit 500000" (OpenAI, Groq), "Tokens per day limit exceeded - too
# many tokens processed." (Cerebras), "free-models-per-day" (OpenRouter), Gemini's quota ids
# "GenerateRequestsPerDayPerProjectPerModel"
_PER_DAY = re.compile(r"per[ -]?day|\bRPD\b|\bTPD\b|\bdaily\b", re.IGNORECASE)


def names_a_day(body: bytes | str) -> bool:
    """Whether a 429's message names a limit per day."""
    text = _text(body)
    return _PER_DAY.search(text[:2000]) is not None


def limit_named_in(body: bytes | str) -> str | None:
    """Which limit a 429 says was reached: OpenAI's error type ("tokens", "requests") or the
    words of its message ("... on tokens per min (TPM)"); None if it does not say. (Google's
    QuotaFailure names it otherwise: GoogleError.limited.)"""
    text = _text(body)
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        kind = _ERROR_TYPES.get(str(error.get("type")))
        if kind:
            return kind
        text = str(error.get("message") or "")
    for pattern, kind in _LIMIT_WORDS:
        if pattern.search(text[:2000]):
            return kind
    return None


# Google's error model (google.aip.dev/193), as Gemini answers a 429, with no rate-limit header
# and no Retry-After (its OpenAI-compatible endpoint too, at times as a one-element list):
#   {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "You exceeded your current
#    quota ... * Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_
#    free_tier_input_token_count, limit: 250000, model: gemini-2.5-flash\nPlease retry in
#    39.844676573s.", "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
#    "violations": [{"quotaMetric": "...", "quotaId": "GenerateContentInputTokensPerModelPer
#    Minute-FreeTier", "quotaValue": "250000"}]}, {"@type": "type.googleapis.com/google.rpc.
#    RetryInfo", "retryDelay": "39s"}]}}
# (429 bodies quoted in google-gemini/gemini-cli issues 13112 and 22486, gemini-cli-action issue
# 36, googleapis/python-genai PR 2114). RetryInfo: "Clients should wait at least this long between
# retrying the same request" (google.rpc.RetryInfo), a protobuf Duration, "39s" or "2.4635s"; the
# message's "retry in" is the same wait unrounded. Each violation names its quota's unit and
# period in its id, and its limit: a limit stated on the 429 only, as OpenRouter's.
_GOOGLE_KINDS = (("inputtokens", "input"), ("outputtokens", "output"), ("tokens", "tokens"),
                 ("requests", "requests"))
_GOOGLE_PERIODS = (("perminute", 60.0), ("perhour", 3600.0), ("perday", 86400.0))


@dataclass(frozen=True)
class GoogleError:
    """What a 429 body in Google's error model says: when to retry, the quotas it broke (by
    kind, the shortest period each), and the kind of the first one (the refusing limit) and
    whether that one is a day's."""

    retry_delay: float | None
    quotas: dict[str, Reading]
    limited: str | None
    per_day: bool = False

    @classmethod
    def read(cls, body: bytes | str) -> "GoogleError | None":
        text = _text(body)
        if "google.rpc." not in text[:20000]:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if isinstance(data, list) and data:
            data = data[0]
        error = data.get("error") if isinstance(data, dict) else None
        details = error.get("details") if isinstance(error, dict) else None
        if not isinstance(details, list):
            return None
        delay, quotas, limited, per_day = None, {}, None, False
        for detail in details:
            if not isinstance(detail, dict):
                continue
            kind = str(detail.get("@type", ""))
            if kind.endswith("google.rpc.RetryInfo"):
                delay = parse_duration(str(detail.get("retryDelay") or ""))
            elif kind.endswith("google.rpc.QuotaFailure") and \
                    isinstance(detail.get("violations"), list):
                for violation in detail["violations"]:
                    quota = _google_quota(violation) if isinstance(violation, dict) else None
                    if quota is None:
                        continue
                    unit, reading = quota
                    if limited is None:
                        limited, per_day = unit, reading.window == 86400.0
                    old = quotas.get(unit)
                    if reading.limit is not None and (old is None or (
                            reading.window or math.inf) < (old.window or math.inf)):
                        quotas[unit] = reading
        return cls(delay, quotas, limited, per_day)


def _google_quota(violation: dict) -> tuple[str, Reading] | None:
    """("input", Reading(limit=250000, window=60)) from a QuotaFailure violation, by its quotaId
    ("GenerateContentInputTokensPerModelPerMinute-FreeTier"), or its metric's name for the unit
    ("generate_content_free_tier_input_token_count"); None if neither names one."""
    name = str(violation.get("quotaId") or "").lower()
    metric = str(violation.get("quotaMetric") or "").lower().replace("_", "")
    unit = next((kind for word, kind in _GOOGLE_KINDS if word in name), None) or next(
        (kind for word, kind in _GOOGLE_KINDS if word.replace("tokens", "token") in metric), None)
    if unit is None:
        return None
    window = next((seconds for word, seconds in _GOOGLE_PERIODS if word in name), None)
    return unit, Reading(limit=_number(str(violation.get("quotaValue") or "")) or None,
                         window=window)


def _openai(headers: Mapping[str, str], reference: float) -> tuple[Reading, Reading]:
    def reading(kind: str) -> Reading:
        return Reading(limit=_number(headers.get(f"x-ratelimit-limit-{kind}")),
                       remaining=_number(headers.get(f"x-ratelimit-remaining-{kind}")),
                       reset=reset_seconds(headers.get(f"x-ratelimit-reset-{kind}"), reference)[0])

    requests, tokens = reading("requests"), reading("tokens")
    return (requests if not requests.empty else _per_period(headers, "requests", reference),
            tokens if not tokens.empty else _per_period(headers, "tokens", reference))


# Cerebras names the period after OpenAI's names: x-ratelimit-limit-requests-day,
# x-ratelimit-remaining-tokens-minute, x-ratelimit-reset-requests-day "Time (in seconds) until your
# daily request limit resets" (inference-docs.cerebras.ai/support/rate-limits); Mistral too, with
# "req" for requests and a month beside the minute (x-ratelimit-limit-req-minute: 720,
# x-ratelimit-limit-tokens-minute, as its replies show them in public issues). The shortest
# period stated is the one that paces; a day's or a month's is a budget (LONG_PERIOD_S).
_PERIODS = (("minute", 60.0), ("hour", 3600.0), ("day", 86400.0), ("month", 30 * 86400.0))
_KIND_NAMES = {"requests": ("requests", "req"), "tokens": ("tokens",)}


def _per_period(headers: Mapping[str, str], kind: str, reference: float) -> Reading:
    for period, window in _PERIODS:
        for name in _KIND_NAMES[kind]:
            limit = _number(headers.get(f"x-ratelimit-limit-{name}-{period}"))
            remaining = _number(headers.get(f"x-ratelimit-remaining-{name}-{period}"))
            if limit is not None or remaining is not None:
                reset = headers.get(f"x-ratelimit-reset-{name}-{period}")
                return Reading(limit, remaining, reset_seconds(reset, reference)[0],
                               window=window)
    return NOTHING


def _fireworks(headers: Mapping[str, str]) -> tuple[Reading, Reading]:
    """Fireworks limits prompt (input) and generated (output) tokens a minute apart: "Your current
    effective rate limits are in the response headers X-Ratelimit-Limit-Tokens-Prompt and
    X-Ratelimit-Limit-Tokens-Generated" (docs.fireworks.ai/serverless/rate-limits); a remaining
    count beside them is read if there is one."""
    def reading(name: str) -> Reading:
        return Reading(limit=_number(headers.get(f"x-ratelimit-limit-tokens-{name}")),
                       remaining=_number(headers.get(f"x-ratelimit-remaining-tokens-{name}")))

    return reading("prompt"), reading("generated")


def _anthropic(headers: Mapping[str, str],
               reference: float) -> tuple[Reading, Reading, Reading, Reading]:
    def reading(kind: str) -> Reading:
        prefix = f"anthropic-ratelimit-{kind}-"
        return Reading(limit=_number(headers.get(prefix + "limit")),
                       remaining=_number(headers.get(prefix + "remaining")),
                       reset=_seconds_until_rfc3339(headers.get(prefix + "reset"), reference),
                       window=60.0 if headers.get(prefix + "limit") is not None else None)

    return reading("requests"), reading("tokens"), reading("input-tokens"), reading("output-tokens")


def _x_ratelimit(headers: Mapping[str, str], reference: float) -> tuple[Reading, Reading]:
    """X-RateLimit-Limit/-Remaining/-Reset, a window's count that resets at once. Together states
    its limits per second ("the headers display per second limits only"), its reset a wait of
    under a second, with x-tokenlimit-* beside them. The same names elsewhere (OpenRouter: "20"
    a minute, reset "1789138080000", the minute's end in Unix ms) are of longer windows: a reset
    written as a time, or a wait over a second, is not Together's, and the window is left to the
    limiter (a minute, or what the reset shows)."""
    def reading(prefix: str) -> Reading:
        limit = _number(headers.get(f"{prefix}-limit"))
        reset, is_time = reset_seconds(headers.get(f"{prefix}-reset"), reference)
        per_second = limit is not None and not is_time and (reset is None or reset <= 1.0)
        return Reading(limit=limit, remaining=_number(headers.get(f"{prefix}-remaining")),
                       reset=reset, window=1.0 if per_second else None, refills=False)

    return reading("x-ratelimit"), reading("x-tokenlimit")


def _sf_items(text: str) -> list[tuple[str, dict[str, str]]]:
    """A structured-field list (RFC 9651) of items with parameters, leniently:
    '"default";q=100;w=60, "daily";q=1000;w=86400' -> [("default", {"q": "100", "w": "60"}), ...]."""
    items = []
    for member in text.split(","):
        parts = [p.strip() for p in member.split(";")]
        if not parts or not parts[0]:
            continue
        params = {}
        for part in parts[1:]:
            key, _, value = part.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        items.append((parts[0].strip('"'), params))
    return items


def _ietf(headers: Mapping[str, str], reference: float) -> tuple[Reading, Reading]:
    """draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy` names quota policies (q units per
    w seconds, in quota unit qu, requests by default), `RateLimit` gives what is left (r) and
    when it resets (t) for each; of several policies of one unit the one with the shortest
    window paces us. Older drafts: RateLimit-Limit/-Remaining/-Reset, with the window in
    RateLimit-Policy as '100;w=60'."""
    policy_text, state_text = headers.get("ratelimit-policy"), headers.get("ratelimit")
    if state_text and "=" in state_text and ";" in state_text:
        policies = {name: p for name, p in _sf_items(policy_text or "")}
        best: dict[str, Reading] = {}
        for name, params in _sf_items(state_text):
            policy = policies.get(name, {})
            unit = policy.get("qu", "requests") or "requests"
            if unit not in ("requests", "tokens"):
                continue  # a quota of bytes or of concurrent requests does not pace us
            reading = Reading(limit=_number(policy.get("q")), remaining=_number(params.get("r")),
                              reset=reset_seconds(params.get("t"), reference)[0],
                              window=_number(policy.get("w")),
                              refills=False)
            old = best.get(unit)
            if old is None or (reading.window or math.inf) < (old.window or math.inf):
                best[unit] = reading
        if best:
            return best.get("requests", NOTHING), best.get("tokens", NOTHING)
    limit = headers.get("ratelimit-limit")
    if limit is None and headers.get("ratelimit-remaining") is None:
        return NOTHING, NOTHING
    window = None
    for _, params in _sf_items(policy_text or ""):
        window = _number(params.get("w"))
        break
    first = (limit or "").split(",")[0].split(";")[0]
    return Reading(limit=_number(first), remaining=_number(headers.get("ratelimit-remaining")),
                   reset=reset_seconds(headers.get("ratelimit-reset"), reference)[0], window=window,
                   refills=False), NOTHING
