"""The loop that ties task, strategy, client, parser and sink together.

One scheduler coroutine hands out jobs while there is room (the strategy says what to request,
`--concurrency` how much at once); each job runs as its own task: request -> parse -> validate ->
dedup -> append -> tell the strategy. Everything that touches shared state (the dedup set, the
counters, the file) runs between awaits on the one event loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .client import ChatClient, Completion, LimitsSpent, RequestFailed, estimate_prompt_tokens
from .config import RunConfig
from .errors import option
from .filters import Candidate, Quality, reference_shares
from .parse import parse_reply, question_key
from .projection import Projection, project, reply_tokens
from .ratelimit import RetryPolicy
from .replysize import ReplySize
from .sink import JsonlSink, read_summary, scan_output, summary_path, write_json_atomic
from .spend import BudgetSpent, Hold, Spend, cost_usd, prompt_token_bound
from .summary import COUNTERS, RunSummary
from .strategy import ROOT_ID, Job, Node, Strategy, make_strategy
from .records import Record
from .verify import Verifier, VerifyStats
from .task import (
    TaskError,
    TaskFormat,
    detect_format,
    load_exemplar,
    read_records,
    render_messages,
    response_schema,
    split_path,
)

log = logging.getLogger("creator")  # the CLI shows these on stderr; the library sets no handler
SUMMARY_EVERY_S = 2.0


class Stopped(Exception):
    """The run stopped before the target; `status` says why (interrupted, stalled, failed,
    budget_spent)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RunResult:
    status: str  # completed | interrupted | stalled | budget_spent | failed
    accepted: int
    target: int
    summary: RunSummary
    message: str = ""


class StopSignal:
    """Asks a run to stop cleanly (the CLI sets it from SIGINT/SIGTERM; the library installs no
    signal handlers of its own)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.event.set()


def run_identity(cfg: RunConfig, exemplar: Record, fmt: TaskFormat) -> dict[str, Any]:
    """What a resumed run must share with the file it continues."""
    return {
        "setting": cfg.setting,
        "num_examples": cfg.num_examples,
        "exemplar": exemplar.to_json(),
        "yes_no": fmt.yes_no,
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


@dataclass
class Progress:
    """A progress bar on a terminal; silent otherwise."""

    target: int
    initial: int
    enabled: bool
    _bar: Any = None
    _last: float = 0.0

    def __post_init__(self) -> None:
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.target, initial=self.initial, unit="ex", dynamic_ncols=True)

    def update(self, n: int, requests: int, rate_limited: int, started: float,
               cost: str = "") -> None:
        if self._bar is None:
            return
        self._bar.update(n)
        now = time.monotonic()
        if now - self._last > 0.5:
            self._last = now
            rps = requests / max(1e-9, now - started)
            self._bar.set_postfix_str(f"{rps:.1f} req/s, 429s: {rate_limited}{cost}",
                                      refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@dataclass
class Engine:
    cfg: RunConfig
    exemplar: Record
    fmt: TaskFormat
    target: int
    strategy: Strategy
    client: ChatClient
    sink: JsonlSink
    seen: set[str]
    accepted: int
    next_id: int
    previous: dict[str, Any]  # cumulative counters of earlier sessions of this output
    identity: dict[str, Any]
    quality: Quality  # issue 14's filters (debiasing, near-duplicates, label balance)
    verifier: Verifier | None = None  # --verify N
    _vote_worst: float | None = None  # one vote's worst case, with budgets and --verify
    spend: Spend = field(default_factory=Spend)  # the budgets (the client holds the same one)
    projection: Projection | None = None  # made before the first request of this session
    batch_info: dict[str, Any] | None = None  # with --batch: the batches, for the summary
    limits_spent: LimitsSpent | None = None  # every endpoint's limits allow nothing for hours
    rejected: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    over_target: int = 0
    answered_by: Counter[str] = field(default_factory=Counter)  # models named by the replies
    unproductive_in_a_row: int = 0
    unproductive: int = 0
    answered: int = 0  # replies parsed this session
    produced: int = 0  # new valid records in them, before the target cut
    initial_accepted: int = 0
    started: float = field(default_factory=time.monotonic)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=20000))
    progress: Progress = field(init=False)

    # --- one job ----------------------------------------------------------------------------

    @cached_property
    def request_params(self) -> dict[str, Any]:
        """The same for every request of the run."""
        params: dict[str, Any] = {
            "temperature": self.cfg.temperature,
            "top_p": self.cfg.top_p,
            "max_tokens": self.cfg.max_tokens,
        }
        if self.cfg.json_schema:
            schema = response_schema(self.fmt, self.cfg.num_examples)
            if self.cfg.schema_style == "llamacpp":  # llama.cpp's server rejects OpenAI's shape
                params["response_format"] = {"type": "json_object", "schema": schema}
            else:
                params["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "examples", "schema": schema},
                }
        return params

    @cached_property
    def reply_size(self) -> ReplySize:
        """Before replies are measured, the projection's tokens per reply (made before the first
        request: k exemplar-long objects, or what earlier sessions measured) is the guess."""
        expected = self.projection.completion_tokens_per_request if self.projection else \
            reply_tokens(self.exemplar, self.fmt, self.cfg.num_examples, self.cfg.json_schema,
                         self.cfg.max_tokens)
        return ReplySize(self.cfg.max_tokens, expected)

    def fitted_max_tokens(self) -> int:
        """What a creation request asks for as it leaves: no more completion tokens than
        replies need where a token limit charges max_tokens (creator/replysize.py)."""
        if self.client.counts_tokens():
            return self.reply_size.max_tokens()
        return self.cfg.max_tokens

    def fit_summary(self) -> dict[str, Any] | str:
        """What creation requests ask for now, and whether a token limit made it fitted."""
        if not self.cfg.fit_max_tokens:
            return "off"
        return {**self.reply_size.to_json(), "max_tokens": self.fitted_max_tokens(),
                "token_limit": self.client.counts_tokens()}

    def messages(self, job: Job) -> list[dict[str, str]]:
        return render_messages(job.exemplar.record, self.fmt, self.cfg.num_examples)

    async def run_job(self, job: Job, messages: list[dict[str, str]] | None = None,
                      hold: Hold | None = None) -> None:
        messages = messages or self.messages(job)
        fit = self.fitted_max_tokens if self.cfg.fit_max_tokens else None
        try:
            completion = await self.client.complete(messages, hold, fit, **self.request_params)
        except RequestFailed as exc:
            self.job_failed(job, exc.reason)
            return
        except BudgetSpent:
            self.strategy.on_failure(job)  # not sent: the job goes back, the scheduler stops
            return
        except LimitsSpent as exc:
            # the same, for rate limits spent for hours: what is in flight finishes (the server
            # admitted it, and counted it), then the run stops saying until when
            self.limits_spent = self.limits_spent or exc
            self.strategy.on_failure(job)
            return
        self.reply_size.observe(completion.completion_tokens, completion.finish_reason,
                                completion.max_tokens or self.cfg.max_tokens)
        await self.take_reply(job, completion)

    def job_failed(self, job: Job, reason: str) -> None:
        """A request that gave up (or was refused for itself alone): the run goes on."""
        self.failed[reason] += 1
        self._count_unproductive()
        self.strategy.on_failure(job)

    async def take_reply(self, job: Job, completion: Completion) -> None:
        """A reply to `job`: parse, validate, dedup, append, tell the strategy (also used by the
        batch driver for each line of a batch's output)."""
        self.latencies.append(completion.latency)
        if completion.model:
            self.answered_by[completion.model] += 1
        echoes = {question_key(self.exemplar.question), question_key(job.exemplar.record.question)}
        result = parse_reply(completion.text, self.fmt, self.seen, echoes)
        self.rejected.update(result.rejected)
        self.answered += 1
        candidates = await self._screen(result.records)
        # from here to sink.write nothing awaits: the dedup set and the count stay consistent
        room = self.target - self.accepted
        # the filters look again only if others may have added records since screen looked
        recheck = self.quality.awaits or self.verifier is not None
        kept, passed = self.quality.admit(candidates, self.seen, room, self.rejected, recheck)
        self.produced += passed
        self.over_target += passed - len(kept)
        nodes = []
        vectors = self.cfg.setting in ("diverse", "similar") and self.quality.awaits
        for cand in kept:
            self.seen.add(question_key(cand.record.question))
            nodes.append(
                Node(
                    id=self.next_id,
                    record=cand.record,
                    parent=job.exemplar.id,
                    depth=job.exemplar.depth + 1,
                    chain=job.chain,
                    vector=cand.feature if vectors else None,  # encoded once, for both
                )
            )
            self.next_id += 1
        self.sink.write(nodes)
        self.accepted += len(nodes)
        if passed:
            self.unproductive_in_a_row = 0
        else:
            self._count_unproductive()
        self.progress.update(len(nodes), self.client.stats.requests,
                             self.client.stats.rate_limited, self.started, self.cost_postfix())
        await self.strategy.on_result(job, nodes)

    async def _screen(self, records: list[Record]) -> list[Candidate]:
        """The filters' early checks, then verification of what may still be written."""
        candidates = await self.quality.screen(records, self.rejected)
        if self.verifier is None or not candidates:
            self.quality.release(candidates)
            return candidates
        room = max(0, self.target - self.accepted)
        self.over_target += len(candidates[room:])
        try:
            reasons = await asyncio.gather(*(self.verifier.check(c.record)
                                             for c in candidates[:room]))
        finally:
            self.quality.release(candidates)
        self.rejected.update(r for r in reasons if r is not None)
        return [c for c, reason in zip(candidates, reasons) if reason is None]

    def _count_unproductive(self) -> None:
        self.unproductive += 1
        self.unproductive_in_a_row += 1

    # --- the scheduler --------------------------------------------------------------------------

    async def run(self, stop: StopSignal | None = None) -> None:
        """Send until the target is reached; raise Stopped or FatalAPIError otherwise."""
        self.progress = Progress(self.target, self.accepted, self.cfg.progress)
        finished: asyncio.Queue[asyncio.Task[None] | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        watcher = None
        if stop is not None:  # wake the scheduler when asked to stop
            watcher = loop.create_task(stop.event.wait())
            watcher.add_done_callback(lambda _: finished.put_nowait(None))
        last_summary = time.monotonic()
        try:
            while self.accepted < self.target:
                while len(tasks) < self.cfg.concurrency and self._more_needed(len(tasks)) \
                        and self.limits_spent is None:
                    job = self.strategy.next_job()
                    if job is None:
                        break
                    messages, hold = self.messages(job), None
                    if self.spend.limited:  # the first attempt's worst case, before it is sent
                        hold = self.client.reserve(messages, self.cfg.max_tokens)
                        if hold is not None and not self._room_for_votes(len(tasks) + 1):
                            self.spend.release(hold)
                            hold = None
                        if hold is None:
                            self.strategy.on_failure(job)  # not sent: it goes back
                            break
                    task = loop.create_task(self.run_job(job, messages, hold))
                    task.add_done_callback(finished.put_nowait)
                    tasks.add(task)
                if not tasks:
                    raise self.limits_spent or self.budget_stop()
                done = [await finished.get()]
                while not finished.empty():
                    done.append(finished.get_nowait())
                for task in done:
                    if task is None:
                        continue
                    tasks.discard(task)
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]  # fatal: bad key, disk full
                if stop is not None and stop.event.is_set():
                    raise Stopped("interrupted", f"stopped by {stop.reason}")
                if self.unproductive_in_a_row >= self.cfg.stall_limit:
                    raise Stopped(
                        "stalled",
                        f"the last {self.unproductive_in_a_row} requests added no new example; "
                        "the model does not follow the format or repeats itself (see 'rejected' "
                        "in the summary)",
                    )
                if time.monotonic() - last_summary > SUMMARY_EVERY_S:
                    last_summary = time.monotonic()
                    self.write_summary("running")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if watcher is not None:
                watcher.cancel()
            self.progress.close()

    def _room_for_votes(self, jobs: int) -> bool:
        """With --verify and a budget: the candidates of `jobs` replies can still be voted on (a
        reply whose candidates could not be verified would be money spent on nothing)."""
        if self.verifier is None:
            return True
        if self._vote_worst is None:
            self._vote_worst = self.verifier.worst_case(self.spend, self.exemplar)
        votes = math.ceil(jobs * self._per_reply * self.verifier.votes)
        return self.spend.fits(self._vote_worst, votes)

    def _more_needed(self, in_flight: int) -> bool:
        """Send no request that those in flight will likely make unnecessary: near the target
        it would be cancelled after the server had done (and billed) the work."""
        return self.accepted + in_flight * self._per_reply < self.target

    @property
    def _per_reply(self) -> float:
        """Records a reply has given so far (k before the first)."""
        return self.produced / self.answered if self.answered else self.cfg.num_examples

    def worst_case(self) -> float:
        """One request's worst case with the original exemplar (for messages; each attempt
        holds its own prompt's)."""
        return self.spend.worst_case(
            prompt_token_bound(render_messages(self.exemplar, self.fmt, self.cfg.num_examples)),
            self.cfg.max_tokens)

    def stopped(self, status: str, message: str) -> Stopped:
        """For drivers that run the engine's jobs another way (creator/batch.py)."""
        return Stopped(status, message)

    def start_progress(self) -> None:
        self.progress = Progress(self.target, self.accepted, self.cfg.progress)

    def budget_stop(self) -> Stopped:
        return Stopped("budget_spent", self.spend.why_spent(self.worst_case()))

    def cost_postfix(self) -> str:
        """For the progress bar: spent and projected cost."""
        if not self.cfg.priced:
            return ""
        return f", ${self.spend.cost:.4f} spent of ~${self.projected_cost():.4f}"

    def projected_cost(self) -> float:
        """What the whole output will have cost at the target: what was spent, plus the rest at
        the cost per record measured so far (before any record: the up-front projection)."""
        spent = self.spend.cost
        made = self.accepted - self.initial_accepted
        session_cost = spent - self.spend.initial_cost
        if made > 0 and session_cost > 0:
            return spent + (self.target - self.accepted) * session_cost / made
        ahead = (self.projection.cost_usd or 0.0) if self.projection else 0.0
        return spent + ahead

    # --- the summary ----------------------------------------------------------------------------

    def summary(self, status: str, error: str | None = None) -> RunSummary:
        stats = self.client.stats
        now_counts = {
            "requests": stats.requests,
            "completions": stats.completions,
            "retries": stats.retries,
            "rate_limited": stats.rate_limited,
            "server_errors": stats.server_errors,
            "timeouts": stats.timeouts,
            "connection_errors": stats.connection_errors,
            "failed_requests": sum(self.failed.values()),
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "over_target": self.over_target,
            "unproductive_requests": self.unproductive,
        }
        prev = self.previous
        totals = {k: now_counts[k] + int(prev.get(k, 0)) for k in COUNTERS}
        rejected = Counter({k: int(v) for k, v in (prev.get("rejected") or {}).items()})
        rejected.update(self.rejected)
        failed = Counter({k: int(v) for k, v in (prev.get("failed") or {}).items()})
        failed.update(self.failed)
        duration = time.monotonic() - self.started
        price_in, price_out = self.cfg.prices()
        cost = (totals["prompt_tokens"] * price_in + totals["completion_tokens"] * price_out) / 1e6
        latencies = list(self.latencies)
        return RunSummary(
            status=status, error=error, output=str(self.cfg.output), target=self.target,
            accepted=self.accepted, **totals,
            rejected=dict(sorted(rejected.items())), failed=dict(sorted(failed.items())),
            estimated_cost_usd=round(cost, 6),
            price_per_1m_tokens_usd={"input": price_in, "output": price_out},
            duration_s=round(float(prev.get("duration_s", 0.0)) + duration, 3),
            sessions=int(prev.get("sessions", 0)) + 1,
            this_session={
                "duration_s": round(duration, 3),
                "requests": stats.requests,
                "requests_per_s": round(stats.requests / max(duration, 1e-9), 3),
                "accepted_per_s": round(
                    (self.accepted - self.initial_accepted) / max(duration, 1e-9), 3),
                "latency_p50_s": _percentile(latencies, 0.50),
                "latency_p99_s": _percentile(latencies, 0.99),
            },
            identity=self.identity,
            config={
                "data_dir": str(self.cfg.data_dir),
                "data_name": self.cfg.data_name,
                # the model that answered (the replies name it), else the one asked for
                "model": (self.answered_by.most_common(1)[0][0] if self.answered_by
                          else (self.previous.get("config") or {}).get("model") or self.cfg.model),
                "requested_model": self.cfg.model,
                "base_urls": [e.base_url for e in self.cfg.endpoint_list()],
                "endpoints": [route.summary() for route in self.client.router.routes],
                "seed": self.cfg.seed,
                "concurrency": self.cfg.concurrency,
                "chains": self.cfg.num_chains,
                "rpm": self.cfg.rpm,
                "tpm": self.cfg.tpm,
                "temperature": self.cfg.temperature,
                "top_p": self.cfg.top_p,
                "max_tokens": self.cfg.max_tokens,
                "fit_max_tokens": self.fit_summary(),
                "json_schema": self.cfg.json_schema,
                "schema_style": self.cfg.schema_style,
                "batch": self.cfg.batch,
            },
            budget=self.spend.to_json(),
            projection=self.projection.to_json() if self.projection else
            dict(prev.get("projection") or {}),
            projected_cost_usd=round(self.projected_cost(), 6) if self.cfg.priced else None,
            batch=self.batch_info or dict(prev.get("batch") or {}),
            quality=self.quality_summary(),
        )  # fmt: skip

    def quality_summary(self) -> dict[str, Any]:
        out = self.quality.state()
        before = (self.previous.get("quality") or {}).get("verification")
        if self.verifier is not None:
            stats = VerifyStats()
            stats.add_json(before or {})
            stats.add_json(self.verifier.stats.to_json())
            out["verification"] = {"votes_per_candidate": self.verifier.votes, **stats.to_json()}
        elif before:  # resumed without --verify: the earlier sessions' votes still happened
            out["verification"] = dict(before)
        return out

    def write_summary(self, status: str, error: str | None = None) -> RunSummary:
        summary = self.summary(status, error)
        try:
            write_json_atomic(summary_path(self.cfg.output), summary.to_json())
        except OSError:
            pass  # the records are what matters; a full disk is reported by the sink
        return summary


@dataclass
class RunPlan:
    """Everything checked and read before anything is sent or written."""

    exemplar: Record
    fmt: TaskFormat
    target: int
    identity: dict[str, Any]
    nodes: list[Node]  # records already in the output (resume)
    previous: dict[str, Any]  # the earlier sessions' summary (resume)
    torn_bytes: int = 0
    reference_shares: list[float] | None = None  # the human split's label shares


def _same_file(a: Path, b: Path | None) -> bool:
    return b is not None and a.resolve() == b.resolve()


def plan_run(cfg: RunConfig) -> RunPlan:
    """Validate the inputs and read an existing output. No network, no writes: a bad input is
    refused before a server is started or a byte of an existing file is touched."""
    exemplar, split_size = load_exemplar(cfg.data_dir, cfg.data_name, cfg.seed, cfg.exemplar_file)
    fmt = detect_format(exemplar)
    target = cfg.target or split_size
    if target <= 0:
        raise TaskError("--target is required with --exemplar (there is no train split to size it)")
    if cfg.tpm and estimate_prompt_tokens(render_messages(exemplar, fmt, cfg.num_examples)) + \
            cfg.max_tokens > cfg.tpm:  # fmt: skip
        raise TaskError(f"--tpm {cfg.tpm:g} is below what one request needs "
                        f"(prompt + --max_tokens {cfg.max_tokens})")
    inputs = [cfg.exemplar_file] if cfg.exemplar_file else [split_path(cfg.data_dir, cfg.data_name)]
    if any(_same_file(cfg.output, path) for path in inputs):
        raise TaskError(f"--output {cfg.output} is the file the exemplar is read from; "
                        "created data must go to another file")
    identity = run_identity(cfg, exemplar, fmt)
    plan = RunPlan(exemplar, fmt, target, identity, nodes=[], previous={},
                   reference_shares=_reference_shares(cfg, fmt, inputs[0]))
    from .batch import check_state

    check_state(cfg.output, cfg.resume, cfg.overwrite, cfg.batch)
    if not (cfg.output.exists() and cfg.output.stat().st_size > 0):
        if cfg.resume:  # nothing kept yet, but what was sent and spent counts (budgets, batches)
            old = read_summary(summary_path(cfg.output))
            if old is not None and old.get("identity") == identity:
                plan.previous = old
        return plan
    if not cfg.resume:
        if cfg.overwrite:
            return plan
        raise TaskError(
            f"{cfg.output} already exists and is not empty: add --resume to continue it, "
            "--overwrite to replace it, or choose another --output"
        )
    old = read_summary(summary_path(cfg.output))
    if old is not None:
        if old.get("identity") != identity:
            raise TaskError(
                f"{cfg.output} was created with other settings "
                f"({_identity_diff(old.get('identity') or {}, identity)}); resume it with the "
                "same --setting/--seed/--num_examples/exemplar, or use another --output"
            )
        plan.previous = old
    scanned = scan_output(cfg.output)
    plan.nodes, plan.torn_bytes = scanned.nodes, scanned.torn_bytes
    return plan


def _reference_shares(cfg: RunConfig, fmt: TaskFormat, split: Path) -> list[float] | None:
    """--label_balance reference: the label (answer position) shares of the human split."""
    if cfg.quality.label_balance != "reference":
        return None
    shares = reference_shares(read_records(split), fmt.yes_no, fmt.num_options)
    if not shares or 0.0 in shares:
        raise TaskError(f"--label_balance reference: {split} does not hold every label "
                        f"{'(True and False)' if fmt.yes_no else '(answer position)'}; "
                        "use --label_balance uniform")
    return shares


def _identity_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [k for k in new if old.get(k) != new[k]]
    return ", ".join(f"{k}: file has {old.get(k)!r}, now {new[k]!r}" for k in keys
                     if k != "exemplar") or "a different exemplar"


async def _build_engine(cfg: RunConfig, plan: RunPlan, encoder: Any) -> Engine:
    root = Node(ROOT_ID, plan.exemplar, parent=None, depth=0, chain=0)
    encode = encoder.encode_async if encoder is not None else None
    strategy = make_strategy(cfg.setting, root, cfg.seed, cfg.num_chains, encode)
    await strategy.restore(plan.nodes)
    client = ChatClient(cfg.endpoint_list(), cfg.model, RetryPolicy(max_retries=cfg.max_retries),
                        cfg.timeout, max_in_flight=cfg.concurrency, seed=cfg.seed)
    client.spend = previous_spend(cfg, plan.previous)
    nodes = plan.nodes
    quality = Quality.build(cfg.quality, plan.fmt.yes_no, plan.fmt.num_options, cfg.seed,
                            plan.reference_shares, encode, plan.target)
    await quality.restore([n.record for n in nodes])  # counts and the near-duplicate index
    engine = Engine(
        cfg=cfg, exemplar=plan.exemplar, fmt=plan.fmt, target=plan.target, strategy=strategy,
        client=client, sink=JsonlSink(cfg.output),
        seen={question_key(n.record.question) for n in nodes}, accepted=len(nodes),
        next_id=max((n.id for n in nodes), default=ROOT_ID) + 1, previous=plan.previous,
        identity=plan.identity, initial_accepted=len(nodes), spend=client.spend,
        quality=quality,
    )  # fmt: skip
    if cfg.quality.verify:
        engine.verifier = Verifier(
            client, cfg.quality.verify, cfg.seed, {"temperature": cfg.temperature,
                                                    "top_p": cfg.top_p},
            json_schema=cfg.json_schema, schema_style=cfg.schema_style,
            on_failed=lambda reason: engine.failed.update([reason]))
    return engine


def previous_spend(cfg: RunConfig, previous: dict[str, Any]) -> Spend:
    """The budgets, with what earlier sessions of this output sent and spent."""
    budget = previous.get("budget") or {}
    price_in, price_out = cfg.prices()
    # at least what the earlier sessions' tokens cost at today's price: a session that ran
    # with no price (or a lower one) spent real money all the same
    spent = max(float(budget.get("spent_usd") or 0.0),
                float(previous.get("estimated_cost_usd") or 0.0),
                cost_usd(int(previous.get("prompt_tokens") or 0),
                         int(previous.get("completion_tokens") or 0), price_in, price_out))
    return Spend(cfg.max_requests, cfg.max_cost, price_in, price_out,
                 requests=int(previous.get("requests") or 0), cost=spent)


def check_budget(cfg: RunConfig, exemplar: Record, fmt: TaskFormat) -> None:
    """--max_cost needs a price, and room for one request's worst case. Raises TaskError."""
    if cfg.max_cost is None:
        return
    if not cfg.priced:
        raise TaskError(f"{option('max_cost', f'{cfg.max_cost:g}')} needs a price and "
                        f"{cfg.model or 'this model'} has no known one: give "
                        f"{option('price_in', 'USD')} and {option('price_out', 'USD')} "
                        "(per 1M tokens)")
    spend = Spend(price_in=cfg.prices()[0], price_out=cfg.prices()[1])
    bound = prompt_token_bound(render_messages(exemplar, fmt, cfg.num_examples))
    worst = spend.worst_case(bound, cfg.max_tokens)
    if worst > cfg.max_cost:
        raise TaskError(f"{option('max_cost', f'{cfg.max_cost:g}')} is below what one request "
                        f"may cost (${worst:.6f}: up to {bound} prompt tokens + "
                        f"{option('max_tokens', cfg.max_tokens)} at the {cfg.price_source()}): "
                        f"raise it or lower {option('max_tokens', 'N')}")


def make_projection(cfg: RunConfig, plan: RunPlan, in_flight: int = 0,
                    probed: dict[str, Any] | None = None) -> Projection:
    return project(cfg, plan.exemplar, plan.fmt, plan.target, len(plan.nodes), plan.previous,
                   in_flight, probed)


def _open_sink(engine: Engine, plan: RunPlan) -> None:
    """Only now, with the server known to answer, is the output touched."""
    cfg = engine.cfg
    truncate_to = None
    if plan.torn_bytes:
        truncate_to = cfg.output.stat().st_size - plan.torn_bytes
        log.warning("discarded a torn last line (%d bytes) of %s", plan.torn_bytes, cfg.output)
    engine.sink.open(truncate_to=truncate_to, overwrite=cfg.overwrite and not cfg.resume)
    if cfg.overwrite and not cfg.resume:  # starting over: an earlier run's batches are not ours
        from .batch import state_path

        state_path(cfg.output).unlink(missing_ok=True)


async def create(cfg: RunConfig, encoder: Any = None, plan: RunPlan | None = None,
                 stop: StopSignal | None = None) -> RunResult:
    """Run one data-creation job to its target (or until stopped). Raises TaskError on bad input
    and FatalAPIError when the API refuses us for good; both leave the file resumable. A
    cancelled run (Ctrl-C in a script) is recorded as interrupted."""
    plan = plan or plan_run(cfg)
    engine = await _build_engine(cfg, plan, encoder)
    if engine.accepted >= engine.target:
        data = engine.write_summary("completed")
        more = f", more than the target {engine.target}" if engine.accepted > engine.target else ""
        return RunResult("completed", engine.accepted, engine.target, data,
                         f"{cfg.output} already has {engine.accepted} records{more}: nothing "
                         "to do")
    driver = None
    try:
        async with engine.client:
            await engine.client.check_servers()
            if not cfg.model:  # none given: the model the (first) server says it serves
                served = [m for models in engine.client.served.values() for m in models]
                cfg.model = engine.client.model = served[0] if served else "default"
            check_budget(cfg, plan.exemplar, plan.fmt)  # the model, hence its price, is known
            engine.spend = engine.client.spend = previous_spend(cfg, plan.previous)  # priced
            if cfg.batch:
                from .batch import BatchDriver

                driver = await BatchDriver.open(engine, plan)  # no batch API: fails here
            engine.projection = make_projection(
                cfg, plan, driver.lines_out() if driver is not None else 0)
            if cfg.progress:  # --quiet: the projection is in the summary only
                for line in engine.projection.lines():
                    log.info("%s", line)
            _open_sink(engine, plan)
            engine.write_summary("running")
            if driver is None and not cfg.embedded:  # (the embedded server has no limits)
                engine.client.read_limits()
            try:
                await (driver.run(stop) if driver is not None else engine.run(stop))
            except Stopped as stopped:
                data = engine.write_summary(stopped.status, str(stopped))
                return RunResult(stopped.status, engine.accepted, engine.target, data,
                                 str(stopped))
            except (asyncio.CancelledError, KeyboardInterrupt):
                engine.write_summary("interrupted", "cancelled")
                raise
            except BaseException as exc:
                engine.write_summary("failed", str(exc) or type(exc).__name__)
                raise
        data = engine.write_summary("completed")
        return RunResult("completed", engine.accepted, engine.target, data)
    finally:
        if driver is not None:
            await driver.close()
        engine.sink.close()
