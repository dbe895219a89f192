"""The sentence encoder behind diverse / similar and `creator report`: backends, engine speed, report.

    python -m benchmarks embed_cost [--quick] [--out DIR]

Three parts, in one run:

1. backends: each sentence-encoder backend on the same questions (the benchmark data's CSQA and
   StrategyQA train questions when ../shared/data is there, else questions the simulator made):
   load time; records/s encoding the whole list at once (as `creator report` does: sorted by
   length, every worker) and reply by reply (5 texts a call, one call at a time, one worker: what
   the engine did before batching across replies); and agreement with today's vectors (the code
   before this benchmark's change: transformers fp32, one torch thread, padded batches of 64):
   cosine of each sentence with its reference vector, and how often the choice of the next
   exemplar is the same, for diverse (least similar) and similar (most similar), on fixed groups
   of an exemplar and 5 replies: groups of 6 of the questions above, and the groups that one
   diverse run against the simulator really made (exemplar + what its request created).
2. engine: tree, diverse and similar creating the same number of records in this process
   (`creator.engine.create`) against the simulator (0.5 s latency, concurrency 64 = 64 chains,
   k = 5): with no rate limit, and with the simulator's and the creator's `--rpm 5000`. Per run:
   requests/s, the encoder's batches, and the check that every question is encoded once (a probe
   on the encoder sees every text it encodes). The "before" row is the engine as it was: torch
   fp32, one worker, one reply per call.
3. report: `python -m creator report` on 10,000 created records (and the StrategyQA train split
   as --reference when present), wall time of the whole command, per backend.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .common import (PACKAGES, REPO, RunMetrics, Simulator, Target, check, format_table, log,
                     machine_info, python)

SHARED_DATA = REPO.parent / "shared" / "data"
CHOSEN = "ct2"  # the default on a CPU (creator/embed.py), chosen by part 1


@dataclass
class Params:
    questions: int  # for part 1: agreement
    speed_questions: int  # part 1: the whole-list speeds
    per_reply_questions: int  # part 1: the reply-by-reply speed
    rounds: int  # part 1: speeds are the median of this many rounds
    records: int  # part 2, per run
    concurrency: int
    latency_s: float
    rpm: float
    report_records: int  # part 3
    backends: list[str]
    engine_runs: list[tuple[str, str, str | None, int | None]]  # name, setting, backend, workers
    rpm_runs: list[tuple[str, str, str | None, int | None]]
    report_backends: list[str]


FULL = Params(
    questions=3000, speed_questions=1500, per_reply_questions=500, rounds=3, records=3000, concurrency=64, latency_s=0.5,
    rpm=5000, report_records=10000,
    backends=["torch", "ct2", "ct2-int8", "torch-int8", "onnx", "onnx-int8", "openvino"],
    engine_runs=[
        ("tree", "tree", None, None),
        ("diverse, before (torch, 1 worker, a reply per call)", "diverse", "before", 1),
        ("diverse, torch, 2 workers", "diverse", "torch", 2),
        ("diverse, ct2, 1 worker", "diverse", "ct2", 1),
        ("diverse, ct2, 2 workers", "diverse", "ct2", 2),
        ("similar, ct2, 2 workers", "similar", "ct2", 2),
        ("diverse, onnx, 2 workers", "diverse", "onnx", 2),
        ("diverse, ct2-int8, 2 workers", "diverse", "ct2-int8", 2),
        ("similar, ct2-int8, 2 workers", "similar", "ct2-int8", 2),
    ],
    rpm_runs=[
        ("tree", "tree", None, None),
        ("diverse, ct2, 2 workers", "diverse", "ct2", 2),
        ("similar, ct2, 2 workers", "similar", "ct2", 2),
        ("diverse, ct2-int8, 2 workers", "diverse", "ct2-int8", 2),
        ("similar, ct2-int8, 2 workers", "similar", "ct2-int8", 2),
    ],
    report_backends=["torch", "ct2", "ct2-int8"],
)  # fmt: skip
QUICK = Params(
    questions=240, speed_questions=240, per_reply_questions=60, rounds=1, records=300, concurrency=16, latency_s=0.1, rpm=5000,
    report_records=1000, backends=["torch", "ct2"],
    engine_runs=[("tree", "tree", None, None), ("diverse, ct2, 2 workers", "diverse", "ct2", 2),
                 ("similar, ct2, 2 workers", "similar", "ct2", 2)],
    rpm_runs=[("diverse, ct2, 2 workers", "diverse", "ct2", 2)],
    report_backends=["ct2"],
)  # fmt: skip


@dataclass
class EmbedResult:
    benchmark: str
    command: str
    quick: bool
    machine: dict[str, Any]
    params: dict[str, Any]
    available: bool
    reason: str | None = None
    questions_source: str = ""
    backends: list[dict[str, Any]] = field(default_factory=list)
    runs: list[RunMetrics] = field(default_factory=list)
    rpm_runs: list[RunMetrics] = field(default_factory=list)
    report: list[dict[str, Any]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    wall_s: float = 0.0


# --- questions and today's vectors ---------------------------------------------------------------


def _questions(path: Path, n: int) -> list[str]:
    out = []
    with path.open() as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line)["question"])
            if len(out) >= n:
                break
    return out


def real_questions(n: int) -> tuple[list[str], str]:
    csqa = SHARED_DATA / "mcqa_5" / "csqa" / "train.jsonl"
    sqa = SHARED_DATA / "yesno_close" / "strategyqa" / "train.jsonl"
    if csqa.is_file() and sqa.is_file():
        a = _questions(csqa, n * 3 // 5)
        return a + _questions(sqa, n - len(a)), "CSQA + StrategyQA train questions (shared/data)"
    return [], ""


def reference_vectors(texts: list[str]) -> np.ndarray:
    """Today's vectors: the encoder as it was before batching across replies (transformers fp32,
    one torch thread, padded batches of 64 in the order given), kept here verbatim."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from creator.assets import minilm_dir

    model_dir = str(minilm_dir())
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                batch = tokenizer(texts[start : start + 64], padding=True, truncation=True,
                                  max_length=256, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    finally:
        torch.set_num_threads(threads)
    return np.concatenate(rows).astype(np.float32)


def choice_agreement(ref: np.ndarray, vec: np.ndarray, groups: list[tuple[int, list[int]]]
                     ) -> dict[str, Any]:
    """Same choice of the next exemplar (diverse: argmin, similar: argmax) with both vectors."""
    same = {"diverse": 0, "similar": 0}
    for exemplar, replies in groups:
        for setting, pick in (("diverse", np.argmin), ("similar", np.argmax)):
            same[setting] += int(pick(ref[replies] @ ref[exemplar]) ==
                                 pick(vec[replies] @ vec[exemplar]))
    n = len(groups)
    return {"groups": n, **{f"same_{k}": round(v / n, 4) if n else None for k, v in same.items()},
            "same_both": round((same["diverse"] + same["similar"]) / (2 * n), 4) if n else None}


def load_encoder(backend: str, workers: int | None = None, **kw: Any) -> Any:
    from creator.assets import minilm_dir
    from creator.embed import SentenceEncoder

    if backend == "before":  # the engine as it was: torch fp32, one worker, each call alone
        enc = SentenceEncoder(None, 64, backend="torch", workers=1, max_batch=1)
        enc.sort_by_length = False
        return enc
    if backend in ("torch", "ct2", "ct2-int8"):
        return SentenceEncoder(None, backend=backend, workers=workers, **kw)
    from .embed_backends import make_runner

    return SentenceEncoder(None, backend=make_runner(backend, minilm_dir()), workers=workers, **kw)


# --- part 1: the backends --------------------------------------------------------------------


def measure_backends(p: Params, texts: list[str], ref: np.ndarray,
                     groups: dict[str, list[tuple[int, list[int]]]]) -> list[dict[str, Any]]:
    """Agreement from one pass over all texts; speeds as the median of `p.rounds` rounds that
    visit the backends in turn, so a burst of load from elsewhere on the machine does not fall
    on one backend only."""
    rows: list[dict[str, Any]] = []
    loaded: list[tuple[dict[str, Any], Any, Any]] = []  # row, all-workers encoder, 1-worker one
    for backend in p.backends:
        row: dict[str, Any] = {"backend": backend}
        rows.append(row)
        try:
            started = time.perf_counter()
            enc = load_encoder(backend)
            row["load_s"] = round(time.perf_counter() - started, 2)
            one = load_encoder(backend, workers=1)
        except ImportError as exc:
            row["error"] = f"not installed ({exc.name})"
            log(f"  backend {backend}: {row['error']}")
            continue
        except Exception as exc:  # noqa: BLE001 - recorded, the other backends go on
            row["error"] = f"{type(exc).__name__}: {exc}"
            log(f"  backend {backend}: {row['error']}")
            continue
        row["workers"] = enc.workers
        vectors = enc.encode(texts)
        cos = (vectors * ref).sum(axis=1)
        row.update({
            "cosine_min": round(float(cos.min()), 5), "cosine_mean": round(float(cos.mean()), 5),
            "cosine_p1": round(float(np.percentile(cos, 1)), 5),
            "below_0_99": round(float((cos < 0.99).mean()), 4),
        })  # fmt: skip
        for name, g in groups.items():
            row[f"choice_{name}"] = choice_agreement(ref, vectors, g)
        loaded.append((row, enc, one))
    speed_texts = texts[: p.speed_questions]
    reply_texts = texts[: p.per_reply_questions]
    samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    try:
        for _ in range(p.rounds):
            for row, enc, one in loaded:
                got = samples[row["backend"]]
                for key, encoder in (("bulk_records_per_s", enc), ("bulk_1_worker_records_per_s", one)):
                    started = time.perf_counter()
                    encoder.encode(speed_texts)
                    got[key].append(len(speed_texts) / (time.perf_counter() - started))
                # reply by reply, one worker: the engine's shape before batching across replies
                started = time.perf_counter()
                for i in range(0, len(reply_texts), 5):
                    one.encode(reply_texts[i : i + 5])
                got["per_reply_records_per_s"].append(
                    len(reply_texts) / (time.perf_counter() - started))
    finally:
        for _, enc, one in loaded:
            enc.close()
            one.close()
    for row, _, _ in loaded:
        for key, values in samples[row["backend"]].items():
            row[key] = round(float(np.median(values)), 1)
            row[key.replace("_per_s", "_per_s_all")] = [round(v, 1) for v in values]
        log(f"  backend {row['backend']}: load {row['load_s']} s, whole list "
            f"{row['bulk_records_per_s']}/s ({row['bulk_1_worker_records_per_s']}/s on 1 worker), "
            f"reply by reply {row['per_reply_records_per_s']}/s, cosine min {row['cosine_min']}, "
            + ", ".join(f"same choice ({k}) {row[f'choice_{k}']['same_both']}" for k in groups))
    return rows


# --- part 2: the engine ----------------------------------------------------------------------


class Probe:
    """Sees every text the encoder encodes (the encoder calls it in its worker threads)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.count = 0

    def __call__(self, texts: list[str]) -> None:
        self.seen.update(texts)
        self.count += len(texts)


def engine_run(p: Params, sim: Any, name: str, setting: str, backend: str | None,
               workers: int | None, work: Path, rpm: float | None
               ) -> tuple[RunMetrics | None, Path | None]:
    """One run with an encoder of its own (loaded before the clock starts; a converted model
    comes from the cache), closed after the run once its last batch is done."""
    from creator.config import RunConfig
    from creator.engine import create

    enc = None
    if backend is not None:
        try:
            enc = load_encoder(backend, workers)
        except ImportError as exc:  # a benchmark-only backend whose package is missing
            log(f"  {name}: skipped, {exc.name} is not installed")
            return None, None
        probe = enc.on_batch = Probe()
    output = work / f"train_{setting}_{len(os.listdir(work))}.jsonl"
    cfg = RunConfig(
        data_dir=REPO / "data" / "yesno_close", data_name="example", setting=setting,
        output=output, model="sim-model", base_urls=[sim.base_url], target=p.records,
        concurrency=p.concurrency, rpm=rpm, progress=False, overwrite=True,
    )  # fmt: skip
    sim.reset()
    started = time.perf_counter()
    result = asyncio.run(create(cfg, enc))
    wall = time.perf_counter() - started
    s = result.summary
    m = RunMetrics(
        name=name, client="creator (in process)", setting=setting, concurrency=p.concurrency,
        requests=s["requests"], completions=s["completions"], accepted=s["accepted"],
        retries=s["retries"], rate_limited=s["rate_limited"],
        failed_requests=s["failed_requests"], duration_s=s["this_session"]["duration_s"],
        latency_p50_s=s["this_session"]["latency_p50_s"],
        latency_p99_s=s["this_session"]["latency_p99_s"], wall_s=round(wall, 3),
        extra={"status": result.status, "backend": backend, "workers": enc.workers if enc else None},
        server=sim.stats(),
    )  # fmt: skip
    if rpm:
        m.physical_limit_rps = round(rpm / 60, 3)
    else:
        m.physical_limit_rps = round(p.concurrency / p.latency_s, 3)
    if enc is not None:
        enc.close(wait=True)  # the batch in progress when the target was reached finishes
        encoded = enc.encoded
        m.extra.update({
            "encoded": encoded,
            "distinct_texts": len(probe.seen),
            # a text encoded twice (the design: never; the exemplar once for all chains)
            "repeat_encodes": probe.count - len(probe.seen),
            # kept, but the run reached its target before their encode started
            "records_not_encoded": max(0, s["accepted"] + 1 - len(probe.seen)),
            "one_encode_per_record": probe.count == len(probe.seen) and encoded <= s["accepted"] + 1,
            "encodes_per_record": round(encoded / max(s["accepted"], 1), 4),
            "batches": enc.batches,
            "mean_batch": round(encoded / enc.batches, 1) if enc.batches else None,
            "encoder_busy_s": round(enc.busy_s, 2),
            "encoder_records_per_busy_s": round(encoded / enc.busy_s, 1) if enc.busy_s else None,
        })  # fmt: skip
    m.finish()
    log(f"  {name}{' at --rpm %g' % rpm if rpm else ''}: {m.requests_per_s:.1f} req/s "
        f"({m.achieved_fraction:.0%} of {m.physical_limit_rps:g}), {s['accepted']} records"
        + (f", {m.extra['encoded']} encoded in {m.extra['batches']} batches "
           f"(mean {m.extra['mean_batch']}), one encode per record: "
           f"{m.extra['one_encode_per_record']}" if enc else ""))
    return m, output


def reply_groups_from_run(path: Path, exemplar: str, limit: int) -> tuple[list[str], list[tuple[int, list[int]]]]:
    """The groups one diverse run made: each request's exemplar and the records it created."""
    by_parent: dict[int, list[dict]] = defaultdict(list)
    question_of: dict[int, str] = {0: exemplar}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        meta = row.get("meta") or {}
        question_of[meta.get("id")] = row["question"]
        by_parent[meta.get("parent", 0)].append(row)
    texts: list[str] = []
    index: dict[str, int] = {}
    groups = []

    def at(q: str) -> int:
        if q not in index:
            index[q] = len(texts)
            texts.append(q)
        return index[q]

    for parent, rows in by_parent.items():
        if len(rows) < 2 or parent not in question_of:
            continue
        groups.append((at(question_of[parent]), [at(r["question"]) for r in rows]))
        if len(texts) >= limit:
            break
    return texts, groups


# --- part 3: the report ----------------------------------------------------------------------


def report_runs(p: Params, records_file: Path, work: Path) -> list[dict[str, Any]]:
    reference = SHARED_DATA / "yesno_close" / "strategyqa" / "train.jsonl"
    out = []
    for backend in p.report_backends:
        cmd = [python(), "-m", "creator", "report", str(records_file), "--json",
               str(work / f"report_{backend}.json")]
        if reference.is_file():
            cmd += ["--reference", str(reference)]
        env = {**os.environ, "CREATOR_ENCODER_BACKEND": backend,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - started
        row = {"backend": backend, "records": p.report_records, "exit": proc.returncode,
               "wall_s": round(wall, 2),
               "reference": str(reference.relative_to(SHARED_DATA.parent)) if reference.is_file() else None}
        if proc.returncode == 0:
            rep = json.loads((work / f"report_{backend}.json").read_text())
            row["encoded_questions"] = rep.get("encoded_questions")
            row["mean_pairwise_cosine_distance"] = rep["created"]["diversity"].get(
                "mean_pairwise_cosine_distance")
        else:
            row["stderr"] = proc.stderr[-2000:]
        log(f"  creator report, {backend}: {row['wall_s']} s, exit {proc.returncode}")
        out.append(row)
    return out


def make_records(n: int, work: Path) -> Path:
    """n created records (naive setting, a fast simulator): the report's input."""
    from creator.config import RunConfig
    from creator.engine import create

    out = work / "report_input.jsonl"
    with Simulator(ttft=0.01, seed=5) as sim:
        cfg = RunConfig(data_dir=REPO / "data" / "yesno_close", data_name="example",
                        setting="naive", output=out, model="sim-model", base_urls=[sim.base_url],
                        target=n, concurrency=64, progress=False, overwrite=True)
        asyncio.run(create(cfg, None))
    return out


# --- the whole benchmark -----------------------------------------------------------------------


def run(quick: bool, command: str) -> EmbedResult:
    p = QUICK if quick else FULL
    began = time.monotonic()
    packages = (*PACKAGES, "ctranslate2", "onnxruntime", "onnx", "openvino")
    result = EmbedResult("embed_cost", command, quick, machine_info(packages), dict(p.__dict__),
                         True)
    try:
        from creator.embed import EncoderError, SentenceEncoder

        SentenceEncoder(None, backend=CHOSEN).close()  # converts it once, outside the timings
    except (ImportError, EncoderError) as exc:
        result.available, result.reason = False, str(exc)
        log(f"embed_cost: not available: {exc}")
        return result
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        work = Path(tmp)
        # part 2 first: its diverse run also gives the real reply groups for part 1
        log("embed_cost: engine runs, no rate limit")
        diverse_output = None
        with Simulator(ttft=p.latency_s, seed=13) as sim:
            for name, setting, backend, workers in p.engine_runs:
                m, output = engine_run(p, sim, name, setting, backend, workers, work, None)
                if m is None:
                    continue
                result.runs.append(m)
                if setting == "diverse" and backend == CHOSEN and diverse_output is None:
                    diverse_output = output
        log(f"embed_cost: engine runs, --rpm {p.rpm:g} (simulator and creator)")
        with Simulator(ttft=p.latency_s, seed=14, rpm=p.rpm) as sim:
            for name, setting, backend, workers in p.rpm_runs:
                m, _ = engine_run(p, sim, name, setting, backend, workers, work, p.rpm)
                if m is not None:
                    result.rpm_runs.append(m)
        log("embed_cost: backends")
        texts, result.questions_source = real_questions(p.questions)
        from creator.task import load_exemplar

        exemplar = load_exemplar(REPO / "data" / "yesno_close", "example", 42, None)[0].question
        run_texts, run_groups = reply_groups_from_run(diverse_output, exemplar, p.questions) \
            if diverse_output else ([], [])  # fmt: skip
        if not texts:
            texts, result.questions_source = run_texts, "questions the simulator made"
        offset = len(texts)
        all_texts = texts + run_texts
        groups = {"real": [(i, list(range(i + 1, i + 6))) for i in range(0, len(texts) - 5, 6)]
                  if result.questions_source.startswith("CSQA") else [],
                  "run": [(offset + e, [offset + r for r in rs]) for e, rs in run_groups]}
        groups = {k: v for k, v in groups.items() if v}
        started = time.perf_counter()
        ref = reference_vectors(all_texts)
        result.params["reference_records_per_s"] = round(
            len(all_texts) / (time.perf_counter() - started), 1)  # today's encoder on a list
        result.params["agreement_texts"] = len(all_texts)
        result.params["groups"] = {k: len(v) for k, v in groups.items()}
        result.backends = measure_backends(p, all_texts, ref, groups)
        log(f"embed_cost: creator report on {p.report_records} records")
        result.report = report_runs(p, make_records(p.report_records, work), work)
    result.targets = targets(result)
    result.wall_s = round(time.monotonic() - began, 1)
    return result


def targets(r: EmbedResult) -> list[Target]:
    out = []
    tree = next((m for m in r.runs if m.setting == "tree"), None)
    for runs, label in ((r.runs, "no limit"), (r.rpm_runs, "--rpm")):
        for m in runs:
            if m.setting not in ("diverse", "similar"):
                continue
            if label == "no limit" and tree is not None:
                out.append(check(f"{m.name}: requests/s >= 80% of tree's (c={m.concurrency})",
                                 m.requests_per_s / tree.requests_per_s, ">=", 0.8))
            elif label == "--rpm":
                out.append(check(f"{m.name}: >= 90% of the --rpm limit",
                                 m.achieved_fraction, ">=", 0.9))
            if m.extra.get("encoded") is not None:
                out.append(check(f"{m.name} ({label}): one encode per record",
                                 1.0 if m.extra["one_encode_per_record"] else 0.0, "==", 1.0))
    for b in r.backends:
        if "error" in b:
            continue
        out.append(check(f"backend {b['backend']}: cosine >= 0.99 for every sentence",
                         b["cosine_min"], ">=", 0.99))
        for k in ("real", "run"):
            if f"choice_{k}" in b:
                out.append(check(f"backend {b['backend']}: same choice >= 99% ({k} groups)",
                                 b[f"choice_{k}"]["same_both"], ">=", 0.99))
    return out


# --- tables ----------------------------------------------------------------------------------


BACKEND_COLUMNS = [("backend", "backend", ""), ("load_s", "load s", ".2f"),
                   ("bulk_records_per_s", "rec/s list, all workers", ".0f"),
                   ("bulk_1_worker_records_per_s", "rec/s list, 1 worker", ".0f"),
                   ("per_reply_records_per_s", "rec/s reply by reply", ".0f"),
                   ("cosine_min", "cosine min", ".4f"), ("cosine_mean", "cosine mean", ".5f"),
                   ("below_0_99", "< 0.99", ".2%"), ("same_real", "same choice (data)", ".2%"),
                   ("same_run", "same choice (run)", ".2%")]  # fmt: skip
RUN_COLUMNS = [("name", "run", ""), ("accepted", "records", "d"), ("requests_per_s", "req/s", ".1f"),
               ("of_tree", "of tree", ".0%"), ("achieved_fraction", "of limit", ".0%"),
               ("batches", "batches", "d"), ("mean_batch", "mean batch", ".1f"),
               ("encoded", "encoded", "d"), ("repeat_encodes", "repeats", "d"),
               ("records_not_encoded", "not encoded", "d"),
               ("encoder_records_per_busy_s", "enc rec/busy s", ".0f"),
               ("failed_requests", "failed", "d")]  # fmt: skip
REPORT_COLUMNS = [("backend", "backend", ""), ("records", "records", "d"),
                  ("encoded_questions", "questions encoded", "d"), ("wall_s", "wall s", ".1f"),
                  ("exit", "exit", "d")]


def tables(data: dict[str, Any]) -> str:
    if not data["available"]:
        return f"embed_cost: not available here: {data['reason']}"
    p = data["params"]
    backend_rows = []
    for b in data["backends"]:
        row = dict(b)
        for k in ("real", "run"):
            row[f"same_{k}"] = (b.get(f"choice_{k}") or {}).get("same_both")
        if "error" in b:
            row["backend"] = f"{b['backend']} ({b['error']})"
        backend_rows.append(row)
    tree = next((r for r in data["runs"] if r["setting"] == "tree"), None)
    tree_rpm = next((r for r in data["rpm_runs"] if r["setting"] == "tree"), None)

    def rows(runs: list[dict], base: dict | None) -> list[dict]:
        return [{**r, **r["extra"], "of_tree": r["requests_per_s"] / base["requests_per_s"]
                 if base else None} for r in runs]

    groups = p.get("groups", {})
    met = [t for t in data.get("targets", [])]
    return "\n".join([
        f"1. backends: {p.get('agreement_texts')} questions ({data.get('questions_source')} and "
        f"the diverse run's replies); agreement with today's vectors (transformers fp32, 1 thread, "
        f"padded batches of 64); same choice: of {2 * groups.get('real', 0)} decisions on groups of "
        f"6 questions (data) and {2 * groups.get('run', 0)} on the diverse run's own replies (run)",
        format_table(backend_rows, BACKEND_COLUMNS),
        f"(records/s: median of {p.get('rounds')} rounds; today's encoder on the same list: "
        f"{p.get('reference_records_per_s')} records/s)", "",
        f"2. engine: {p['records']} records per run, concurrency {p['concurrency']} (= chains), "
        f"latency {p['latency_s']:g} s, k = 5; no rate limit (limit: concurrency / latency)",
        format_table(rows(data["runs"], tree), RUN_COLUMNS), "",
        f"   the same with the simulator's and the creator's --rpm {p['rpm']:g} "
        f"(limit {p['rpm'] / 60:.1f} requests/s)",
        format_table(rows(data["rpm_runs"], tree_rpm), RUN_COLUMNS), "",
        f"3. python -m creator report on {p['report_records']} records "
        f"(--reference {next((r.get('reference') for r in data['report']), None)})",
        format_table(data["report"], REPORT_COLUMNS), "",
        "targets: " + "; ".join(f"{t['name']}: {t['value']} {'met' if t['met'] else 'NOT met'}"
                                for t in met),
    ])
