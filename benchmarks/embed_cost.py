"""The sentence-encoder cost of the diverse and similar settings.

    python -m benchmarks embed_cost [--quick] [--out DIR]

The engine runs in this process (`creator.engine.create(RunConfig(...), encoder)`) against a
simulator with a small latency, so the SentenceEncoder's own counter (`encoded`) and the time spent
in `encode` can be read. Per setting: questions encoded per record kept (the design says each
question is encoded once: 1.0, plus the exemplar), encoder seconds per 1,000 questions, how many
calls and how large their batches were, and the run's wall time next to a naive run (no encoder)
of the same size. For scale: the encoder alone on 1,000 of the created questions in batches of 64.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import REPO, RunMetrics, Simulator, format_table, log, machine_info


@dataclass
class Params:
    target: int
    concurrency: int  # = chains for diverse/similar
    latency_s: float
    # (name, setting, torch threads of the encoder's worker; None = the engine's own choice, 1)
    runs: list[tuple[str, str, int | None]]


FULL = Params(target=1000, concurrency=16, latency_s=0.05, runs=[
    ("naive", "naive", None), ("diverse", "diverse", None), ("similar", "similar", None),
    ("diverse, torch's default threads", "diverse", 0),
    ("similar, torch's default threads", "similar", 0)])
QUICK = Params(target=100, concurrency=16, latency_s=0.05, runs=[
    ("naive", "naive", None), ("diverse", "diverse", None),
    ("diverse, torch's default threads", "diverse", 0)])


@dataclass
class EmbedResult:
    benchmark: str
    command: str
    quick: bool
    machine: dict[str, Any]
    params: dict[str, Any]
    available: bool
    reason: str | None = None
    encoder_load_s: float | None = None
    runs: list[RunMetrics] = field(default_factory=list)
    batch_encode_s_per_1k: float | None = None  # the encoder alone, batches of 64, 1 thread
    batch_encode_s_per_1k_by_threads: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0


class TimedEncoder:
    """Wraps SentenceEncoder.encode to add up the time spent in it and the batch sizes."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.inner = encoder.encode
        self.seconds = 0.0
        self.calls = 0
        self.texts: set[str] = set()  # distinct texts encoded: a repeat is a wasted encode
        encoder.encode = self.encode  # encode_async looks it up at call time

    def encode(self, texts: Any) -> Any:
        started = time.perf_counter()
        self.texts.update(texts)
        try:
            return self.inner(texts)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    def reset(self) -> None:
        self.seconds, self.calls, self.encoder.encoded = 0.0, 0, 0
        self.texts = set()


def run(quick: bool, command: str) -> EmbedResult:
    p = QUICK if quick else FULL
    began = time.monotonic()
    result = EmbedResult("embed_cost", command, quick, machine_info(), dict(p.__dict__), True)
    try:
        from creator.embed import EncoderError, SentenceEncoder

        t0 = time.perf_counter()
        encoder = SentenceEncoder()
        result.encoder_load_s = round(time.perf_counter() - t0, 2)
    except (ImportError, EncoderError) as exc:  # torch/transformers or the MiniLM package missing
        result.available, result.reason = False, str(exc)
        log(f"embed_cost: not available: {exc}")
        return result
    import torch

    from creator.config import RunConfig
    from creator.engine import create

    result.params["torch_threads_default"] = torch.get_num_threads()

    timed = TimedEncoder(encoder)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp, \
                Simulator(ttft=p.latency_s, seed=13) as sim:
            work = Path(tmp)
            # the engine encodes with ONE torch thread (creator/embed.py): on a small shared
            # machine torch's default team (one per core) waits on descheduled threads at every
            # small batch. The runs marked 0 put torch's default back, for comparison
            for name, setting, threads in p.runs:
                # torch's thread count is per thread: set it where encode runs, in the
                # encoder's worker thread
                threads = 1 if threads is None else threads or result.params["torch_threads_default"]
                encoder._worker.submit(torch.set_num_threads, threads).result()
                timed.reset()
                output = work / f"train_{setting}.jsonl"
                cfg = RunConfig(
                    data_dir=REPO / "data" / "yesno_close", data_name="example", setting=setting,
                    output=output, model="sim-model", base_urls=[sim.base_url], target=p.target,
                    concurrency=p.concurrency, progress=False, overwrite=True,
                )  # fmt: skip
                sim.reset()
                started = time.perf_counter()
                run_result = asyncio.run(create(cfg, encoder if setting != "naive" else None))
                wall = time.perf_counter() - started
                s = run_result.summary
                encoded = encoder.encoded
                m = RunMetrics(
                    name=name, client="creator (in process)", setting=setting,
                    concurrency=p.concurrency, requests=s["requests"],
                    completions=s["completions"], accepted=s["accepted"], retries=s["retries"],
                    rate_limited=s["rate_limited"], failed_requests=s["failed_requests"],
                    duration_s=s["this_session"]["duration_s"],
                    latency_p50_s=s["this_session"]["latency_p50_s"],
                    latency_p99_s=s["this_session"]["latency_p99_s"], wall_s=round(wall, 3),
                    extra={
                        "status": run_result.status,
                        "torch_threads": threads,
                        "encoded": encoded,
                        "encodes_per_record": round(encoded / max(s["accepted"], 1), 4),
                        # the same question encoded again (the design says: never)
                        "repeat_encodes": encoded - len(timed.texts),
                        # kept, but the run reached its target while their encode was queued
                        "records_not_encoded": max(0, s["accepted"] - (len(timed.texts) - 1))
                        if encoded else None,
                        "encode_calls": timed.calls,
                        "mean_batch": round(encoded / timed.calls, 2) if timed.calls else None,
                        "encode_s": round(timed.seconds, 3),
                        "encode_s_per_1k": round(1000 * timed.seconds / encoded, 3) if encoded else None,
                        "encode_share_of_run": round(timed.seconds / wall, 3),
                    },
                    server=sim.stats(),
                )  # fmt: skip
                m.finish()
                result.runs.append(m)
                log(f"  embed_cost {name}: {s['accepted']} records, {encoded} encoded "
                    f"({m.extra['encodes_per_record']}/record) in {timed.calls} calls, "
                    f"{m.extra['encode_s_per_1k']} s/1k, run {wall:.1f} s")
            # the encoder alone, in the batches it is built for, with torch's default threads
            # and with one
            questions = [json.loads(line)["question"] for line in
                         (work / "train_diverse.jsonl").read_text().splitlines()][:1000]
            result.params["batch_questions"] = len(questions)
            for threads in (result.params["torch_threads_default"], 1):
                torch.set_num_threads(threads)
                timed.reset()
                encoder.encode(questions)
                result.batch_encode_s_per_1k_by_threads[str(threads)] = round(
                    1000 * timed.seconds / len(questions), 3)
            result.batch_encode_s_per_1k = result.batch_encode_s_per_1k_by_threads["1"]
    finally:
        encoder.close()
        torch.set_num_threads(result.params["torch_threads_default"])
    result.wall_s = round(time.monotonic() - began, 1)
    return result


COLUMNS = [("name", "setting", ""), ("torch_threads", "threads", "d"),
           ("accepted", "records", "d"), ("encoded", "encoded", "d"),
           ("encodes_per_record", "encodes/record", ".3f"), ("repeat_encodes", "repeats", "d"),
           ("records_not_encoded", "not encoded", "d"),
           ("encode_calls", "calls", "d"),
           ("mean_batch", "batch", ".1f"), ("encode_s_per_1k", "encode s / 1k", ".2f"),
           ("encode_share_of_run", "encoder share", ".0%"), ("wall_s", "run s", ".1f"),
           ("requests_per_s", "req/s", ".0f"), ("failed_requests", "failed", "d")]


def tables(data: dict[str, Any]) -> str:
    if not data["available"]:
        return f"embed_cost: not available here: {data['reason']}"
    p = data["params"]
    rows = [{**r, **r["extra"]} for r in data["runs"]]
    return "\n".join([
        f"--target {p['target']}, --concurrency {p['concurrency']} (= chains), latency "
        f"{p['latency_s']:g} s, encoder load {data['encoder_load_s']} s, torch threads by "
        f"default {p.get('torch_threads_default')}",
        format_table(rows, COLUMNS), "",
        f"the encoder alone, {data['params'].get('batch_questions')} created questions in batches of "
        "64, s per 1,000: " + ", ".join(
            f"{v} with {k} torch thread(s)"
            for k, v in data.get("batch_encode_s_per_1k_by_threads", {}).items())])
