"""The training run: one function that reads top to bottom in the order things happen.

Modelled on accelerate's examples/nlp_example.py. The same code runs on a CPU, one GPU, or many
processes started by `accelerate launch` or `torchrun` (several nodes through the same launchers):
accelerate reads the launcher's environment, shards the data and all-reduces the gradients.

Called through trainer.train (trainer/api.py), which checks the arguments and the data first.
Messages go to the `trainer` logger from the main process only; tqdm shows the progress there.
The global state this touches is put back: transformers' verbosity on the other processes, and
accelerate's shared state when this run created it (so that a later run in the same process, with
other settings or after the process group is gone, starts afresh). The random seed stays set.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.state import AcceleratorState, GradientState, PartialState
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoModelForMultipleChoice,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
)

from trainer.checkpoint import (
    TrainerState,
    check_same_data,
    load_checkpoint,
    resolve_resume,
    save_best_model,
    save_checkpoint,
)
from trainer.config import TrainConfig
from trainer.data import YES_NO, YES_NO_OPTIONS, Split, Task
from trainer.encode import PadCollator, encode
from trainer.errors import InputError
from trainer.metrics import (
    accuracy,
    build_metrics,
    prediction_rows,
    write_metrics,
    write_predictions,
)
from trainer.results import TrainResult
from trainer.runtime import is_main_process

log = logging.getLogger("trainer")


def train(config: TrainConfig, task: Task) -> TrainResult:
    """Fine-tune config.model (a name or folder, not None) on task; writes checkpoints,
    metrics.json and predictions.jsonl into config.output_dir."""
    with quiet_unless_main(), own_accelerate_state():
        return _train(config, task)


def _train(config: TrainConfig, task: Task) -> TrainResult:
    resume_path = resolve_resume(config.resume_from_checkpoint, config.output_dir)
    if resume_path is not None:
        check_same_data(resume_path, task.signature())
    # Before the Accelerator, so that a wrong model name fails outside any process group.
    tokenizer = load_pretrained(AutoTokenizer, config.model)

    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=config.mixed_precision,  # None: whatever the launcher's config says
        # Without a GPU, say so: accelerate only starts CPU data parallelism (gloo) under torchrun
        # when told it is on a CPU; otherwise each process would train alone.
        cpu=config.cpu or not has_accelerator(),
        # Each epoch's order depends on (seed, epoch) only: a resumed run sees the same batches.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
    )
    set_seed(config.seed)
    if accelerator.is_main_process:
        config.output_dir.mkdir(parents=True, exist_ok=True)
    if task.test is None and accelerator.is_main_process:
        log.info(f"note: no {config.test_path}: test is skipped, predictions are for dev")

    # Padding to a multiple of 8 lets fp16/bf16 use tensor cores; on fp32 it only wastes compute.
    collate = PadCollator(
        tokenizer.pad_token_id,
        pad_to_multiple_of=8 if accelerator.mixed_precision != "no" else None,
    )

    def dataloader(split: Split, batch_size: int, shuffle: bool = False) -> DataLoader:
        features = encode(tokenizer, split.examples, task.format, config.max_seq_length)
        return DataLoader(features, batch_size=batch_size, shuffle=shuffle, collate_fn=collate)

    train_dataloader = dataloader(task.train, config.per_device_train_batch_size, shuffle=True)
    dev_dataloader = dataloader(task.dev, config.per_device_eval_batch_size)
    test_dataloader = (
        dataloader(task.test, config.per_device_eval_batch_size) if task.test else None
    )

    if task.format == YES_NO:
        model = load_pretrained(
            AutoModelForSequenceClassification,
            config.model,
            num_labels=2,
            id2label=dict(enumerate(YES_NO_OPTIONS)),
            label2id={label: i for i, label in enumerate(YES_NO_OPTIONS)},
        )
    else:  # one score per (question, option) pair, softmax over the options
        model = load_pretrained(AutoModelForMultipleChoice, config.model)

    # No weight decay on biases and normalisation weights (the 1-d parameters), as in BERT.
    decayed = [p for p in model.parameters() if p.ndim > 1]
    not_decayed = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = _adamw(
        [
            {"params": decayed, "weight_decay": config.weight_decay},
            {"params": not_decayed, "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
    )

    # Count updates on the unsharded dataloader, before prepare: the prepared scheduler steps once
    # per process at each update and not at all between accumulation micro-steps, so the schedule
    # spans the whole run whatever the number of processes.
    updates_per_epoch = math.ceil(len(train_dataloader) / config.gradient_accumulation_steps)
    lr_scheduler = get_linear_schedule_with_warmup(
        optimizer,
        num_warmup_steps=config.warmup_steps,
        num_training_steps=updates_per_epoch * config.num_train_epochs,
    )

    model, optimizer, train_dataloader, dev_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, dev_dataloader, lr_scheduler
    )
    if test_dataloader is not None:
        test_dataloader = accelerator.prepare(test_dataloader)

    state = TrainerState(data=task.signature())
    if resume_path is not None:
        state = load_checkpoint(accelerator, resume_path)
        if accelerator.is_main_process:
            log.info(f"resumed from {resume_path} after epoch {state.epochs_done}")

    for epoch in range(state.epochs_done, config.num_train_epochs):
        model.train()
        train_dataloader.set_epoch(epoch)
        started = time.perf_counter()
        epoch_losses, update_losses = [], []
        progress = tqdm(
            train_dataloader,
            desc=f"epoch {epoch + 1}/{config.num_train_epochs}",
            disable=not accelerator.is_main_process,
        )
        for batch in progress:
            batch.pop("index")
            # accumulate() syncs gradients only every gradient_accumulation_steps batches (and at
            # the end of the epoch); optimizer and scheduler skip their step in between.
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            update_losses.append(loss.detach())
            if accelerator.sync_gradients:
                update_loss = torch.stack(update_losses).mean().item()  # one host sync per update
                state.loss_curve.append(round(update_loss, 5))
                progress.set_postfix(loss=f"{update_loss:.4f}")
                epoch_losses += update_losses
                update_losses = []
        progress.close()
        train_loss = accelerator.reduce(torch.stack(epoch_losses).mean(), reduction="mean").item()
        state.train_seconds += time.perf_counter() - started
        state.examples_trained += len(task.train.examples)

        dev = evaluate(accelerator, model, dev_dataloader)
        state.dev_examples = dev.count
        state.history.append(
            {
                "epoch": epoch + 1,
                "train_loss": round(train_loss, 5),
                "dev_acc": dev.accuracy,
                "dev_loss": round(dev.loss, 5),
                "dev_examples": dev.count,
            }
        )
        if state.best_dev_acc is None or dev.accuracy > state.best_dev_acc:
            state.best_epoch = epoch + 1
            state.best_dev_acc, state.best_dev_loss = dev.accuracy, dev.loss
            save_best_model(accelerator, model, tokenizer, config.output_dir)
            # Predict test with the best model now, rather than reloading it at the end: no reload
            # logic that would differ between DDP, FSDP and DeepSpeed.
            predicted_split, predicted = task.dev, dev
            if test_dataloader is not None:
                predicted = evaluate(accelerator, model, test_dataloader)
                predicted_split = task.test
                state.test_acc, state.test_examples = predicted.accuracy, predicted.count
            if accelerator.is_main_process:
                write_predictions(
                    config.output_dir,
                    prediction_rows(predicted_split, predicted.indices, predicted.predictions),
                )
        state.epochs_done = epoch + 1
        save_checkpoint(accelerator, config.output_dir, state)
        if accelerator.is_main_process:
            log.info(
                f"epoch {epoch + 1}: train loss {train_loss:.4f}, dev acc {dev.accuracy:.4f} "
                f"on {dev.count} examples, best epoch {state.best_epoch}"
            )
            write_metrics(
                config.output_dir, run_metrics(config, task, state, accelerator, finished=False)
            )

    metrics = run_metrics(config, task, state, accelerator, finished=True)
    if accelerator.is_main_process:
        write_metrics(config.output_dir, metrics)

    # Release everything prepare() wrapped before end_training: with accelerate 1.15, multi-process
    # runs can otherwise hang at exit.
    accelerator.wait_for_everyone()
    del model, optimizer, train_dataloader, dev_dataloader, test_dataloader, lr_scheduler
    accelerator.free_memory()
    gc.collect()
    accelerator.end_training()
    return metrics


@contextmanager
def quiet_unless_main() -> Iterator[None]:
    """transformers' warnings and progress bars from the main process only, for this call."""
    if is_main_process():
        yield
        return
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


@contextmanager
def own_accelerate_state() -> Iterator[None]:
    """accelerate keeps process-wide singletons (the process group, mixed precision, gradient
    accumulation): when this call created them, clear them again at the end, after
    end_training() has destroyed the process group. A caller's own Accelerator is left alone."""
    created_here = not PartialState._shared_state
    try:
        yield
    finally:
        if created_here:
            AcceleratorState._reset_state(reset_partial_state=True)
            GradientState._reset_state()


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float
    count: int
    indices: list[int]
    predictions: list[int]


def evaluate(accelerator: Accelerator, model, dataloader: DataLoader) -> Evaluation:
    """Accuracy and mean loss over every example of the split, whatever the number of processes."""
    model.eval()
    indices, predictions, labels, losses = [], [], [], []
    for batch in tqdm(
        dataloader, desc="evaluate", leave=False, disable=not accelerator.is_main_process
    ):
        index = batch.pop("index")
        with torch.no_grad():
            logits = model(**batch).logits
        loss = F.cross_entropy(logits.float(), batch["labels"], reduction="none")
        # gather_for_metrics drops the examples repeated to give every process a full last batch.
        index, predicted, label, loss = accelerator.gather_for_metrics(
            (index, logits.argmax(dim=-1), batch["labels"], loss)
        )
        indices += index.tolist()
        predictions += predicted.tolist()
        labels += label.tolist()
        losses += loss.tolist()
    model.train()
    return Evaluation(
        accuracy=accuracy(predictions, labels),
        loss=sum(losses) / max(len(losses), 1),
        count=len(labels),
        indices=indices,
        predictions=predictions,
    )


def has_accelerator() -> bool:
    """A GPU or other accelerator torch can use (torch.accelerator exists from torch 2.6)."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def load_pretrained(auto_class, name: str, **kwargs):
    """from_pretrained, offline for local folders; a missing or unknown model is an InputError."""
    try:
        return auto_class.from_pretrained(name, local_files_only=Path(name).is_dir(), **kwargs)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"cannot load model {name!r}: {reason}") from None


def run_metrics(
    config: TrainConfig,
    task: Task,
    state: TrainerState,
    accelerator: Accelerator,
    *,
    finished: bool,
) -> TrainResult:
    return build_metrics(
        config,
        task,
        state,
        finished=finished,
        num_processes=accelerator.num_processes,
        distributed_type=accelerator.distributed_type.value,
        device=str(accelerator.device),
        mixed_precision=str(accelerator.mixed_precision),
    )


def _adamw(groups: list[dict], lr: float) -> torch.optim.Optimizer:
    """AdamW with one fused kernel per step where this torch and device have it: the default
    per-tensor loop cost a quarter of a MiniLM step on one CPU thread (benchmarks/TRAINER_SPEED.md)."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without the kernel
        return torch.optim.AdamW(groups, lr=lr)
