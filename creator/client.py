"""OpenAI-compatible chat completions: one pooled HTTP session, endpoints with their own limits,
classified errors.

The transport is aiohttp with orjson rather than the openai SDK over httpx: we need the raw status,
headers and body of every reply (Retry-After, x-ratelimit-*, error codes), the SDK's own retries
would stack with ours, and httpx's connection pool costs more CPU per request at high concurrency
(benchmarks/ compares them). Any server that speaks POST {base_url}/chat/completions works.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp
import orjson

from .endpoints import Endpoint, NoEndpointLeft, Route, Router, spent_until
from .errors import APIError
from .ratehints import RateLimitHint
from .ratelimit import DAY_SPENT_AFTER_S, LONG_WAIT_S, Clock, RetryPolicy, Ticket
from .spend import BudgetSpent, Hold, Spend, prompt_token_bound


class FatalAPIError(APIError):
    """Retrying cannot help (bad key, no quota, bad request): the run stops with this message."""


class LimitsSpent(FatalAPIError):
    """Every endpoint's rate limits allow nothing for hours (a day's limit used up): no request
    goes any more, those in flight finish, and then the run stops with this message."""


class RequestFailed(RuntimeError):
    """One request gave up after its retries, or was refused for itself alone; the run goes on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency: float
    finish_reason: str | None = None
    model: str | None = None  # the model that answered, as the reply names it
    max_tokens: int | None = None  # what the request asked for


@dataclass(frozen=True)
class Retryable:
    """A failed attempt that may be tried again."""

    reason: str
    retry_after: float | None = None


@dataclass
class ClientStats:
    requests: int = 0  # HTTP attempts sent
    completions: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


# A request of one token, sent first to each endpoint whose limits are not known: its reply
# states them (x-ratelimit-* and the like) in the time to a first token, where the run's first
# request goes alone until its whole reply comes (ratelimit.py Limits.probing). With replies of
# 1-3 s that wait was ~2.5 s idle, 2.8% of a 90-s run; a limit stated in headers was held at
# 94-96% instead of the 98% a limit given from the start was (benchmarks/README.md section 5).
LIMITS_READ = [{"role": "user", "content": "Reply with OK."}]
LIMITS_READ_TIMEOUT_S = 30.0  # past PROBE_GIVE_UP_S the run goes on without it anyway


def estimate_prompt_tokens(messages: list[dict[str, str]]) -> int:
    """A generous guess (about 3 characters a token, plus framing) so reservations are not short."""
    return sum(len(m["content"]) // 3 + 8 for m in messages) + 8


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _error_info(body: bytes) -> tuple[str, str]:
    """(code or type, message) from an OpenAI-style error body; tolerant of anything else."""
    try:
        data = orjson.loads(body)
        err = data.get("error", data) if isinstance(data, dict) else {}
        if isinstance(err, str):
            return "", err
        code = str(err.get("code") or err.get("type") or "")
        return code, str(err.get("message") or "")[:300]
    except (orjson.JSONDecodeError, AttributeError):
        return "", body[:300].decode("utf-8", "replace")


def _not_an_api(url: str, answered: str) -> str:
    hint = "" if url.rstrip("/").endswith("/v1") else f" (did you mean {url.rstrip('/')}/v1?)"
    return (f"{url} is not an OpenAI-compatible API: POST {url}/chat/completions answered "
            f"{answered}; a base URL looks like http://host:port/v1{hint}")


def _looks_like_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True


def _describe(raw: bytes, resp: Any) -> str:
    kind = resp.headers.get("Content-Type", "no content type").split(";")[0]
    start = raw[:40].decode("utf-8", "replace").strip().replace("\n", " ")
    return f"{kind} ({start!r}...)" if start else f"{kind}, empty"


def _model_ids(body: bytes) -> list[str]:
    """The model names a GET /models lists (OpenAI's {"data": [{"id": ...}]})."""
    try:
        data = orjson.loads(body)
        return [m["id"] for m in data.get("data", []) if isinstance(m.get("id"), str)]
    except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError):
        return []


def _usage(raw: bytes) -> tuple[int, int] | None:
    """A reply's prompt and completion tokens (None: it states none)."""
    try:
        usage = orjson.loads(raw).get("usage") or {}
        return int(usage["prompt_tokens"]), int(usage["completion_tokens"])
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return None


def _is_context_overflow(message: str) -> bool:
    lowered = message.lower()
    return "context" in lowered and ("length" in lowered or "window" in lowered or "exceed" in lowered)


class ChatClient:
    """Send chat completions to one or several endpoints, within their limits, retrying what
    can be. One pooled HTTP session for all; each endpoint has its own limits (`Router`)."""

    def __init__(
        self,
        endpoints: list[Endpoint],
        model: str,
        retry: RetryPolicy,
        timeout: float,
        max_in_flight: int | None = None,
        seed: int = 0,
        learn: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        self.endpoints = endpoints
        self.model = model
        self.router = Router(endpoints, max_in_flight, clock=clock, learn=learn)
        self.retry = retry
        self.timeout = timeout
        self.stats = ClientStats()
        self._rng = random.Random(seed)
        self._secrets = [e.api_key for e in endpoints if e.api_key]
        self.served: dict[str, list[str]] = {}  # base URL -> the models its /models lists
        self._prompt_scale = 1.0  # usage's prompt tokens / our estimate (see _calibrate)
        self._calibrated = 0
        self._session: aiohttp.ClientSession | None = None
        self.spend: Spend | None = None  # the run's budgets: each attempt holds its worst case
        self._limit_reads: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> "ChatClient":
        # limit=0: the limiter, not the pool, decides how many requests are in flight
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._limit_reads:
            task.cancel()
        await asyncio.gather(*self._limit_reads, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _headers(self, endpoint: Endpoint) -> dict[str, str] | None:
        return {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else None

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = redact(text, secret)
        return text

    def _fatal(self, message: str) -> FatalAPIError:
        return FatalAPIError(self.redact(message))

    async def check_servers(self, attempts: int = 3) -> None:
        """Before the run: is every endpoint there, and does it take our key?"""
        assert self._session is not None
        for endpoint in self.endpoints:
            url, last = endpoint.base_url, ""
            for attempt in range(attempts):
                try:
                    async with self._session.get(
                        f"{url}/models", headers=self._headers(endpoint),
                        timeout=aiohttp.ClientTimeout(total=10),
                    ) as resp:
                        body = await resp.read()
                        if resp.status in (401, 403):
                            _, msg = _error_info(body)
                            raise self._fatal(
                                f"{url} refused the API key (HTTP {resp.status}): {msg} "
                                f"-- check {endpoint.api_key_env or 'OPENAI_API_KEY'}"
                            )
                        if resp.status == 200:
                            self.served[url] = _model_ids(body)
                        break  # any other answer: the server is there
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    last = str(exc) or type(exc).__name__
                    await asyncio.sleep(0.5 * 2**attempt)
            else:
                raise self._fatal(f"cannot reach the server at {url}: {last}")

    def read_limits(self) -> None:
        """Send LIMITS_READ now to each endpoint that states nothing we know yet, in the
        background: the run's requests wait for its answer as for any first reply. Not under a
        request budget (every request of --max_requests is the user's), nor where the cost
        budget has no room for it; its tokens are counted and billed like any others."""
        if self.spend is not None and self.spend.max_requests is not None:
            return
        now = self.router.clock()
        prompt = estimate_prompt_tokens(LIMITS_READ)
        for route in self.router.usable():
            if not route.limits.probing(now):
                continue
            hold = None
            if self.spend is not None:
                hold = self.spend.reserve(self.spend.worst_case(prompt_token_bound(LIMITS_READ), 1))
                if hold is None:
                    return
            ticket = self.router.take(route, prompt + 1, prompt, sized=False)
            task = asyncio.get_running_loop().create_task(self._read_limits(route, ticket, hold))
            self._limit_reads.add(task)
            task.add_done_callback(self._limit_reads.discard)

    async def _read_limits(self, route: Route, ticket: Ticket, hold: Hold | None) -> None:
        """One LIMITS_READ: whatever comes back tells the route's limits what it can (headers,
        a 429); nothing it gets wrong stops the run or sets the endpoint aside: the run's
        requests find that out themselves (a server that will not take max_tokens of 1 answers
        400, and the run's first request goes alone as if none had been sent)."""
        endpoint = route.endpoint
        body = {"model": endpoint.model or self.model, "messages": LIMITS_READ, "max_tokens": 1}
        spend = self.spend if hold is not None else None
        if spend is not None:
            spend.mark_sent(hold)  # type: ignore[arg-type]
        self.stats.requests += 1
        route.stats.limit_reads += 1
        status, hint, usage = None, RateLimitHint(), None
        try:
            async with self._session.post(  # type: ignore[union-attr]
                f"{endpoint.base_url}/chat/completions", json=body,
                headers=self._headers(endpoint),
                timeout=aiohttp.ClientTimeout(total=min(self.timeout, LIMITS_READ_TIMEOUT_S)),
            ) as resp:
                raw = await resp.read()
                status = resp.status
                hint = RateLimitHint.from_reply(resp.headers, raw if status == 429 else None)
                usage = _usage(raw) if status == 200 else None
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
            pass
        finally:
            if status is None:  # unanswered, or cancelled: as if it had not gone
                self.router.limits_read(route, ticket, hint, answered=False)
                if spend is not None:
                    spend.lose(hold)  # type: ignore[arg-type]
        if status is None:
            return
        if status == 429:
            self.stats.rate_limited += 1
            self.router.rate_limited(route, ticket, hint)
        else:
            self.router.limits_read(route, ticket, hint, answered=status == 200, usage=usage)
        if usage is not None:
            self.stats.prompt_tokens += usage[0]
            self.stats.completion_tokens += usage[1]
        if spend is not None:
            if usage is not None:
                spend.settle(hold, *usage)  # type: ignore[arg-type]
            elif status == 200:  # answered, its usage unstated: billed, at most its worst case
                spend.settle_cost(hold, hold.cost)  # type: ignore[union-attr]
            else:
                spend.refused(hold)  # type: ignore[arg-type]

    def counts_tokens(self) -> bool:
        """Some endpoint has a token limit (given, stated, or named by a 429)."""
        return any(route.limits.counts_tokens for route in self.router.routes)

    def reserve(self, messages: list[dict[str, str]], max_tokens: int) -> Hold | None:
        """The worst case of one attempt held against the budgets (None: it does not fit)."""
        if self.spend is None:
            return None
        return self.spend.reserve(self.spend.worst_case(prompt_token_bound(messages), max_tokens))

    async def complete(self, messages: list[dict[str, str]], hold: Hold | None = None,
                       fit: Callable[[], int] | None = None, **params: Any) -> Completion:
        """One chat completion, retried on 429/5xx/timeouts/dropped connections. With budgets
        (`spend`) every attempt first holds its worst case: `hold` is the first one's, taken by
        the caller; raises BudgetSpent when a retry no longer fits. `fit`: the max_tokens to ask
        for (at most params' max_tokens, which the holds reserve), read as each attempt leaves."""
        assert self._session is not None
        estimate = estimate_prompt_tokens(messages)
        prompt = max(1, round(estimate * self._prompt_scale))
        max_tokens = int(params.get("max_tokens") or 0)
        reserved = prompt + max_tokens
        attempt = 0
        while True:
            if hold is None and self.spend is not None:
                hold = self.reserve(messages, max_tokens)
                if hold is None:
                    spent = BudgetSpent(self.spend.why_spent(
                        self.spend.worst_case(prompt_token_bound(messages), max_tokens)))
                    spent.sent = attempt > 0  # an earlier attempt of this request went out
                    raise spent
            try:
                outcome = await self._attempt(messages, params, reserved, prompt, hold, fit)
            finally:
                if hold is not None and not hold.done and self.spend is not None:
                    self.spend.release(hold)  # cancelled: lost if it had left, else nothing
                hold = None
            if isinstance(outcome, Completion):
                self._calibrate(estimate, outcome.prompt_tokens)
                return outcome
            if attempt >= self.retry.max_retries:
                raise RequestFailed(f"gave_up_after_{outcome.reason}")
            delay = self.retry.delay(attempt, outcome.retry_after, self._rng)
            if outcome.reason == "rate_limited" and outcome.retry_after is None:
                # the limiter now paces below what the server let through (and pauses everyone
                # in a storm): this request need not back off on its own for long
                delay = min(delay, self._rng.uniform(0.05, 0.5))
            self.stats.retries += 1
            attempt += 1
            await asyncio.sleep(delay)

    async def _attempt(self, messages: list[dict[str, str]], params: dict[str, Any],
                       reserved: int, prompt: int, hold: Hold | None = None,
                       fit: Callable[[], int] | None = None) -> Completion | Retryable:
        """Send once; raise what must not be retried. `hold`: this attempt's budget hold,
        settled here by what comes back (the caller releases it if we are cancelled)."""
        ceiling = int(params.get("max_tokens") or 0)
        size = None if fit is None else (lambda: min(ceiling, fit()))
        try:
            route, ticket = await self.router.acquire(reserved, prompt, size)
        except NoEndpointLeft as exc:
            if exc.spent:
                raise self._limits_spent() from None
            raise self._fatal(f"every endpoint was set aside: {exc}") from None
        endpoint = route.endpoint
        if size is not None:
            params = {**params, "max_tokens": ticket.completion}
        body = {"model": endpoint.model or self.model, "messages": messages, **params}
        spend = self.spend if hold is not None else None
        if spend is not None:
            spend.mark_sent(hold)  # type: ignore[arg-type]
        self.stats.requests += 1
        started = time.perf_counter()
        settled = False
        try:
            async with self._session.post(  # type: ignore[union-attr]
                f"{endpoint.base_url}/chat/completions", json=body,
                headers=self._headers(endpoint),
            ) as resp:
                raw = await resp.read()
                hint = RateLimitHint.from_reply(resp.headers, raw if resp.status == 429 else None)
                if resp.status == 200:
                    completion = self._completion(raw, time.perf_counter() - started,
                                                  params.get("max_tokens"))
                    if completion is None:
                        self.stats.server_errors += 1
                        self.router.server_error(route, ticket, hint)
                        settled = True
                        if spend is not None:  # a 200 we cannot read may have been billed
                            spend.lose(hold)  # type: ignore[arg-type]
                        if not route.stats.completions and not _looks_like_json(raw):
                            # the first answer and not even JSON: not an OpenAI API at all
                            self._set_aside(route, None, _not_an_api(
                                endpoint.base_url, f"HTTP 200 with {_describe(raw, resp)}"))
                        return Retryable("bad_reply")
                    self.router.completed(route, ticket, hint, completion.prompt_tokens,
                                          completion.completion_tokens)
                    settled = True
                    if spend is not None:
                        spend.settle(hold, completion.prompt_tokens,  # type: ignore[arg-type]
                                     completion.completion_tokens)
                    return completion
                settled = True  # _classify settles the ticket, whatever it returns or raises
                if spend is not None:  # a refusal (429, 5xx, 4xx) is not billed
                    spend.refused(hold)  # type: ignore[arg-type]
                return self._classify(resp.status, raw, hint, route, ticket)
        except asyncio.TimeoutError:
            self.stats.timeouts += 1
            self.router.lost(route, ticket, timeout=True)
            settled = True
            if spend is not None:
                spend.lose(hold)  # type: ignore[arg-type]
            return Retryable("timeout")
        except (aiohttp.ClientError, OSError):
            # refused, reset, or dropped mid-reply: the request may be retried as a whole
            self.stats.connection_errors += 1
            self.router.lost(route, ticket, timeout=False)
            settled = True
            if spend is not None:
                spend.lose(hold)  # type: ignore[arg-type]
            return Retryable("connection_error")
        finally:
            if not settled:  # cancelled, or a fatal error raised while classifying
                self.router.cancelled(route, ticket)

    def _calibrate(self, estimate: int, counted: int) -> None:
        """Reserve what the server counts: our character-based guess of a prompt's tokens is
        scaled by what replies' usage says (a moving average, kept within 0.3x-2x). Reserving
        too much leaves a token limit unused (measured: 93% of it with the raw guess)."""
        if counted > 0 and estimate > 0:
            ratio = min(2.0, max(0.3, counted / estimate))
            self._prompt_scale = ratio if self._calibrated == 0 else \
                0.9 * self._prompt_scale + 0.1 * ratio
            self._calibrated += 1

    def _completion(self, raw: bytes, latency: float,
                    max_tokens: int | None = None) -> Completion | None:
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            usage = data.get("usage") or {}
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
            return None
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        self.stats.completions += 1
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        model = data.get("model") if isinstance(data.get("model"), str) else None
        return Completion(text, prompt_tokens, completion_tokens, latency,
                          choice.get("finish_reason"), model, max_tokens)

    def _classify(self, status: int, raw: bytes, hint: RateLimitHint, route: Route,
                  ticket: Ticket) -> Retryable:
        code, message = _error_info(raw)
        url = route.endpoint.base_url
        if status == 429 and "too large" in message.lower():
            self.router.refused(route, ticket, "request larger than its token limit")
            raise self._fatal(f"one request is larger than the token rate limit of {url} allows "
                              f"(HTTP 429): {message} -- lower --max_tokens")
        if status == 429 and "insufficient_quota" not in code:
            self.stats.rate_limited += 1
            self.router.rate_limited(route, ticket, hint)
            spent = None
            if hint.retry_after is not None and hint.retry_after > LONG_WAIT_S:
                # a limit of a day used up (OpenRouter's "free-models-per-day", its reset the
                # UTC midnight): waiting hours is not a retry
                spent = spent_until(hint.retry_after, "its rate limits")
            elif hint.per_day and hint.retry_after is None and \
                    route.limits.nothing_through_for(self.router.clock()) >= DAY_SPENT_AFTER_S:
                # a limit per day used up, with no word on when it comes back (Cerebras's
                # "Tokens per day limit exceeded"): a storm's probes would go on for hours
                spent = (f"a limit per day, and nothing let through for {DAY_SPENT_AFTER_S:.0f} "
                         "s; the server does not say when it comes back: run the same command "
                         "with --resume later")
            if spent is not None:
                return self._set_aside(route, None, f"HTTP 429 ({message.strip()}): {spent}",
                                       spent=True)
            return Retryable("rate_limited", hint.retry_after)
        if status == 429:
            return self._set_aside(route, ticket, f"the API account has no quota left at {url} "
                                   f"(HTTP 429 {code}): {message}")
        if status in (401, 403):
            return self._set_aside(route, ticket, f"{url} refused the API key (HTTP {status}): "
                                   f"{message} -- check "
                                   f"{route.endpoint.api_key_env or 'OPENAI_API_KEY'}")
        if status == 400 and _is_context_overflow(message):
            self.router.server_error(route, ticket, hint)
            raise RequestFailed("context_length_exceeded")
        if status in (404, 405, 501) and not route.stats.completions and \
                not _looks_like_json(raw):
            # the chat route is not there: an HTTP server, but not an OpenAI API (or a base
            # URL without its /v1): retrying cannot help
            return self._set_aside(route, ticket, _not_an_api(url, f"HTTP {status}"))
        if status in (408, 409) or status >= 500:
            self.stats.server_errors += 1
            self.router.server_error(route, ticket, hint)
            return Retryable(f"http_{status}", hint.retry_after)
        return self._set_aside(route, ticket, f"{url} rejected the request "
                               f"(HTTP {status} {code}): {message}")

    def _set_aside(self, route: Route, ticket: Ticket | None, reason: str,
                   spent: bool = False) -> Retryable:
        """An endpoint refused us for good: with others left the run goes on without it (the
        request is tried elsewhere); alone, the run stops with the reason. (No ticket: it was
        settled already.) `spent`: its limits allow nothing for hours; with none left the run
        stops once what is in flight has come back (LimitsSpent)."""
        if ticket is not None:
            self.router.refused(route, ticket, self.redact(reason))
        elif spent:
            self.router.spend_out(route, self.redact(reason))
        else:
            route.set_aside = route.set_aside or self.redact(reason)
        if not self.router.usable():
            raise self._limits_spent() if spent else self._fatal(reason)
        return Retryable("endpoint_set_aside")

    def _limits_spent(self) -> LimitsSpent:
        return LimitsSpent(self.redact(
            f"every endpoint's rate limits are spent: {self.router.why_none()}"))
