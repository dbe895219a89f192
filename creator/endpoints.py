"""Endpoints: where requests go. Each has its own limits (given, stated by its server, learnt),
its own key and model name, and a circuit breaker; a request goes to the endpoint that has room
soonest, so two servers with different limits are both used to the full.

An endpoints file (JSON or YAML) lists them; a key is named by the environment variable that
holds it, never written in the file, and never reaches a summary, a log line or a message:

    endpoints:
      - base_url: http://10.0.0.5:8000/v1
        model: llama-3-8b
        rpm: 600
      - base_url: https://api.openai.com/v1
        api_key_env: OPENAI_API_KEY
        model: gpt-4o-mini
        rpm: 5000
        tpm: 2000000
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import InputError
from .ratehints import RateLimitHint
from .ratelimit import LONG_WAIT_S, Clock, Limits, Ticket
from .summary import duration_text


class EndpointsError(InputError):
    """A bad endpoints file or endpoint setting: the message names the file and the entry."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str | None = field(default=None, repr=False)  # never printed or written
    model: str | None = None  # None: the run's --model
    rpm: float | None = None
    tpm: float | None = None
    itpm: float | None = None  # input and output tokens apart (Anthropic, Groq count them so)
    otpm: float | None = None
    max_in_flight: int | None = None  # None: the run's --concurrency
    api_key_env: str | None = None  # where the key came from: may be named, unlike the key

    def describe(self) -> dict[str, Any]:
        """For the summary: everything but the key."""
        return {"base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env,
                "rpm": self.rpm, "tpm": self.tpm, "itpm": self.itpm, "otpm": self.otpm,
                "max_concurrency": self.max_in_flight}


_FIELDS = {"base_url", "model", "api_key_env", "rpm", "tpm", "itpm", "otpm", "max_concurrency"}


def _positive(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value):
        raise EndpointsError(f"{what} must be a number greater than 0, got {value!r}")
    return float(value)


def parse_endpoints(data: Any, source: str, environ: Mapping[str, str]) -> list[Endpoint]:
    """The endpoints of a file's content (a list, or {"endpoints": [...]})."""
    items = data.get("endpoints") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise EndpointsError(f"{source}: expected a list of endpoints (or 'endpoints: [...]'), "
                             "each with at least a base_url")
    endpoints = []
    for number, item in enumerate(items, 1):
        where = f"{source}: endpoint {number}"
        if isinstance(item, str):
            item = {"base_url": item}
        if not isinstance(item, dict):
            raise EndpointsError(f"{where}: expected a mapping with a base_url, got {item!r}")
        if "api_key" in item:
            raise EndpointsError(f"{where}: write no key in the file; name the environment "
                                 "variable that holds it with api_key_env")
        unknown = sorted(set(item) - _FIELDS)
        if unknown:
            raise EndpointsError(f"{where}: unknown field(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(sorted(_FIELDS))})")
        url = item.get("base_url")
        if not isinstance(url, str) or not url.strip():
            raise EndpointsError(f"{where}: base_url is required")
        key_env = item.get("api_key_env")
        key = None
        if key_env is not None:
            if not isinstance(key_env, str) or not key_env:
                raise EndpointsError(f"{where}: api_key_env must name an environment variable")
            key = environ.get(key_env, "").strip()
            if not key:
                raise EndpointsError(f"{where}: the environment variable {key_env} "
                                     "(api_key_env) is not set")
        model = item.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            raise EndpointsError(f"{where}: model must be a name")
        concurrency = _positive(item.get("max_concurrency"), f"{where}: max_concurrency")
        endpoints.append(Endpoint(
            base_url=url.strip().rstrip("/"), api_key=key, model=model,
            rpm=_positive(item.get("rpm"), f"{where}: rpm"),
            tpm=_positive(item.get("tpm"), f"{where}: tpm"),
            itpm=_positive(item.get("itpm"), f"{where}: itpm"),
            otpm=_positive(item.get("otpm"), f"{where}: otpm"),
            max_in_flight=int(concurrency) if concurrency else None, api_key_env=key_env))
    return endpoints


def load_endpoints(path: Path, environ: Mapping[str, str] | None = None) -> list[Endpoint]:
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EndpointsError(f"endpoints file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EndpointsError(f"cannot read the endpoints file {path}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() == ".json":
        import json

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise EndpointsError(f"{path} is not valid JSON: {exc}") from None
    else:
        import yaml  # YAML is a superset of JSON: any other suffix is read as YAML

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise EndpointsError(f"{path} is not valid YAML or JSON: "
                                 f"{str(exc).splitlines()[0]}") from None
    return parse_endpoints(data, str(path), environ)


class Breaker:
    """A circuit breaker: an endpoint that keeps failing (5xx, timeouts, dropped connections,
    not 429s) is set aside for a cooldown that doubles while it keeps failing, then one request
    probes it; the run goes on on the others."""

    FAILURES = 10  # in a row: 20% of random 5xx give ten in a row once in ten million
    COOLDOWN_S = 5.0
    MAX_COOLDOWN_S = 60.0

    def __init__(self) -> None:
        self.failures = 0
        self.open_until = 0.0
        self.cooldown = self.COOLDOWN_S
        self.trips = 0
        self.probing = False

    def wait_time(self, now: float, in_flight: int) -> float:
        """0 if a request may go; else how long until one may probe (inf: wait for a reply)."""
        if now < self.open_until:
            return self.open_until - now
        if self.probing and in_flight:
            return math.inf
        return 0.0

    def succeeded(self) -> None:
        self.failures, self.cooldown, self.probing = 0, self.COOLDOWN_S, False

    def failed(self, now: float) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.FAILURES:
            self.open_until = now + self.cooldown
            self.cooldown = min(self.MAX_COOLDOWN_S, self.cooldown * 2)
            self.trips += 1
            self.probing = True  # after the cooldown, one request at a time until one works


@dataclass
class RouteStats:
    requests: int = 0
    completions: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    limit_reads: int = 0  # of the requests, client.LIMITS_READ's


class Route:
    """One endpoint as the run sees it: its limits, breaker and counts."""

    def __init__(self, endpoint: Endpoint, max_in_flight: int | None, now: float,
                 learn: bool = True, unix_offset: float | None = None) -> None:
        self.endpoint = endpoint
        self.limits = Limits(endpoint.max_in_flight or max_in_flight, endpoint.rpm, endpoint.tpm,
                             now, itpm=endpoint.itpm, otpm=endpoint.otpm, learn=learn,
                             unix_offset=unix_offset)
        self.breaker = Breaker()
        self.stats = RouteStats()
        self.set_aside: str | None = None  # why it was dropped for good (a refused key, ...)
        self.spent = False  # ... or for hours: its limits allow nothing until a time it says

    def wait_time(self, tokens: int, prompt: int, now: float, alone: bool = False) -> float:
        """`alone`: the only endpoint left, where setting it aside would only idle the run
        (each request's own backoff spaces the retries)."""
        if self.set_aside is not None:
            return math.inf
        breaker = 0.0 if alone else self.breaker.wait_time(now, self.limits.in_flight)
        return max(breaker, self.limits.wait_time(tokens, now, prompt))

    def summary(self) -> dict[str, Any]:
        limits = self.limits
        return {
            **self.endpoint.describe(), **vars(self.stats),
            "stated_limits": {kind: {"limit": s.limit, "window_s": s.window}
                              for kind, s in limits.stated.items()},
            "learned_rpm": round(limits.learner.rate * 60, 1) if limits.learner.rate else None,
            # requests in flight at once, where 429s named a concurrency limit (ratelimit.py)
            "learned_max_in_flight": None if math.isinf(limits.in_flight_cap)
            else int(limits.in_flight_cap),
            # of a reply's unused max_tokens, the share taken as given back (ratelimit.py)
            "refund_share": round(limits.refund_share, 2),
            # the server's remaining token counts showed it keeps what requests reserve
            # (ratelimit.py RefundAudit)
            "refunds_kept": limits.refunds_kept,
            # how the server counts a request's tokens, as its 429s said: prompt + max_tokens
            # ("sum") or the larger of the two ("max")
            "token_charge": limits.charge,
            # OpenAI's count was tried where nothing would teach it (a bucket held near full):
            # kept if token_charge is still "max" (ratelimit.py Limits._check_charge)
            "token_charge_tried": limits.charge_tried,
            # requests whose fitted max_tokens was lowered a little to fit whole requests into
            # each fixed window of a second (ratelimit.py Limits.fit_window)
            "max_tokens_fit_to_window": limits.window_fits,
            # limits held over every span of their window, after a 429 showed the server counts
            # that way (a sliding window: ratelimit.py SpanGuard)
            "spans_held": limits.spans_held(),
            "breaker_trips": self.breaker.trips, "set_aside": self.set_aside,
        }


class Router:
    """Hands each request to the endpoint with room soonest. Callers queue FIFO (asyncio.Lock is
    fair) and only the head of the queue sleeps on the clock, so thousands of waiting tasks cost
    nothing."""

    def __init__(self, endpoints: list[Endpoint], max_in_flight: int | None,
                 clock: Clock = time.monotonic, learn: bool = True) -> None:
        self.clock = clock
        # servers' windows of the clock's minute are read against Unix time (none on a test's
        # own clock)
        unix_offset = time.time() - time.monotonic() if clock is time.monotonic else None
        self.routes = [Route(e, max_in_flight, clock(), learn, unix_offset) for e in endpoints]
        self._turn = asyncio.Lock()
        self._released = asyncio.Event()

    def usable(self) -> list[Route]:
        return [r for r in self.routes if r.set_aside is None]

    def choose(self, tokens: int, prompt: int, now: float) -> tuple[Route | None, float]:
        """The route with room soonest (ties: the least busy), and how long until it has."""
        best, best_wait = None, math.inf
        usable = self.usable()
        for route in usable:
            wait = route.wait_time(tokens, prompt, now, alone=len(usable) == 1)
            if best is None or wait < best_wait or (
                    wait == best_wait and route.limits.in_flight < best.limits.in_flight):
                best, best_wait = route, wait
        return best, best_wait

    async def acquire(self, tokens: int, prompt: int,
                      completion: Callable[[], int] | None = None) -> tuple[Route, Ticket]:
        """Wait for room for one request of `tokens` (`prompt` of them the prompt's); or, given
        `completion`, of `prompt` + what it says when asked (its max_tokens, fitted to the
        replies as they come: a request that waited long asks for what is known when it goes)."""
        async with self._turn:
            while True:
                now = self.clock()
                if completion is not None:
                    tokens = prompt + completion()
                route, wait = self.choose(tokens, prompt, now)
                if LONG_WAIT_S < wait < math.inf:
                    self._set_aside_spent(tokens, prompt, now)
                    route = None
                if route is None:
                    raise NoEndpointLeft(self.why_none(),
                                         spent=all(r.spent for r in self.routes))
                if wait <= 0:
                    if completion is not None:  # (a fitted max_tokens may give a little more)
                        tokens = prompt + route.limits.fit_window(prompt, tokens - prompt)
                    return route, self.take(route, tokens, prompt, now)
                await self._wait(None if math.isinf(wait) else wait)

    def take(self, route: Route, tokens: int, prompt: int, now: float | None = None,
             sized: bool = True) -> Ticket:
        """A request of `tokens` goes to `route` now (`sized`: Ticket.sized)."""
        route.stats.requests += 1
        return route.limits.consume(tokens, self.clock() if now is None else now, prompt,
                                    sized=sized)

    def _set_aside_spent(self, tokens: int, prompt: int, now: float) -> None:
        """Every endpoint's limits allow nothing for longer than a run should sit idle (a day's
        limit used up: OpenRouter's free models, 50 requests until the UTC midnight): set them
        aside, saying until when, so the run stops and can be resumed then."""
        for route in self.usable():
            self.spend_out(route, spent_until(route.wait_time(tokens, prompt, now, alone=True),
                                              "its rate limits"))

    def spend_out(self, route: Route, reason: str) -> None:
        """`route`'s limits allow nothing for hours: set it aside (a ticket of its was settled)."""
        route.set_aside, route.spent = route.set_aside or reason, True
        self._released.set()

    def why_none(self) -> str:
        return "; ".join(f"{r.endpoint.base_url}: {r.set_aside}" for r in self.routes)

    async def _wait(self, timeout: float | None) -> None:
        """Until a release, or `timeout` seconds (None: no timeout)."""
        self._released.clear()
        try:
            await asyncio.wait_for(self._released.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    # what came back: each wakes the queue's head
    def completed(self, route: Route, ticket: Ticket, hint: RateLimitHint,
                  prompt_used: int | None, completion_used: int | None) -> None:
        route.stats.completions += 1
        route.breaker.succeeded()
        route.limits.completed(ticket, self.clock(), hint, prompt_used, completion_used)
        self._released.set()

    def limits_read(self, route: Route, ticket: Ticket, hint: RateLimitHint, answered: bool,
                    usage: tuple[int, int] | None = None) -> None:
        """A request that only reads the server's limits (client.LIMITS_READ) came back:
        `answered` (200), the first reply (but no completion of the run's, no verdict on the
        endpoint's health); else refused or unanswered, it tells no more than its headers."""
        if answered:
            route.limits.completed(ticket, self.clock(), hint, *(usage or (None, None)))
        else:
            route.limits.withdrawn(ticket, self.clock(), hint)
        self._released.set()

    def server_error(self, route: Route, ticket: Ticket, hint: RateLimitHint) -> None:
        """The server took the request and failed it (5xx, a reply that is not JSON)."""
        route.stats.server_errors += 1
        route.breaker.failed(self.clock())
        route.limits.completed(ticket, self.clock(), hint)
        self._released.set()

    def lost(self, route: Route, ticket: Ticket, timeout: bool) -> None:
        """No answer: a timeout or a dropped connection."""
        if timeout:
            route.stats.timeouts += 1
        else:
            route.stats.connection_errors += 1
        route.breaker.failed(self.clock())
        route.limits.failed(ticket, self.clock())
        self._released.set()

    def rate_limited(self, route: Route, ticket: Ticket, hint: RateLimitHint) -> None:
        route.stats.rate_limited += 1
        route.limits.rate_limited(ticket, self.clock(), hint)
        self._released.set()

    def refused(self, route: Route, ticket: Ticket, reason: str) -> None:
        """The endpoint refused us for good (a bad key, no quota): set it aside."""
        route.limits.failed(ticket, self.clock())
        route.set_aside = route.set_aside or reason
        self._released.set()

    def cancelled(self, route: Route, ticket: Ticket) -> None:
        route.limits.failed(ticket, self.clock())
        self._released.set()


def spent_until(wait: float, what: str) -> str:
    """Why an endpoint whose limits allow nothing for `wait` seconds was set aside."""
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() + wait))
    return (f"{what} allow no request for {duration_text(wait)} (until {until}); run the same "
            f"command with --resume then")


class NoEndpointLeft(RuntimeError):
    """Every endpoint has been set aside; `spent`: every one for limits that allow nothing for
    hours (the requests in flight may still finish)."""

    def __init__(self, why: str, spent: bool = False) -> None:
        super().__init__(why)
        self.spent = spent
