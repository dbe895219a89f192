"""The creator's Python API: `create`, `create_async`, `read_dataset`.

    import creator
    result = creator.create(data_dir="data/yesno_close", data_name="example",
                            setting="tree", target=50, output="out/train_tree.jsonl")
    result.status, result.accepted, result.estimated_cost_usd
    dataset = result.to_dataset()          # a datasets.Dataset

Keyword arguments are named as the command line's flags and have the same defaults and the same
refusals (creator/options.py is the one table both are built from). With no endpoint and no key
the call starts the embedded llama.cpp server and stops it when done. `create` works in a plain
script and inside a running event loop (Jupyter): there it runs the job in a thread of its own.
The library installs no signal handlers and sets no process-wide environment; bad input raises
InputError before anything is sent or written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from .clitools import why_folder_cannot_be_made
from .config import RunConfig
from .endpoints import Endpoint, EndpointsError, load_endpoints
from .errors import InputError, ServerError, option
from .filters import QualityOptions
from .options import BY_NAME, OPENAI_DEFAULT_MODEL, OPENAI_URL, check
from .records import Record, read_records
from .summary import RunSummary

log = logging.getLogger("creator")


@dataclass(frozen=True)
class CreateResult:
    """What a run did. `status` is completed, interrupted, stalled, budget_spent or failed (an
    APIError is raised instead for a refused key, no quota, or rate limits that allow nothing for
    hours), or dry_run (nothing sent: see `projection`); the figures are the output's, cumulative
    over resumed sessions."""

    status: str
    accepted: int
    target: int
    output: Path
    summary_path: Path
    model: str
    requests: int
    rate_limited: int
    retries: int
    failed_requests: int
    prompt_tokens: int
    completion_tokens: int
    estimated_cost_usd: float
    duration_s: float
    message: str
    summary: RunSummary = field(repr=False)
    projection: Any = field(default=None, repr=False)  # projection.Projection, made up front

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def records(self) -> list[Record]:
        return read_records(self.output)

    def to_dataset(self) -> Any:
        """The created records as a datasets.Dataset (see read_dataset)."""
        return read_dataset(self.output)


@dataclass
class Prepared:
    """A run checked and planned: nothing sent, nothing written yet."""

    cfg: RunConfig
    plan: Any  # engine.RunPlan
    embedded: bool  # no endpoint: start the embedded llama.cpp server
    model_path: Path | None
    notices: list[str] = field(default_factory=list)  # one-line messages for the user
    projection: Any = None  # projection.Projection: what the run should send and cost


# --- checking the arguments -------------------------------------------------------------------


def read_api_key(config_file: Path) -> str | None:
    """OPENAI_API_KEY, or the original code's openai_config.json."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if key:
        return key
    if config_file.is_file():
        try:
            data = orjson.loads(config_file.read_bytes())
        except OSError as exc:
            raise InputError(f"cannot read {config_file}: {exc.strerror}") from None
        except orjson.JSONDecodeError:
            raise InputError(f"{config_file} is not valid JSON") from None
        value = data.get("openai_api_key") if isinstance(data, dict) else None
        return value.strip() or None if isinstance(value, str) else None
    return None


def _writable_dir(folder: Path) -> bool:
    """The data folders may be read-only by their mode even for root, who may write anywhere."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return os.access(folder, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def default_output(data_dir: Path, data_name: str, setting: str) -> tuple[Path, str | None]:
    """The paper's layout, beside the data; a local folder when the data folder is read-only
    (created when the run starts, not before). Returns the path and a notice when it moved."""
    beside = data_dir / data_name / f"train_{setting}.jsonl"
    if not beside.parent.is_dir() or _writable_dir(beside.parent):
        return beside, None
    fallback = Path("created") / data_dir.name / data_name / f"train_{setting}.jsonl"
    return fallback, f"{beside.parent} is read-only; writing to {fallback}"


def _check_output(output: Path, chosen: bool) -> None:
    """A missing folder is made when the run starts (`out/run1/data.jsonl` as users write it);
    one that cannot be made, under a file or a read-only folder, is refused now."""
    problem = why_folder_cannot_be_made(output.parent) \
        if chosen and not output.parent.is_dir() else None
    if problem is not None:
        existing, kind = problem
        raise InputError(f"the folder of {option('output', output)} cannot be made: "
                         f"{existing} is {'a file' if kind == 'file' else 'read-only'}")
    if output.is_dir():
        raise InputError(f"{option('output', output)} is a folder")


def _check_url(url: str) -> None:
    """A base URL needs its scheme; an OpenAI-compatible one usually ends in /v1."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        guess = "http://" + url if "://" not in url else None
        raise InputError(f"{option('base_url', url)} is not an http(s) URL"
                         + (f": did you mean {guess}?" if guess else "")
                         + " (an OpenAI-compatible base URL looks like http://host:port/v1)")


def _endpoints(opts: dict[str, Any]) -> list[Endpoint] | None:
    """The endpoints file, with rpm/tpm as the limits of endpoints that state none."""
    given = opts["endpoints"]
    if given is None:
        return None
    if opts["base_url"]:
        raise InputError(f"{option('endpoints', 'FILE')} and {option('base_url', 'URL')} both "
                         "say where to send requests: list every base URL in the endpoints file, "
                         "or give base URLs alone")
    try:
        endpoints = load_endpoints(given)
    except EndpointsError as exc:
        raise InputError(str(exc)) from None
    return [replace(e, rpm=e.rpm or opts["rpm"], tpm=e.tpm or opts["tpm"]) for e in endpoints]


def quality_options(opts: dict[str, Any]) -> QualityOptions:
    """The filters of issue 14; `auto` near-duplicate detection uses embeddings where the run
    loads the sentence encoder anyway (diverse, similar), MinHash elsewhere."""
    near_dup = opts["near_dup"]
    if near_dup == "auto":
        near_dup = "embedding" if opts["setting"] in ("diverse", "similar") else "minhash"
    return QualityOptions(
        shuffle_options=opts["shuffle_options"] is not False, near_dup=near_dup,
        near_dup_threshold=opts["near_dup_threshold"], minhash_threshold=opts["minhash_threshold"],
        label_balance=opts["label_balance"], label_tolerance=opts["label_tolerance"],
        verify=opts["verify"],
    )


def prepare(api_key: str | None = None, **options: Any) -> Prepared:
    """Check every argument and plan the run: no network, no writes. Raises InputError."""
    unknown = sorted(set(options) - set(BY_NAME))
    if unknown:
        raise InputError(f"unknown argument(s) {', '.join(unknown)} (the names are the "
                         "creator create flags without dashes: data_dir, setting, target, ...)")
    opts = {name: check(name, options.get(name)) for name in BY_NAME}
    if opts["resume"] and opts["overwrite"]:
        raise InputError(f"{option('resume')} and {option('overwrite')} contradict each other: "
                         "pick one")
    if opts["probe"] and not opts["dry_run"]:
        raise InputError(f"{option('probe', opts['probe'])} measures the model for "
                         f"{option('dry_run')}'s projection: add {option('dry_run')} (a run "
                         "measures as it goes; the progress bar shows the projected cost)")
    notices: list[str] = []
    output = opts["output"]
    if output is None:
        output, moved = default_output(opts["data_dir"], opts["data_name"], opts["setting"])
        if moved:
            notices.append(moved)
    _check_output(output, chosen=opts["output"] is not None)
    api_key = api_key or read_api_key(opts["openai_config"])
    for url in opts["base_url"] or []:
        _check_url(url)
    endpoints = _endpoints(opts)
    base_urls = [e.base_url for e in endpoints] if endpoints else \
        opts["base_url"] or ([OPENAI_URL] if api_key else [])
    embedded = not base_urls
    if embedded and opts["model"] is not None:
        from .local import _alias_for

        served = _alias_for(opts["model_path"])
        if opts["model"] != served:
            raise InputError(
                f"{option('model', opts['model'])} needs an API: with no API key and no "
                f"{option('base_url', 'URL')} the run would use the embedded server, which "
                f"serves only {served!r}; set OPENAI_API_KEY (or {option('base_url', 'URL')}), "
                f"or leave out {option('model', opts['model'])}")
    cfg = RunConfig(
        data_dir=opts["data_dir"], data_name=opts["data_name"], setting=opts["setting"],
        output=output, model=opts["model"] or "", base_urls=base_urls, api_key=api_key,
        endpoints=endpoints, num_examples=opts["num_examples"], seed=opts["seed"],
        target=opts["target"], exemplar_file=opts["exemplar"],
        concurrency=opts["concurrency"] or (2 if embedded else 16), chains=opts["chains"],
        rpm=opts["rpm"], tpm=opts["tpm"], temperature=opts["temperature"],
        top_p=opts["top_p"], max_tokens=opts["max_tokens"],
        fit_max_tokens=opts["fit_max_tokens"] != "off",
        json_schema=opts["json_schema"] if opts["json_schema"] is not None else embedded,
        schema_style=opts["schema_style"] or ("llamacpp" if embedded else "openai"),
        timeout=opts["timeout"], max_retries=opts["max_retries"],
        max_requests=opts["max_requests"], patience=opts["patience"], resume=opts["resume"],
        overwrite=opts["overwrite"], encoder=opts["encoder"],
        encoder_backend=opts["encoder_backend"], price_in=opts["price_in"],
        price_out=opts["price_out"], progress=not opts["quiet"], max_cost=opts["max_cost"],
        dry_run=opts["dry_run"], probe=opts["probe"], acceptance_prior=opts["acceptance_prior"],
        batch=opts["batch"], batch_size=opts["batch_size"], batch_poll=opts["batch_poll"],
        quality=quality_options(opts), embedded=embedded,
    )  # fmt: skip
    _check_batch(cfg, embedded)
    from .engine import check_budget, make_projection, plan_run

    plan = plan_run(cfg)  # bad input is refused before any server starts or file is touched
    if not cfg.dry_run:  # a dry run writes nothing
        notices.append(f"writing {output} (summary: {summary_path(output)})")
    if not embedded and base_urls == [OPENAI_URL]:
        cfg.model = cfg.model or OPENAI_DEFAULT_MODEL
    # elsewhere, with no model given, the run asks the server which model it serves
    if cfg.model or cfg.price_in is not None or cfg.price_out is not None:
        check_budget(cfg, plan.exemplar, plan.fmt)  # else once the server names its model
    projection = make_projection(cfg, plan)
    return Prepared(cfg, plan, embedded, opts["model_path"], notices, projection)


def _check_batch(cfg: RunConfig, embedded: bool) -> None:
    from .batch import MAX_BATCH_REQUESTS

    if cfg.batch_size > MAX_BATCH_REQUESTS:
        raise InputError(f"{option('batch_size', cfg.batch_size)} is above the "
                         f"{MAX_BATCH_REQUESTS:,} requests a batch may hold")
    if not cfg.batch:
        return
    if embedded:
        raise InputError(f"{option('batch')} needs an API with a Batch API (OpenAI, or "
                         f"{option('base_url', 'URL')} of one); the embedded server has none")
    if cfg.quality.verify:  # votes are answered at once, at the full price, one reply at a time
        raise InputError(f"{option('verify', cfg.quality.verify)} is not available with "
                         f"{option('batch')} yet: the votes would be sent one by one at the "
                         "full price outside the batch; run without one of them")
    if len(cfg.endpoint_list()) > 1:
        raise InputError(f"{option('batch')} sends every batch to one API: give one "
                         f"{option('base_url', 'URL')} (or one endpoint)")


# --- running -----------------------------------------------------------------------------------


class Resources:
    """What a run needs beside the event loop: the sentence encoder (diverse/similar) and, with
    no endpoint, the embedded server. Loaded in the calling thread (the encoder first: a missing
    one is bad input, found before a server starts); released on exit, whatever happened."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.encoder: Any = None
        self.server: Any = None

    def __enter__(self) -> "Resources":
        cfg = self.prepared.cfg
        try:
            if cfg.setting in ("diverse", "similar") or cfg.quality.near_dup == "embedding":
                from .embed import EncoderError, SentenceEncoder

                try:
                    self.encoder = SentenceEncoder(cfg.encoder, backend=cfg.encoder_backend)
                except EncoderError as exc:
                    raise InputError(str(exc)) from None
            if self.prepared.embedded:
                from .local import LocalServer, LocalServerError

                self.server = LocalServer(model_path=self.prepared.model_path)
                try:
                    self.server.start()
                except LocalServerError as exc:
                    raise ServerError(f"the embedded server did not start: {exc}") from None
                cfg.base_urls = [self.server.base_url]
                cfg.model = cfg.model or self.server.model
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.encoder is not None:
            self.encoder.close()
        if self.server is not None:
            self.server.stop()  # on success, errors, Ctrl-C and SIGTERM alike


async def run(prepared: Prepared, resources: Resources, stop: Any = None) -> CreateResult:
    """Run a prepared job with its resources loaded; `stop` (engine.StopSignal) ends it cleanly."""
    from .engine import create as run_engine

    cfg = prepared.cfg
    cfg.output.parent.mkdir(parents=True, exist_ok=True)  # the read-only data's fallback folder
    outcome = await run_engine(cfg, resources.encoder, prepared.plan, stop)
    s = outcome.summary
    return CreateResult(
        status=outcome.status, accepted=outcome.accepted, target=outcome.target,
        output=cfg.output, summary_path=summary_path(cfg.output), model=cfg.model,
        requests=s.requests, rate_limited=s.rate_limited, retries=s.retries,
        failed_requests=s.failed_requests, prompt_tokens=s.prompt_tokens,
        completion_tokens=s.completion_tokens, estimated_cost_usd=s.estimated_cost_usd,
        duration_s=s.duration_s, message=outcome.message, summary=s,
        projection=prepared.projection,
    )  # fmt: skip


async def probe(prepared: Prepared) -> None:
    """--probe N: run the job for N requests in a temporary folder and replace
    `prepared.projection` with one made from what they measured (creator/probe.py). Raises
    APIError (the API refused us, or no reply came) or ServerError (no embedded server)."""
    import tempfile

    from .engine import make_projection, plan_run
    from .probe import check_probed, probe_config
    from .sink import read_summary

    cfg = prepared.cfg
    if prepared.projection.remaining <= 0:  # the output is complete: nothing to measure for
        return
    with tempfile.TemporaryDirectory(prefix="creator-probe-") as folder:
        job_cfg = probe_config(cfg, Path(folder))
        job = Prepared(job_cfg, plan_run(job_cfg), prepared.embedded, prepared.model_path)
        result = await run_loaded(job)
        probed = read_summary(summary_path(job_cfg.output)) or {}
    check_probed(cfg, probed, result.status, result.message)
    cfg.model = cfg.model or job_cfg.model  # asked of the server: its price, if listed
    prepared.projection = make_projection(cfg, prepared.plan, probed=probed)


def dry_run_result(prepared: Prepared) -> CreateResult:
    """What `dry_run=True` returns: the projection, nothing sent or written."""
    cfg, plan, p = prepared.cfg, prepared.plan, prepared.projection
    summary = RunSummary(status="dry_run", output=str(cfg.output), target=plan.target,
                         accepted=len(plan.nodes), projection=p.to_json())
    return CreateResult(
        status="dry_run", accepted=len(plan.nodes), target=plan.target, output=cfg.output,
        summary_path=summary_path(cfg.output), model=cfg.model, requests=0, rate_limited=0,
        retries=0, failed_requests=0, prompt_tokens=0, completion_tokens=0,
        estimated_cost_usd=0.0, duration_s=0.0, message="\n".join(p.lines()), summary=summary,
        projection=p,
    )  # fmt: skip


def summary_path(output: Path) -> Path:
    return output.with_name(output.stem + ".summary.json")


def _announce(prepared: Prepared) -> None:
    for notice in prepared.notices:
        log.warning("%s", notice)


def create(data_dir: str | os.PathLike | None = None, data_name: str | None = None,
           setting: str | None = None, **options: Any) -> CreateResult:
    """Create a training set from one exemplar: `creator create` from Python.

    Arguments are the command line's flags without dashes (data_dir, data_name, setting, target,
    output, base_url, model, rpm, ...), with the same defaults; `api_key` may be given instead of
    OPENAI_API_KEY. Returns a CreateResult; raises InputError for bad arguments or data (nothing
    sent or written), APIError when the API refuses us for good, ServerError when the embedded
    server does not start, OutputError when the output cannot be written."""
    prepared = prepare(data_dir=data_dir, data_name=data_name, setting=setting, **options)
    _announce(prepared)
    if prepared.cfg.dry_run:
        if prepared.cfg.probe:
            run_to_end(probe(prepared))
        return dry_run_result(prepared)
    with Resources(prepared) as resources:
        return run_to_end(run(prepared, resources))


def run_to_end(job: Any) -> Any:
    """Run a coroutine from synchronous code, even where an event loop already runs in this
    thread (Jupyter, an async app): there ours gets a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(job)
    with ThreadPoolExecutor(1, thread_name_prefix="creator") as pool:
        return pool.submit(asyncio.run, job).result()


async def create_async(data_dir: str | os.PathLike | None = None, data_name: str | None = None,
                       setting: str | None = None, **options: Any) -> CreateResult:
    """`create` for a caller that is itself a coroutine: the job runs on the caller's loop; the
    encoder and the embedded server are loaded in a worker thread so the loop is not blocked."""
    prepared = prepare(data_dir=data_dir, data_name=data_name, setting=setting, **options)
    _announce(prepared)
    if prepared.cfg.dry_run:
        if prepared.cfg.probe:
            await probe(prepared)
        return dry_run_result(prepared)
    return await run_loaded(prepared)


async def run_loaded(prepared: Prepared) -> CreateResult:
    """`run` on the caller's loop, the encoder and the embedded server loaded and released in a
    worker thread so the loop is not blocked."""
    resources = Resources(prepared)
    await asyncio.to_thread(resources.__enter__)
    try:
        return await run(prepared, resources)
    finally:
        await asyncio.to_thread(resources.__exit__)


# --- reading what was created ------------------------------------------------------------------


def read_dataset(path: str | os.PathLike) -> Any:
    """A JSONL file of records (human or created, old or new) as a datasets.Dataset with the
    columns question, context, options (a sequence of strings) and label: a ClassLabel
    (False, True) for yes/no, the option's text for multiple choice. Files of one format read
    this way concatenate with datasets.concatenate_datasets, with no cast."""
    try:
        import datasets
    except ImportError:
        raise InputError("read_dataset needs the datasets package: "
                         "pip install 'llm-data-creator[datasets]'") from None
    records = read_records(Path(path))
    yes_no = bool(records) and all(r.yes_no for r in records)
    label = datasets.ClassLabel(names=["False", "True"]) if yes_no else datasets.Value("string")
    features = datasets.Features({
        "question": datasets.Value("string"), "context": datasets.Value("string"),
        "options": datasets.Sequence(datasets.Value("string")), "label": label,
    })
    columns = {
        "question": [r.question for r in records], "context": [r.context for r in records],
        "options": [list(r.options) for r in records],
        "label": [int(r.label == "True") if yes_no else r.label for r in records],
    }
    return datasets.Dataset.from_dict(columns, features=features)
