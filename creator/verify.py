"""Answer verification (issue 14): each created candidate that passed validation is answered blind
by the model N times (its question, context and options, never its label); it is kept only when
the most frequent answer, and no other as often, is its label. Disagreements are counted as
`failed_verification`; candidates for which no vote could be had (every request failed, or the
request budget is spent) as `unverified`.

The votes go through the run's client: the same limiter, retries, budgets and token counts as the
requests that create. Options are shown in an order drawn from the run's seed and the question,
not the created order, so a verifier that favours one position cannot confirm a created label for
being in that position.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from .client import ChatClient, RequestFailed
from .filters import stable_hash
from .parse import extract_candidates, question_key
from .records import Record
from .spend import BudgetSpent, Hold, Spend, prompt_token_bound

FAILED_VERIFICATION = "failed_verification"
UNVERIFIED = "unverified"

# the simulator recognises verification prompts by this phrase (benchmarks/simserver.py)
INSTRUCTION = (
    "Answer the question. Choose exactly one of the options and reply with that option's text "
    "only, as JSON: {\"Answer\": \"...\"}."
)
_SPACE = re.compile(r"\s+")


def shown_options(record: Record, seed: int) -> list[str]:
    """The options in the order the verifier sees them (yes/no keeps True, False)."""
    options = list(record.options)
    if not record.yes_no:
        random.Random(stable_hash(seed + 1, question_key(record.question))).shuffle(options)
    return options


def verify_messages(record: Record, seed: int) -> list[dict[str, str]]:
    shown: dict[str, Any] = {"Question": record.question}
    if record.context:
        shown["Context"] = record.context
    shown["Options"] = shown_options(record, seed)
    return [{"role": "system", "content": INSTRUCTION},
            {"role": "user", "content": orjson.dumps(shown).decode()}]


def answer_schema(options: list[str]) -> dict[str, Any]:
    """The reply as a JSON object whose Answer is one of the options (structured output)."""
    return {"type": "object", "properties": {"Answer": {"type": "string", "enum": options}},
            "required": ["Answer"]}


def read_answer(text: str | None, options: list[str] | tuple[str, ...]) -> str | None:
    """The option a reply names, or None: {"Answer": ...} or the bare text of one option
    (case, white space, quotes and a final full stop do not matter), or the only option the
    reply mentions."""
    if not text:
        return None
    by_key = {question_key(o): o for o in options}
    objects, _ = extract_candidates(text)
    for obj in objects:
        for key, value in obj.items():
            if isinstance(key, str) and key.strip().lower() == "answer":
                value = str(value) if isinstance(value, (str, bool, int, float)) else ""
                found = by_key.get(question_key(value))
                if found is not None:
                    return found
    bare = question_key(text.strip().strip("\"'` ").rstrip("."))
    if bare in by_key:
        return by_key[bare]
    lowered = _SPACE.sub(" ", text).casefold()
    mentioned = [o for k, o in by_key.items() if k and k in lowered]
    return mentioned[0] if len(mentioned) == 1 else None


def agrees(votes: list[str | None], label: str) -> bool:
    """The most frequent answer is the label, and no other answer is as frequent."""
    counts = Counter(v for v in votes if v is not None)
    if not counts:
        return False
    ranked = counts.most_common()
    top = ranked[0][1]
    return counts.get(label, 0) == top and sum(1 for _, c in ranked if c == top) == 1


@dataclass
class VerifyStats:
    candidates: int = 0
    agreed: int = 0
    disagreed: int = 0
    unverified: int = 0
    votes: int = 0  # answers read
    vote_requests: int = 0  # verification requests made (each may be retried by the client)
    votes_for_label: int = 0
    # the votes' share of the run's replies and tokens (the projection takes them apart)
    vote_replies: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        judged = self.agreed + self.disagreed
        return {
            "candidates": self.candidates, "agreed": self.agreed, "disagreed": self.disagreed,
            "unverified": self.unverified, "votes": self.votes,
            "vote_requests": self.vote_requests, "votes_for_label": self.votes_for_label,
            "agreement": self.agreed / judged if judged else None,
            "vote_replies": self.vote_replies, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    def add_json(self, data: dict[str, Any]) -> None:
        """Add an earlier session's figures (resume)."""
        for name in ("candidates", "agreed", "disagreed", "unverified", "votes",
                     "vote_requests", "votes_for_label", "vote_replies", "prompt_tokens",
                     "completion_tokens"):
            setattr(self, name, getattr(self, name) + int(data.get(name) or 0))


@dataclass
class Verifier:
    client: ChatClient
    votes: int
    seed: int
    params: dict[str, Any]  # temperature, top_p
    json_schema: bool = False
    schema_style: str = "openai"
    on_failed: Callable[[str], None] = lambda reason: None
    stats: VerifyStats = field(default_factory=VerifyStats)

    def _request_params(self, record: Record, options: list[str]) -> dict[str, Any]:
        longest = max(len(o) for o in options)
        params = {**self.params, "max_tokens": 24 + longest // 2}
        if self.json_schema:
            schema = answer_schema(options)
            if self.schema_style == "llamacpp":
                params["response_format"] = {"type": "json_object", "schema": schema}
            else:
                params["response_format"] = {"type": "json_schema",
                                             "json_schema": {"name": "answer", "schema": schema}}
        return params

    def _vote_request(self, record: Record) -> tuple[list[dict[str, str]], dict[str, Any]]:
        return verify_messages(record, self.seed), \
            self._request_params(record, shown_options(record, self.seed))

    def worst_case(self, spend: Spend, record: Record) -> float:
        """One vote's worst case for `record`'s kind of question (the scheduler keeps room)."""
        messages, params = self._vote_request(record)
        return spend.worst_case(prompt_token_bound(messages), params["max_tokens"])

    def _hold_votes(self, messages: list[dict[str, str]],
                    params: dict[str, Any]) -> list[Hold | None] | None:
        """With budgets, all N votes are held before any is sent: a candidate is judged on N
        votes or not at all (None: they do not fit)."""
        if self.client.spend is None or not self.client.spend.limited:
            return [None] * self.votes
        holds = [self.client.reserve(messages, params["max_tokens"]) for _ in range(self.votes)]
        if any(h is None for h in holds):
            for h in holds:
                if h is not None:
                    self.client.spend.release(h)
            return None
        return holds

    async def _vote(self, record: Record, messages: list[dict[str, str]], params: dict[str, Any],
                    hold: Hold | None) -> str | None:
        self.stats.vote_requests += 1  # counted as it leaves (a cancelled one was still sent)
        try:
            completion = await self.client.complete(messages, hold, **params)
        except RequestFailed as exc:
            self.on_failed(exc.reason)
            return None
        except BudgetSpent as exc:  # no room left for it (or for a retry of it)
            self.stats.vote_requests -= not exc.sent
            return None
        self.stats.vote_replies += 1
        self.stats.prompt_tokens += completion.prompt_tokens
        self.stats.completion_tokens += completion.completion_tokens
        answer = read_answer(completion.text, record.options)
        if answer is not None:
            self.stats.votes += 1
            self.stats.votes_for_label += answer == record.label
        return answer

    async def check(self, record: Record) -> str | None:
        """None when the record is kept, else the reason code."""
        messages, params = self._vote_request(record)  # the same prompt for every vote
        holds = self._hold_votes(messages, params)
        if holds is None:  # no room for its votes in --max_requests/--max_cost
            self.stats.candidates += 1
            self.stats.unverified += 1
            return UNVERIFIED
        votes = await asyncio.gather(*(self._vote(record, messages, params, hold)
                                       for hold in holds))
        self.stats.candidates += 1
        if all(v is None for v in votes):
            self.stats.unverified += 1
            return UNVERIFIED
        if agrees(list(votes), record.label):
            self.stats.agreed += 1
            return None
        self.stats.disagreed += 1
        return FAILED_VERIFICATION
