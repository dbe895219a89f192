"""Hard budgets on what a run sends: requests (`--max_requests`) and money (`--max_cost`).

Pure bookkeeping, no I/O. A request's worst case is reserved BEFORE it is sent: one request, and
an upper bound of its prompt's tokens + max_tokens at the run's price per token. What comes back
turns the reservation into what it cost:

- a reply with usage: billed at its usage (the unused part of the reservation is given back);
- a refusal (429, 5xx, any 4xx): billed nothing, but it was one request sent;
- a lost reply (timeout, dropped connection, cancelled on the way): the provider may have done,
  and billed, the work, so the worst case stays spent;
- never sent (cancelled while waiting for the rate limiter): nothing.

`sent + reserved` never exceeds a budget, so what is sent never does, whatever the concurrency and
however many retries. Budgets count the whole output: earlier sessions of a resumed run start the
counts, so a run stopped by its budget continues with a larger one.

The prompt bound is its UTF-8 bytes plus framing: a byte-level BPE token (OpenAI's, llama.cpp's
GPT-2-style vocabularies) covers at least one byte, and chat templates add a few tokens per
message. It is loose (about 4x the real count for English), which only matters for the last
request or two of a budget; max_tokens dominates the worst case anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FRAMING_TOKENS = 16  # per message, and once more for the reply's priming: generous
EPS = 1e-9  # float sums of many small costs: keep a hair below the budget, never above


def prompt_token_bound(messages: list[dict[str, str]]) -> int:
    """An upper bound on the prompt tokens a server can count for these messages."""
    return sum(len(m["content"].encode("utf-8")) + FRAMING_TOKENS for m in messages) + FRAMING_TOKENS


def cost_usd(prompt_tokens: float, completion_tokens: float, price_in: float,
             price_out: float) -> float:
    """Prices are USD per 1M tokens."""
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1e6


class BudgetSpent(RuntimeError):
    """No budget left for one more request: the message says which budget and how to go on.
    `sent`: an earlier attempt of the same request was sent (the refusal came on a retry)."""

    sent = False


@dataclass(eq=False)
class Hold:
    """A reservation: `n` requests (one, or the lines of a batch) and `cost` USD, their worst
    case."""

    cost: float
    sent: bool = False
    done: bool = False
    n: int = 1


class Spend:
    """The budgets of one output and what counts against them."""

    def __init__(self, max_requests: int | None = None, max_cost: float | None = None,
                 price_in: float = 0.0, price_out: float = 0.0, requests: int = 0,
                 cost: float = 0.0) -> None:
        self.max_requests = max_requests
        self.max_cost = max_cost
        self.price_in = price_in
        self.price_out = price_out
        self.requests = requests  # sent (earlier sessions included)
        self.cost = cost  # billed, or possibly billed (lost replies at their worst case)
        self.initial_requests = requests
        self.initial_cost = cost
        self.reserved_requests = 0  # holds not yet sent
        self.reserved_cost = 0.0  # holds not yet settled
        self.lost_replies = 0  # replies lost, counted at their worst case

    # --- what one request may cost ---------------------------------------------------------

    def worst_case(self, prompt_bound: int, max_tokens: int) -> float:
        return cost_usd(prompt_bound, max_tokens, self.price_in, self.price_out)

    def billed(self, prompt_tokens: int, completion_tokens: int) -> float:
        return cost_usd(prompt_tokens, completion_tokens, self.price_in, self.price_out)

    # --- reserving and settling ---------------------------------------------------------------

    def fits(self, worst: float, n: int = 1) -> bool:
        """Would `n` more requests of worst case `worst` each fit both budgets?"""
        if self.max_requests is not None and \
                self.requests + self.reserved_requests + n > self.max_requests:
            return False
        return self.max_cost is None or \
            self.cost + self.reserved_cost + n * worst <= self.max_cost * (1 - EPS)

    def how_many_fit(self, worst: float, wanted: int) -> int:
        """How many of `wanted` requests of worst case `worst` fit now."""
        n = wanted
        if self.max_requests is not None:
            n = min(n, self.max_requests - self.requests - self.reserved_requests)
        if self.max_cost is not None and worst > 0:
            room = self.max_cost * (1 - EPS) - self.cost - self.reserved_cost
            n = min(n, int(room // worst))
            while n > 0 and not self.fits(worst, n):  # float rounding at the edge
                n -= 1
        return max(0, n)

    def reserve(self, worst: float, n: int = 1) -> Hold | None:
        """A hold for `n` requests of `worst` USD in all, or None when they would not fit."""
        if not self.fits(worst / n if n else 0.0, n):
            return None
        self.reserved_requests += n
        self.reserved_cost += worst
        return Hold(worst, n=n)

    def adopt(self, worst: float, n: int, counted: bool) -> Hold:
        """A hold for `n` requests an earlier session sent (a batch still in flight): its worst
        case is held again; `counted`: its requests are already in `requests`."""
        if not counted:
            self.requests += n
        self.reserved_cost += worst
        return Hold(worst, sent=True, n=n)

    def mark_sent(self, hold: Hold) -> None:
        """The request goes out now: it is one request sent (or n), whatever comes back."""
        if not hold.sent and not hold.done:
            hold.sent = True
            self.reserved_requests -= hold.n
            self.requests += hold.n

    def settle(self, hold: Hold, prompt_tokens: int, completion_tokens: int) -> None:
        """Answered: billed at its usage."""
        self._close(hold, self.billed(prompt_tokens, completion_tokens))

    def settle_cost(self, hold: Hold, cost: float) -> None:
        """Answered (a batch: the sum of its lines' usage): billed `cost`."""
        self._close(hold, cost)

    def refused(self, hold: Hold) -> None:
        """Refused by the server (429, 5xx, 4xx): billed nothing."""
        self._close(hold, 0.0)

    def lose(self, hold: Hold) -> None:
        """Sent and no reply (timeout, dropped connection, cancelled in flight): the provider
        may have billed it, so its worst case stays spent."""
        if hold.sent and not hold.done:
            self.lost_replies += hold.n
        self._close(hold, hold.cost if hold.sent else 0.0)

    def release(self, hold: Hold) -> None:
        """Never sent (cancelled before it left, or the run stopped): nothing counts. A hold
        that was sent is lost instead."""
        if hold.sent:
            self.lose(hold)
            return
        if not hold.done:
            hold.done = True
            self.reserved_requests -= hold.n
            self.reserved_cost -= hold.cost

    def _close(self, hold: Hold, cost: float) -> None:
        if hold.done:
            return
        if not hold.sent:  # settled without mark_sent: it was sent all the same
            self.mark_sent(hold)
        hold.done = True
        self.reserved_cost -= hold.cost
        self.cost += cost

    # --- what to tell the user ----------------------------------------------------------------

    @property
    def limited(self) -> bool:
        return self.max_requests is not None or self.max_cost is not None

    def why_spent(self, worst: float) -> str:
        """Which budget stops the next request, in one clause."""
        from .errors import option

        if self.max_requests is not None and \
                self.requests + self.reserved_requests >= self.max_requests:
            return (f"{self.requests} requests sent of "
                    f"{option('max_requests', self.max_requests)}")
        if self.max_cost is not None:
            return (f"${self.cost:.4f} spent of {option('max_cost', f'{self.max_cost:g}')} USD "
                    f"and the next request may cost up to ${worst:.4f}")
        return "the budget is spent"

    def to_json(self) -> dict[str, Any]:
        return {
            "max_requests": self.max_requests,
            "max_cost_usd": self.max_cost,
            "requests": self.requests,
            "spent_usd": round(self.cost, 6),
            "lost_replies_counted_at_worst_case": self.lost_replies,
            "price_per_1m_tokens_usd": {"input": self.price_in, "output": self.price_out},
        }
