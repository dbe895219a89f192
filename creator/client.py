"""OpenAI-compatible chat completions: one pooled HTTP session, one limiter, classified errors.

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
from typing import Any

import aiohttp
import orjson

from .ratelimit import RateLimiter, RateLimitHint, RetryPolicy


class FatalAPIError(RuntimeError):
    """Retrying cannot help (bad key, no quota, bad request): the run stops with this message."""


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


def _is_context_overflow(message: str) -> bool:
    lowered = message.lower()
    return "context" in lowered and ("length" in lowered or "window" in lowered or "exceed" in lowered)


class ChatClient:
    """Send chat completions to one or several servers, within the limits, retrying what can be."""

    def __init__(
        self,
        base_urls: list[str],
        model: str,
        api_key: str | None,
        limiter: RateLimiter,
        retry: RetryPolicy,
        timeout: float,
        seed: int = 0,
    ) -> None:
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.model = model
        self.api_key = api_key
        self.limiter = limiter
        self.retry = retry
        self.timeout = timeout
        self.stats = ClientStats()
        self._rng = random.Random(seed)
        self._in_flight = [0] * len(self.base_urls)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "ChatClient":
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        # limit=0: the limiter, not the pool, decides how many requests are in flight
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _pick_server(self) -> int:
        """The least busy server, so several base URLs share the load."""
        return min(range(len(self.base_urls)), key=self._in_flight.__getitem__)

    def _fatal(self, message: str) -> FatalAPIError:
        return FatalAPIError(redact(message, self.api_key))

    async def check_servers(self, attempts: int = 3) -> None:
        """Before the run: is every server there, and does it take our key?"""
        assert self._session is not None
        for url in self.base_urls:
            last = ""
            for attempt in range(attempts):
                try:
                    async with self._session.get(
                        f"{url}/models", timeout=aiohttp.ClientTimeout(total=10)
                    ) as resp:
                        body = await resp.read()
                        if resp.status in (401, 403):
                            _, msg = _error_info(body)
                            raise self._fatal(
                                f"{url} refused the API key (HTTP {resp.status}): {msg} "
                                "-- check OPENAI_API_KEY"
                            )
                        break  # any other answer: the server is there
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    last = str(exc) or type(exc).__name__
                    await asyncio.sleep(0.5 * 2**attempt)
            else:
                raise self._fatal(f"cannot reach the server at {url}: {last}")

    async def complete(self, messages: list[dict[str, str]], **params: Any) -> Completion:
        """One chat completion, retried on 429/5xx/timeouts/dropped connections."""
        assert self._session is not None
        body = {"model": self.model, "messages": messages, **params}
        reserved = estimate_prompt_tokens(messages) + int(params.get("max_tokens") or 0)
        attempt = 0
        while True:
            outcome = await self._attempt(body, reserved)
            if isinstance(outcome, Completion):
                return outcome
            if attempt >= self.retry.max_retries:
                raise RequestFailed(f"gave_up_after_{outcome.reason}")
            delay = self.retry.delay(attempt, outcome.retry_after, self._rng)
            if outcome.reason == "rate_limited":
                # everybody waits: hammering a limited API only earns more 429s. The server's
                # Retry-After is for everyone; our own backoff only briefly (it grows per request)
                hint = outcome.retry_after
                self.limiter.pause_for(delay if hint is not None else min(delay, 2.0))
            self.stats.retries += 1
            attempt += 1
            await asyncio.sleep(delay)

    async def _attempt(self, body: dict[str, Any], reserved: int) -> Completion | Retryable:
        """Send once; raise what must not be retried."""
        sent = await self.limiter.acquire(reserved)
        used: int | None = None
        server = self._pick_server()
        self._in_flight[server] += 1
        self.stats.requests += 1
        started = time.perf_counter()
        try:
            async with self._session.post(  # type: ignore[union-attr]
                f"{self.base_urls[server]}/chat/completions", json=body
            ) as resp:
                raw = await resp.read()
                hint = RateLimitHint.from_headers(resp.headers)
                self.limiter.observe(hint, sent)
                if resp.status == 200:
                    completion = self._completion(raw, time.perf_counter() - started)
                    if completion is None:
                        self.stats.server_errors += 1
                        return Retryable("bad_reply")
                    used = completion.prompt_tokens + completion.completion_tokens
                    return completion
                return self._classify(resp.status, raw, hint)
        except asyncio.TimeoutError:
            self.stats.timeouts += 1
            return Retryable("timeout")
        except (aiohttp.ClientError, OSError):
            # refused, reset, or dropped mid-reply: the request may be retried as a whole
            self.stats.connection_errors += 1
            return Retryable("connection_error")
        finally:
            self._in_flight[server] -= 1
            self.limiter.release(reserved, used)

    def _completion(self, raw: bytes, latency: float) -> Completion | None:
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
        return Completion(text, prompt_tokens, completion_tokens, latency, choice.get("finish_reason"))

    def _classify(self, status: int, raw: bytes, hint: RateLimitHint) -> Retryable:
        code, message = _error_info(raw)
        if status == 429 and "too large" in message.lower():
            raise self._fatal(f"one request is larger than the token rate limit allows "
                              f"(HTTP 429): {message} -- lower --max_tokens")
        if status == 429 and "insufficient_quota" not in code:
            self.stats.rate_limited += 1
            self.limiter.rate_limited()
            return Retryable("rate_limited", hint.retry_after)
        if status == 429:
            raise self._fatal(f"the API account has no quota left (HTTP 429 {code}): {message}")
        if status in (401, 403):
            raise self._fatal(f"the server refused the API key (HTTP {status}): {message} "
                              "-- check OPENAI_API_KEY")
        if status == 400 and _is_context_overflow(message):
            raise RequestFailed("context_length_exceeded")
        if status in (408, 409) or status >= 500:
            self.stats.server_errors += 1
            return Retryable(f"http_{status}", hint.retry_after)
        raise self._fatal(f"the server rejected the request (HTTP {status} {code}): {message}")
