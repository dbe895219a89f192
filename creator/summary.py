"""The run summary (`<output stem>.summary.json`) as a typed record: the figures of a run,
cumulative over the sessions of one output. The JSON keeps its keys; `from_json` reads older
files (missing keys take their defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# counters that add up across sessions of one output
COUNTERS = (
    "requests", "completions", "retries", "rate_limited", "server_errors", "timeouts",
    "connection_errors", "failed_requests", "prompt_tokens", "completion_tokens", "over_target",
    "unproductive_requests",
)  # fmt: skip


@dataclass
class RunSummary:
    status: str  # running | completed | interrupted | stalled | budget_spent | failed
    output: str
    target: int
    accepted: int
    error: str | None = None
    requests: int = 0  # HTTP attempts sent
    completions: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429s
    server_errors: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    failed_requests: int = 0  # requests that gave up
    prompt_tokens: int = 0
    completion_tokens: int = 0
    over_target: int = 0  # valid records past the target, not written
    unproductive_requests: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> candidates
    failed: dict[str, int] = field(default_factory=dict)  # reason -> requests
    estimated_cost_usd: float = 0.0
    price_per_1m_tokens_usd: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    sessions: int = 0
    this_session: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    # spend: the budgets and what counts against them (creator/spend.py), the projection made
    # before this session's first request, the projected cost of the whole output as it stands,
    # and with --batch the batches (creator/batch.py)
    budget: dict[str, Any] = field(default_factory=dict)
    projection: dict[str, Any] = field(default_factory=dict)
    projected_cost_usd: float | None = None
    batch: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)  # the filters' settings and figures

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunSummary":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("status", "unknown")
        values.setdefault("output", "")
        values.setdefault("target", 0)
        values.setdefault("accepted", 0)
        return cls(**values)


def duration_text(seconds: float) -> str:
    """A duration as messages say it: "45 s", "12 min", "7.5 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
