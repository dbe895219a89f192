"""python -m benchmarks.trainer_speed [--quick] [--out DIR]

Training throughput of `trainer` on the CPU, against a plain transformers `Trainer` on the same
model, data and batch settings, and with one against two processes.

Every variant trains the default MiniLM (`creator.assets.minilm_dir()`) for one epoch on the first N
examples of a human train split (`../shared/data`), max length 128, batch 8 per process,
accumulation 2, lr 2e-5, 20 warmup steps, weight decay 0.01, seed 42:

- `ours`:      `python -m trainer ... --cpu` (one process);
- `ours omp1`: the same with OMP_NUM_THREADS=1;
- `ours 2p`:   `torchrun --standalone --nproc_per_node 2 -m trainer ...` with OMP_NUM_THREADS=1
               (gloo data parallelism, one thread each);
- `hf`:        a plain transformers `Trainer` in its own process (`--role hf_trainer` below), on the
               very same token ids (trainer.data.load_task + trainer.encode.encode), the same
               dynamic padding, `TrainingArguments` with the same batch, accumulation, lr, warmup,
               weight decay and seed, `use_cpu=True`, `report_to=[]`, no evaluation, no saving;
               everything else is Trainer's default (what a user gets), e.g. the fused AdamW.

`train_seconds` is the training loop alone on both sides: `trainer` writes it to metrics.json
(evaluation and checkpoints excluded); for Trainer it runs from `on_train_begin` to `on_train_end`
(after Trainer's own set-up: dataloader, optimizer, accelerate prepare), the span Trainer itself
reports as `train_runtime`. `examples_per_second` = training examples / train_seconds, all
processes together. `wall_s`, `cpu_s` and `peak_rss_mb` are the whole process tree from start to
exit (interpreter, imports, model load, and for `trainer` a small dev/test evaluation and its
best-model and checkpoint saves); `peak_rss_mb` is the peak of the tree's summed resident memory
(torchrun's agent and both workers), `peak_rss_mb_per_process` the largest single process (VmHWM).

The variants run one after another, in rounds (each round runs every variant once, in turn), so that
a burst of load from the other jobs on the machine hits one round rather than one variant; the
summary takes each variant's best round, the ratios come from those.

Writes DIR/trainer_speed.json (command, machine, versions, date, parameters, every run, the summary
and the ratios) and DIR/trainer_speed.png (drawn from the JSON), and prints the plain-text table.
Full runs write benchmarks/results/; --quick (one small yes/no set, one round) writes a temporary
folder unless --out is given. `python -m benchmarks.trainer_speed --plot [--out DIR]` redraws the
PNG and prints the table again from DIR/trainer_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .common import (
    REPO,
    RESULTS,
    child_env,
    format_table,
    log,
    machine_info,
    output_dir,
    read_result,
    to_jsonable,
    write_result,
)

NAME = "trainer_speed"
DATA = REPO.parent / "shared" / "data"

# One epoch, the settings trainer/README.md measured with (the paper's 4 x 16 and 100 warmup steps
# would make every update of a short run a warmup step; throughput does not depend on it).
TRAIN_SETTINGS = {
    "num_train_epochs": 1,
    "max_seq_length": 128,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 2,
    "learning_rate": 2e-5,
    "warmup_steps": 20,
    "weight_decay": 0.01,
    "seed": 42,
}
EVAL_EXAMPLES = 32  # trainer always evaluates dev and test after an epoch: keep it small (untimed)


@dataclass(frozen=True)
class Dataset:
    format_dir: str
    name: str
    train_examples: int
    rounds: int = 1

    @property
    def label(self) -> str:
        return f"{self.format_dir}/{self.name}"


# Sized for ~15 minutes on 2 cores shared with other jobs (the 2-thread runs are the slow ones
# there); a multiple-choice example is 5 sequences, so CSQA gets fewer examples and one round.
FULL_DATASETS = (Dataset("yesno_close", "strategyqa", 256, rounds=2),
                 Dataset("mcqa_5", "csqa", 128, rounds=1))
QUICK_DATASETS = (Dataset("yesno_close", "strategyqa", 32, rounds=1),)


@dataclass(frozen=True)
class Variant:
    name: str
    client: str  # ours | hf_trainer
    processes: int
    omp_threads: int | None  # OMP_NUM_THREADS; None: torch's default (one thread per core)


VARIANTS = (
    Variant("ours", "ours", 1, None),
    Variant("hf Trainer", "hf_trainer", 1, None),
    Variant("ours omp1", "ours", 1, 1),
    Variant("hf Trainer omp1", "hf_trainer", 1, 1),
    Variant("ours 2p omp1", "ours", 2, 1),
)


# --- the result schema -------------------------------------------------------------------------


@dataclass
class SpeedRun:
    """One training run of one variant on one dataset. Names as in trainer's metrics.json."""

    name: str  # the variant, e.g. "ours 2p omp1"
    client: str  # ours | hf_trainer
    dataset: str  # format_dir/name
    format: str | None  # yesno | mcqa (from the run)
    round: int
    processes: int
    threads_per_process: int  # OMP_NUM_THREADS, or the core count when unset
    train_examples: int = 0  # examples per epoch, all processes together
    train_seconds: float = 0.0  # the training loop only
    examples_per_second: float = 0.0  # train_examples x epochs / train_seconds
    optimizer_updates: int | None = None
    first_loss: float | None = None  # mean loss of the first update (a sanity check, not a result)
    last_loss: float | None = None
    wall_s: float = 0.0  # the whole process tree, start to exit
    cpu_s: float = 0.0  # user + system of the tree (wait4 of the launched process)
    peak_rss_mb: float | None = None  # peak of the tree's summed RSS, sampled every 0.1 s
    peak_rss_mb_per_process: float | None = None  # the largest single process's VmHWM
    returncode: int | None = None
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainerSpeedResult:
    benchmark: str
    quick: bool
    command: str
    machine: dict[str, Any]
    params: dict[str, Any]
    runs: list[SpeedRun]
    summary: list[dict[str, Any]]  # per dataset and variant: the best round
    ratios: list[dict[str, Any]]  # per dataset
    duration_s: float = 0.0
    load_average_at_end: list[float] | None = None


# --- running and measuring one variant ---------------------------------------------------------


@dataclass
class Measured:
    returncode: int | None
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    peak_rss_mb_per_process: float
    stdout: str
    stderr: str
    timed_out: bool


def run_tree(cmd: Sequence[str], env: dict[str, str], timeout: float) -> Measured:
    """Run cmd to its end, measuring its whole process tree (torchrun starts the workers as its
    children): the peak of the summed RSS, every process's VmHWM, and wait4's CPU (which includes
    the children the launched process waited for). In its own session, so that a timeout stops
    the workers too."""
    import psutil

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(list(cmd), cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True)
        peak_total = 0
        hwm: dict[int, int] = {}
        killed_at = None
        timed_out = False
        while True:
            try:
                root = psutil.Process(proc.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                tree = []
            total = 0
            for member in tree:
                try:
                    total += member.memory_info().rss
                except psutil.Error:
                    continue
                hwm[member.pid] = max(hwm.get(member.pid, 0), _vm_hwm_bytes(member.pid))
            peak_total = max(peak_total, total)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            now = time.monotonic()
            if killed_at is None and now - started > timeout:
                timed_out, killed_at = True, now
                _signal_group(proc.pid, signal.SIGTERM)
            elif killed_at is not None and now - killed_at > 10:
                _signal_group(proc.pid, signal.SIGKILL)
            time.sleep(0.1)
        if timed_out:
            _signal_group(proc.pid, signal.SIGKILL)  # any worker left behind
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode=proc.returncode,
            wall_s=round(wall, 2),
            cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
            peak_rss_mb=round(peak_total / 2**20, 1),
            peak_rss_mb_per_process=round(max(hwm.values(), default=0) / 2**20, 1),
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            timed_out=timed_out,
        )


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _vm_hwm_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def torchrun() -> list[str]:
    """The torchrun beside this interpreter (the same as `python -m torch.distributed.run`)."""
    script = Path(sys.executable).with_name("torchrun")
    return [str(script)] if script.exists() else [sys.executable, "-m", "torch.distributed.run"]


def train_flags(dataset: Dataset, model: str) -> list[str]:
    args = ["--data_dir", str(DATA / dataset.format_dir), "--data_name", dataset.name,
            "--model", model, "--max_train_examples", str(dataset.train_examples)]
    for key, value in TRAIN_SETTINGS.items():
        args += [f"--{key}", str(value)]
    return args


def variant_command(variant: Variant, dataset: Dataset, model: str, out: Path) -> list[str]:
    args = [*train_flags(dataset, model), "--output_dir", str(out)]
    if variant.client == "hf_trainer":
        return [sys.executable, "-m", "benchmarks.trainer_speed", "--role", "hf_trainer", *args]
    args += ["--max_eval_examples", str(EVAL_EXAMPLES), "--per_device_eval_batch_size",
             str(EVAL_EXAMPLES), "--cpu"]
    if variant.processes == 1:
        return [sys.executable, "-m", "trainer", *args]
    return [*torchrun(), "--standalone", "--nproc_per_node", str(variant.processes),
            "-m", "trainer", *args]


def run_variant(variant: Variant, dataset: Dataset, model: str, work: Path, round_: int,
                timeout: float) -> SpeedRun:
    out = work / f"{dataset.name}-{variant.name.replace(' ', '_')}-r{round_}"
    cmd = variant_command(variant, dataset, model, out)
    env = child_env(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("OMP_NUM_THREADS", None)
    if variant.omp_threads:
        env["OMP_NUM_THREADS"] = str(variant.omp_threads)
    measured = run_tree(cmd, env, timeout)
    run = SpeedRun(
        name=variant.name, client=variant.client, dataset=dataset.label, format=None,
        round=round_, processes=variant.processes,
        threads_per_process=variant.omp_threads or os.cpu_count() or 1,
        wall_s=measured.wall_s, cpu_s=measured.cpu_s, peak_rss_mb=measured.peak_rss_mb,
        peak_rss_mb_per_process=measured.peak_rss_mb_per_process,
        returncode=measured.returncode, command=shlex.join(_short(cmd)),
    )
    metrics_path = out / "metrics.json"
    if measured.returncode != 0 or not metrics_path.exists():
        run.extra["error"] = ("timed out; " if measured.timed_out else "") + measured.stderr[-3000:]
        return run
    metrics = json.loads(metrics_path.read_text())
    run.format = metrics["format"]
    run.train_examples = metrics["train_examples"]
    run.train_seconds = round(metrics["train_seconds"], 3)
    run.examples_per_second = round(metrics["examples_per_second"], 2)
    curve = metrics.get("loss_curve") or []
    run.optimizer_updates = len(curve)
    run.first_loss, run.last_loss = (curve[0], curve[-1]) if curve else (None, None)
    run.extra.update({k: metrics[k] for k in ("num_processes", "distributed_type", "device",
                                              "mixed_precision", "torch_threads", "optimizer",
                                              "train_call_seconds", "hf_train_runtime")
                      if k in metrics})
    if metrics.get("num_processes", variant.processes) != variant.processes:
        run.extra["error"] = f"ran {metrics['num_processes']} processes, not {variant.processes}"
    return run


def _short(cmd: Sequence[str]) -> list[str]:
    """The command as a person would type it: `python`, paths relative to the repository."""
    out = []
    for part in cmd:
        if part == sys.executable:
            part = "python"
        elif part.startswith(str(REPO.parent) + os.sep):
            part = os.path.relpath(part, REPO)
        elif part.startswith(tempfile.gettempdir() + os.sep):
            part = "TMP/" + Path(part).name
        out.append(part)
    return out


# --- the plain transformers Trainer (runs as its own process) ----------------------------------


def hf_trainer_role(argv: Sequence[str]) -> int:
    """Train with a plain transformers Trainer on exactly what `trainer` would see; write the same
    metrics.json fields that `trainer` writes (those the benchmark reads)."""
    from trainer.cli import parse_config

    config = parse_config(list(argv), prog="trainer_speed --role hf_trainer")
    import torch
    from transformers import (
        AutoModelForMultipleChoice,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from trainer.data import YES_NO, YES_NO_OPTIONS, load_task
    from trainer.encode import PadCollator, encode

    task = load_task(config)  # the same first N valid examples
    tokenizer = AutoTokenizer.from_pretrained(config.model, local_files_only=True)
    features = encode(tokenizer, task.train.examples, task.format, config.max_seq_length)
    pad = PadCollator(tokenizer.pad_token_id)  # padding to the longest in the batch, as trainer

    def collate(batch: list[dict]) -> dict:
        batch = pad(batch)
        batch.pop("index")  # ours only, for predictions; the model does not take it
        return batch

    if task.format == YES_NO:
        model = AutoModelForSequenceClassification.from_pretrained(
            config.model, local_files_only=True, num_labels=2,
            id2label=dict(enumerate(YES_NO_OPTIONS)),
            label2id={label: i for i, label in enumerate(YES_NO_OPTIONS)},
        )
    else:
        model = AutoModelForMultipleChoice.from_pretrained(config.model, local_files_only=True)

    args = TrainingArguments(
        output_dir=str(config.output_dir),
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        num_train_epochs=config.num_train_epochs,
        seed=config.seed,
        lr_scheduler_type="linear",
        use_cpu=True,
        report_to=[],
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=1,  # the loss of every update, as trainer's loss_curve (one .item() each)
        # Trainer would drop the `index` key before our collator (which needs it) sees the batch;
        # the collator drops it itself.
        remove_unused_columns=False,
    )

    class Clock(TrainerCallback):
        started = ended = 0.0

        def on_train_begin(self, *_: Any, **__: Any) -> None:
            self.started = time.perf_counter()

        def on_train_end(self, *_: Any, **__: Any) -> None:
            self.ended = time.perf_counter()

    clock = Clock()
    hf = Trainer(model=model, args=args, train_dataset=features, data_collator=collate,
                 processing_class=tokenizer, callbacks=[clock])
    called = time.perf_counter()
    output = hf.train()
    call_seconds = time.perf_counter() - called
    train_seconds = clock.ended - clock.started
    examples = len(features) * config.num_train_epochs
    curve = [round(entry["loss"], 5) for entry in hf.state.log_history if "loss" in entry]
    config.output_dir.mkdir(parents=True, exist_ok=True)
    (config.output_dir / "metrics.json").write_text(json.dumps({
        "format": task.format,
        "train_examples": len(features),
        "train_seconds": round(train_seconds, 3),
        "examples_per_second": round(examples / train_seconds, 2),
        "loss_curve": curve,
        "num_processes": hf.args.world_size,
        "device": str(hf.args.device),
        "torch_threads": torch.get_num_threads(),
        "optimizer": str(hf.args.optim.value if hasattr(hf.args.optim, "value") else hf.args.optim),
        "train_call_seconds": round(call_seconds, 3),  # train() as a whole, set-up included
        "hf_train_runtime": output.metrics.get("train_runtime"),
        "finished": True,
    }, indent=2) + "\n")
    return 0


# --- the benchmark -------------------------------------------------------------------------------


def run(quick: bool, command: str, datasets: Sequence[Dataset] | None = None) -> TrainerSpeedResult:
    from creator.assets import minilm_dir

    started = time.monotonic()
    model = str(minilm_dir())
    datasets = tuple(datasets or (QUICK_DATASETS if quick else FULL_DATASETS))
    timeout = 150.0 if quick else 600.0
    machine = machine_info()
    machine["packages"]["accelerate"] = _version("accelerate")
    runs: list[SpeedRun] = []
    with tempfile.TemporaryDirectory(prefix="trainer-speed-") as work:
        for dataset in datasets:
            for round_ in range(1, dataset.rounds + 1):
                for variant in VARIANTS:
                    log(f"trainer_speed: {dataset.label} round {round_}/{dataset.rounds}: "
                        f"{variant.name}")
                    run_ = run_variant(variant, dataset, model, Path(work), round_, timeout)
                    if "error" in run_.extra:
                        log(f"trainer_speed: {variant.name} FAILED: {run_.extra['error'][-800:]}")
                    else:
                        log(f"  {run_.examples_per_second} examples/s, train "
                            f"{run_.train_seconds} s, wall {run_.wall_s} s, "
                            f"peak RSS {run_.peak_rss_mb} MB")
                    runs.append(run_)
    summary = summarise(runs)
    try:
        load_end = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load_end = None
    return TrainerSpeedResult(
        benchmark=NAME,
        quick=quick,
        command=command,
        machine=machine,
        params={
            "model": os.path.relpath(model, REPO.parent) if model.startswith(str(REPO.parent))
            else model,
            "datasets": [asdict(d) for d in datasets],
            "train": TRAIN_SETTINGS,
            "eval_examples_untimed": EVAL_EXAMPLES,
            "variants": [asdict(v) for v in VARIANTS],
            "torchrun": shlex.join(_short(torchrun())),
        },
        runs=runs,
        summary=summary,
        ratios=ratios(summary),
        duration_s=round(time.monotonic() - started, 1),
        load_average_at_end=load_end,
    )


def summarise(runs: Sequence[SpeedRun]) -> list[dict[str, Any]]:
    """Per dataset and variant, the round with the most examples/s (the least disturbed by the
    other jobs), with the spread over rounds."""
    rows = []
    for dataset in dict.fromkeys(r.dataset for r in runs):
        for variant in VARIANTS:
            mine = [r for r in runs if r.dataset == dataset and r.name == variant.name]
            ok = [r for r in mine if "error" not in r.extra]
            if not ok:
                rows.append({"dataset": dataset, "name": variant.name, "failed": len(mine)})
                continue
            best = max(ok, key=lambda r: r.examples_per_second)
            row = {k: v for k, v in asdict(best).items() if k not in ("extra", "command")}
            row["examples_per_second_rounds"] = [r.examples_per_second for r in mine]
            row["failed"] = len(mine) - len(ok)
            rows.append(row)
    return rows


def ratios(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in summary):
        eps = {r["name"]: r.get("examples_per_second") for r in summary if r["dataset"] == dataset}

        def ratio(a: str, b: str) -> float | None:
            x, y = eps.get(a), eps.get(b)
            return round(x / y, 3) if x and y else None

        out.append({
            "dataset": dataset,
            "ours_vs_hf_trainer": ratio("ours", "hf Trainer"),
            "ours_vs_hf_trainer_omp1": ratio("ours omp1", "hf Trainer omp1"),
            "two_vs_one_process_omp1": ratio("ours 2p omp1", "ours omp1"),
            "two_processes_vs_one_default_threads": ratio("ours 2p omp1", "ours"),
            "one_thread_vs_default_threads": ratio("ours omp1", "ours"),
        })
    return out


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# --- the table and the plot (both from the JSON) -----------------------------------------------


COLUMNS = [
    ("dataset", "dataset", ""),
    ("name", "variant", ""),
    ("processes", "procs", "d"),
    ("threads_per_process", "threads", "d"),
    ("train_examples", "examples", "d"),
    ("train_seconds", "train s", ".1f"),
    ("examples_per_second", "ex/s", ".1f"),
    ("rounds", "ex/s per round", ""),
    ("wall_s", "wall s", ".1f"),
    ("cpu_s", "cpu s", ".1f"),
    ("peak_rss_mb", "RSS MB", ".0f"),
]
RATIO_COLUMNS = [
    ("dataset", "dataset", ""),
    ("ours_vs_hf_trainer", "ours / Trainer", ".2f"),
    ("ours_vs_hf_trainer_omp1", "ours / Trainer (1 thread)", ".2f"),
    ("two_vs_one_process_omp1", "2p / 1p (1 thread)", ".2f"),
    ("two_processes_vs_one_default_threads", "2p / 1p (2 threads)", ".2f"),
    ("one_thread_vs_default_threads", "1 thread / 2 threads", ".2f"),
]


def tables(data: dict[str, Any]) -> str:
    rows = [r | {"rounds": "/".join(f"{x:.1f}" for x in r.get("examples_per_second_rounds", []))}
            for r in data["summary"]]
    return (format_table(rows, COLUMNS) + "\n\n" + format_table(data["ratios"], RATIO_COLUMNS)
            + "\n\nex/s, train s: the best round; wall, cpu, RSS: that run's whole process tree.")


def plot(data: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib
        import matplotlib.ticker

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None  # matplotlib is in the bench extra; the JSON is the result either way
    datasets = list(dict.fromkeys(r["dataset"] for r in data["summary"]))
    names = [v["name"] for v in data["params"]["variants"]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    fig.suptitle(f"trainer throughput on the CPU, MiniLM, 1 epoch, max length 128, batch 8 x 2 "
                 f"({'quick' if data['quick'] else 'full'} run)")
    width = 0.8 / len(names)
    ax = axes[0]
    for i, name in enumerate(names):
        rows = {r["dataset"]: r for r in data["summary"] if r["name"] == name}
        xs = [d + (i - (len(names) - 1) / 2) * width for d in range(len(datasets))]
        ys = [rows.get(d, {}).get("examples_per_second") or 0 for d in datasets]
        bars = ax.bar(xs, ys, width, label=name, color=f"C{i}")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        for x, d in zip(xs, datasets):  # every round, as dots: the noise
            rounds = rows.get(d, {}).get("examples_per_second_rounds", [])
            ax.plot([x] * len(rounds), rounds, "k.", ms=4)
    ax.set_xticks(range(len(datasets)), [f"{d}\n({_examples(data, d)})" for d in datasets])
    ax.set_ylabel("training examples / s (all processes)")
    ax.set_title("examples/s (bars: best round; dots: every round)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)

    ax = axes[1]
    keys = [(c[0], c[1]) for c in RATIO_COLUMNS[1:]]
    for d, row in enumerate(data["ratios"]):
        xs = [k + (d - (len(datasets) - 1) / 2) * 0.35 for k in range(len(keys))]
        bars = ax.bar(xs, [row.get(k) or 0 for k, _ in keys], 0.35, label=row["dataset"],
                      color=f"C{d + 5}")
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.axhline(1.0, color="k", lw=1)
    ax.set_yscale("log")  # 0.5 and 2 are as far from 1
    ax.set_yticks([t for t in (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 16)
                   if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]])
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(range(len(keys)), [label.replace(" (", "\n(") for _, label in keys], fontsize=8)
    ax.set_title("ratios of examples/s (same run; log scale)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    machine = data["machine"]
    fig.text(0.01, 0.005, f"{data['command']}  |  {machine['cpu']}, {machine['cores']} cores, "
             f"load {machine.get('load_average_at_start')}, {machine['date'][:10]}",
             fontsize=7, color="gray")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _examples(data: dict[str, Any], dataset: str) -> str:
    for d in data["params"]["datasets"]:
        if f"{d['format_dir']}/{d['name']}" == dataset:
            rounds = d.get("rounds", 1)
            return f"{d['train_examples']} examples, best of {rounds} round{'s' * (rounds > 1)}"
    return "?"


# --- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["--role", "hf_trainer"]:
        return hf_trainer_role(argv[2:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trainer_speed",
                                     description=__doc__.split("\n")[2])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_DATASETS[0].train_examples} yes/no examples, one round "
                        "(about a minute), for tests")
    parser.add_argument("--out", help="folder for trainer_speed.json and .png (default "
                        "benchmarks/results, or a temporary folder with --quick)")
    parser.add_argument("--plot", action="store_true",
                        help="only redraw the PNG and print the table from DIR/trainer_speed.json")
    args = parser.parse_args(argv)
    if args.plot:
        folder = Path(args.out) if args.out else RESULTS
        data = read_result(folder / f"{NAME}.json")
        print(plot(data, folder / f"{NAME}.png"))
        print(tables(data))
        return 0
    datasets = QUICK_DATASETS if args.quick else FULL_DATASETS
    missing = [d.label for d in datasets if not (DATA / d.format_dir / d.name).is_dir()]
    if missing:
        print(f"trainer_speed: error: no data at {DATA} for {', '.join(missing)}", file=sys.stderr)
        return 2
    command = "python -m benchmarks.trainer_speed " + shlex.join(argv)
    out = output_dir(args.out, args.quick)
    result = run(args.quick, command.strip())
    path = write_result(result, out, NAME)
    data = to_jsonable(result)
    png = plot(data, out / f"{NAME}.png")
    print(f"\n## {NAME}  ({data['command']})\n")
    print(tables(data))
    log(f"trainer_speed: {path}" + (f", {png}" if png else ""))
    failed = [r for r in result.runs if "error" in r.extra]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
