"""The projection: what a run will send and cost, before it sends anything.

From what is known before the first request: the exemplar's rendered prompt, k (--num_examples),
the target, the records already in the output, and the share of asked-for examples that are kept
(measured by the earlier sessions of a resumed run, else --acceptance_prior). Tokens are counted
the way OpenAI's cookbook counts chat messages (text / 4, plus 3 per message and 3 to prime the
reply); a reply is taken to be k objects as long as the exemplar, written the way a model writes
JSON (a space after each colon and comma; compact with --json_schema, each field capped by the
schema), at most --max_tokens. A resumed run uses the measured tokens per request instead.

    requests  = ceil(records still to create / examples kept per reply) x requests per reply
    cost      = replies x (prompt + completion tokens per reply) at the run's price
    time      = requests / the lowest of the given --rpm, --tpm / tokens per request, and the
                rate measured by an earlier session (none given: unknown before the replies)

Retries (429s, 5xx) are requests too, but are not billed: a resumed run measures requests per
reply; a new one assumes 1. `creator create --dry_run` prints this and stops; every run prints it
in its first lines and keeps it in the summary beside what it cost. `--dry_run --probe N` sends N
real requests first (creator/probe.py, api.probe) and projects from what they measured, as a
resumed run does.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from .config import RunConfig
from .records import Record
from .spend import cost_usd, prompt_token_bound
from .summary import duration_text
from .task import TaskFormat, exemplar_fields, render_messages

CHARS_PER_TOKEN = 4.0
TOKENS_PER_MESSAGE = 3  # OpenAI cookbook, num_tokens_from_messages: 3 per message ...
TOKENS_REPLY_PRIMING = 3  # ... and 3 for <|start|>assistant<|message|>
SCHEMA_CAPS = {"Question": 300, "Context": 300}  # task.response_schema's maxLength
OPTION_CAP = 100
BATCH_WINDOW_S = 24 * 3600.0


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    return sum(text_tokens(m["content"]) + TOKENS_PER_MESSAGE for m in messages) + \
        TOKENS_REPLY_PRIMING


def reply_tokens(exemplar: Record, fmt: TaskFormat, k: int, json_schema: bool,
                 max_tokens: int) -> int:
    """A reply of k objects like the exemplar, as the model would write them."""
    obj: dict[str, Any] = exemplar_fields(exemplar, fmt)
    if json_schema:  # the schema caps what a field may hold
        obj = {key: (value[:SCHEMA_CAPS[key]] if key in SCHEMA_CAPS and isinstance(value, str)
                     else [o[:OPTION_CAP] for o in value] if key == "Options" else value)
               for key, value in obj.items()}
    if json_schema:  # structured output comes back compact
        text = orjson.dumps({"examples": [obj] * k}).decode()
    else:  # a model writing JSON freely puts a space after each colon and comma, as json.dumps
        text = "\n\n".join([json.dumps(obj, ensure_ascii=False)] * k)
    return min(max_tokens, text_tokens(text))


@dataclass
class Projection:
    remaining: int  # records still to create
    per_reply: float  # records kept per answered request
    acceptance: float
    acceptance_basis: str  # "prior" | "measured over N replies"
    replies: int  # answered requests needed (billed)
    requests: int  # requests sent, retries included
    prompt_tokens_per_request: int
    completion_tokens_per_request: int
    tokens_basis: str
    prompt_tokens: int
    completion_tokens: int
    price_in: float
    price_out: float
    price_basis: str
    cost_usd: float | None  # None: no price known
    seconds: float | None  # None: not known before the first replies
    time_basis: str
    batch_rounds: int | None = None
    worst_case_usd: float | None = None  # one request, as the budget reserves it
    in_flight: int = 0  # of `replies`, already submitted by an earlier session (batches)
    vote_requests: int = 0  # of `requests`, --verify's votes
    budget: str | None = None  # what the budgets allow of this, in words
    probe: dict[str, Any] | None = None  # --probe: what it sent and spent to measure this

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """What a person reads before the run (or instead of it, with --dry_run)."""
        if self.remaining <= 0:
            return ["projection: the output already has every record; nothing to send"]
        out = [] if self.probe is None else [
            f"projection: measured by --probe: {self.probe['requests']:,} requests sent, "
            f"{self.probe['replies']:,} replies, {self.probe['records']:,} records kept in "
            f"{self.probe['seconds']:.1f} s" + (f", ${self.probe['cost_usd']:.4f} spent"
                                               if self.probe.get("cost_usd") is not None else "")
            + "; nothing written"]
        out += [f"projection: {self.remaining:,} records to create at ~{self.per_reply:.2f} per "
               f"reply (acceptance {self.acceptance:.2f}, {self.acceptance_basis}): "
               f"~{self.requests:,} requests"
               + (f" more (and {self.in_flight:,} already submitted)" if self.in_flight else "")
               + (f" in ~{self.batch_rounds} batch round(s)" if self.batch_rounds else "")
               + (f", of which ~{self.vote_requests:,} --verify votes" if self.vote_requests
                  else "")]
        out.append(f"projection: ~{self.prompt_tokens:,} prompt + ~{self.completion_tokens:,} "
                   f"completion tokens ({self.prompt_tokens_per_request:,} + "
                   f"{self.completion_tokens_per_request:,} per reply, {self.tokens_basis})")
        if self.cost_usd is not None and not (self.price_in or self.price_out):
            out.append(f"projection: $0: the {self.price_basis}")
        elif self.cost_usd is None:
            out.append("projection: cost unknown: no price for this model (give --model or "
                       "--price_in/--price_out)")
        else:
            out.append(f"projection: ~${self.cost_usd:.4f} at the {self.price_basis} "
                       f"(${self.price_in:g} in / ${self.price_out:g} out per 1M tokens)")
        if self.seconds is None:
            out.append(f"projection: time {self.time_basis}")
        else:
            out.append(f"projection: ~{duration_text(self.seconds)} {self.time_basis}")
        if self.budget:
            out.append(f"projection: {self.budget}")
        return out


def _tree_rounds(replies: int, per_reply: float) -> int:
    """Depths a breadth-first tree needs for `replies` expansions from one root."""
    rounds, frontier, done = 0, 1.0, 0.0
    while done < replies and rounds < 1000:
        done += frontier
        frontier = max(1.0, frontier * per_reply)
        rounds += 1
    return rounds


def project(cfg: RunConfig, exemplar: Record, fmt: TaskFormat, target: int, accepted: int,
            previous: dict[str, Any], in_flight: int = 0,
            probed: dict[str, Any] | None = None) -> Projection:
    """`in_flight`: requests an earlier session submitted that are still out (batches): their
    replies are part of what is needed and will be billed, but are not sent again. `probed`: the
    summary of a --probe run, measured from instead of the earlier sessions (`previous`, which
    still counts against the budgets)."""
    k = cfg.num_examples
    remaining = max(0, target - accepted)
    measured = probed if probed is not None else previous
    by = " by --probe" if probed is not None else ""
    # measured figures for the creation requests alone: --verify's votes taken apart
    votes_before = (measured.get("quality") or {}).get("verification") or {}
    completions = max(0, int(measured.get("completions") or 0)
                      - int(votes_before.get("vote_replies") or 0))
    sent = max(0, int(measured.get("requests") or 0) - int(votes_before.get("vote_requests") or 0))
    produced = int(measured.get("accepted") or 0) + int(measured.get("over_target") or 0)
    if completions >= 1:
        per_reply = produced / completions
        acceptance_basis = f"measured{by} over {completions:,} replies"
    else:
        per_reply = k * cfg.acceptance_prior
        acceptance_basis = "prior, --acceptance_prior"
    acceptance = per_reply / k
    per_reply_for_plan = max(per_reply, 0.05)  # a run that kept nothing yet still needs a figure
    replies = math.ceil(remaining / per_reply_for_plan) if remaining else 0
    per_completion = sent / completions if completions >= 1 and sent >= completions else 1.0
    in_flight = min(in_flight, replies)
    requests = math.ceil((replies - in_flight) * per_completion)
    messages = render_messages(exemplar, fmt, k)
    if completions >= 1 and measured.get("prompt_tokens") and measured.get("completion_tokens"):
        prompt_each = round((int(measured["prompt_tokens"])
                             - int(votes_before.get("prompt_tokens") or 0)) / completions)
        completion_each = round((int(measured["completion_tokens"])
                                 - int(votes_before.get("completion_tokens") or 0)) / completions)
        tokens_basis = "measured" + by
    else:
        prompt_each = prompt_tokens(messages)
        completion_each = reply_tokens(exemplar, fmt, k, cfg.json_schema, cfg.max_tokens)
        tokens_basis = "from the rendered exemplar: prompt as sent, reply as k exemplar-long objects"
    price_in, price_out = cfg.prices()
    priced = bool(price_in or price_out) or cfg.embedded  # (the embedded server: $0)
    prompt_total, completion_total = replies * prompt_each, replies * completion_each
    votes = _votes(cfg, exemplar, replies, k, votes_before, completions)
    if votes is not None:
        vote_requests, vote_prompt, vote_completion = votes
        requests += vote_requests
        prompt_total += vote_prompt
        completion_total += vote_completion
    else:
        vote_requests = 0
    cost = cost_usd(prompt_total, completion_total, price_in, price_out) if priced else None
    worst = cost_usd(prompt_token_bound(messages), cfg.max_tokens, price_in, price_out) \
        if priced else None
    seconds, time_basis, rounds = _time(cfg, previous, requests, replies, per_reply_for_plan,
                                        prompt_each + completion_each, probed)
    return Projection(
        remaining=remaining, per_reply=round(per_reply, 3), acceptance=round(acceptance, 3),
        acceptance_basis=acceptance_basis, replies=replies, requests=requests,
        prompt_tokens_per_request=prompt_each, completion_tokens_per_request=completion_each,
        tokens_basis=tokens_basis, prompt_tokens=prompt_total, completion_tokens=completion_total,
        price_in=price_in, price_out=price_out, price_basis=cfg.price_source(),
        cost_usd=round(cost, 6) if cost is not None else None,
        seconds=round(seconds, 1) if seconds is not None else None, time_basis=time_basis,
        batch_rounds=rounds, worst_case_usd=round(worst, 6) if worst is not None else None,
        in_flight=in_flight, vote_requests=vote_requests,
        budget=_budget_words(cfg, previous, requests, replies, per_reply_for_plan, cost),
        probe=_probe_figures(probed, price_in, price_out) if probed is not None else None,
    )  # fmt: skip


def _probe_figures(probed: dict[str, Any], price_in: float, price_out: float) -> dict[str, Any]:
    prompt, completion = int(probed.get("prompt_tokens") or 0), \
        int(probed.get("completion_tokens") or 0)
    return {"requests": int(probed.get("requests") or 0),
            "replies": int(probed.get("completions") or 0),
            "prompt_tokens": prompt, "completion_tokens": completion,
            "records": int(probed.get("accepted") or 0) + int(probed.get("over_target") or 0),
            "seconds": float(probed.get("duration_s") or 0.0),
            "cost_usd": round(cost_usd(prompt, completion, price_in, price_out), 6)
            if price_in or price_out else None}


def _votes(cfg: RunConfig, exemplar: Record, replies: int, k: int, before: dict[str, Any],
           completions: int) -> tuple[int, int, int] | None:
    """--verify N: N votes per candidate that passes the other checks; their requests and
    tokens (measured per vote and per reply on resume, else from the exemplar: every object of a
    reply a candidate, a vote's prompt as rendered, its reply a short JSON answer)."""
    n = cfg.quality.verify
    if not n or not replies:
        return None
    from .verify import verify_messages

    candidates_before = int(before.get("candidates") or 0)
    per_reply = candidates_before / completions if completions and candidates_before else \
        k * cfg.acceptance_prior
    requests = math.ceil(replies * per_reply * n)
    vote_replies = int(before.get("vote_replies") or 0)
    if vote_replies:
        prompt_each = int(before.get("prompt_tokens") or 0) / vote_replies
        completion_each = int(before.get("completion_tokens") or 0) / vote_replies
    else:
        prompt_each = prompt_tokens(verify_messages(exemplar, cfg.seed))
        completion_each = text_tokens(orjson.dumps({"answer": exemplar.label}).decode()) + 2
    return requests, round(requests * prompt_each), round(requests * completion_each)


def _budget_words(cfg: RunConfig, previous: dict[str, Any], requests: int, replies: int,
                  per_reply: float, cost: float | None) -> str | None:
    """How far the budgets go, if they stop the run before the target."""
    shares: list[tuple[float, str]] = []
    if cfg.max_requests is not None and requests:
        left = max(0, cfg.max_requests - int(previous.get("requests") or 0))
        shares.append((left / requests, f"--max_requests {cfg.max_requests}"))
    if cfg.max_cost is not None and cost:
        spent = float((previous.get("budget") or {}).get("spent_usd")
                      or previous.get("estimated_cost_usd") or 0.0)
        shares.append((max(0.0, cfg.max_cost - spent) / cost, f"--max_cost {cfg.max_cost:g}"))
    if not shares:
        return None
    share, flag = min(shares)
    if share >= 1:
        return f"within {flag}"
    return (f"{flag} stops the run after ~{share:.0%} of this: ~{int(share * replies * per_reply):,} "
            "records (budget_spent, exit 3; --resume with a larger budget continues)")



def _time(cfg: RunConfig, previous: dict[str, Any], requests: int, replies: int,
          per_reply: float, tokens_each: int,
          probed: dict[str, Any] | None = None) -> tuple[float | None, str, int | None]:
    if cfg.batch:
        if cfg.setting == "naive":
            rounds = 1 if replies else 0  # several batches of one round run side by side
        elif cfg.setting == "tree":
            rounds = _tree_rounds(replies, per_reply)
        else:
            rounds = math.ceil(replies / cfg.num_chains)
        return (None, (f"up to 24 h per round (the batch window), {rounds} round(s): each "
                       "round waits for its batch"), rounds)
    rates: list[tuple[float, str]] = []
    if cfg.rpm:
        rates.append((cfg.rpm / 60.0, f"--rpm {cfg.rpm:g}"))
    if cfg.tpm:
        rates.append((cfg.tpm / 60.0 / max(1, tokens_each), f"--tpm {cfg.tpm:g}"))
    measured = (previous.get("this_session") or {}).get("requests_per_s")
    if measured:
        rates.append((float(measured), "the rate measured by the last session"))
    latency = ((probed or {}).get("this_session") or {}).get("latency_p50_s")
    if latency and not measured:  # (a probe's few requests are too few for a rate)
        rates.append((cfg.concurrency / float(latency),
                      f"--concurrency {cfg.concurrency} and the probe's median latency "
                      f"{float(latency):.3g} s"))
    if not rates:
        return (None, ("unknown before the first replies: set by the server's limits and "
                       "latency (give --rpm/--tpm for an estimate; the progress bar shows the "
                       "rate)"), None)
    rate, basis = min(rates)
    if basis.startswith("--concurrency"):
        caveat = " (at least: the server's rate limits may slow it)"
    else:
        caveat = "" if basis.startswith("the rate measured") else " (at least: latency may add)"
    return requests / rate, f"at {basis}{caveat}", None
