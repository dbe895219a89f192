"""Providers' rate limits on a fake clock, and a client driving `creator.ratelimit.Limits`
against them: a discrete-event simulation, so two simulated minutes take milliseconds and the
limiter's behaviour in each enforcement mode is tested without sleeping.

The server models follow the providers' documentation (see benchmarks/simserver.py for the
sources; the real simulator is the end-to-end check):
- "bucket": a per-minute token bucket that starts full and refills continuously (Anthropic:
  "capacity is continuously replenished up to your maximum limit"; OpenAI's "try again in"
  times fit the same arithmetic);
- "fixed": fixed windows of `window_s` seconds allowing limit x window_s / 60 (OpenAI: "60,000
  requests/minute may be enforced as 1,000 requests/second"; Azure: "typically 1 or 10 seconds");
- "sliding": at most limit x window_s / 60 in any `window_s` seconds;
- "gcra": one request per 60/limit seconds with a burst of `burst`;
- "counter": a sliding window counter, Cloudflare's and the `limits` library's (benchmarks/
  simserver.py LibraryWindow): windows aligned to the clock, the previous one's count weighted by
  the part of it the sliding window still covers; a cost fits while floor(estimate) + cost is
  at most the window's allowance.
A Retry-After (`retry_after`) says when the refused request would fit the limit that refused it
(OpenAI's and Groq's "Please try again in 5.289s", the simulator's wait_for): the end of a fixed
window, the refill of a bucket, the oldest entries of a sliding window leaving. Requests answered
429 count against the limit when `count_rejected` (OpenAI, Azure: "unsuccessful requests contribute
to your per-minute limit"). Tokens are charged prompt + max_tokens at admission, and the unused part
refunded at completion when `refund` (Anthropic's older OTPM rule; a fixed window takes back only
refunds that come while it is still open, and a sliding one into the request charged while that is
still in it, as the simulator's do) or never (OpenAI, Azure count max_tokens); with `charge_max`,
max(prompt, max_tokens), never refunded, and the 429 names the token limit and says "Requested N"
(OpenAI, the simulator's --token_accounting max). With `as_generated`, the prompt is charged at
admission and the completion when the reply is written, into the window then open (Anthropic's OTPM
"evaluated in real time as output tokens are produced"; Together as the benchmark reads it);
`window_headers` reports the enforced window's own count, per second with no reset for tokens
(Together's x-tokenlimit-*).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field

from creator.ratehints import RateLimitHint, Reading
from creator.ratelimit import Limits, RetryPolicy


class Meter:
    """One limit (requests or tokens) enforced one way. Amounts are charged at admission."""

    def __init__(self, mode: str, per_minute: float, window_s: float, burst: float,
                 offset: float) -> None:
        self.mode, self.per_minute, self.window_s = mode, per_minute, window_s
        self.allowance = per_minute * window_s / 60.0
        self.rate = per_minute / 60.0
        self.level = per_minute  # bucket: starts full
        self.updated = 0.0
        self.window_index = None
        self.used = 0.0  # fixed, counter: in the current window
        self.previous = 0.0  # counter: in the window before
        self.offset = offset  # fixed windows are aligned to the server's clock, not ours
        self.log: deque[list[float]] = deque()  # sliding: [admitted at, amount]
        self.burst = burst
        self.tolerance = 0.0  # gcra, seconds: set by Provider from the request rate
        self.tat = 0.0  # gcra

    def _advance(self, now: float) -> None:
        if self.mode == "bucket":
            self.level = min(self.per_minute, self.level + (now - self.updated) * self.rate)
            self.updated = now
        elif self.mode == "fixed":
            index = math.floor((now + self.offset) / self.window_s)
            if index != self.window_index:
                self.window_index, self.used = index, 0.0
        elif self.mode == "sliding":
            while self.log and self.log[0][0] <= now - self.window_s:
                self.log.popleft()
        elif self.mode == "counter":
            index = math.floor((now + self.offset) / self.window_s)
            if self.window_index is not None and index == self.window_index + 1:
                self.previous, self.used = self.used, 0.0
            elif index != self.window_index:
                self.previous, self.used = 0.0, 0.0
            self.window_index = index

    def _progress(self, now: float) -> float:
        """counter: how far into its window `now` is, 0 to 1."""
        return ((now + self.offset) % self.window_s) / self.window_s

    def _estimate(self, now: float) -> float:
        """counter: the previous window's count weighted by the part of it the sliding window
        still covers, plus the current one's."""
        return self.previous * (1.0 - self._progress(now)) + self.used

    def room(self, amount: float, now: float) -> bool:
        self._advance(now)
        if self.mode == "bucket":
            return self.level >= amount
        if self.mode == "fixed":
            return self.used + amount <= self.allowance + 1e-9
        if self.mode == "sliding":
            return sum(a for _, a in self.log) + amount <= self.allowance + 1e-9
        if self.mode == "counter":  # the limits library's test: floor(estimate) + cost <= limit
            return math.floor(self._estimate(now) + 1e-9) + amount <= self.allowance + 1e-9
        # gcra: a request may arrive up to `burst` emission intervals of a request early
        return max(self.tat, now) - now <= self.tolerance + 1e-9

    def charge(self, amount: float, now: float) -> None:
        self._advance(now)
        if self.mode == "bucket":
            self.level -= amount
        elif self.mode in ("fixed", "counter"):
            self.used += amount
        elif self.mode == "sliding":
            self.log.append([now, amount])
        else:
            self.tat = max(self.tat, now) + amount / self.rate

    def refund(self, amount: float, now: float, charged_at: float) -> None:
        self._advance(now)
        if self.mode == "bucket":
            self.level = min(self.per_minute, self.level + amount)
        elif self.mode in ("fixed", "counter"):  # into the window charged, if still open
            if math.floor((charged_at + self.offset) / self.window_s) == self.window_index:
                self.used = max(0.0, self.used - amount)
        elif self.mode == "sliding":  # into the entry charged, if it is still in the window
            for entry in self.log:
                if entry[0] == charged_at and entry[1] >= amount:
                    entry[1] -= amount
                    break
        else:
            self.tat = max(now, self.tat - amount / self.rate)

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` fits: what a Retry-After says ("try again in 5.289s")."""
        self._advance(now)
        if self.mode == "bucket":
            return max(0.0, (amount - self.level) / self.rate)
        if self.mode == "fixed":
            return self.window_s - ((now + self.offset) % self.window_s)
        if self.mode == "counter":  # as the previous window's weight falls, or the next window's
            progress = self._progress(now)
            room = self.allowance - amount - self.used
            if room >= 0 and self.previous > 0:
                return max(0.0, (1.0 - room / self.previous - progress) * self.window_s)
            if room >= 0:
                return 0.0
            later = 1.0 - (self.allowance - amount) / self.used if self.used > 0 else 0.0
            return (1.0 - progress + max(0.0, later)) * self.window_s
        if self.mode == "sliding":
            over = sum(a for _, a in self.log) + amount - self.allowance
            wait = 0.0
            for at, a in self.log:  # the oldest leave first
                if over <= 1e-9:
                    break
                over -= a
                wait = at + self.window_s - now
            return max(0.0, wait) if over <= 1e-9 else self.window_s
        return max(0.0, self.tat - self.tolerance - now)

    def remaining(self, now: float) -> tuple[float, float]:
        """(left, seconds until whole), in per-minute figures as OpenAI reports them."""
        self._advance(now)
        if self.mode == "bucket":
            return max(0.0, self.level), (self.per_minute - self.level) / self.rate
        if self.mode == "fixed":
            left, reset = self.window_left(now)
            return left * 60.0 / self.window_s, reset
        if self.mode == "counter":
            left = self.allowance - math.floor(self._estimate(now) + 1e-9)
            return max(0.0, left) * 60.0 / self.window_s, self.window_s
        if self.mode == "sliding":
            used = sum(a for _, a in self.log) * 60.0 / self.window_s
            return max(0.0, self.per_minute - used), self.window_s
        backlog = max(0.0, self.tat - now)
        return max(0.0, self.per_minute - backlog * self.rate * 60 / max(1e-9, self.window_s)), backlog

    def window_left(self, now: float) -> tuple[float, float]:
        """A fixed window's own count: (left in it, seconds until it resets)."""
        self._advance(now)
        reset = self.window_s - ((now + self.offset) % self.window_s)
        return max(0.0, self.allowance - self.used), reset


@dataclass
class Provider:
    mode: str = "fixed"
    rpm: float | None = None
    tpm: float | None = None
    window_s: float = 1.0
    burst: float = 1.0
    count_rejected: bool = False
    refund: bool = True
    charge_max: bool = False  # tokens charged max(prompt, max_tokens), kept (OpenAI)
    headers: bool = False
    # Azure: tokens counted in a running count "reset each minute" (token_window_s 60), while the
    # headers report per-minute figures (minute_headers: a bucket charged the same, as the
    # simulator's --headers_report minute)
    token_window_s: float | None = None
    minute_headers: bool = False
    # Together as the benchmark reads it: tokens charged as generated (the prompt at admission,
    # the completion when the reply is written, into the window then open, as the simulator's
    # --token_accounting actual), and headers with the enforced window's own figures, no reset
    # for tokens ("x-tokenlimit-remaining", per second; --headers together --headers_report
    # window): `window_headers` is for mode "fixed"
    as_generated: bool = False
    window_headers: bool = False
    retry_after: bool = False
    latency: float = 0.5
    # each reply takes latency x uniform(1 - spread, 1 + spread): an LLM's reply time grows with
    # its length and the server's load, seconds apart from one request to the next
    latency_spread: float = 0.05
    jitter_s: float = 0.005  # on the way to the server
    rtt: float = 0.0  # a network round trip: half on the way to the server, half back (a 429's too)
    # a limit on requests in flight at once, not on a rate (W&B Inference, DeepInfra: the
    # simulator's --max_active); `names_it`: its 429 says "concurrency" (W&B's does)
    max_active: int = 0
    names_it: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.refused_by: str | None = None  # the limit the last refused request did not fit
        self.last_charge = 0  # the tokens the last request that arrived was charged
        self.active = 0  # admitted, not yet answered
        offset = rng.uniform(0, self.window_s)
        # the fake clock's 0 is this Unix time (mod a minute): fixed windows begin at whole
        # seconds, minutes of the clock, as servers' do (OpenRouter's resets are whole minutes),
        # and a run begins anywhere in the clock's minute (its own generator: the draws above
        # and after are as before)
        self.unix_offset = offset + self.window_s * random.Random(self.seed + 1).randrange(
            max(1, int(60 // self.window_s)))
        self.meters = {}
        if self.rpm:
            self.meters["requests"] = Meter(self.mode, self.rpm, self.window_s, self.burst, offset)
        if self.tpm:
            self.meters["tokens"] = Meter("fixed", self.tpm, self.token_window_s, self.burst,
                                          rng.uniform(0, self.token_window_s)) \
                if self.token_window_s else \
                Meter(self.mode, self.tpm, self.window_s, self.burst, offset)
        self.shadows = {kind: Meter("bucket", meter.per_minute, 60.0, 1.0, 0.0)
                        for kind, meter in self.meters.items()} if self.minute_headers else {}
        for meter in self.meters.values():  # gcra: `burst` requests' worth of time, early
            meter.tolerance = (self.burst - 1) * 60.0 / (self.rpm or 60.0)

    def charge(self, tokens: int, prompt: int) -> int:
        if self.as_generated:
            return prompt
        return max(prompt, tokens - prompt) if self.charge_max else tokens

    def arrive(self, now: float, tokens: int, prompt: int = 0) -> bool:
        amounts = {"requests": 1, "tokens": self.charge(tokens, prompt)}
        self.last_charge = amounts["tokens"]
        if self.max_active and self.active >= self.max_active:
            self.refused_by = "concurrency"
            return False
        ok = all(m.room(amounts[k], now) for k, m in self.meters.items())
        self.refused_by = None if ok else next(
            k for k, m in self.meters.items() if not m.room(amounts[k], now))
        if ok or self.count_rejected:
            for kind, meter in self.meters.items():
                meter.charge(amounts[kind], now)
                if kind in self.shadows:
                    self.shadows[kind].charge(amounts[kind], now)
        self.active += ok
        return ok

    def finish(self, now: float, unused: int, admitted_at: float, used: int = 0) -> None:
        self.active -= 1
        if self.as_generated and "tokens" in self.meters:
            self.meters["tokens"].charge(used, now)  # may go over: the debt refuses what follows
        elif self.refund and not self.charge_max and "tokens" in self.meters and unused > 0:
            self.meters["tokens"].refund(unused, now, admitted_at)
            if "tokens" in self.shadows:
                self.shadows["tokens"].refund(unused, now, admitted_at)

    def hint(self, now: float, refused: bool, requested: int | None = None) -> RateLimitHint:
        retry = None
        if refused and self.refused_by == "concurrency":  # no header, no wait: a bare 429
            return RateLimitHint(limited="concurrency" if self.names_it else None)
        if refused and self.retry_after:
            kind = self.refused_by  # (arrive() named the limit the request did not fit)
            amount = 1 if kind == "requests" else self.last_charge
            retry = max(0.05, self.meters[kind].wait_for(amount, now))
        # OpenAI's message: "Rate limit reached for ... tokens per min ... Requested N."
        said = dict(limited=self.refused_by, requested=requested if self.refused_by == "tokens"
                    else None) if refused and self.charge_max else {}
        if not self.headers:
            return RateLimitHint(retry_after=retry, **said)
        readings = {}
        for kind, meter in self.meters.items():
            if self.window_headers:  # a fixed window's own count: per second, reset at once
                left, reset = meter.window_left(now)
                readings[kind] = Reading(limit=meter.allowance, remaining=math.floor(left),
                                         reset=reset if kind == "requests" else None,
                                         window=meter.window_s, refills=False)
                continue
            left, reset = self.shadows.get(kind, meter).remaining(now)
            readings[kind] = Reading(limit=meter.per_minute, remaining=math.floor(left),
                                     reset=reset)
        return RateLimitHint(retry_after=retry, requests=readings.get("requests", Reading()),
                             tokens=readings.get("tokens", Reading()), **said)

    def limit_rps(self, tokens_per_request: float) -> float:
        limits = []
        if self.rpm:
            limits.append(self.rpm / 60.0)
        if self.tpm:
            limits.append(self.tpm / 60.0 / tokens_per_request)
        return min(limits)


# the ways of enforcing a limit the tests go through, as `Provider` arguments
MODES = {
    "bucket": dict(mode="bucket"),
    "fixed 1 s": dict(mode="fixed", window_s=1),
    "fixed 10 s": dict(mode="fixed", window_s=10),
    "sliding 60 s": dict(mode="sliding", window_s=60),
    "gcra": dict(mode="gcra", burst=3),
    # Cloudflare's sliding window counter, as the `limits` library enforces it for gateways
    "counter 1 s": dict(mode="counter", window_s=1),
}


@dataclass
class Run:
    admitted: list[float] = field(default_factory=list)  # arrival times
    refused: list[float] = field(default_factory=list)
    asked: list[int] = field(default_factory=list)  # each request's max_tokens, as sent
    duration: float = 0.0

    def per_second(self) -> list[int]:
        counts = [0] * int(math.ceil(self.duration))
        for t in self.admitted:
            if t < self.duration:
                counts[int(t)] += 1
        return counts

    def held(self, limit_rps: float, start: float = 0.0, end: float | None = None) -> float:
        """Requests admitted from `start` to `end` (the run's end), as a share of the limit."""
        end = self.duration if end is None else end
        n = sum(1 for t in self.admitted if start <= t < end)
        return n / ((end - start) * limit_rps)

    def refused_share(self) -> float:
        total = len(self.admitted) + len(self.refused)
        return len(self.refused) / total if total else 0.0

    def longest_below(self, limit_rps: float, share: float, start: float, width: float = 5) -> float:
        """The longest stretch after `start` whose moving `width`-second average stayed below
        share x the limit."""
        counts = self.per_second()
        longest = run = 0
        for second in range(int(start), len(counts) - int(width) + 1):
            average = sum(counts[second:second + int(width)]) / width
            run = run + 1 if average < share * limit_rps else 0
            longest = max(longest, run)
        return float(longest)


def simulate(provider: Provider, *, duration: float = 120.0, concurrency: int = 64,
             rpm: float | None = None, tpm: float | None = None, prompt: int = 200,
             max_tokens: int = 1024, used: int = 300, seed: int = 1,
             charge: str = "sum", fit: bool = False,
             first_max_tokens: int | None = None,
             read_limits: bool = False) -> tuple[Run, Limits]:
    """`concurrency` workers send requests of `prompt` + `max_tokens` (replies use `used`) for
    `duration` simulated seconds, through one `Limits`, retrying 429s as the client does.
    `charge`: how the limiter counts tokens from the start (as if a 429 had taught it).
    `fit`: `max_tokens` is a fitted one, which `Limits.fit_window` may lower (as the client's
    router does); `run.asked` keeps what each request asked for. `first_max_tokens`: asked
    until 8 replies are in (the client's --max_tokens before it fits one to the replies).
    `read_limits`: the client's limits read goes first (client.LIMITS_READ: a prompt of 5 tokens,
    a reply of 1, in a tenth of a reply's time); it is not counted in `run`."""
    rng = random.Random(seed)
    limits = Limits(concurrency, rpm, tpm, 0.0, unix_offset=provider.unix_offset)
    limits.charge = charge
    policy = RetryPolicy()
    run = Run(duration=duration)
    events: list = []
    seq = [0]

    def at(when: float, fn, *args) -> None:
        seq[0] += 1
        heapq.heappush(events, (when, seq[0], fn, args))

    queue: deque[int] = deque()  # workers waiting for the limiter, FIFO
    wake_at = [math.inf]
    attempts = [0] * concurrency

    def want(now: float, worker: int) -> None:
        queue.append(worker)
        serve(now)

    def serve(now: float) -> None:
        while queue:
            wait = limits.wait_time(prompt + max_tokens, now, prompt)
            if wait > 0:
                wait = max(wait, 1e-4)  # a float that no longer moves the clock must not spin
                if not math.isinf(wait) and now + wait < wake_at[0]:
                    wake_at[0] = now + wait
                    at(now + wait, wake)
                return
            worker = queue.popleft()
            asked = max_tokens if first_max_tokens is None or limits.replies >= 8 else \
                first_max_tokens
            asked = limits.fit_window(prompt, asked) if fit else asked
            run.asked.append(asked)
            ticket = limits.consume(prompt + asked, now, prompt)
            at(now + rng.uniform(0, provider.jitter_s) + provider.rtt / 2, arrive, worker, ticket)

    def wake(now: float) -> None:
        wake_at[0] = math.inf
        serve(now)

    def arrive(now: float, worker: int, ticket) -> None:
        if provider.arrive(now, prompt + ticket.completion, prompt):
            run.admitted.append(now)
            spread = provider.latency_spread
            at(now + provider.latency * rng.uniform(1 - spread, 1 + spread) + provider.rtt / 2,
               done, worker, ticket, now)
        else:
            run.refused.append(now)
            requested = provider.charge(prompt + ticket.completion, prompt)
            at(now + 0.001 + provider.rtt / 2, refused, worker, ticket,
               provider.hint(now, True, requested))

    def done(now: float, worker: int, ticket, admitted_at: float) -> None:
        provider.finish(now, ticket.completion - used, admitted_at, used)
        limits.completed(ticket, now, provider.hint(now, False), prompt, used)
        attempts[worker] = 0
        want(now, worker)

    def refused(now: float, worker: int, ticket, hint: RateLimitHint) -> None:
        limits.rate_limited(ticket, now, hint)
        delay = policy.delay(attempts[worker], hint.retry_after, rng)
        attempts[worker] += 1
        at(now + delay, want, worker)
        serve(now)

    def read_arrive(now: float, ticket) -> None:
        if provider.arrive(now, 6, 5):
            at(now + 0.1 * provider.latency + provider.rtt / 2, read_done, ticket, now)
            return
        hint = provider.hint(now, True, provider.charge(6, 5))
        if provider.rtt:
            at(now + provider.rtt / 2, read_refused, ticket, hint)
        else:
            read_refused(now, ticket, hint)

    def read_refused(now: float, ticket, hint: RateLimitHint) -> None:
        limits.rate_limited(ticket, now, hint)
        serve(now)

    def read_done(now: float, ticket, admitted_at: float) -> None:
        provider.finish(now, 0, admitted_at, 1)
        limits.completed(ticket, now, provider.hint(now, False), 5, 1)
        serve(now)

    if read_limits:
        at(provider.rtt / 2, read_arrive, limits.consume(6, 0.0, 5, sized=False))
    for worker in range(concurrency):
        at(0.0, want, worker)
    while events:
        when, _, fn, args = heapq.heappop(events)
        if when > duration:
            break
        fn(when, *args)
    return run, limits
