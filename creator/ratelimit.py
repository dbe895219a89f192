"""Rate-limit bookkeeping and the retry policy: small objects with an injectable clock, no I/O.

One `Capacity` enforces the three limits an API imposes together: requests in flight, requests per
minute and tokens per minute. Tokens are reserved before sending (prompt estimate + max_tokens, as
providers count them) and the unused part is refunded from the reply's usage, so a limit is neither
overrun (429s) nor left idle. A server that states its limits (x-ratelimit-*) gets buckets of its
own, set from its count in every reply. asyncio-throttle, which we started from, counts requests
only and cannot weigh or refund tokens, hence this small class.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Mapping

Clock = Callable[[], float]


@dataclass(frozen=True)
class Sent:
    """How much the client had sent when one request went out (that request included). The
    server's remaining count in that request's reply may miss anything sent after it."""

    requests: int = 0
    tokens: int = 0


class TokenBucket:
    """`per_minute` units, refilled continuously; starts full, like the providers' own buckets."""

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, amount: float, now: float) -> float:
        self._refill(now)
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount

    def give_back(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level = min(self.capacity, self.level + amount)

    def rescale(self, factor: float, now: float) -> None:
        self._refill(now)
        self.capacity *= factor
        self.rate *= factor
        self.level = min(self.level, self.capacity)

    def at_most(self, level: float, now: float) -> None:
        """The server counts less left than we do: trust it."""
        self._refill(now)
        self.level = min(self.level, level)

    def set(self, per_minute: float, level: float, now: float) -> None:
        """The server's own count (and limit) replaces ours."""
        self._refill(now)
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = min(self.capacity, level)


class Capacity:
    """What may be sent now. `max_in_flight`, `rpm`, `tpm`: None or 0 means no limit.

    `requests` and `tokens` are our own limits (the user's, or a request rate learnt from 429s);
    `server_requests` and `server_tokens` follow the limits a server states, and are set from
    its remaining count in each reply. A request must fit all of them."""

    def __init__(
        self, max_in_flight: int | None, rpm: float | None, tpm: float | None, now: float
    ) -> None:
        self.max_in_flight = max_in_flight or math.inf
        self.requests = TokenBucket(rpm, now) if rpm else None
        self.tokens = TokenBucket(tpm, now) if tpm else None
        self.server_requests: TokenBucket | None = None
        self.server_tokens: TokenBucket | None = None
        self.in_flight = 0
        self.sent = Sent()
        self.paused_until = 0.0
        # a request rate learnt from 429s, for servers that do not state their limits
        self.learned = False
        self._successes: deque[float] = deque()
        self._last_429 = self._last_change = -math.inf

    @property
    def server_states_limits(self) -> bool:
        """The server sent an x-ratelimit-limit-* header (and got a bucket for it)."""
        return self.server_requests is not None or self.server_tokens is not None

    def _buckets(self, tokens: int) -> list[tuple[TokenBucket, int]]:
        """Every limit in force, with what one request of `tokens` takes from it."""
        return [(bucket, amount) for bucket, amount in (
            (self.requests, 1), (self.tokens, tokens),
            (self.server_requests, 1), (self.server_tokens, tokens)) if bucket is not None]

    def fits(self, tokens: int) -> bool:
        """False when one request needs more tokens than a whole minute allows."""
        return all(bucket.capacity >= amount for bucket, amount in self._buckets(tokens))

    def wait_time(self, tokens: int, now: float) -> float:
        """Seconds until a request of `tokens` may go; 0 if now; inf if only a release can help."""
        if self.in_flight >= self.max_in_flight:
            return math.inf
        waits = [self.paused_until - now]
        waits += [bucket.wait_time(amount, now) for bucket, amount in self._buckets(tokens)]
        return max(0.0, *waits)

    def consume(self, tokens: int, now: float) -> Sent:
        self.in_flight += 1
        self.sent = Sent(self.sent.requests + 1, self.sent.tokens + tokens)
        for bucket, amount in self._buckets(tokens):
            bucket.take(amount, now)
        return self.sent

    def release(self, reserved: int, used: int | None, now: float) -> None:
        """A request ended. `used` is the reply's total tokens; None (a failed request) keeps
        the whole reservation spent, the safe guess. (The server's buckets get their refunds
        from its count in the next reply.)"""
        self.in_flight -= 1
        if self.tokens is not None and used is not None and used < reserved:
            self.tokens.give_back(reserved - used, now)

    def pause(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    def follow(self, theirs: TokenBucket | None, ours: TokenBucket | None, limit: int | None,
               remaining: int | None, reset: float | None, sent_later: int,
               now: float) -> TokenBucket | None:
        """One kind of limit (requests or tokens) as a reply states it; returns the server's
        bucket. See RateLimiter.observe."""
        if limit:
            theirs = theirs or TokenBucket(limit, now)
            if remaining is not None:
                theirs.set(limit, remaining - sent_later, now)
            return theirs
        if remaining is None:
            return theirs
        known = theirs or ours
        if known is not None:
            known.at_most(remaining - sent_later, now)
        elif remaining == 0 and reset:
            self.pause(now + min(reset, 1.0))
        return theirs

    # --- learning a limit the server does not state ----------------------------------------------
    # When the server rate-limits us without x-ratelimit-* headers, the requests it served in the
    # last minute are the budget it grants: adopt that as our rpm, cut it by 10% on each further
    # 429 and raise it by 5% after every 3 s without one (AIMD, as TCP does), so the client
    # neither hammers the server nor settles below its limit. A server that states a limit
    # (x-ratelimit-limit-*) has said what its 429s are about: inventing a request rate on top
    # of its token budget would only leave that budget unused.

    def _may_learn(self) -> bool:
        """No request rate is known, and the server states none: 429s are all there is."""
        return self.requests is None and not self.server_states_limits

    def record_success(self, now: float) -> None:
        if self._may_learn() or self.learned:
            self._successes.append(now)
            while self._successes and self._successes[0] < now - 60:
                self._successes.popleft()
        if self.learned and now - max(self._last_429, self._last_change) > 3:
            self.requests.rescale(1.05, now)  # type: ignore[union-attr]
            self._last_change = now

    def record_rate_limited(self, now: float) -> None:
        self._last_429 = now
        if self._may_learn():
            granted = sum(1 for t in self._successes if t >= now - 60)
            self.requests = TokenBucket(max(1, granted), now)
            self.requests.level = 0.0  # the server just said its budget is spent
            self.learned = True
            self._last_change = now
        elif self.learned and now - self._last_change > 1:
            self.requests.rescale(0.9, now)
            self._last_change = now


class RateLimiter:
    """The async face of `Capacity`: callers queue FIFO (asyncio.Lock is fair) and only the head
    of the queue sleeps on the clock, so thousands of waiting tasks cost nothing."""

    def __init__(
        self,
        max_in_flight: int | None,
        rpm: float | None,
        tpm: float | None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.clock = clock
        self.capacity = Capacity(max_in_flight, rpm, tpm, clock())
        self._turn = asyncio.Lock()
        self._released = asyncio.Event()

    async def acquire(self, tokens: int) -> Sent:
        """Wait for room for one request of `tokens`; what was sent up to it, for `observe`."""
        async with self._turn:
            while True:
                wait = self.capacity.wait_time(tokens, self.clock())
                if wait <= 0:
                    return self.capacity.consume(tokens, self.clock())
                await self._wait(None if math.isinf(wait) else wait)

    async def _wait(self, timeout: float | None) -> None:
        """Until a release, or `timeout` seconds (None: no timeout)."""
        self._released.clear()
        try:
            await asyncio.wait_for(self._released.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def release(self, reserved: int, used: int | None) -> None:
        now = self.clock()
        self.capacity.release(reserved, used, now)
        if used is not None:
            self.capacity.record_success(now)
        self._released.set()

    def rate_limited(self) -> None:
        self.capacity.record_rate_limited(self.clock())

    def pause_for(self, seconds: float) -> None:
        """Hold every request back (a 429 or an exhausted x-ratelimit budget)."""
        self.capacity.pause(self.clock() + seconds)

    def observe(self, hint: "RateLimitHint", sent: Sent | None = None) -> None:
        """Learn the server's limits from its x-ratelimit-* headers and follow its count.

        A stated per-minute budget (x-ratelimit-limit-*) becomes a bucket of the server's, so the
        client meters requests instead of earning 429s; the user's own limits stay in force beside
        it. The server's remaining count sets that bucket, but it is the count as of the reply:
        `sent` (what `acquire` returned for the replying request) tells what went out after that
        request, which the server may not have counted yet, so it is taken off. That errs on the
        safe side by what the server did count, and only until the next reply: set, not
        lowered, so the error does not pile up. Remaining counts without a limit only ever lower
        our own limit; with no limit at all, a spent budget pauses sending for the share of the
        reset one request needs (the reset is the time until the budget is FULL again)."""
        now = self.clock()
        cap = self.capacity
        later = Sent() if sent is None else Sent(
            cap.sent.requests - sent.requests, cap.sent.tokens - sent.tokens)
        cap.server_requests = cap.follow(
            cap.server_requests, cap.requests, hint.limit_requests, hint.remaining_requests,
            hint.reset_requests, later.requests, now)
        cap.server_tokens = cap.follow(
            cap.server_tokens, cap.tokens, hint.limit_tokens, hint.remaining_tokens,
            hint.reset_tokens, later.tokens, now)


# --- what servers say about their limits ------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """OpenAI's reset durations: "1s", "6m0s", "120ms", "1h2m3.5s", or a bare number of seconds."""
    if not text:
        return None
    text = text.strip()
    try:
        return max(0.0, float(text))
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


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RateLimitHint:
    retry_after: float | None = None
    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None
    reset_tokens: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "RateLimitHint":
        # retry-after-ms is more precise than Retry-After (whole seconds or an HTTP date; a date
        # is ignored: clocks differ, and the backoff policy covers it)
        retry_after = None
        ms = headers.get("retry-after-ms")
        if ms is not None:
            try:
                retry_after = max(0.0, float(ms) / 1000.0)
            except ValueError:
                pass
        if retry_after is None:
            retry_after = parse_duration(headers.get("retry-after"))
        return cls(
            retry_after=retry_after,
            limit_requests=_int_header(headers, "x-ratelimit-limit-requests"),
            limit_tokens=_int_header(headers, "x-ratelimit-limit-tokens"),
            remaining_requests=_int_header(headers, "x-ratelimit-remaining-requests"),
            remaining_tokens=_int_header(headers, "x-ratelimit-remaining-tokens"),
            reset_requests=parse_duration(headers.get("x-ratelimit-reset-requests")),
            reset_tokens=parse_duration(headers.get("x-ratelimit-reset-tokens")),
        )


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter; a server's Retry-After wins when it gives one."""

    max_retries: int = 8
    base: float = 0.5
    cap: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            # a little jitter so the requests held back by one 429 do not return in one burst
            return min(self.cap, retry_after) + rng.uniform(0, min(1.0, 0.1 + retry_after * 0.1))
        return rng.uniform(0, min(self.cap, self.base * 2**attempt))
