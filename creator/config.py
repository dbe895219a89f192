"""RunConfig: everything one `creator create` run needs, already checked by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .endpoints import Endpoint
from .filters import QualityOptions

# USD per 1M tokens (input, output), list prices when this was written; --price_in/--price_out win
KNOWN_PRICES = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
}


@dataclass
class RunConfig:
    data_dir: Path
    data_name: str
    setting: str
    output: Path
    model: str
    base_urls: list[str]
    api_key: str | None = field(default=None, repr=False)  # never printed or written
    endpoints: list[Endpoint] | None = None  # from an endpoints file; else one per base URL
    num_examples: int = 5
    seed: int = 42
    target: int | None = None  # None: the size of the split the exemplar comes from
    exemplar_file: Path | None = None
    concurrency: int = 16
    chains: int | None = None  # random/diverse/similar: independent chains (default: concurrency)
    rpm: float | None = None
    tpm: float | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024
    json_schema: bool = False
    schema_style: str = "openai"  # how response_format carries the schema: openai | llamacpp
    timeout: float = 120.0
    max_retries: int = 8
    max_requests: int | None = None
    patience: int | None = None  # stop after this many requests in a row add nothing
    resume: bool = False
    overwrite: bool = False
    encoder: str | None = None
    encoder_backend: str | None = None
    price_in: float | None = None
    price_out: float | None = None
    progress: bool = True
    quality: QualityOptions = field(default_factory=QualityOptions)  # filters beyond the paper

    def endpoint_list(self) -> list[Endpoint]:
        """The endpoints file's, or one per --base_url with the run's key and limits."""
        if self.endpoints:
            return self.endpoints
        return [Endpoint(url.rstrip("/"), self.api_key, rpm=self.rpm, tpm=self.tpm)
                for url in self.base_urls]

    def prices(self) -> tuple[float, float]:
        known = KNOWN_PRICES.get(self.model, (0.0, 0.0))
        return (
            self.price_in if self.price_in is not None else known[0],
            self.price_out if self.price_out is not None else known[1],
        )

    @property
    def num_chains(self) -> int:
        return self.chains or self.concurrency

    @property
    def stall_limit(self) -> int:
        return self.patience or max(100, 4 * self.concurrency)
