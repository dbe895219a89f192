"""Sentence embeddings for the diverse/similar settings and the quality reports.

Plain transformers with mean pooling and L2 normalisation gives the same vectors as
sentence-transformers for all-MiniLM-L6-v2, without that dependency. Encoding runs in one worker
thread so the event loop keeps sending requests meanwhile (torch releases the GIL while it works).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np


class EncoderError(RuntimeError):
    pass


class SentenceEncoder:
    def __init__(self, model: str | Path | None = None, batch_size: int = 64) -> None:
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise EncoderError(
                f"sentence embeddings need torch and transformers ({exc.name} is missing): "
                "pip install 'llm-data-creator[embed]'"
            ) from None
        if model is None:
            from .assets import MissingAsset, minilm_dir

            try:
                model = minilm_dir()
            except MissingAsset as exc:
                raise EncoderError(str(exc)) from None
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # no weight-loading chatter on the user's terminal
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model))
            self.model = AutoModel.from_pretrained(str(model)).eval()
        except (OSError, ValueError) as exc:
            raise EncoderError(f"cannot load the sentence encoder {model}: {exc}") from None
        self.torch = torch
        self.batch_size = batch_size
        self.encoded = 0  # questions encoded so far: the benchmarks check one encode per record
        # one torch thread: the event loop needs the other core, and for batches of a few
        # questions torch's thread pool costs more than it gains (measured 12x slower with 2)
        self._worker = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="encoder", initializer=torch.set_num_threads,
            initargs=(1,),
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        torch = self.torch
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        self.encoded += len(texts)
        if not rows:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        return np.concatenate(rows).astype(np.float32, copy=False)

    async def encode_async(self, texts: Sequence[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self.encode, list(texts))

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
