"""The paper's experiment in one command: create data per setting, train the small model on each
created set and on the human data with the learning-rate sweep, evaluate in and out of
distribution, and write one results table (JSON + markdown) and a bar chart.

    python -m benchmarks.experiment --data_dir ../shared/data/yesno_close --data_name strategyqa \
        --settings naive random tree --target 100 --eval_on creak --out out/experiment/strategyqa \
        [--base_url URL --model M] [--learning_rates 5e-6 1e-5 2e-5] [--trainer_args "..."]

Every step is a subprocess of the real command line tools, so the experiment exercises exactly what
users run:

1. create: `python -m creator create ... --output OUT/created/train_{setting}.jsonl` per setting
   (`--overwrite`, or `--resume` with --resume_experiment); tokens, cost and time come from its
   summary JSON; `python -m creator report` gives label balance and diversity of what was created.
2. train: `python -m trainer.sweep` per setting and for `original` (the human train split, cut to
   the first --original_examples records, by default --target, so both sides train on as many
   examples); the best learning rate by dev accuracy is kept, as in the paper.
3. out of distribution: the best run's saved `best_model/` is evaluated by `python -m trainer
   evaluate` on the --eval_on datasets' dev and test splits (same format folder), with the trainer's
   own data reading, encoding and evaluation. It re-evaluates the in-distribution splits too, and
   the experiment records whether they reproduce the trainer's accuracies (`eval_check`), so the
   two paths are known to agree.
4. one table: OUT/experiment_{name}.json and .md, and a bar chart .png (written to --results, by
   default OUT), with a `majority class` row: the accuracy of always answering the most frequent
   label (answer position, for multiple choice) of each evaluated split.

    python -m trainer evaluate --run_dir OUT/runs/naive/lr_1e-05 \
        --data_dir DIR --data_name strategyqa creak --output OUT/eval/naive.json
    python -m benchmarks.experiment render benchmarks/results/experiment_*.json   # redraw md, png
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from trainer.evaluation import majority_share

from .common import machine_info

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT_PACKAGES = ("torch", "transformers", "accelerate", "llama-cpp-python", "llm-data-creator")
SETTINGS = ("naive", "random", "diverse", "similar", "tree")
PAPER_LEARNING_RATES = (5e-6, 1e-5, 2e-5)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class ExperimentError(RuntimeError):
    """A step failed in a way that makes the rest meaningless: one line on stderr, exit 1."""


def log(message: str) -> None:
    print(f"experiment: {message}", file=sys.stderr, flush=True)


# --- arguments -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.experiment",
        description="Create data per setting, train the small model on it and on the human data "
        "with the learning-rate sweep, evaluate in and out of distribution, write one table and "
        "a bar chart.",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data_dir", type=Path, required=True,
                      help="format folder, e.g. ../shared/data/yesno_close")
    data.add_argument("--data_name", required=True, help="dataset in it, e.g. strategyqa")
    data.add_argument("--eval_on", nargs="*", default=[], metavar="NAME",
                      help="out-of-distribution datasets in the same --data_dir (dev and test)")

    create = parser.add_argument_group("creation (python -m creator create)")
    create.add_argument("--settings", nargs="+", default=["naive", "random", "tree"],
                        choices=SETTINGS, metavar="SETTING",
                        help=f"creation settings, from {', '.join(SETTINGS)} (default: naive "
                        "random tree)")
    create.add_argument("--target", type=int,
                        help="examples to create per setting (default: the size of the human "
                        "train split, as in the paper)")
    create.add_argument("--base_url", action="append", default=[], metavar="URL",
                        help="OpenAI-compatible API (repeatable); default: OpenAI when "
                        "OPENAI_API_KEY is set, else the embedded llama.cpp server")
    create.add_argument("--model", help="model name sent to the API")
    create.add_argument("--num_examples", type=int, default=5, help="examples per request")
    create.add_argument("--seed", type=int, default=42, help="exemplar draw and settings' choices")
    create.add_argument("--max_requests", type=int,
                        help="request budget per setting (the run keeps what it created)")
    create.add_argument("--creator_args", default="",
                        help='more `creator create` flags, e.g. "--concurrency 64 --rpm 5000"')
    create.add_argument("--no_report", action="store_true",
                        help="skip `creator report` (label balance, diversity) of created data")

    train = parser.add_argument_group("training (python -m trainer.sweep)")
    train.add_argument("--learning_rates", type=float, nargs="+",
                       default=list(PAPER_LEARNING_RATES), help="default: the paper's 5e-6 1e-5 2e-5")
    train.add_argument("--trainer_args", default="",
                       help='more trainer flags for every run, e.g. "--num_train_epochs 3 '
                       '--max_seq_length 128" (default: the paper\'s settings)')
    train.add_argument("--launcher", default="",
                       help='run each training under it, e.g. "torchrun --nproc_per_node 4"')
    train.add_argument("--original_examples", default=None, metavar="N|all",
                       help="human train examples for `original`: the first N (default: "
                       "--target, the same size as each created set) or all")
    train.add_argument("--no_original", action="store_true", help="do not train on the human data")

    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True,
                     help="working folder: created/, runs/, eval/, logs/")
    run.add_argument("--results", type=Path,
                     help="folder for experiment_{name}.json/.md/.png (default: --out)")
    run.add_argument("--name", help="results file name part (default: --data_name)")
    run.add_argument("--resume_experiment", action="store_true",
                     help="reuse what OUT holds: completed creations, finished training runs, "
                     "evaluations (default: create with --overwrite and train afresh)")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    dataset = args.data_dir / args.data_name
    if not (dataset / "dev.jsonl").is_file():
        parser.error(f"no dev split: {dataset / 'dev.jsonl'}")
    if args.target is None:  # the creator's default: the size of the split the exemplar comes from
        source = dataset / "train.jsonl"
        args.target = count_lines(source if source.is_file() else dataset / "dev.jsonl")
    if args.target < 1:
        parser.error("--target must be at least 1")
    if args.max_requests is not None and args.max_requests < 1:
        parser.error("--max_requests must be at least 1")
    if len(set(args.settings)) != len(args.settings):
        parser.error("--settings lists a setting twice")
    args.creator_list = shlex.split(args.creator_args)
    args.trainer_list = shlex.split(args.trainer_args)
    owned_creator = {"--data_dir", "--data_name", "--setting", "--output", "--target", "--resume",
                     "--overwrite", "--seed", "--num_examples", "--base_url", "--model",
                     "--max_requests"}
    owned_trainer = {"--data_dir", "--data_name", "--setting", "--train_file", "--output_dir",
                     "--learning_rate", "--learning_rates", "--resume_from_checkpoint",
                     "--launcher"}
    for flags, owned, what in ((args.creator_list, owned_creator, "--creator_args"),
                               (args.trainer_list, owned_trainer, "--trainer_args")):
        for flag in flags:
            if flag.split("=", 1)[0] in owned:
                parser.error(f"{what} may not set {flag.split('=', 1)[0]}: the experiment sets it")
    if "--max_train_examples" in [f.split("=", 1)[0] for f in args.trainer_list]:
        parser.error("--trainer_args may not set --max_train_examples: use --original_examples "
                     "(created sets are used whole)")
    if args.original_examples in (None, ""):
        args.original_limit = args.target
    elif args.original_examples == "all":
        args.original_limit = None
    else:
        try:
            args.original_limit = int(args.original_examples)
        except ValueError:
            parser.error(f"--original_examples: expected a number or all, got "
                         f"{args.original_examples!r}")
        if args.original_limit < 1:
            parser.error("--original_examples must be at least 1")
    # The trainer's own parser checks the pass-through arguments now, not after an hour of creation.
    from trainer.cli import build_parser as trainer_parser

    try:
        args.trainer_config = trainer_parser("--trainer_args").parse_args(
            args.trainer_list + ["--data_dir", str(args.data_dir), "--data_name", args.data_name,
                                 "--output_dir", str(args.out)])
    except SystemExit:
        parser.error("--trainer_args is not valid for the trainer (see above)")
    if not args.no_original and not (dataset / "train.jsonl").is_file():
        parser.error(f"no human train split for `original`: {dataset / 'train.jsonl'} "
                     "(add --no_original)")
    for name in args.eval_on:
        if not (args.data_dir / name / "dev.jsonl").is_file():
            parser.error(f"--eval_on {name}: no {args.data_dir / name / 'dev.jsonl'} "
                         "(the out-of-distribution dataset must be in the same format folder)")
    if args.data_name in args.eval_on:
        parser.error("--eval_on names the training dataset itself")
    args.name = args.name or args.data_name
    args.results = args.results or args.out
    return args


# --- subprocesses --------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # `-m trainer`, `-m creator` must import from this checkout wherever we run.
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_logged(command: list[str], log_path: Path) -> tuple[int, float]:
    """Run a command with its output in log_path; (exit code, wall seconds)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log(f"$ {shlex.join(command)}  (log: {log_path})")
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=child_env())
        try:
            code = process.wait()
        except KeyboardInterrupt:
            process.terminate()  # our own child: it stops cleanly on SIGTERM (resumable)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise
    return code, time.monotonic() - started


def tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return 0


# --- step 1: create ------------------------------------------------------------------------------


def created_path(args: argparse.Namespace, setting: str) -> Path:
    return args.out / "created" / f"train_{setting}.jsonl"


def summary_of(output: Path) -> Path:
    return output.with_name(output.stem + ".summary.json")  # creator/sink.py: summary_path


def create_setting(args: argparse.Namespace, setting: str) -> dict:
    output = created_path(args, setting)
    output.parent.mkdir(parents=True, exist_ok=True)
    summary = read_json(summary_of(output)) if args.resume_experiment else None
    row: dict[str, Any] = {"file": str(output)}
    budget_spent = bool(summary and args.max_requests
                        and (summary.get("requests") or 0) >= args.max_requests)
    if summary and summary.get("target") == args.target and (
            (summary.get("status") == "completed" and count_lines(output) >= args.target)
            or budget_spent):
        log(f"{setting}: creation already completed in {output}"
            + (" (request budget spent)" if budget_spent else ""))
        row.update(exit_code=0, wall_s=0.0, reused=True)
    else:
        command = [sys.executable, "-m", "creator", "create", "--data_dir", str(args.data_dir),
                   "--data_name", args.data_name, "--setting", setting,
                   "--target", str(args.target), "--seed", str(args.seed),
                   "--num_examples", str(args.num_examples), "--output", str(output), "--quiet"]
        command.append("--resume" if args.resume_experiment and output.is_file()
                       and output.stat().st_size else "--overwrite")
        for url in args.base_url:
            command += ["--base_url", url]
        if args.model:
            command += ["--model", args.model]
        if args.max_requests:
            command += ["--max_requests", str(args.max_requests)]
        command += args.creator_list
        log_path = args.out / "logs" / f"create_{setting}.log"
        code, wall = run_logged(command, log_path)
        row.update(exit_code=code, wall_s=round(wall, 1), reused=False)
        if code == EXIT_INTERRUPTED:
            raise KeyboardInterrupt
        if code == EXIT_USAGE:
            raise ExperimentError(f"creator refused the input for {setting}:\n{tail(log_path)}")
        if code != EXIT_OK:
            log(f"{setting}: creator stopped early (exit {code}); training on what it created:\n"
                f"{tail(log_path, 3)}")
        summary = read_json(summary_of(output))
    summary = summary or {}
    keep = ("status", "error", "target", "accepted", "requests", "completions", "retries",
            "rate_limited", "failed_requests", "prompt_tokens", "completion_tokens",
            "estimated_cost_usd", "duration_s", "rejected", "sessions")
    row["summary"] = {key: summary.get(key) for key in keep}
    row["model"] = (summary.get("config") or {}).get("model")
    row["backend"] = ", ".join((summary.get("config") or {}).get("base_urls") or []) or None
    row["created"] = count_lines(output)
    return row


def report_setting(args: argparse.Namespace, setting: str) -> dict | None:
    """`creator report` of the created file: label balance, diversity, near-duplicates."""
    output = created_path(args, setting)
    report_json = args.out / "created" / f"report_{setting}.json"
    if args.resume_experiment and report_json.is_file() and (
            report_json.stat().st_mtime >= output.stat().st_mtime):
        return read_json(report_json)
    command = [sys.executable, "-m", "creator", "report", str(output), "--json", str(report_json)]
    code, _ = run_logged(command, args.out / "logs" / f"report_{setting}.log")
    if code != 0:
        log(f"{setting}: creator report failed (exit {code}); going on without it")
        return None
    return read_json(report_json)


def quality_of(report: dict | None) -> dict | None:
    if not report or not report.get("created"):
        return None
    created = report["created"]
    positions = created.get("answer_positions") or {}
    return {
        "majority_label_share": (created.get("labels") or {}).get("majority_fraction"),
        "label_counts": (created.get("labels") or {}).get("counts"),
        "majority_answer_position_share": positions.get("majority_fraction"),
        "answer_positions": positions.get("counts"),
        "near_duplicate_rate": (created.get("near_duplicates") or {}).get("rate"),
        "mean_pairwise_cosine_distance": (created.get("diversity") or {}).get(
            "mean_pairwise_cosine_distance"),
        "distinct_2": (created.get("diversity") or {}).get("distinct_2"),
        "question_words_mean": ((created.get("lengths") or {}).get("question_words") or {}).get(
            "mean"),
    }


# --- step 2: train -------------------------------------------------------------------------------


def train_setting(args: argparse.Namespace, setting: str, fresh: bool) -> dict:
    """The sweep on one training set; `fresh` drops earlier runs (the data may have changed)."""
    run_dir = args.out / "runs" / setting
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)  # the sweep would otherwise reuse a finished lr_* folder
    command = [sys.executable, "-m", "trainer.sweep", "--output_dir", str(run_dir),
               "--learning_rates", *[f"{rate:g}" for rate in args.learning_rates]]
    if args.launcher:
        command += ["--launcher", args.launcher]
    command += ["--data_dir", str(args.data_dir), "--data_name", args.data_name]
    if setting == "original":
        command += ["--setting", "original"]
        if args.original_limit:
            command += ["--max_train_examples", str(args.original_limit)]
    else:
        command += ["--train_file", str(created_path(args, setting))]
    command += args.trainer_list
    code, wall = run_logged(command, args.out / "logs" / f"train_{setting}.log")
    if code == EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    sweep = read_json(run_dir / "sweep.json")
    if code != 0 or not sweep or not sweep.get("best"):
        raise ExperimentError(f"training on {setting} failed (exit {code}):\n"
                              f"{tail(args.out / 'logs' / f'train_{setting}.log')}")
    best = sweep["best"]
    runs = [
        {key: run.get(key) for key in ("learning_rate", "dev_acc", "test_acc", "best_epoch",
                                       "train_seconds")}
        for run in sweep["runs"]
    ]
    metrics = read_json(Path(best["output_dir"]) / "metrics.json") or {}
    return {
        "best_run_dir": best["output_dir"],
        "best_learning_rate": best["learning_rate"],
        "best_epoch": best.get("best_epoch"),
        "dev_acc": best["dev_acc"],
        "test_acc": best.get("test_acc"),
        "dev_examples": metrics.get("dev_examples"),
        "test_examples": metrics.get("test_examples"),
        "train_examples": best.get("train_examples"),
        "skipped_train_examples": (metrics.get("skipped_examples") or {}).get("train"),
        "train_s": round(sum(run.get("train_seconds") or 0.0 for run in sweep["runs"]), 1),
        "sweep_wall_s": round(wall, 1),
        "sweep": runs,
    }


# --- step 3: evaluate in and out of distribution -------------------------------------------------


def evaluate_setting(args: argparse.Namespace, setting: str, best_run_dir: str) -> dict:
    output = args.out / "eval" / f"{setting}.json"
    if args.resume_experiment:
        previous = read_json(output)
        metrics = Path(best_run_dir) / "metrics.json"
        if (previous and previous.get("run_dir") == best_run_dir and metrics.is_file()
                and output.stat().st_mtime >= metrics.stat().st_mtime):
            return previous
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    command = [sys.executable, "-m", "trainer", "evaluate", "--run_dir", best_run_dir,
               "--data_dir", str(args.data_dir), "--data_name", args.data_name, *args.eval_on,
               "--output", str(output)]
    code, wall = run_logged(command, args.out / "logs" / f"eval_{setting}.log")
    if code == EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    result = read_json(output)
    if code != 0 or result is None:
        raise ExperimentError(f"evaluating {setting} failed (exit {code}):\n"
                              f"{tail(args.out / 'logs' / f'eval_{setting}.log')}")
    result["wall_s"] = round(wall, 1)
    return result


def eval_check(args: argparse.Namespace, evaluation: dict) -> dict:
    """Does the evaluator reproduce the trainer's own in-distribution dev (and test) accuracy?"""
    own = evaluation["datasets"][args.data_name]
    dev = own["dev"]["acc"] if own.get("dev") else None
    test = own["test"]["acc"] if own.get("test") else None
    trainer_dev, trainer_test = evaluation["trainer_dev_acc"], evaluation["trainer_test_acc"]
    same = (dev is not None and abs(dev - trainer_dev) < 1e-9
            and (trainer_test is None or (test is not None and abs(test - trainer_test) < 1e-9)))
    return {"evaluator_dev_acc": dev, "evaluator_test_acc": test, "trainer_dev_acc": trainer_dev,
            "trainer_test_acc": trainer_test, "reproduced": same}


# --- step 4: the table and the chart -------------------------------------------------------------


def baselines(args: argparse.Namespace) -> dict:
    """Majority-class accuracy (answer position for multiple choice) of each evaluated split, over
    the same examples the models are evaluated on (the first --max_eval_examples)."""
    from trainer.errors import InputError
    from trainer.data import detect_format, load_split, read_jsonl

    limit = args.trainer_config.max_eval_examples
    first = read_jsonl(args.data_dir / args.data_name / "dev.jsonl", "dev")[0][1]
    task_format, num_options = detect_format(first)
    out: dict[str, dict] = {}
    for name in [args.data_name, *args.eval_on]:
        out[name] = {}
        for split_name in ("dev", "test"):
            path = args.data_dir / name / f"{split_name}.jsonl"
            try:
                split = load_split(path, split_name, task_format, num_options, limit=limit)
            except InputError:
                out[name][split_name] = None
                continue
            out[name][split_name] = majority_share([example.label for example in split.examples])
    return {"format": task_format, "num_options": num_options, "majority": out}


def human_quality(args: argparse.Namespace) -> dict:
    """Label balance of the human examples `original` trains on (the first --original_examples)."""
    from trainer.data import detect_format, load_split, read_jsonl

    path = args.data_dir / args.data_name / "train.jsonl"
    records = read_jsonl(path, "train")
    task_format, num_options = detect_format(records[0][1])
    split = load_split(path, "train", task_format, num_options, limit=args.original_limit,
                       records=records)
    labels = [example.label for example in split.examples]
    share = majority_share(labels)
    if task_format == "yesno":
        return {"majority_label_share": share,
                "label_counts": dict(Counter(split.examples[0].options[i] for i in labels))}
    return {"majority_answer_position_share": share,
            "answer_positions": dict(Counter(str(i) for i in labels))}


def metric_columns(args: argparse.Namespace) -> list[tuple[str, str, str, str, str]]:
    """(key in a row, column title, short label for the chart, dataset, split)."""
    columns = [("dev_acc", f"{args.data_name} dev", "dev", args.data_name, "dev"),
               ("test_acc", f"{args.data_name} test", "test", args.data_name, "test")]
    for name in args.eval_on:
        for split in ("dev", "test"):
            columns.append((f"ood_{name}_{split}", f"{name} {split} (OOD)",
                            f"{name} {split} (OOD)", name, split))
    return columns


def baseline_of(result: dict, column: tuple) -> float | None:
    """The majority-class accuracy of the split a column reports on."""
    _, _, _, dataset, split = column
    return (result["baseline"]["majority"].get(dataset) or {}).get(split)


def markdown_table(result: dict, columns: list[tuple]) -> str:
    def cell(value: Any, digits: int = 3) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    head = (["setting", "train examples", "best lr"] + [column[1] for column in columns]
            + ["train majority share", "prompt tokens", "completion tokens", "cost USD",
               "create s", "train s (sweep)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        quality = row.get("quality") or {}
        share = quality.get("majority_answer_position_share") or quality.get(
            "majority_label_share")
        created = row.get("creation") or {}
        summary = created.get("summary") or {}
        train_examples = row.get("train_examples")
        if row["setting"] != "original" and train_examples is not None and (
                train_examples < result["config"]["target"]):
            train_examples = f"{train_examples} of {result['config']['target']}"
        rate = row.get("best_learning_rate")
        cells = ([row["setting"], cell(train_examples), "-" if rate is None else f"{rate:g}"]
                 + [cell(row.get(column[0])) for column in columns]
                 + [cell(share, 2), cell(summary.get("prompt_tokens")),
                    cell(summary.get("completion_tokens")),
                    cell(summary.get("estimated_cost_usd"), 4),
                    cell(summary.get("duration_s"), 0), cell(row.get("train_s"), 0)])
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["majority class", "-", "-"] + [cell(baseline_of(result, c)) for c in columns]
    cells += ["-"] * 6
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, columns: list[tuple], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    data_name = result["config"]["data_name"]
    groups = ["majority class"] + [row["setting"] for row in result["rows"]]
    values = [[baseline_of(result, column) for column in columns]]
    for row in result["rows"]:
        values.append([row.get(column[0]) for column in columns])
    matrix = np.array([[np.nan if v is None else v for v in line] for line in values], dtype=float)

    fig, ax = plt.subplots(figsize=(max(7.0, 1.3 * len(groups) * max(1, len(columns)) / 2), 4.8))
    try:
        width = 0.8 / len(columns)
        x = np.arange(len(groups))
        colors = plt.get_cmap("tab10").colors
        for i, (_, _, label, _, _) in enumerate(columns):
            offset = (i - (len(columns) - 1) / 2) * width
            bars = ax.bar(x + offset, matrix[:, i], width, label=label, color=colors[i % 10])
            for g, bar in enumerate(bars):
                if groups[g] == "majority class":
                    bar.set_alpha(0.45)
                if groups[g] == "original":
                    bar.set_hatch("//")
                if not np.isnan(matrix[g, i]):
                    ax.annotate(f"{matrix[g, i]:.2f}", (bar.get_x() + bar.get_width() / 2,
                                                      matrix[g, i]),
                                ha="center", va="bottom", fontsize=7, rotation=90,
                                xytext=(0, 2), textcoords="offset points")
        labels = []
        for g, name in enumerate(groups):
            row = result["rows"][g - 1] if g else None
            if row is None:
                labels.append(name)
            elif name == "original":
                labels.append(f"human data\n({row.get('train_examples')} ex.)")
            else:
                labels.append(f"{name}\n({row.get('train_examples') or 0} ex.)")
        ax.set_xticks(x, labels)
        ax.set_ylim(0, min(1.0, float(np.nanmax(matrix)) + 0.15) if np.isfinite(
            np.nanmax(matrix)) else 1.0)
        ax.set_ylabel("accuracy")
        creator = result["config"]["creator_model"] or "?"
        ax.set_title(f"{data_name}: small model trained on created vs human data\n"
                     f"creator: {creator}; target {result['config']['target']} per setting",
                     fontsize=10)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


# --- the experiment ------------------------------------------------------------------------------


def run(args: argparse.Namespace, command: str) -> dict:
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "experiment": "experiment",
        "command": command,
        "date": _dt.date.today().isoformat(),
        "machine": machine_info(EXPERIMENT_PACKAGES),
        "config": {
            "data_dir": str(args.data_dir), "data_name": args.data_name,
            "eval_on": args.eval_on, "settings": args.settings, "target": args.target,
            "num_examples": args.num_examples, "seed": args.seed,
            "base_url": args.base_url or None, "model": args.model,
            "max_requests": args.max_requests, "creator_args": args.creator_list,
            "learning_rates": args.learning_rates, "trainer_args": args.trainer_list,
            "launcher": args.launcher or None,
            "original_examples": args.original_limit if not args.no_original else None,
            "creator_model": None,
        },
        "ood_method": "the best run's best_model/ (best learning rate by in-distribution dev "
                      "accuracy, best epoch by the same) evaluated on the --eval_on datasets' dev "
                      "and test splits with the trainer's own code (python -m "
                      "trainer evaluate); eval_check says whether that path "
                      "reproduces the trainer's in-distribution accuracy",
        "baseline": baselines(args),
        "rows": [],
    }
    columns = metric_columns(args)
    stem = args.results / f"experiment_{args.name}"

    rows: list[dict] = []
    if not args.no_original:
        rows.append({"setting": "original", "train_file": str(args.data_dir / args.data_name /
                                                               "train.jsonl"),
                     "quality": human_quality(args)})
    for setting in args.settings:
        creation = create_setting(args, setting)
        result["config"]["creator_model"] = result["config"]["creator_model"] or creation["model"]
        row = {"setting": setting, "train_file": creation["file"], "creation": creation}
        if creation["created"] and not args.no_report:
            row["quality"] = quality_of(report_setting(args, setting))
        rows.append(row)
        log(f"{setting}: {creation['created']} of {args.target} examples created")

    for row in rows:
        if row["setting"] != "original" and not row["creation"]["created"]:
            row["status"] = "no data created"
            log(f"{row['setting']}: nothing was created; not trained")
            continue
        reused = row["setting"] == "original" or row["creation"]["reused"]
        row.update(train_setting(args, row["setting"], fresh=not (args.resume_experiment
                                                                   and reused)))
        evaluation = evaluate_setting(args, row["setting"], row["best_run_dir"])
        row["eval_check"] = eval_check(args, evaluation)
        if not row["eval_check"]["reproduced"]:
            log(f"{row['setting']}: warning: the evaluator does not reproduce the trainer's "
                f"accuracy: {row['eval_check']}")
        for name in args.eval_on:
            for split in ("dev", "test"):
                scored = evaluation["datasets"][name].get(split)
                row[f"ood_{name}_{split}"] = scored["acc"] if scored else None
        row["predicted_share"] = {
            name: {split: (scores or {}).get("predicted_share") for split, scores in per.items()}
            for name, per in evaluation["datasets"].items()}
        row["status"] = "ok"
        log(f"{row['setting']}: dev {row['dev_acc']:.3f}, test "
            f"{row['test_acc'] if row['test_acc'] is None else round(row['test_acc'], 3)}"
            + "".join(f", {name} test {row.get(f'ood_{name}_test')}" for name in args.eval_on))
        result["rows"] = rows
        write_results(result, columns, stem, final=False)  # partial results survive a crash

    result["rows"] = rows
    result["total_wall_s"] = round(time.monotonic() - started, 1)
    write_results(result, columns, stem, final=True)
    return result


def write_results(result: dict, columns: list, stem: Path, final: bool) -> None:
    result["finished"] = final
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    table = markdown_table(result, columns)
    stem.with_suffix(".md").write_text(
        f"<!-- {result['command']} -->\n\n" + table, encoding="utf-8")
    if final:
        plot(result, columns, stem.with_suffix(".png"))
        print(f"\n## experiment {result['config']['data_name']}  ({result['command']})\n")
        print(table)
        log(f"wrote {stem}.json, {stem}.md, {stem}.png in {result['total_wall_s']:.0f} s")


def render_main(argv: list[str]) -> int:
    """Redraw experiment_*.md and .png from experiment_*.json files (after a code change)."""
    for name in argv:
        path = Path(name)
        result = read_json(path)
        if not result or "config" not in result:
            print(f"experiment render: error: not an experiment JSON: {path}", file=sys.stderr)
            return EXIT_USAGE
        config = result["config"]
        columns = metric_columns(argparse.Namespace(data_name=config["data_name"],
                                                    eval_on=config["eval_on"]))
        stem = path.with_suffix("")
        stem.with_suffix(".md").write_text(
            f"<!-- {result['command']} -->\n\n" + markdown_table(result, columns), encoding="utf-8")
        plot(result, columns, stem.with_suffix(".png"))
        log(f"redrew {stem}.md and {stem}.png")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["render"]:
        return render_main(argv[1:])
    args = parse_args(argv)
    command = "python -m benchmarks.experiment " + shlex.join(argv)
    try:
        run(args, command)
    except ExperimentError as error:
        log(f"error: {error}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        log("interrupted; rerun the same command with --resume_experiment to continue")
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
