"""Rate limits as providers enforce them: pace, learn, never collapse. Pure objects on an
injectable clock (`Limits`, one per endpoint); their async face is `Router` in endpoints.py.

Providers state limits per minute but enforce them over shorter periods: OpenAI "60,000
requests/minute may be enforced as 1,000 requests/second", Anthropic "60 RPM might be enforced as
1 request per second", Azure evaluates RPM "over a small period of time, typically 1 or 10
seconds", Together limits per second. A burst below the per-minute limit still earns 429s, and
on OpenAI and Azure a request answered 429 still counts. So nothing here ever bursts:

- Pace. A known limit (the user's --rpm/--tpm, or what the server's headers state) becomes a
  `Pacer` that spaces requests evenly at MARGIN of it, so no window of any length, a second
  included, sees more than its share, even with some jitter on the way to the server. A pace
  keeps a rate, not a sum: once a 429 shows that our own requests of a known limit's window
  filled it (a sliding minute still holding a catch-up after a slow start), every span of that
  window is held to the limit too (`SpanGuard`).
- Lower, never license. A server's remaining count can only delay a request (`Budget`), never
  let one go sooner than the pacer would. Where the count is the server's own for the window of
  a second it enforces (Together), that budget guards each second's end: the pace needs no
  margin there, and a request the end held goes at the reset with the schedule kept.
- Start carefully. Before the first reply nothing is known, so one request goes alone: its
  headers may state the limits. The client makes it a request of one token (client.LIMITS_READ),
  so they come in the time to a first token, not a whole reply's. A server that states none and
  answers is probed upward from a few requests a second (`Learner`'s ramp).
- Learn. A 429 that no known limit explains teaches a request rate (`Learner`): what the server
  let through, measured between its refusals, never from a minute that has not passed. Then the
  rate recovers quickly to just below that ceiling and probes slowly above it (as TCP's CUBIC
  does), so a limit that rises is found and one that stays is held at ~97-99%.
- Never collapse. A storm of 429s (nothing getting through) pauses sending as the server asks
  (Retry-After, or exponential backoff) instead of cutting the rate again and again; one request
  probes, and the storm ends when it gets through (or gets no 429 in the time one takes to come
  back: replies are slow, refusals fast); the rate is then re-measured over a span that covers
  the storm.

Tokens are reserved as prompt estimate + max_tokens before sending, as providers count them
(or as the larger of the two, once a 429 says "Requested N" and N is that), and the unused part
is refunded from the reply's usage, unless the server keeps it (Azure, OpenAI): its remaining
counts show that (`RefundAudit`), or its 429s do. asyncio-throttle, which we started from,
counts requests only and can neither weigh nor refund tokens, hence these small classes.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from .ratehints import RateLimitHint, Reading, parse_duration  # noqa: F401 (re-exported)

Clock = Callable[[], float]
__all__ = ["Limits", "Pacer", "SpanGuard", "Budget", "Learner", "Ticket", "Sent", "RetryPolicy",
           "RefundAudit", "RateLimitHint", "Reading", "parse_duration", "MARGIN", "LONG_WAIT_S"]

MARGIN = 0.98  # pace at 98% of a known limit: arrival jitter must not push one into a full window
SPAN_SLACK_S = 0.25  # a SpanGuard's span: the limit's window and this (the way to the server)
SPAN_FULL = 0.995  # a 429 when our own sends of the span held this share of the limit arms it
SPAN_TRUST_S = 1.0  # ... unless its wait ends this much sooner than our sends leave the span
LATE_SHARE = 0.25  # a request up to this share of its interval late keeps the pacer's schedule
WINDOW_RESUME_S = 0.25  # ... and one held by a window's end, up to this long before the reset
WINDOW_MARGIN = 1.0  # the pace of a second whose own count the server reports (Stated.counted)
MINUTE = 60.0
LONG_PERIOD_S = 600.0  # a limit stated over a longer period (a day) is a budget, not a pace
LONG_WAIT_S = LONG_PERIOD_S  # limits that allow nothing for longer are spent: the run stops there
# ... as are those whose 429s name a limit per day, say no wait, and let nothing through this long
DAY_SPENT_AFTER_S = 30.0
# a server that limits requests in flight (its 429 says "concurrency") is held to the most we had
# in flight beside a refused request (Limits._too_many_in_flight); after this long at that cap
# with no such 429, one more is tried
IN_FLIGHT_PROBE_S = MINUTE
IN_FLIGHT_LOG = 1024  # sends remembered for that (more than go out while one 429 comes back)
PROBE_GIVE_UP_S = 5.0  # the first request is alone until it is answered, or this long
STORM_PAUSE_MIN_S = 0.5  # a storm's first pause, then doubled for each probe refused
STORM_PAUSE_MAX_S = 2.0  # a storm's backoff at first; in one that has lasted long (a long
STORM_PAUSE_LONG_S = 4.0  # window spent), at most this: the probe that finds it reopened waits
MINUTE_MARK_S = 0.1  # after a whole minute since the first request: a storm's probe goes then
REFUND_EVIDENCE = 20  # the last requests whose 429s say whether the server keeps our refunds
REFUND_MISTAKE_SHARE = 0.25  # of those answered 429: the server gives nothing back at all
REFUND_CUT = 0.2  # of the unused tokens we refund, cut per run of 429s the refunds explain
REFUND_PROBE = 0.02  # ... and given back after each REFUND_PROBE_EVERY replies with no such 429,
REFUND_PROBE_EVERY = 50  # doubled for each such 429 of the last REFUND_MEMORY_S (at most 32x):
REFUND_MEMORY_S = 300.0  # a server that keeps every refund is probed ever more rarely
REFUND_RECENT_S = 10.0  # refunds explain a 429 only if some were given back this recently
KINDS = ("requests", "tokens", "input", "output")
# How a server counts a request against its token limit at admission (prompt, max_tokens):
# "sum", prompt + max_tokens (Azure: "The rate limit token estimate includes max_tokens";
# Anthropic's older text), and "max", OpenAI's sentence read literally ("the maximum of max_tokens
# and the estimated number of tokens"). A 429 that says "Requested N" tells which one it is.
CHARGES: dict[str, Callable[[int, int], int]] = {
    "sum": lambda prompt, completion: prompt + completion,
    "max": lambda prompt, completion: max(prompt, completion),
}
CHARGE_MATCH = 0.1  # "Requested N" within this share of a rule's count picks the rule
# A count cheaper than ours sends no 429 to teach it (OpenAI's, on a bucket of a minute: 83% of
# its limit held), so where a bucket's counts can check it, it is tried (Limits._check_charge)
TRIAL_EVIDENCE = 20  # replies whose usage says how much cheaper OpenAI's count would be
TRIAL_GAIN = 0.08  # ... at least this share below ours, or it is not worth a trial
TRIAL_READINGS = 20  # token readings in a row of a bucket within TRIAL_FULL_S of its refill of full
TRIAL_FULL_S = 2.0
TRIAL_RESET_SLACK_S = 0.25  # a bucket's reset is the time its count takes to refill, to this
TRIAL_OVER = 0.05  # a span in which the server took this share more than the trial counted: not it
TRIAL_DRIFT_S = 0.3  # ... or a bucket that then lacks this much more refill of full than before
SHORT_WINDOW_S = 1.0  # the shortest fixed window providers enforce ("1,000 requests/second")
RESCALE_AT = 1.25  # a learnt rate follows requests whose token count moved by more than this factor
WINDOW_FIT_GIVE = 0.05  # of a fitted max_tokens, given up at most to fit one more request a window
REFUND_AUDIT_S = 5.0  # a server's remaining token counts over this long say whether it refunds
REFUND_AUDIT_LEAST = 0.05  # ... if the replies left unused at least this share of what was reserved
REFUND_AUDIT_KEPT = 0.5  # the share of those unused tokens it gave back, below which: none
FULL_SHARE = 0.01  # a bucket's count this close to its limit (or FULL_REFILL_S's refill) may
FULL_REFILL_S = 0.5  # be full; and one that was not seen for this long may have been
WINDOW_END_SLACK_S = 1.5  # two readings whose window ends differ by less are of one window
REPLY_WRITTEN_S = 0.5  # a reply's counts hold what was sent this long before it came
WINDOW_COUNT_MOST = 2.0  # a window's count that fell more than this x what we reserved: not ours
# A storm's probe still unanswered this many times the longest recent 429's turnaround after it
# went (and at least PRESUMED_LEAST_S) was let through: servers refuse at once, and answer slowly
PRESUMED_AFTER = 3.0
PRESUMED_LEAST_S = 0.25
REFUSAL_MEMORY = 16  # the last 429s whose turnaround says how soon a refusal comes


@dataclass(frozen=True)
class Sent:
    """Running totals of what went out, up to and including one request (the server's remaining
    count in that request's reply may miss anything sent after it)."""

    requests: int = 0
    tokens: int = 0
    input: int = 0
    output: int = 0

    def units(self, kind: str) -> int:
        return getattr(self, kind)


@dataclass
class Ticket:
    """One request that went out: what it reserved, and when."""

    sent_at: float
    prompt: int  # estimated prompt tokens
    completion: int  # max_tokens reserved for the reply
    sent: Sent
    epoch: int  # the learner's epoch: a 429 to a request sent before the last cut is old news
    record: list = field(default_factory=list, repr=False)  # [sent_at, outcome] in the learner
    charge: str = "sum"  # how the server counts its tokens (CHARGES)
    probe: bool = False  # sent during a storm: the one request that asks whether it is over
    sized: bool = True  # of the run's size: a learnt rate is one of such (not client.LIMITS_READ)
    ahead: int = 0  # requests of ours in flight when it went
    given_back: dict[str, float] = field(default_factory=dict, repr=False)  # refunded, by kind

    @property
    def tokens(self) -> int:
        return CHARGES[self.charge](self.prompt, self.completion)

    def units(self, kind: str) -> int:
        return {"requests": 1, "tokens": self.tokens, "input": self.prompt,
                "output": self.completion}[kind]

    def net(self, kind: str) -> float:
        """What it holds of a limit now: its units less what its reply gave back."""
        return self.units(kind) - self.given_back.get(kind, 0.0)


class Pacer:
    """Spaces units evenly at `rate` per second, with no burst (GCRA, the leaky bucket as a meter:
    a request goes when the previous one's share of time has passed, then books its own)."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tat = now  # when the next request may go
        self.credit = 0.0  # refunded units not yet spent, at most one request's worth
        self.largest = 0.0
        self.window_share: float | None = None  # a fixed window's allowance: whole requests only

    def wait_time(self, now: float) -> float:
        return max(0.0, self.tat - now)

    def take(self, amount: float, now: float, resume_from: float | None = None) -> None:
        """Book `amount` from now. `resume_from`: the request was held by a window that reset
        just now; the schedule is kept back to then (what the hold cost goes at the reset)."""
        if self.window_share and 0 < amount < self.window_share:
            # a fixed window holds whole requests: 5,000 tokens a second hold 21 of 228, not 21.9,
            # and pacing at 98% (21.5 a second) puts a 22nd into every other window, refused;
            # so each request takes up 1/21 of the window's time (1/floor(share / amount))
            amount = self.window_share / math.floor(self.window_share / amount)
        self.largest = max(self.largest, amount)
        spent = min(self.credit, amount)
        self.credit -= spent
        # keep to the schedule: a request that leaves a little late (the event loop wakes a
        # millisecond or two after its timer) does not push every later one back, or the rate
        # would drift below the pace by the mean lateness (measured: 95-96% instead of 98%);
        # after a longer gap (idle, or held by another limit) the schedule starts again from now
        late = now - self.tat
        if 0 < late < self.largest / self.rate * LATE_SHARE:
            base = self.tat
        elif late > 0 and resume_from is not None:
            base = max(self.tat, resume_from)
        else:
            base = max(self.tat, now)
        self.tat = base + (amount - spent) / self.rate

    def give_back(self, amount: float, now: float) -> None:
        """A refund shortens the queue booked ahead; what the queue cannot take becomes credit
        for the next request (one request's worth at most: never a burst). Idle time is never
        banked."""
        ahead = max(0.0, self.tat - now) * self.rate
        used = min(ahead, amount)
        self.tat -= used / self.rate
        self.credit = min(self.largest, self.credit + amount - used)

    def set_rate(self, rate: float, now: float) -> None:
        backlog = max(0.0, self.tat - now) * self.rate
        self.rate = rate
        self.tat = now + backlog / rate


class SpanGuard:
    """What our own requests of the last `window` seconds hold of one limit, net of what their
    replies gave back; once `armed`, no more than `cap`: a limit of so much a minute held in
    every minute, as a sliding window counts it (Limits._span_full arms it). The pacer keeps
    the rate, not the sum: what a slow start held back goes when its refunds come (the first
    requests ask for --max_tokens 1,024 and give ~860 each back), and a minute later a sliding
    window still holds that catch-up while the slow start has left it (replies of 2 s +- 50%,
    a sliding minute of tokens given: three 429s 62 s in, then two seconds of almost nothing,
    93.6% of the limit over 90 s on the fake clock; 96.0% and one 429 with the guard)."""

    def __init__(self, kind: str, cap: float, window: float, sent: "deque[Ticket]",
                 now: float) -> None:
        self.kind, self.cap, self.window = kind, cap, window
        self.armed = False
        self.log: deque[Ticket] = deque(t for t in sent if t.sent_at > now - window)
        self.used = sum(t.net(kind) for t in self.log)

    def _expire(self, now: float) -> None:
        while self.log and self.log[0].sent_at <= now - self.window:
            self.used -= self.log.popleft().net(self.kind)
        if not self.log:
            self.used = 0.0  # no float drift

    def wait_time(self, units: float, now: float) -> float:
        """Seconds until `units` more fit (a request larger than the cap goes into an empty
        span: the server, not this, says whether it fits at all)."""
        self._expire(now)
        need = self.used + units - self.cap
        if need <= 1e-9:
            return 0.0
        freed = 0.0
        for ticket in self.log:  # the oldest leave first: usually the first one or few
            freed += ticket.net(self.kind)
            if freed >= need - 1e-9:
                return max(1e-4, ticket.sent_at + self.window - now)
        return max(1e-4, self.log[-1].sent_at + self.window - now) if self.log else 0.0

    def used_by(self, now: float) -> float:
        self._expire(now)
        return self.used

    def take(self, ticket: Ticket) -> None:
        self.log.append(ticket)
        self.used += ticket.net(self.kind)

    def give_back(self, ticket: Ticket, amount: float, now: float) -> None:
        """`ticket`'s reply gave `amount` back (already taken off its net units)."""
        self._expire(now)
        if self.log and ticket.sent_at >= self.log[0].sent_at:  # still in the span
            self.used -= amount


@dataclass
class Budget:
    """What a server said is left of one limit, less what we sent since. `refill` units/s come
    back (a bucket, as OpenAI and Anthropic describe theirs), or none until `expires` (a window
    that resets at once, as Together's and the IETF draft's `t`)."""

    left: float
    refill: float
    at: float
    expires: float

    def wait_time(self, units: float, now: float) -> float:
        if now >= self.expires:
            return 0.0
        left = self.left + self.refill * (now - self.at)
        if left >= units:
            return 0.0
        if self.refill > 0:
            return min(self.expires - now, (units - left) / self.refill)
        return self.expires - now

    def take(self, units: float) -> None:
        self.left -= units


@dataclass
class Stated:
    """A limit a server stated: `limit` units per `window` seconds; `counted`: its replies
    report the count of the window it enforces, which resets at once (Together, the IETF
    draft), so the budget they set guards each window's end."""

    limit: float
    window: float
    counted: bool = False

    @property
    def per_second(self) -> float:
        return self.limit / self.window


def next_boundary(now: float, period: float, anchor: float) -> float:
    """The first boundary after `now` of back-to-back windows of `period`, one of which began at
    `anchor` (a window's reset learnt from its counts; the clock's minute in our clock's terms)."""
    return anchor + (math.floor((now - anchor) / period) + 1) * period


@dataclass
class WindowClock:
    """When a window that resets all at once resets, where the server does not say (Together
    states no reset for its token limit): a reply whose remaining count is up by more than half
    the limit on the reply before came after a reset, and the narrowest such interval seen places
    the resets (at its end, when a reset is certain). Without it a window's budget lasts a whole
    window from the reply that set it: at 98% of the limit the last request or so of each
    second waited for the next second's first reply, and the pace lost what it waited (together-
    like token limit: 18.0 requests a second of 18.5)."""

    window: float
    last: tuple[float, float] | None = None  # (when, remaining) of the last reply
    seen: tuple[float, float] | None = None  # (after, by): the narrowest span that held a reset

    def observe(self, remaining: float, limit: float, now: float) -> None:
        if self.last is not None:
            before, was = self.last
            if remaining - was > limit / 2 and now - before < self.window and (
                    self.seen is None or now - before < self.seen[1] - self.seen[0]):
                self.seen = (before, now)
        self.last = (now, remaining)

    def next_reset(self, now: float) -> float | None:
        if self.seen is None:
            return None
        return next_boundary(now, self.window, self.seen[1])


@dataclass
class RefundAudit:
    """Whether a server gives back the unused part of what requests reserved, read from its
    remaining token counts, with no 429. Where those counts behave as a bucket (each reset is the
    time the count takes to refill at the stated rate: OpenAI's and Anthropic's buckets, the
    per-minute figures Azure reports), what the server took over a span is the drop in its count
    plus what refilled; where they are a window's own count (each reset is the same moment, the
    window's end: a count "reset each minute", as Azure describes its token limit, reported as
    itself), the drop alone, within one window. What we reserved less that is what it gave back,
    to set against the tokens the replies of the span left unused. Azure counts prompt +
    max_tokens and gives nothing back, within a count reset each minute: a client that refunds
    sends ~120% of the limit, fills the minute early and waits out its end (74-77% of the limit
    after the first minute, 10 s under half, in the azure-like benchmark case; 76-77% with 10 s
    at nothing where the count is reported as itself), and a 429 comes once a minute at most,
    each cutting the refunds by REFUND_CUT only."""

    # when, remaining, reserved, unused, and the window's end (None: a bucket's count)
    anchor: tuple[float, float, float, float, float | None] | None = None
    last_seen: float = -math.inf  # the last reading (a bucket may fill between two far apart)
    # the last span measured: (its start, what we reserved in it, what the server took)
    last_span: tuple[float, float, float] | None = None

    def observe(self, reading: Reading, rate: float, reserved: float, unused: float,
                now: float) -> float | None:
        """The share of the unused tokens the server gave back over the last REFUND_AUDIT_S,
        or None if not known (yet). `reserved`, `unused`: running totals of what our requests
        reserved, and what their replies left unused."""
        remaining = reading.remaining
        if not (reading.refills and reading.limit and remaining is not None and
                reading.reset is not None and rate > 0):
            self.anchor = None  # a count that resets at once by its dialect, or not said
            return None
        window_end = now + reading.reset
        # a reading of the window anchored (its reset points at the same end) is one, even
        # where its count happens to fit a bucket's arithmetic as it falls
        bucket = not (self.anchor is not None and _same_count(self.anchor[4], window_end)) and \
            abs(reading.reset - (reading.limit - remaining) / rate) <= max(1.0, 0.1 * reading.reset)
        window_end = None if bucket else window_end
        seen_before, self.last_seen = self.last_seen, now
        if bucket and (remaining >= reading.limit - max(FULL_SHARE * reading.limit,
                                                         rate * FULL_REFILL_S)
                       or now - seen_before > FULL_REFILL_S):
            # (nearly) full, or it may have been since the last reading: a bucket that is full
            # refills nothing, and counting its refill as taken makes a server that refunds look
            # as if it kept them (a client held under the limit by something else: fixed 1-s
            # windows that lose late refunds, 80% of the limit)
            self.anchor = None
            return None
        if self.anchor is None or not _same_count(self.anchor[4], window_end):
            self.anchor = (now, remaining, reserved, unused, window_end)
            return None
        began, was, reserved_then, unused_then, _ = self.anchor
        if now - began < REFUND_AUDIT_S:
            return None
        self.anchor = (now, remaining, reserved, unused, window_end)
        taken = was - remaining + (rate * (now - began) if bucket else 0.0)
        self.last_span = (began, reserved - reserved_then, taken)
        left_unused = unused - unused_then
        if left_unused <= 0 or left_unused < REFUND_AUDIT_LEAST * (reserved - reserved_then):
            return None  # replies that used (nearly) all they reserved: nothing to tell apart
        if not bucket and taken > WINDOW_COUNT_MOST * (reserved - reserved_then):
            # not our count alone (a quota shared with another client), or not in our units (a
            # window of 10 s reported in per-minute figures, six times its own count)
            return None
        given_back = (reserved - reserved_then - taken) / left_unused
        if given_back < -REFUND_AUDIT_KEPT:
            # it took more than we reserved, by half what the replies left unused and more: not
            # a count of our requests that refills at the stated rate (a sliding minute near
            # full frees what it admitted a minute ago, not the rate: after a slow start, read
            # as tokens kept, which stopped the refunds and the pace fell a fifth for 5 s)
            return None
        return given_back


def _same_count(anchor_end: float | None, window_end: float | None) -> bool:
    """Two readings of one bucket, or of one window (the same end, to the whole second some
    servers round their resets to)."""
    if anchor_end is None or window_end is None:
        return anchor_end is None and window_end is None
    return abs(anchor_end - window_end) <= WINDOW_END_SLACK_S


def _window_of(reading: Reading, default: float) -> float:
    """The period a stated limit covers. The dialect may say (IETF w=, Together's per second);
    otherwise a minute, as OpenAI, Azure and Anthropic document, unless the server's own reset
    says the period is longer (Groq states requests per day: a reset of minutes gives it away)."""
    if reading.window:
        return reading.window
    if reading.reset is not None and reading.reset > default * 1.5:
        return max(reading.reset, LONG_PERIOD_S * 2)
    return default


class Learner:
    """A request rate learnt from 429s that no known limit explains.

    Two kinds of 429 are told apart. An isolated one (the next reply is a success) means we are
    at the edge: the rate drops a little below what we were sending. A storm (three in a row)
    means we are well over, or a long window is spent: sending pauses (`Limits`) and only one
    request probes until one gets through. What the server let through is measured between two
    moments it was full (the starts of two storms): whatever it enforces, a bucket, a window of
    a second or of a minute, what it admits between two such moments is what it allows. When a
    storm ends the rate is also held to the average admitted since the start (at most a minute),
    so a long window that reopens is not burst into again; after a long storm that let nothing
    through, that average is the window's allowance, and the rate is raised to it. The estimate
    is never taken over time that has not passed; a storm that comes back at once is measured
    from when sending resumed after it, or over the server's memory where it is long (the ramp's
    cuts the rate but keeps the estimate: what a fraction of a second let through just after the
    ramp's burst is not what the server allows); one come back after a blackout the minute
    measured is that blackout's echo, and teaches nothing. After a cut the rate climbs back to
    just below the estimate in a few steps, then slowly above it; more slowly after long storms,
    which mean a long window that answers late, and once per storm's length where a minute
    measured it; and never stays under half the most that got through in a minute lately, which
    any window of a minute or less allows. A 429 just after a storm whose probes measured our
    own pauses, not the server's pace, is the storm's, not an edge. A storm that let nothing
    through for over 10 s (or for less, where the counts rule out every shorter window that
    tiles the minute) and ends as the clock's minute begins is a window of the clock's minute
    (Unix time, where known): its allowance is what went through in the minute just closed."""

    CUT = 0.95  # after a storm: the new rate, as a share of what went through
    EDGE = 0.97  # after an isolated 429: as a share of what we were sending
    EDGE_LEAST = 5  # ... measured over this many requests at least
    LONG_STORM_S = 2.0  # a storm this long means a long window, spent: do not burst into it
    COMEBACK_S = 0.1  # a storm back this soon after sending resumed holds too little to measure
    SETTLE_S = 1.0  # a change shows within the shortest window providers enforce
    STEP_S = 1.0  # how often the rate may rise (longer for servers that count over longer)
    RECOVER = 1.25  # per step, back to RECOVERED x the estimate
    RECOVERED = 0.97
    PROBE = 1.01  # per step, above it
    MEMORY_S = 120.0
    RAMP_START = 4.0  # requests/s after the first reply, then doubling: 1,024/s after 0.8 s
    RAMP_BLIND = 1.0  # ... or after PROBE_GIVE_UP_S with no reply yet, until one comes
    RAMP_STEP_S = 0.1  # at least; and at least the first reply's round trip, up to RAMP_STEP_MOST_S
    RAMP_STEP_MOST_S = 0.3  # (a round trip across an ocean, and a first token)
    RAMP_STORM_S = 3.0  # a first storm this soon after the ramp began is the ramp's burst's
    # a window that reopened at the clock's minute after refusing everything for longer than
    # the longest short window providers name (Azure's 10 s) is the clock's minute (below)
    CLOCK_QUANTUM_S = 10.0
    CLOCK_SLACK_S = 0.5  # a request's way to the server, and its clock against ours
    # the fixed windows of CLOCK_QUANTUM_S or less that tile the clock's minute (1, 2, 3, 4, 5, 6
    # and 10 s; one of them can end with the minute): what a storm that ends as the minute begins
    # may be, other than the minute
    CLOCK_SHORT_WINDOWS_S = tuple(float(w) for w in range(1, int(CLOCK_QUANTUM_S) + 1)
                                  if MINUTE % w == 0)

    def __init__(self, unix_offset: float | None = None) -> None:
        # Unix time - our clock's (None: unknown, as on a fake clock that models no wall clock)
        self.unix_offset = unix_offset
        self.rate: float | None = None
        self.ramping = False
        self.ramp_began = -math.inf
        self.ramp_step = self.RAMP_STEP_S
        self.probes = 0  # steps above the estimate without a 429
        self.wall_hits = 0  # 429s in a row at the same estimate
        self.ceiling: float | None = None
        self.epoch = 0
        self.last_change = -math.inf  # any change: the rate rises a step after it
        self.last_cut = -math.inf
        self.first_send: float | None = None
        self.log: deque[list] = deque()  # [sent_at, outcome]: None in flight, True, False (429)
        self.storm_starts: deque[float] = deque()
        self.storm_over = -math.inf
        self.storm_not_a_rate = False  # the last storm's probes measured our pauses (edge)
        self.storm_resumed = -math.inf  # when the request that ended the last storm went
        self.storm_came_back = False  # the last storm came back at once and cut the rate
        self.storms = 0  # storms begun (not counting those come back at once)
        self.blackout_over = -math.inf  # when the last storm that let nothing through ended
        self.blackout_measured = -math.inf  # ... and was measured over (half) a minute
        self.window = 1.0  # the longest storm seen: how long the server's memory seems to be
        self.clock_minutes = 0  # storms read as the clock's minute at their end, so many times
        self.cuts = 0

    @property
    def minute_measured(self) -> bool:
        """A long window's allowance measured over a whole minute: a blackout measured over (half)
        a minute, or a storm read as the clock's minute."""
        return self.blackout_measured > -math.inf or self.clock_minutes > 0

    def sent(self, now: float) -> list:
        if self.first_send is None:
            self.first_send = now
        record = [now, None]
        self.log.append(record)
        while self.log and self.log[0][0] < now - self.MEMORY_S:
            self.log.popleft()
        return record

    def admitted(self, start: float, end: float) -> int:
        return sum(1 for t, outcome in self.log if start < t <= end and outcome is not False)

    def sending_rate(self, now: float, span: float = 1.0) -> float:
        first = now if self.first_send is None else self.first_send
        span = max(0.1, min(span, now - first))
        return sum(1 for t, _ in self.log if now - span < t <= now) / span

    def _set(self, rate: float, ceiling: float, now: float) -> None:
        self.ramping = False
        self.rate, self.ceiling = max(rate, 1.0 / MINUTE), ceiling
        self.probes = 0
        self.epoch += 1
        self.last_change = self.last_cut = now
        self.cuts += 1

    def edge(self, ticket: Ticket, now: float) -> None:
        """An isolated 429 to a request sent since the last change: a little over the edge."""
        if ticket.epoch < self.epoch or ticket.sent_at < self.last_cut + self.SETTLE_S:
            return
        if ticket.sent_at < self.storm_over + self.SETTLE_S and self.storm_not_a_rate:
            # sent as a storm ended: the span back to our last few requests holds that storm's
            # probes, one at a time, and measures our own pauses (a window of a second, replies
            # of 1.7 s: 1.2 a second of 19 learnt, then climbed back 1% a second), unless the
            # server let about one through a pause (a limit of 30 a minute). More such 429s are
            # a storm come back, measured from when sending resumed
            return
        assert self.first_send is not None
        # up to when the refused request went: the server was full then; what went since is on
        # its way (a round trip of 0.2 s: 25 requests of the ramp's 128 a second, unanswered,
        # read as let through, and 64 a second of 30 was learnt, then cut 5% a storm for 15 s)
        end = max(ticket.sent_at, self.first_send)
        # a second at least (the shortest window), and long enough to hold ten requests
        sending = self.sending_rate(end)
        span = min(10.0, max(1.0, 10 / sending if sending > 0 else 10.0))
        # not from before the last storm ended: its blackout is not what the server allows now
        # (after a sliding minute spent, 10 s that held the storm read as 0.9 a second of 30)
        span = min(span, end - self.storm_over)
        # ... but over the last EDGE_LEAST requests at least (all, if fewer went): a span that
        # held none measured nothing (a limit of 30 a minute, 1.1 s after a storm's probe)
        least = self._last_requests_began(end)
        if least is not None:
            span = max(span, end - least)
        span = max(0.1, min(span, end - self.first_send))
        # (a span back to the first request holds it: the first reply came 0.1 s before a 429,
        # and a span of 0.1 s left it out)
        start = end - span if end - span > self.first_send else self.first_send - 1e-9
        through = self.admitted(start, end) / span
        if not through:
            # nothing got through in the span (a blackout's probes, replies of 1.7 s): that is
            # no rate; it read as 1 a minute, for the minute that took to undo (a sliding minute
            # of tokens, nothing known: 50% on four seeds of six). Halve what we were sending.
            through = 0.5 * min(self.rate or math.inf, max(sending, 1 / span))
        if self.rate is not None:
            through = min(through, self.rate)
        # the same wall again (a 429 within 10% of the last estimate): the limit is where we
        # thought, so wait longer before probing above it (a probe costs a 429 each time)
        previous = self.ceiling
        self._set(self.EDGE * through, through, now)
        same_wall = previous is not None and abs(through - previous) <= 0.1 * previous
        self.wall_hits = self.wall_hits + 1 if same_wall else 0

    def storm_began(self, now: float) -> float:
        """Returns when the storm began: now, or, if it is the last one come back (a window not
        yet wholly reopened), when that one began. Sets the rate from what was admitted: since
        the last storm began (or ended, after a blackout); for a short storm come back at once,
        since the request that ended it went (not counting that one), or over the server's memory
        where it is long."""
        while self.storm_starts and self.storm_starts[0] < now - MINUTE:
            self.storm_starts.popleft()
        if now - self.storm_over < self.SETTLE_S and self.storm_starts:
            began = self.storm_starts[-1]
            if now - began < self.LONG_STORM_S and now - self.storm_resumed >= self.COMEBACK_S:
                # a short storm come back at once: the rate it left is too high (a bucket that
                # started full, emptied by the ramp: 607 a second kept, so every pause of its
                # Retry-After's 0.05 s ended into another burst of 429s for a second, 62-71 of
                # them); what got through since sending resumed is what the server allows now.
                # The estimate the rate had is kept (_cut_to_admitted) for the ramp's storm
                # only, the first time: a storm back again after that is a long window spent, or
                # a bucket emptied, and measures it (a sliding minute spent by the ramp, its
                # estimate of 623 a second kept through three such cuts to 1.7: the climb back
                # burst into the minute, 61% of the limit, 56 s under half; later storms of a
                # sliding minute with slow replies, 11-13 s under half where 1-2 s)
                ramps = self.storms == 1 and began - self.ramp_began <= self.RAMP_STORM_S
                since = self.storm_resumed
                if self.window >= self.LONG_STORM_S:
                    # a server with a long memory (a storm of seconds seen) lets through now
                    # the echo of what it let through a window ago, our own storms of then
                    # included (a sliding minute): the fraction of a second since sending
                    # resumed says little of what it allows. Over its memory, then, but not
                    # from before the last blackout ended (a sliding minute of tokens, replies of
                    # 2.1 s, nothing known, a run of 5 minutes: half a second after a storm at
                    # the second minute's end read 6.2 a second of 18.9, and the slow probe of a
                    # long window never climbed back, 6-12 a second for three minutes; fake clock)
                    assert self.first_send is not None
                    since = max(min(since, now - self.window), self.blackout_over,
                                self.first_send)
                if self._cut_to_admitted(since, now,
                                         keep_estimate=ramps and not self.storm_came_back):
                    self.storm_came_back = True
            return began
        # from the start of the last storm; but if that storm let nothing through for long (a
        # window spent early), from its end: the window's blackout is not time it allowed
        # anything in (fixed 10-s windows, the ramp's first one spent in 1 s: 388 requests in
        # the 28.6 s between two storm starts read as 13.5 a second of 20, for a minute)
        # ... and not before sending resumed after it: a storm is mostly our own waiting (one
        # probe at a time, its reply seconds long where replies take seconds), not the server's
        previous = max(self.storm_starts[-1], self.blackout_over, self.storm_over) \
            if self.storm_starts else None
        least = self._last_requests_began()
        if previous is not None and least is not None:
            # ... over EDGE_LEAST requests at least, or all (a server that admits one every 2 s:
            # the second since the last storm's probe held none)
            previous = min(previous, least)
        if previous is not None and now - previous >= 0.5:
            self._cut_to_admitted(previous, now)
        self.storm_starts.append(now)
        self.storms += 1
        self.storm_came_back = False
        return now

    def _cut_to_admitted(self, since: float, now: float, keep_estimate: bool = False) -> bool:
        """A storm: the rate becomes CUT x what was admitted since `since`, if that is lower
        than the rate allows for; not from a span in which nothing got through (that read as
        1 a minute). `keep_estimate`: the span is a fraction of a second just after a storm,
        which says what the server lets through now, not what it allows: the rate is cut, and
        climbs back to the estimate it had in a few steps (a sliding window counter of a second
        still weighing the ramp's burst let 2 through in 0.26 s: 7.8 a second of 20 became the
        estimate, and the climb back took 23 s, 2 runs in 4; a bucket emptied by the ramp needs
        the cut, or its storms come back: 15-21 429s per 1,000 where 10 came). True if cut."""
        admitted = self.admitted(since, now)
        estimate = admitted / (now - since)
        if not admitted or (self.rate is not None and estimate >= self.rate / self.CUT):
            return False
        kept = max(estimate, self.ceiling or self.rate or estimate) if keep_estimate else estimate
        self._set(self.CUT * estimate, kept, now)
        return True

    def storm_ended(self, began: float, end: float, now: float, last_pause: float = 0.0) -> None:
        """Something got through after a storm (the request sent at `end`, answered `now`):
        never burst into a window that reopens. What the server did is timed by when requests
        were sent; the reply's latency is not the storm's (a storm of 4.5 s on a window of a
        second, with replies of 1.7 s, read as a long window spent)."""
        assert self.first_send is not None
        lasted = end - began
        self.storm_over, self.storm_resumed = now, end
        if self._clock_minute_ended(began, end, now):
            return
        self.window = min(MINUTE, max(self.window, lasted))
        # what the server let through over its window, which is at least as long as the storm:
        # the storm and as long again before it, but not further back than the first request
        span = min(end - self.first_send, MINUTE + last_pause,
                   max(lasted + max(1.0, lasted), self.window + 1.0))
        # its probes' pace is not the server's after a long storm (a long window's blackout,
        # measured below), or one that its first probe ended after a second in which the
        # server let several through, but for the ramp's first burst (a bucket that starts
        # full, a window the ramp spent at once; on the simulator, skipped there: a free plan's
        # bucket 25 429s in 90 s where 10 came, fixed 10-s windows 28 in a second where 3 came)
        self.storm_not_a_rate = lasted >= self.LONG_STORM_S or (
            last_pause <= STORM_PAUSE_MIN_S and began - self.first_send >= 2 * self.SETTLE_S
            and self.admitted(began - self.SETTLE_S, began) >= self.EDGE_LEAST)
        if span <= 0:
            return
        # it reopened somewhere in the last pause: on average half of that pause was lost
        sending = max(1.0, span - last_pause / 2)
        average = max(1.0 / sending, self.admitted(end - span, end) / sending)
        if lasted < self.LONG_STORM_S and self.rate is not None:
            return  # a short storm paused us: what went through meanwhile says too little
        if began < self.blackout_over == self.blackout_measured and self.rate is not None:
            # a storm come back at once after a blackout that the minute measured: the storm
            # and as long before it hold that blackout, and what the window let through since it
            # reopened is its echo and our wait for the probe's slow reply, not its allowance
            # (a sliding minute reopens as it was filled: 2.9 a second of 18.9 read so, then 3-8
            # a second for four minutes, the slow probe of a long window; fake clock). A storm
            # that begins afresh measures the rate again
            return
        # a long storm in which nothing got through (but the request that ends it) is a long
        # window spent: over the span, which covers it, the average admitted is what the window
        # allows, above the rate too (a sliding minute spent by the ramp in 3 s let a few
        # requests through on refunds before it closed: the estimate between those storms was
        # 5.7 requests a second of 18.9, and stayed). Not after storms that came back again
        # and again with requests getting through between them (a bucket emptied by the ramp,
        # with a short Retry-After each time): the span holds the ramp's burst
        quiet = self._quiet_before_last_success()
        blackout = quiet >= self.LONG_STORM_S
        if blackout:
            # from the end of the last such storm: from one reopening to the next, what the
            # window allows exactly (each end late by about half its pause; fixed windows of 10 s
            # measured over the storm and as long before it mix a fast window with its storm)
            cycle = end - self.blackout_over
            if lasted <= cycle <= MINUTE + last_pause:
                average = max(average, self.admitted(self.blackout_over, end) / cycle)
                if cycle >= MINUTE / 2:
                    self.blackout_measured = end
            elif end - self.first_send >= 2 * MINUTE or (
                    quiet > self.CLOCK_QUANTUM_S and end - self.first_send >= MINUTE):
                # the last reopening is too long ago to time a cycle (a window of the clock's
                # minute spent 10 s early, once): the minute before this one holds the window
                # just spent, whole (any window of a minute or less admits no more than its
                # allowance in a minute; over the storm and as long before it, 9.5 s of nothing
                # of 19 read as 13 a second of 20). So too with none, in the run's second minute,
                # after nothing got through for longer than a short window refuses: a long window
                # the first minute spent (a sliding minute of tokens spent in 32 s, slow replies:
                # the trickle the blackout let through cut the rate to 0.1 a second, and over the
                # storm and as long before it 7.5 a second of 18.9 was learnt after it, 56 s under
                # half; fake clock). A bucket of a minute that starts full admits twice its
                # allowance in its first minute, but it refills as it goes: it makes no such
                # blackout. The minute is measured, and the rate probes above it once per storm's
                # length: 1% a step climbed 43% in the next minute, which was spent 4 s early,
                # and the trickle after it halved the rate (73% of the limit over five minutes;
                # fake clock)
                average = max(average, self.admitted(end - MINUTE, end) / MINUTE)
                self.blackout_measured = end
            self.blackout_over = end
        if self.rate is None or average * self.CUT < self.rate or (
                blackout and self.ceiling is not None and average > self.ceiling):
            self._set(self.CUT * average, average, now)

    def _clock_minute_ended(self, began: float, end: float, now: float) -> bool:
        """A storm that let nothing through for longer than a short window refuses (Azure's 10
        s) and ended as the clock's minute began: a window of the clock's minute, spent
        (OpenRouter's resets are whole minutes, Cerebras's the clock's minute), whose allowance
        is what went through in the minute just closed. Measured over the storm and as long
        before it, or since the first request, the allowance read as more than a minute's (the
        clock's minute of 1,200 requests, spent by the ramp in 10 s and reopened 35 s later:
        1,200 over 45.7 s, 26 a second of 20), and the next minute was spent early (fake clock:
        13-28 s under half after the first minute on ten seeds of twelve). True if it did, and
        the rate is that allowance over a minute. A sliding minute that reopens then holds its
        allowance in that minute too. Windows of 10 s, which begin with the clock's minute one
        time in six, cannot refuse for that long: where the ramp ran barely above them through
        one of their ends unrefused, all else read as a minute's (17-27% of the limit after, on
        three seeds of twelve). A shorter storm is the minute's too where the counts rule out
        every window of 10 s or less (_short_windows_ruled_out). Not in a minute the run began in
        after an earlier storm (its count, low, is not a window's)."""
        if self.unix_offset is None or self.first_send is None:
            return False
        # the minute began after the last refused request reached the server, and before (or
        # as) the one that got through did
        minute = next_boundary(end + self.CLOCK_SLACK_S, MINUTE, -self.unix_offset) - MINUTE
        if minute <= began or (self.first_send > minute - MINUTE and self.storms > 1):
            return False
        through = max((t for t, outcome in self.log if outcome is True and t < end),
                      default=self.first_send)
        last_refused = max((t for t, outcome in self.log if outcome is False and began <= t < end),
                           default=began)
        if not last_refused < minute <= end + self.CLOCK_SLACK_S:
            return False
        if minute - through < self.CLOCK_QUANTUM_S + self.CLOCK_SLACK_S and \
                not self._short_windows_ruled_out(minute, minute - through):
            return False
        allowance = self.admitted(minute - MINUTE, minute)
        if allowance < self.EDGE_LEAST:
            return False  # too few to measure a rate by
        self.storm_not_a_rate = True  # its probes' pace is not the server's
        self.window, self.blackout_over = MINUTE, end
        self.clock_minutes += 1
        self._set(self.CUT * allowance / MINUTE, allowance / MINUTE, now)
        return True

    def _short_windows_ruled_out(self, minute: float, blackout: float) -> bool:
        """Whether no fixed window of CLOCK_QUANTUM_S or less that tiles the clock's minute can
        have refused everything for `blackout` seconds up to `minute`: a shorter one would have
        reopened in it; any other, filled by what it let through up to the blackout, let through
        less than a whole window of it did earlier in the run (a window admits as much each
        time). Counted by when requests were sent, each side given CLOCK_SLACK_S on the safe
        side. (Cerebras's minute, nothing known, the run begun 21.9 s before the clock's: spent
        at 62 a second in 20 s, refused for 1.9 s, and the next minute spent in 20 s as well,
        then 40 s refused: 22 s under half after the first minute; the simulator at b9fbf6c.)"""
        assert self.first_send is not None
        slack = self.CLOCK_SLACK_S
        for window in self.CLOCK_SHORT_WINDOWS_S:
            if window < blackout - slack:
                continue
            last = self.admitted(minute - window - slack, minute)
            earlier, start = 0, minute - 2 * window
            while start >= max(self.first_send, minute - MINUTE):
                earlier = max(earlier, self.admitted(start, start + window - slack))
                start -= window
            if earlier <= last + 1:  # (+1: a window's share of a minute rounds either way)
                return False
        return True

    def _last_requests_began(self, until: float = math.inf) -> float | None:
        """When the EDGE_LEAST-th last request sent by `until` went (the first, if fewer went;
        None: none)."""
        sent = [t for t, _ in itertools.islice((r for r in reversed(self.log) if r[0] <= until),
                                               self.EDGE_LEAST)]
        return sent[-1] if sent else None

    def _half_best_minute(self) -> float:
        """Half the most requests that got through in any minute remembered, a second."""
        through = [t for t, outcome in self.log if outcome is True]
        best = first = 0
        for last, t in enumerate(through):
            while through[first] <= t - MINUTE:
                first += 1
            best = max(best, last - first + 1)
        return best / 2 / MINUTE

    def _quiet_before_last_success(self) -> float:
        """Seconds between the sending of the last request that got through and of the one
        that got through before it."""
        through = (t for t, outcome in reversed(self.log) if outcome is True)
        sent = list(itertools.islice(through, 2))
        return sent[0] - sent[1] if len(sent) == 2 else 0.0

    def rescale(self, factor: float, now: float) -> None:
        """The requests changed size by `factor` (a rate learnt from a token limit): so does
        the rate, and what was measured before is of other requests."""
        assert self.rate is not None
        self.rate *= factor
        if self.ceiling is not None:
            self.ceiling *= factor
        self.storm_starts.clear()
        self.last_change = self.last_cut = now

    def start_ramp(self, now: float, rate: float | None = None,
                   round_trip: float = 0.0) -> None:
        """A server that answered without stating limits: raise the rate from RAMP_START (or
        `rate`: RAMP_BLIND, where nothing has answered yet), doubling as replies come, until a
        429 says where the limit is or the rate no longer holds us back (TCP's slow start, on
        the clock: a 429 comes back at once, so the ramp need not wait for slow replies). At
        once is a round trip on the network: no more often than the first reply took (its
        request, the limits read, asks for one token), so the ramp doubles once at most while a
        429 is on its way back (a round trip of 0.2 s and steps of 0.1 s: 512 a second sent at
        a limit of 30 when the first came back, 23 429s per 1,000 where 4 came, fake clock)."""
        if self.rate is None and not self.cuts:
            self.rate, self.ramping, self.last_change = rate or self.RAMP_START, True, now
            self.ramp_began = now
            self.ramp_step = min(self.RAMP_STEP_MOST_S, max(self.RAMP_STEP_S, round_trip))

    def stop_ramp(self) -> None:
        self.rate, self.ramping = None, False

    def succeeded(self, ticket: Ticket, now: float) -> None:
        ticket.record[1] = True
        if self.ramping:
            if self.rate is not None and now - self.last_change >= self.ramp_step:
                # over a span that holds a few requests at the rate, all of it in the ramp (at 4
                # a second, 0.2 s holds none, and the ramp ended at once into a burst of 64)
                span = max(2 * self.ramp_step, 4 / self.rate)
                if now - self.ramp_began >= span and \
                        self.sending_rate(now, span) < 0.5 * self.rate:
                    self.rate, self.ramping = None, False  # something else holds us back
                else:
                    self.rate *= 2
                self.last_change = now
            return
        step = self.STEP_S * max(1.0, self.window / 6)
        if self.rate is None or now - self.last_change < step:
            return
        if self.sending_rate(now, 2.0) < 0.8 * self.rate:
            return  # the rate is not what holds us back: raising it proves nothing
        # (a cheap bound first: none of the log's minutes holds more than the whole log)
        floor = self.RECOVERED * self._half_best_minute() \
            if self.rate < len(self.log) / 2 / MINUTE else 0.0
        target = self.RECOVERED * (self.ceiling or self.rate)
        if self.rate < floor:
            # below half of what got through in a minute lately: the server allows that much
            # (no window of a minute or less, nor a bucket of a minute, lets through more than
            # twice its allowance in any minute). A blackout's trickle cut the rate, edge by
            # edge, to 0.1 a second; when the window reopened nothing said so, and the climb
            # back took minutes (a window of the clock's minute of tokens, replies of 1.7 s:
            # 56 s under half in two minutes, 236 s in five; fake clock). Back there at once
            self.rate = floor
        elif self.rate < target:
            self.rate = min(target, self.rate * self.RECOVER)
        elif now - self.last_cut < self.STEP_S * min(60.0, 2.0 ** self.wall_hits):
            return  # hit the same wall again and again: probe above it less and less often
        elif self.minute_measured and now - self.last_change < self.window:
            # a long window's allowance, measured over a minute, is known: 1% above it every
            # few seconds spent a window of the clock's minute 10-20% early two minutes on (fake
            # clock: blackouts of 6-16 s), so one step per storm's length (Cerebras's RPM)
            return
        else:
            # above the estimate slowly, faster the longer no 429 comes (the estimate may have
            # been low): 1% a step, then 2% after five steps, 4% after ten ... but never faster
            # against a server that counts over long windows: its 429 comes only when the
            # window is spent, by then far above the limit
            speed_up = 2 ** (self.probes // 5) if self.window < self.LONG_STORM_S * 2.5 else 1
            self.rate *= 1 + min(0.25, (self.PROBE - 1) * speed_up)
            self.probes += 1
        self.last_change = now


class Limits:
    """What may be sent to one endpoint now. `max_in_flight`, `rpm`, `tpm`, `itpm`, `otpm` are the
    user's (None: no limit of theirs); the server's stated limits and the learnt rate join them.
    A request must fit all of them."""

    def __init__(self, max_in_flight: int | None, rpm: float | None = None,
                 tpm: float | None = None, now: float = 0.0, *, itpm: float | None = None,
                 otpm: float | None = None, learn: bool = True,
                 unix_offset: float | None = None) -> None:
        self.max_in_flight = max_in_flight or math.inf
        # requests in flight the server allows at once, as its 429s taught (inf: no such limit)
        self.in_flight_cap: float = math.inf
        self.in_flight_refused_at = -math.inf  # the last 429 that named it, or the last probe up
        # (requests sent so far, in flight after it) of the last sends: what a request found
        # in flight may include some sent after it (they may reach the server first)
        self.in_flight_log: deque[tuple[int, int]] = deque(maxlen=IN_FLIGHT_LOG)
        self.learn = learn  # False: no probe, no ramp, no learnt rate (a server known to be free)
        self.given = {"requests": rpm, "tokens": tpm, "input": itpm, "output": otpm}
        self.stated: dict[str, Stated] = {}
        self.pacers: dict[str, Pacer] = {}
        self.budgets: dict[str, Budget] = {}
        self.window_clocks: dict[str, WindowClock] = {}  # resets learnt from remaining counts
        self.learner = Learner(unix_offset)
        self.learned_pacer: Pacer | None = None
        self.in_flight = 0
        self.probes_in_flight = 0  # of those, sent during a storm (Ticket.probe)
        self.sent = Sent()
        self.paused_until = 0.0
        self.replies = 0
        self.first_sent: float | None = None
        self.storm_began: float | None = None  # three 429s in a row: nothing gets through
        self.refused_in_a_row = 0  # 429s with no success since, of a request sent after the first
        self.refused_since = math.inf
        self.storm_pause = 0.0
        self.storm_teaches = False  # the storm teaches a rate (not one our token count explains)
        self.probe: Ticket | None = None  # the storm's last probe
        self.refusal_turnarounds: deque[float] = deque(maxlen=REFUSAL_MEMORY)
        # the share of a reply's unused tokens given back to the pacers: 1 where the server
        # refunds them at once (a bucket), less where some refunds come after the window that
        # was charged has closed (fixed windows), 0 where it keeps them all (OpenAI, Azure)
        self.refund_share = 1.0
        self.replies_since_refund_change = 0
        self.refund_cuts: deque[float] = deque()  # when 429s cut it, the last REFUND_MEMORY_S
        self.refusals: deque[float] = deque()  # isolated 429s of the last minute
        self.explained_until = -math.inf  # 429s until then are the refunds' doing
        self.tokens_refused = False  # a 429 named a token limit
        self.last_refund = -math.inf  # when unused tokens were last given back to a pacer
        self.refund_audit = RefundAudit()  # the server's token counts: does it refund?
        self.unused_tokens = 0  # running total of what replies left unused of their reservation
        # the server keeps them (refund_share 0): the audit found it, or OpenAI's count was learnt
        self.refunds_kept = False
        self.refunds_stopped_at = -math.inf  # when a learnt count (OpenAI's) stopped them
        self.charge = "sum"  # how the server counts a request's tokens (CHARGES), until told
        self.charge_trial: float | None = None  # since when OpenAI's count is tried, untold
        self.charge_tried = False  # a trial was made (once per endpoint)
        # (OpenAI's count, ours) of the last replies' requests; readings of a bucket held near full
        self.charge_evidence: deque[tuple[int, int]] = deque(maxlen=TRIAL_EVIDENCE)
        self.full_deficits: deque[float] = deque(maxlen=TRIAL_READINGS)  # in a row
        self.trial_deficit = 0.0  # the most the bucket lacked of full in those, as a trial began
        # a 429 showed fixed windows of SHORT_WINDOW_S on tokens (None: a storm said otherwise)
        self.short_windows: bool | None = False
        self.short_windows_since = math.inf  # the request whose 429 showed them
        self.recent: deque[Ticket] = deque()  # the requests of the last SHORT_WINDOW_S or so
        self.last_minute: deque[Ticket] = deque()  # the requests of the last MINUTE (and slack)
        self.guards: dict[str, list[SpanGuard]] = {}  # a known limit over its span (SpanGuard)
        self.window_fits = 0  # requests whose max_tokens fit_window lowered
        self.last_limited: str | None = None  # the limit the last 429 named, if it did
        self.learned_epoch = 0  # the learner's epoch when its rate was last followed
        # the mean prompt and completion tokens of the requests the learnt rate was measured
        # on, where a 429 that named a token limit taught it (None: a request rate, or none
        # learnt); their size is counted the server's way as we know it then (learned_charge)
        self.learned_size: tuple[float, float] | None = None
        for kind in KINDS:
            self._repace(kind, now)

    # --- what may go ------------------------------------------------------------------------

    @property
    def known(self) -> bool:
        """Some limit is known (given or stated): pace by it from the first request."""
        return any(self.given.values()) or bool(self.stated)

    @property
    def counts_tokens(self) -> bool:
        """A token limit applies (given, stated by the server, or named by a 429) or may: the
        server has stated nothing and no limit was given, so one may be hidden."""
        return self.tokens_refused or any(
            kind in self.pacers or kind in self.budgets for kind in KINDS[1:]) or (
            self.learn and not self.known)

    def probing(self, now: float) -> bool:
        """Nothing is known of the server yet: the first request goes alone, until it is
        answered (its headers may state the limits) or PROBE_GIVE_UP_S passes."""
        return self.learn and not (self.known or self.replies) and (
            self.first_sent is None or now - self.first_sent < PROBE_GIVE_UP_S)

    def wait_time(self, tokens: int, now: float, prompt: int | None = None) -> float:
        """Seconds until a request of `tokens` (of which `prompt` are the prompt) may go; 0 if
        now; inf if only a release (a reply) can help."""
        if self.probing(now) and self.in_flight >= 1:
            return max(1e-3, self.first_sent + PROBE_GIVE_UP_S - now)  # type: ignore[operator]
        if self.storm_began is not None and self.probes_in_flight >= 1:
            # in a storm one request probes at a time; those sent before it began were let
            # through and say nothing of now (with replies of seconds, waiting for them too made
            # each storm last that long, and a storm that long reads as a long window spent:
            # 45-50% of a limit enforced per second, with replies of 1.7 s +- 50%) ... and the
            # probe is not waited for longer than a 429 takes to come back
            wait = self._presume_probe_through(now)
            if wait > 0:
                return wait
        if self.in_flight >= min(self.max_in_flight, self.in_flight_cap):
            return math.inf
        if self.learn and not (self.replies or self.known) and self.learner.rate is None and \
                not self.learner.cuts and self.first_sent is not None:
            # the first reply is slower than PROBE_GIVE_UP_S: go on at RAMP_BLIND till one comes,
            # not all at once (replies of 8 s: 63 requests at the 5th second, into a limit of 30
            # a minute, 330-630 429s per 1,000 even where the headers state it; doubling every
            # 1-2 s without a 429, or 4 a second, overfilled a sliding minute of 30 on some seeds)
            self.learner.start_ramp(now, Learner.RAMP_BLIND)
            self._follow_learner(now)
        prompt = tokens if prompt is None else prompt
        units = {"requests": 1, "tokens": CHARGES[self.charge](prompt, tokens - prompt),
                 "input": prompt, "output": tokens - prompt}
        waits = [self.paused_until - now]
        waits += [pacer.wait_time(now) for pacer in self.pacers.values()]
        if self.learned_pacer is not None:
            waits.append(self.learned_pacer.wait_time(now))
        waits += [budget.wait_time(units[kind], now) for kind, budget in self.budgets.items()]
        waits += [guard.wait_time(units[kind], now)
                  for kind, guards in self.guards.items() for guard in guards if guard.armed]
        return max(0.0, *waits)

    def consume(self, tokens: int, now: float, prompt: int | None = None, *,
                sized: bool = True) -> Ticket:
        prompt = tokens if prompt is None else prompt
        charged = CHARGES[self.charge](prompt, tokens - prompt)
        s = self.sent
        self.sent = Sent(s.requests + 1, s.tokens + charged, s.input + prompt,
                         s.output + tokens - prompt)
        ticket = Ticket(now, prompt, tokens - prompt, self.sent, self.learner.epoch,
                        charge=self.charge, probe=self.storm_began is not None, sized=sized,
                        ahead=self.in_flight)
        self.in_flight += 1
        self.in_flight_log.append((self.sent.requests, self.in_flight))
        self.probes_in_flight += ticket.probe
        if ticket.probe:
            self.probe = ticket
        ticket.record = self.learner.sent(now)
        if sized:
            self._rescale_learnt(ticket, now)
        self.recent.append(ticket)
        while self.recent[0].sent_at < now - 2 * SHORT_WINDOW_S:
            self.recent.popleft()
        self.last_minute.append(ticket)
        while self.last_minute[0].sent_at <= now - MINUTE - SPAN_SLACK_S:
            self.last_minute.popleft()
        for guards in self.guards.values():
            for guard in guards:
                guard.take(ticket)
        resume_from = self._window_reopened(now)
        for kind, pacer in self.pacers.items():
            pacer.take(ticket.units(kind), now, resume_from)
        if self.learned_pacer is not None:
            self.learned_pacer.take(1, now, resume_from)
        for kind, budget in self.budgets.items():
            budget.take(ticket.units(kind))
        if self.first_sent is None:
            self.first_sent = now
        return ticket

    def _window_reopened(self, now: float) -> float | None:
        """Where a window the server counts in (a budget that does not refill) reset at most
        WINDOW_RESUME_S ago, how far back the pacers may keep their schedule: the requests the
        window's end held go now, at the start of the next (Together's seconds: the last
        request or so of each second waited for the reset, and the pace restarted from there:
        95.7-96.3% of a Together-like token limit in the benchmark)."""
        reopened = [b.expires for b in self.budgets.values()
                    if b.refill == 0 and b.expires <= now <= b.expires + WINDOW_RESUME_S]
        return max(reopened) - WINDOW_RESUME_S if reopened else None

    def fit_window(self, prompt: int, completion: int) -> int:
        """A fitted max_tokens (creator/replysize.py: 110% of the longest recent reply and some),
        lowered by at most WINDOW_FIT_GIVE where that lets one more whole request into each
        fixed window of a second (Pacer.take books whole requests there): 5,000 tokens hold 21
        requests charged 228 (95.8% of the limit) and 22 charged 227 (99.9%)."""
        fitted = completion
        least = math.ceil(completion * (1 - WINDOW_FIT_GIVE))
        for kind in ("tokens", "output"):
            share = self.pacers[kind].window_share if kind in self.pacers else None
            if not share:
                continue
            charged = (lambda c: CHARGES[self.charge](prompt, c)) if kind == "tokens" else (
                lambda c: c)
            room = share / (math.floor(share / max(1, charged(fitted))) + 1)
            lowered = math.floor(room) - (prompt if kind == "tokens" and self.charge == "sum" else 0)
            if least <= lowered < fitted and charged(lowered) <= room:
                fitted = lowered
        if fitted < completion:
            self.window_fits += 1
        return fitted

    def pause(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    # --- what a reply tells -----------------------------------------------------------------

    def completed(self, ticket: Ticket, now: float, hint: RateLimitHint = RateLimitHint(),
                  prompt_used: int | None = None, completion_used: int | None = None) -> None:
        """A reply the server admitted (200, or an error it counted: 5xx). Usage None (a
        failed request) keeps the whole reservation spent, the safe guess."""
        self._ended(ticket, now, hint)
        self._let_through(ticket, now)
        self._probe_in_flight_cap(now)
        if prompt_used is not None and completion_used is not None:
            self.unused_tokens += max(0, ticket.tokens - prompt_used - completion_used)
            if ticket.sized:
                self.charge_evidence.append((CHARGES["max"](ticket.prompt, ticket.completion),
                                             prompt_used + completion_used))
            if self.refund_share > 0:
                self._refund(ticket, prompt_used, completion_used, now)
        self.replies_since_refund_change += 1
        while self.refund_cuts and self.refund_cuts[0] < now - REFUND_MEMORY_S:
            self.refund_cuts.popleft()
        probe_every = REFUND_PROBE_EVERY * 2 ** min(5, len(self.refund_cuts))
        if self.replies_since_refund_change >= probe_every and self.refund_share < 1.0 \
                and self._paces_tokens and not self.refunds_kept:
            # probe upward now and then: a 429 from a short burst must not cost a refunding
            # server's refunds for good; each recent cut makes the next probe wait twice as long,
            # so a server that keeps them all is seldom asked again
            self.refund_share = min(1.0, self.refund_share + REFUND_PROBE)
            self.replies_since_refund_change = 0
        self.learner.succeeded(ticket, now)
        self._follow_learner(now)

    def _let_through(self, ticket: Ticket, now: float) -> None:
        """The server admitted `ticket` (or, a probe, is presumed to have): a storm it was sent
        in is over."""
        ticket.record[1] = True
        if ticket.sent_at >= self.refused_since:  # replies to older requests prove nothing
            self.refused_in_a_row, self.refused_since = 0, math.inf
        if self.storm_began is not None and ticket.sent_at >= self.storm_began:
            if self.storm_teaches and now >= self.explained_until:
                # the server let it through when it was sent: its reply's latency is not the
                # storm's (a storm of 4.5 s on a window of a second, with replies of 1.7 s)
                self.learner.storm_ended(self.storm_began, ticket.sent_at, now,
                                         self.storm_pause)
            self.storm_began, self.storm_pause = None, 0.0

    def _presume_probe_through(self, now: float) -> float:
        """Seconds until the storm's probe, unanswered, may be taken as let through (inf: not
        to be presumed; 0: it is now, and the storm is over). A 429 comes back at once, a
        reply takes as long as its tokens do: with replies of 1.7 s each storm lasted as long
        as its probe's reply, ~2 s in which one request went (the OpenAI-like token limit
        with slow replies, nothing known: 63% of it over the first 30 s on two seeds of
        eight, 78-80% with this). If it is refused after all, its 429 counts toward the next
        storm. Not in a storm that lasted LONG_STORM_S before its probe went: a long window
        spent reopens as it was filled, a request or two at first, and its reply is waited for
        (a sliding minute of 30 filled by the ramp: sending at once after the probe cut the
        rate to a tenth). Nor in a storm that teaches no rate (our own count explains it:
        refunds the server did not give back in time): the refunds are being cut, and hurrying
        into the window they overfilled costs more 429s (a sliding minute of tokens in
        headers, replies of 2-3 s: 7-8 429s instead of 3, and the refunds cut to nothing for
        the rest of the run). But where a learnt count stopped the refunds at once (OpenAI's):
        the pace is right already, and what they overfilled is a second of it (a fixed window
        of a second, replies of 2.1 s +- 50%: a hole of 1-2 s on one seed in three)."""
        probe = self.probe
        if probe is None or not probe.probe or not self.refusal_turnarounds or \
                self.storm_began is None or \
                not (self.storm_teaches or self._refunds_stopped_lately(now)) or \
                probe.sent_at - self.storm_began >= Learner.LONG_STORM_S:
            return math.inf
        presumed = probe.sent_at + max(PRESUMED_LEAST_S,
                                       PRESUMED_AFTER * max(self.refusal_turnarounds))
        if now < presumed:
            return presumed - now
        probe.probe = False  # a probe no more: the next storm's probes are not held by it
        self.probes_in_flight -= 1
        self._let_through(probe, now)
        return 0.0

    def withdrawn(self, ticket: Ticket, now: float, hint: RateLimitHint = RateLimitHint()) -> None:
        """A request whose answer says nothing of the run's (the client's limits read, refused
        or unanswered): as if it had not gone, but for the limits its headers state. The first
        of the run's requests then goes alone, as before it."""
        self.in_flight -= 1
        self.probes_in_flight -= ticket.probe
        ticket.record[1] = True
        self.observe(hint, None, now)

    def failed(self, ticket: Ticket, now: float, hint: RateLimitHint = RateLimitHint()) -> None:
        """No answer (timeout, dropped connection): whether the server counted it is unknown."""
        self._ended(ticket, now, hint)

    def rate_limited(self, ticket: Ticket, now: float,
                     hint: RateLimitHint = RateLimitHint()) -> float | None:
        """A 429. Returns how long everybody pauses (None: only this request waits)."""
        self._ended(ticket, now, hint)
        ticket.record[1] = False
        if hint.limited == "concurrency":
            self._too_many_in_flight(ticket, now)
            return None
        self.refusal_turnarounds.append(now - ticket.sent_at)
        self.tokens_refused = self.tokens_refused or hint.limited in KINDS[1:]
        self.last_limited = hint.limited
        self.refused_in_a_row += 1
        self.refused_since = min(self.refused_since, ticket.sent_at)
        probe_refused = self.storm_began is not None and ticket.sent_at >= self.storm_began
        explained = False
        if self._trial_judged(ticket, hint, now):
            explained = True  # the count tried was too cheap (ours again), or was right
        elif self._learn_charge(ticket, hint, now) and self._paces_tokens:
            explained = True  # we counted the request's tokens the wrong way; now its way
        elif self._span_full(hint, now):
            explained = True  # our own sends filled the window: the guard holds them from now
        elif self._tokens_explain(hint, now):
            # our token count, refunds included, said there was room: the server keeps some or
            # all of what requests reserved. All, when most requests fail at once (OpenAI and
            # Azure count max_tokens whole, and document no refund); some, when a refund that
            # comes after the charged window closed is lost (a fixed window of a second keeps
            # the reservations of the requests still running as it closes). Refund less; this
            # teaches no request rate, even in a storm: the refunds were wrong, not the pace.
            explained = True
            most_fail = self._refused_share(now) >= REFUND_MISTAKE_SHARE
            # cut once per run of 429s: a window that is full refuses every request until it
            # closes, and that is one mistake of ours, not several
            if most_fail or self.refused_in_a_row == 1:
                self.refund_share = 0.0 if most_fail else max(0.0, self.refund_share - REFUND_CUT)
                self.refund_cuts.append(now)
                self.replies_since_refund_change = 0
            if hint.retry_after is not None:
                # what the server kept fills its window until the time it names (a fixed window:
                # its reset); each request our pace would send meanwhile earns a 429 of its own
                self.pause(now + hint.retry_after)
            if most_fail and now - self.last_refund <= MINUTE:
                # what the refunds let through may fill a long window for a while yet: the
                # storms that follow are explained, and teach no request rate
                self.explained_until = now + MINUTE
        elif self._short_windows(ticket, hint, now):
            explained = True  # the pace was right on average, but not in whole requests
        if self.storm_began is None and self.refused_in_a_row >= 3:
            # storms teach even where the server states limits: if we pace by what it states
            # and still get nothing through, we have misread it (a per-second figure taken
            # for a per-minute one, a shared quota)
            teach = self.learn and now >= self.explained_until and not explained
            self.storm_began = self.learner.storm_began(now) if teach else now
            self.storm_teaches = teach
            self.storm_pause = 0.0
            probe_refused = True
            if self.short_windows and self.short_windows_since >= self.refused_since:
                # the 429 taken for a short window's was the first of a storm: a long window
                # (a minute) is full, and whole requests per second would cost up to one each
                self.short_windows = None
                for kind in KINDS[1:]:
                    self._repace(kind, now)
        elif not explained and self.storm_began is None and self.learn and \
                (now >= self.explained_until or self.refused_in_a_row == 1) and \
                self._learns_from(now):
            # (while what the refunds let through may still fill a long window, a second 429 in
            # a row, and a storm, teach nothing; one with a success before it is the pace's: a
            # counter of a second that keeps what was reserved refused one every 1.2 s for that
            # minute, none of them taught)
            # a server that states its limits has counted differently from us by a little on a
            # first 429 (its next reply's count corrects ours); 429s that keep coming, or a
            # server that states nothing, mean a limit to learn (one enforced per second on
            # tokens, say, that the per-minute figures hide)
            self.learner.edge(ticket, now)
        self._follow_learner(now)
        if not probe_refused:
            return None  # (a 429 to a request sent before the storm began says nothing new)
        # a storm: one request probes, everybody else waits as long as the server says or,
        # if it says nothing, for a backoff that doubles while the storm lasts
        # (up to 2 s at first, up to 4 s in a storm that has lasted long: a long window, whose
        # reopening costs half a pause on average; 8 s cost 5-6 s under half a sliding minute)
        longest = min(STORM_PAUSE_LONG_S, max(STORM_PAUSE_MAX_S, (now - self.storm_began) / 5))
        self.storm_pause = min(longest, max(STORM_PAUSE_MIN_S, self.storm_pause * 2))
        wait = hint.retry_after if hint.retry_after is not None else self.storm_pause
        if hint.retry_after is None and self.first_sent is not None:
            # a minute's window that the first requests spent (a sliding minute, a bucket of a
            # minute that starts full) reopens a minute after they went: probe just then, not
            # up to a pause later
            minutes = math.ceil((now - self.first_sent - MINUTE_MARK_S) / MINUTE)
            to_mark = self.first_sent + MINUTE * minutes + MINUTE_MARK_S - now
            if 0 < to_mark < wait:
                wait = self.storm_pause = to_mark
        offset = self.learner.unix_offset
        if hint.retry_after is None and offset is not None:
            # ... and a window of the clock's minute (OpenRouter's, Cerebras's) at its start
            to_mark = next_boundary(now - MINUTE_MARK_S, MINUTE, -offset) + MINUTE_MARK_S - now
            if 0 < to_mark < wait:
                wait = to_mark  # (the backoff goes on doubling: other windows reopen later)
        self.pause(now + wait)
        return wait

    def nothing_through_for(self, now: float) -> float:
        """Seconds since the first request of a run of 429s went, with none sent since let
        through (0: the last one was)."""
        return 0.0 if math.isinf(self.refused_since) else max(0.0, now - self.refused_since)

    def _too_many_in_flight(self, ticket: Ticket, now: float) -> None:
        """A 429 that names a limit on requests in flight (W&B Inference's "Concurrency limit
        reached for requests"): the server held at least its limit when `ticket` came. Every
        request it held was one of ours in flight (we count them from sending to the reply), so
        the limit is at most the most we had in flight, besides `ticket`, from its sending to
        its 429: the requests ahead of it, or more sent after it (which may arrive first: a
        cap of what was ahead held 15 of a limit of 16). Hold to that: never under the
        server's limit, and each later 429 of this kind tightens it. It says nothing of a rate:
        the pace, the learner and the storm logic are left alone (a rate learnt from it would
        be what the limit and the latency allow, and move with the latency: 73-76% of a limit
        of 16 with replies of 0.5 s +- 50%, tests/test_ratelimit.py)."""
        most = max([ticket.ahead] + [count - 1 for sent, count in self.in_flight_log
                                     if sent > ticket.sent.requests])
        self.in_flight_cap = max(1, min(self.in_flight_cap, most))
        self.in_flight_refused_at = now

    def _probe_in_flight_cap(self, now: float) -> None:
        """A minute with no 429 that names it while the cap was reached: try one more in flight
        (a limit shared with other clients grows back when they leave; at most one 429 a
        minute where it does not)."""
        if self.in_flight + 1 >= self.in_flight_cap < self.max_in_flight and \
                now - self.in_flight_refused_at >= IN_FLIGHT_PROBE_S:
            self.in_flight_cap += 1
            self.in_flight_refused_at = now

    def _span_full(self, hint: RateLimitHint, now: float) -> bool:
        """A 429 when our own sends of a known limit's window held all of it (SPAN_FULL): the
        server counts that window as a whole, as a sliding window does, and each span of it is
        held to the limit from now (SpanGuard.armed). Not before: a bucket, fixed windows and a
        minute counted from its start let a catch-up after a slow start go (with replies of 2 s
        +- 50% and the limit given, guarding every minute from the start cost a bucket, GCRA and
        fixed 10 s 1-2% of the limit). But where the 429 says the window takes more sooner
        than our sends would leave it, the server's window began before them: everybody waits
        till then, and no guard is armed. True if it armed a guard or paused."""
        armed = reopens = False
        for kind, guards in self.guards.items():
            if hint.limited is not None and hint.limited != kind:
                continue
            stated = self.stated.get(kind)
            if stated is not None and stated.counted:
                # the server reports the window's own count and when it is whole again: its
                # budget guards the window (OpenRouter's minute, full 8 s before its end: held
                # a minute from our first sends, it idled 42 s past the end)
                continue
            for guard in guards:
                if guard.armed or guard.used_by(now) < SPAN_FULL * guard.cap:
                    continue
                if hint.retry_after is not None and \
                        hint.retry_after + SPAN_TRUST_S < guard.wait_time(1.0, now):
                    # the server says it takes more sooner than a window over our own sends
                    # would: a window that began before them (Gemini's minute, the clock's:
                    # begun 7 s before our first request, spent 11 s in, held 9 s past its end,
                    # by this guard and by the pace's schedule kept from our first request)
                    reopens = True
                    pacer = self.pacers.get(kind)
                    if pacer is not None:
                        pacer.tat = min(pacer.tat, now + hint.retry_after)
                else:
                    guard.armed = armed = True
        if reopens and not armed:
            self.pause(now + hint.retry_after)
        return armed or reopens

    @staticmethod
    def _charge_named(ticket: Ticket, hint: RateLimitHint) -> str | None:
        """The count (a key of CHARGES) a token 429's "Requested N" names for `ticket`, if any."""
        if hint.requested is None or hint.limited not in (None, "tokens"):
            return None
        counts = {rule: count(ticket.prompt, ticket.completion) for rule, count in CHARGES.items()}
        # the prompt alone: output counted as generated (Anthropic today); our refunds already
        # bring the reservation down to what was used, so that is no reason to change
        counts["prompt"] = ticket.prompt
        rule = min(counts, key=lambda r: abs(counts[r] - hint.requested))  # type: ignore[operator]
        if rule not in CHARGES or abs(counts[rule] - hint.requested) > CHARGE_MATCH * counts[rule]:
            return None
        return rule

    def _learn_charge(self, ticket: Ticket, hint: RateLimitHint, now: float) -> bool:
        """A token 429 that says what the request cost ("Requested N") shows how the server
        counts: prompt + max_tokens, or the larger of the two. True if that is news."""
        rule = self._charge_named(ticket, hint)
        if rule is None or rule == self.charge or CHARGES[rule](ticket.prompt, ticket.completion) \
                == CHARGES[self.charge](ticket.prompt, ticket.completion):
            return False
        self.charge = rule
        if rule == "max" and self.refund_share > 0:
            # OpenAI's rule, and OpenAI gives nothing back: what a request is counted at
            # admission stays counted (no refund is documented). Refunding till 429s cut the
            # share cost 3-5 429s and a storm whose probe waited for its ~2-s reply (a hole of
            # ~2 s a few seconds into a run). The audit still undoes this if the server's counts
            # show refunds after all.
            self._stop_refunds_for_count(now)
        return True

    def _stop_refunds_for_count(self, now: float) -> None:
        """OpenAI's count, learnt or on trial, keeps what a request is counted at admission:
        no refunds from now, and what they let in before may fill a window yet
        (_refunds_stopped_lately)."""
        self.refund_share, self.refunds_kept = 0.0, True
        self.replies_since_refund_change, self.refunds_stopped_at = 0, now

    def _check_charge(self, reading: Reading, rate: float, now: float) -> None:
        """Try OpenAI's count where ours may be dearer and nothing would say so; end the trial
        where the server's counts refute it.

        OpenAI counts a request as max(prompt, max_tokens) and keeps it; we count prompt +
        max_tokens and give back what the reply left unused. After max_tokens is fitted (~225
        for replies of ~162 and a prompt of ~103) OpenAI's count is the cheaper one: where its
        limit is enforced per second, the first requests' 429s say "Requested N" and teach it
        (_learn_charge); on a bucket of a minute no 429 ever comes (we send less than it
        allows), and the bucket's counts, refilling faster than we take, stay full: 83% of the
        limit held, and nothing said why. So where a bucket that states its rate is seen held
        near full for TRIAL_READINGS replies in a row, and OpenAI's count of the last replies'
        requests is TRIAL_GAIN below ours, we count OpenAI's way (refunds off) on trial. A server
        that counts as we did then takes ~12% more than we count, and its bucket leaves full:
        once it lacks TRIAL_DRIFT_S of refill more than it did before the trial (~3 s in), or the
        refund audit's span shows it took more, back to ours (_end_trial); or a 429 refutes it
        (_trial_judged). Once per endpoint. A server that reports a bucket's per-minute figures
        while it enforces shorter windows (OpenAI: "can be quantized") has those 3 s of 12% in
        its window: a sliding minute's 2% margin holds it, a fixed window of 10 s may refuse a
        request or two (fake clock, seeds 1-3: 0-2 429s more), and one of a second refuses at
        once, which ends the trial. Not where the counts are a window's own (its reset is not
        the refill's time), nor where the bucket cannot tell (below)."""
        limit, remaining, reset = reading.limit, reading.remaining, reading.reset
        deficit = None  # what the bucket lacks of full, if the reading is a bucket's
        if reading.refills and limit and remaining is not None and reset is not None and rate > 0 \
                and abs(reset - (limit - remaining) / rate) <= TRIAL_RESET_SLACK_S:
            deficit = limit - remaining
        if self.charge_trial is not None:
            span = self.refund_audit.last_span
            if not self.refunds_kept or (deficit is not None and deficit > self.trial_deficit +
                                         TRIAL_DRIFT_S * rate) or \
                    (span is not None and span[0] >= self.charge_trial and
                     span[2] > (1 + TRIAL_OVER) * span[1]):
                # the bucket leaves full (or a span shows the server took more than we counted,
                # or the audit saw refunds): the server counts more than OpenAI's way
                self._end_trial(now)
            return
        if deficit is not None and deficit <= TRIAL_FULL_S * rate:
            self.full_deficits.append(deficit)
        else:
            self.full_deficits.clear()
        if self.charge_tried or self.charge != "sum" or self.refunds_kept or \
                self.refund_share < 1.0 or len(self.full_deficits) < TRIAL_READINGS or \
                len(self.charge_evidence) < TRIAL_EVIDENCE:
            return
        given = self.given["tokens"]
        if (given and given / MINUTE < rate) or "input" in self.pacers or "output" in self.pacers:
            # a bucket we are held under by a lower limit of the user's is full whatever the
            # server counts; and refunds stopped for a trial would stop those of input and
            # output limits too (Anthropic's), which OpenAI's count has nothing to do with
            return
        openai_s = sum(c for c, _ in self.charge_evidence)
        ours = sum(u for _, u in self.charge_evidence)
        if openai_s > (1 - TRIAL_GAIN) * ours:
            return
        self.charge_tried, self.charge_trial, self.charge = True, now, "max"
        self.trial_deficit = max(self.full_deficits)
        self._stop_refunds_for_count(now)  # as where a 429 teaches that count
        self.refund_audit.anchor = None  # its spans from now are counted OpenAI's way

    def _end_trial(self, now: float) -> None:
        """The server counts more than OpenAI's way: back to ours, refunds and all. What the
        trial overdrew is in the server's count, which the budget of its next reply holds."""
        self.charge_trial, self.charge = None, "sum"
        self.refund_share, self.refunds_kept = 1.0, False
        self.replies_since_refund_change = 0
        self.explained_until = max(self.explained_until, now + REFUND_RECENT_S)
        self.refund_audit.anchor = None

    def _trial_judged(self, ticket: Ticket, hint: RateLimitHint, now: float) -> bool:
        """A token 429 while OpenAI's count is on trial: if it says "Requested N" with N
        OpenAI's count, that count is right and stays (the trial is over; the 429 is what the
        refunds let in before it, as where a 429 teaches the count); otherwise the trial
        overfilled the server's limit, and ends. True either way: the 429 is explained."""
        if self.charge_trial is None or hint.limited not in (None, "tokens"):
            return False
        if self._charge_named(ticket, hint) == "max":
            self.charge_trial = None  # confirmed
        else:
            self._end_trial(now)
        return True

    def _short_windows(self, ticket: Ticket, hint: RateLimitHint, now: float) -> bool:
        """A token 429 that neither the count nor refunds explain, while we pace tokens at MARGIN
        of a known limit, to a request that with those of the second before it went over a
        second's share: the server counts in fixed windows of a second (OpenAI "may be
        enforced as 1,000 requests/second"). From then on the token pacers book whole requests
        per window (Pacer.take); once only: 429s that keep coming teach a rate as before."""
        kinds = [k for k in KINDS[1:] if k in self.pacers and hint.limited in (None, k)]
        if self.short_windows is not False or not kinds or self.refused_in_a_row > 1:
            return False  # (an overflow is one 429; a run of them, a long window that is full)
        before = [t for t in self.recent if t.sent_at <= ticket.sent_at - SHORT_WINDOW_S]
        for kind in kinds:
            last_second = ticket.sent.units(kind) - (before[-1].sent.units(kind) if before else 0)
            if last_second > self.pacers[kind].rate / MARGIN * SHORT_WINDOW_S:
                break
        else:
            return False
        self.short_windows, self.short_windows_since = True, ticket.sent_at
        for kind in kinds:
            self._repace(kind, now)
        return True

    def _learns_from(self, now: float) -> bool:
        self.refusals.append(now)
        while self.refusals and self.refusals[0] < now - MINUTE:
            self.refusals.popleft()
        return not self.stated or len(self.refusals) >= 2

    def _ended(self, ticket: Ticket, now: float, hint: RateLimitHint) -> None:
        self.in_flight -= 1
        self.probes_in_flight -= ticket.probe
        self.replies += 1
        self.observe(hint, ticket, now)
        if self.replies == 1 and not self.known and self.learn:
            self.learner.start_ramp(now, round_trip=now - ticket.sent_at)
            self._follow_learner(now)

    def _refund(self, ticket: Ticket, prompt_used: int, completion_used: int, now: float) -> None:
        unused = {"tokens": ticket.tokens - prompt_used - completion_used,
                  "input": ticket.prompt - prompt_used,
                  "output": ticket.completion - completion_used}
        for kind, amount in unused.items():
            if amount > 0 and kind in self.pacers:
                given = amount * self.refund_share
                self.pacers[kind].give_back(given, now)
                self.last_refund = now
                ticket.given_back[kind] = ticket.given_back.get(kind, 0.0) + given
                for guard in self.guards.get(kind, ()):
                    guard.give_back(ticket, given, now)

    def _refused_share(self, now: float) -> float:
        """The share of the last requests answered 429. Refunds a server does not give make
        most requests fail at once (we send twice what it allows and more); a server that
        refunds but counts per short window refuses one now and then: that is a rate to learn,
        and stopping the refunds would leave most of its limit unused."""
        recent = list(self.learner.log)[-REFUND_EVIDENCE:]
        return sum(1 for _, outcome in recent if outcome is False) / max(1, len(recent))

    @property
    def _paces_tokens(self) -> bool:
        return any(k in self.pacers for k in KINDS[1:])

    def _tokens_explain(self, hint: RateLimitHint, now: float) -> bool:
        """A 429 while we pace tokens with refunds, that says a token limit was reached (or
        says nothing and we pace no requests): the refunds are the likely error. Not if none
        was given back of late (replies that use all they reserved, or a server that counts
        the larger of prompt and max_tokens): then the pace is. Before the first reply, the
        refunds to come are. Nor once the share is cut to 0, unless a learnt count stopped them
        of late (OpenAI's): the window they overfilled refuses a while yet."""
        if (self.refund_share <= 0 and not self._refunds_stopped_lately(now)) or \
                not self._paces_tokens or \
                (self.replies > 1 and now - self.last_refund > REFUND_RECENT_S):
            return False
        if hint.limited is not None:
            return hint.limited in ("tokens", "input", "output")
        return "requests" not in self.pacers

    def _refunds_stopped_lately(self, now: float) -> bool:
        """A learnt count (OpenAI's) stopped the refunds at once, REFUND_RECENT_S ago at most:
        what they let through may still fill the server's window."""
        return now - self.refunds_stopped_at <= REFUND_RECENT_S

    @property
    def learned_charge(self) -> float | None:
        """What the requests the learnt rate was measured on cost, counted as the server counts."""
        return None if self.learned_size is None else CHARGES[self.charge](*self.learned_size)

    def _rescale_learnt(self, ticket: Ticket, now: float) -> None:
        """A rate learnt from a token limit is a rate of requests of the size sent then: the
        first requests ask for --max_tokens (1,024) and teach ~5 a second on a limit of 5,000
        tokens a second; once max_tokens is fitted to the replies (228) ~22 fit. Both sizes are
        counted the same way: the 429 that taught the rate may also have taught how the server
        counts (prompt + max_tokens 443 read as max(prompt, max_tokens) 340 is no smaller
        request, yet it raised the rate by 30%, into storms that cut it to a quarter)."""
        learned = self.learned_charge
        if learned is None or self.learner.rate is None:
            return
        factor = learned / max(1, ticket.tokens)
        if 1 / RESCALE_AT <= factor <= RESCALE_AT:
            return
        self.learner.rescale(factor, now)
        self.learned_size = (ticket.prompt, ticket.completion)
        self._follow_learner(now)

    def _follow_learner(self, now: float) -> None:
        if self.learner.epoch != self.learned_epoch:  # a rate learnt anew: of what size?
            self.learned_epoch = self.learner.epoch
            # (not a request of another size: the limits read's one token, at the start, left
            # a rate learnt on 1,024-token requests unscaled when they shrank to ~228: 20% of an
            # OpenAI-like token limit for 30 s, slow replies, nothing known)
            recent = [t for t in self.recent if t.sent_at < now and t.sized]
            sizes = [CHARGES[self.charge](t.prompt, t.completion) for t in recent]
            # (requests of mixed sizes, as the fit sets in, say nothing of one size: the rate
            # is learnt again on the next 429)
            self.learned_size = (sum(t.prompt for t in recent) / len(recent),
                                 sum(t.completion for t in recent) / len(recent)) \
                if recent and self.last_limited in KINDS[1:] and \
                max(sizes) <= RESCALE_AT * min(sizes) else None
        rate = self.learner.rate
        if rate is None:
            self.learned_pacer = None
            return
        if self.learned_pacer is None:
            self.learned_pacer = Pacer(rate, now)
        elif self.learned_pacer.rate != rate:
            self.learned_pacer.set_rate(rate, now)

    # --- the server's stated limits and counts ------------------------------------------------

    def observe(self, hint: RateLimitHint, ticket: Ticket | None, now: float) -> None:
        """Adopt the limits a reply states; let its remaining counts lower what may be sent.

        A reply's remaining count is the server's as of when it wrote the reply: what we sent
        after the replying request may not be in it, so that is taken off (an error on the safe
        side, corrected by the next reply, since each reply sets the budget anew); but not what
        went more than REPLY_WRITTEN_S before the reply came, which the server had admitted and
        counted by the time it wrote it. (With replies of 2.1 s, that was 2.1 s of sending
        taken off every count, ~13,000 tokens: a sliding minute near full, 2% of it left, read
        as overfull, and the pace fell to 60-80% for 10-15 s after each minute.)"""
        readings = {"requests": hint.requests, "tokens": hint.tokens,
                    "input": hint.input_tokens, "output": hint.output_tokens}
        for kind, reading in readings.items():
            if reading.empty:
                continue
            window = _window_of(reading, MINUTE)
            if reading.limit and window <= LONG_PERIOD_S:
                old = self.stated.get(kind)
                new = Stated(reading.limit, window, not reading.refills)
                if old != new:
                    self.stated[kind] = new
                    self._repace(kind, now)
                    if self.learner.ramping:
                        # the limit is stated: it paces, not a ramp begun blind (a first reply
                        # of 8 s: the ramp's 1 a second held a limit of 5 for 5 s more)
                        self.learner.stop_ramp()
                        self._follow_learner(now)
            elif reading.limit and kind in self.stated:
                # read as a minute's while little of it was used (Groq's requests per day: one
                # request of 14,400 comes back in 6 s), a longer period's now: a budget, not a pace
                del self.stated[kind]
                self._repace(kind, now)
            if reading.remaining is None:
                continue
            # (a window that resets at once counted everything it admitted when it wrote the
            # reply: taking off what we sent since would halve a per-second window)
            later = 0 if ticket is None or not reading.refills else \
                self.sent.units(kind) - self._sent_before_reply(ticket, now).units(kind)
            stated = self.stated.get(kind)
            reset = reading.reset if reading.reset is not None else self._reset_in(
                kind, reading, window, now)
            # a bucket refilling as it goes (OpenAI, Anthropic), or a window reset at once
            refill = stated.per_second if stated is not None and reading.refills else 0.0
            self.budgets[kind] = Budget(reading.remaining - later, refill, now, now + reset)
            if kind == "tokens" and stated is not None:
                self._audit_refunds(self.refund_audit.observe(
                    reading, stated.per_second, self.sent.tokens, self.unused_tokens, now), now)
                self._check_charge(reading, stated.per_second, now)

    def _sent_before_reply(self, ticket: Ticket, now: float) -> Sent:
        """The running totals of what went out up to the replying request, or up to
        REPLY_WRITTEN_S before its reply came if that is later: what its count holds."""
        cut, base = now - REPLY_WRITTEN_S, ticket
        for t in reversed(self.recent):
            if t.sent_at <= cut:
                if t.sent.requests > base.sent.requests:
                    base = t
                break
        return base.sent

    def _audit_refunds(self, given_back: float | None, now: float) -> None:
        """The server's counts say it gives back less than half of what the replies left unused:
        it keeps what requests reserve (Azure, OpenAI), so refund nothing; and if they say it
        refunds after all, undo that (only that: the cuts of 429s that refunds explain are for
        windows that lose late refunds, which a bucket's counts cannot show)."""
        if given_back is None:
            return
        if given_back < REFUND_AUDIT_KEPT:
            if not self.refunds_kept and self.refund_share > 0:
                # what the refunds let through till now may fill a long window yet (Azure's
                # count of a minute, overfilled in the first seconds, refuses ~60 s in): those
                # 429s are explained, and teach no request rate (one taught 5-8 a second of 15)
                self.explained_until = max(self.explained_until, now + MINUTE)
            self.refund_share, self.refunds_kept = 0.0, True
            self.replies_since_refund_change = 0
        elif self.refunds_kept:
            self.refund_share, self.refunds_kept = 1.0, False

    def _reset_in(self, kind: str, reading: Reading, window: float, now: float) -> float:
        """Seconds until a stated limit that says no reset time is whole again: for a window
        reset at once, as its remaining counts show (WindowClock); else a second."""
        limit = reading.limit or (self.stated[kind].limit if kind in self.stated else None)
        if reading.refills or not limit or reading.remaining is None:
            return 1.0
        clock = self.window_clocks.setdefault(kind, WindowClock(window))
        clock.observe(reading.remaining, limit, now)
        reset = clock.next_reset(now)
        return 1.0 if reset is None else reset - now

    def _repace(self, kind: str, now: float) -> None:
        rates = []
        if self.given[kind]:
            rates.append(self.given[kind] / MINUTE)
        if kind in self.stated:
            rates.append(self.stated[kind].per_second)
        self._guard(kind, now)
        if not rates:
            self.pacers.pop(kind, None)
            return
        stated = self.stated.get(kind)
        # a window of a second whose own count the replies report (Together) needs no margin:
        # its budget holds the request that would not fit its end (see _window_reopened), and
        # no shorter window is enforced; a longer one reported (the IETF draft's w=60) may be
        # enforced over shorter periods, and keeps it
        margin = WINDOW_MARGIN if stated is not None and stated.counted and \
            stated.window <= SHORT_WINDOW_S and stated.per_second <= min(rates) else MARGIN
        rate = margin * min(rates)
        if kind in self.pacers:
            self.pacers[kind].set_rate(rate, now)
        else:
            self.pacers[kind] = Pacer(rate, now)
            if self.first_sent is not None and now - self.first_sent < MINUTE and not (
                    stated is not None and stated.counted):
                # what went out before the limit was known counts against it too: the schedule
                # goes on as if it had been paced from the first request (replies of 8 s: five
                # sent in the 8 s before the first reply stated 30 a minute, then 0.49 a second,
                # overfilled a sliding minute at its end, and the 429s cut the pace to 55%);
                # not where the server reports its window's own count and when it is whole again:
                # its budget holds what was sent (OpenRouter's minute, stated on the 429 that 2,400
                # requests of the ramp earned 20 s in: the pace held them till 122 s in, where the
                # window reopened at 71 s)
                self.pacers[kind].tat = max(now, self.first_sent + self.sent.units(kind) / rate)
        self.pacers[kind].window_share = min(rates) * SHORT_WINDOW_S if \
            self.short_windows and kind != "requests" else None

    def spans_held(self) -> list[dict[str, float | str]]:
        """The known limits whose every window-long span our requests are held to (armed
        SpanGuards: the server counted one as a whole, as a sliding window does)."""
        return [{"kind": kind, "window_s": round(guard.window - SPAN_SLACK_S, 3),
                 "limit": guard.cap}
                for kind, guards in self.guards.items() for guard in guards if guard.armed]

    def _guard(self, kind: str, now: float) -> None:
        """A SpanGuard for each known limit of `kind` over a span longer than a second (the
        user's, per minute; a server's, per its window): a second's window is the pacer's and
        its budget's to keep, whole requests at a time."""
        spans: dict[float, float] = {}
        if self.given[kind]:
            spans[MINUTE] = self.given[kind]
        stated = self.stated.get(kind)
        if stated is not None and SHORT_WINDOW_S < stated.window <= MINUTE:
            spans[stated.window] = min(stated.limit, spans.get(stated.window, math.inf))
        old = {(g.window, g.cap): g for g in self.guards.get(kind, ())}
        new = {(window + SPAN_SLACK_S, limit) for window, limit in spans.items()}
        if new == set(old):
            return
        armed = {g.window for g in old.values() if g.armed}  # the server's way of counting
        guards = [SpanGuard(kind, cap, window, self.last_minute, now)
                  for window, cap in sorted(new)]
        for guard in guards:
            guard.armed = guard.window in armed
        if guards:
            self.guards[kind] = guards
        else:
            self.guards.pop(kind, None)

    def fits(self, tokens: int) -> bool:
        """False when one request needs more tokens than a whole minute allows."""
        for kind in ("tokens",):
            limit = [self.given[kind] or math.inf]
            if kind in self.stated:
                limit.append(self.stated[kind].limit)
            if tokens > min(limit):
                return False
        return True


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
