"""RunConfig: everything one `creator create` run needs, already checked by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .endpoints import Endpoint
from .filters import QualityOptions

# USD per 1M tokens (input, output), list prices when this was written
# (https://developers.openai.com/api/docs/pricing); --price_in/--price_out win
KNOWN_PRICES = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
}
# The Batch API: "Each model will be offered at 50% cost discount vs. the synchronous APIs"
# (OpenAI's Batch API FAQ, https://help.openai.com/en/articles/9197833; the pricing page lists the
# batch column at half the standard one, e.g. gpt-4o-mini $0.075 / $0.30).
BATCH_DISCOUNT = 0.5
KNOWN_BATCH_PRICES = {model: (i * BATCH_DISCOUNT, o * BATCH_DISCOUNT)
                      for model, (i, o) in KNOWN_PRICES.items()}


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
    fit_max_tokens: bool = True  # under a token limit, ask for what replies need (replysize.py)
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
    max_cost: float | None = None  # USD, the whole output (resumed sessions included)
    dry_run: bool = False  # print the projection, send nothing
    probe: int | None = None  # with dry_run: measure N live requests first (creator/probe.py)
    acceptance_prior: float = 0.9  # share of asked-for examples kept, before any is measured
    batch: bool = False  # send through the provider's Batch API
    batch_size: int = 50_000  # requests per batch (OpenAI's limit per batch file)
    batch_poll: float = 60.0  # longest wait between two looks at a batch, seconds
    quality: QualityOptions = field(default_factory=QualityOptions)  # filters beyond the paper
    embedded: bool = False  # no endpoint: the local llama.cpp server, which charges nothing

    def endpoint_list(self) -> list[Endpoint]:
        """The endpoints file's, or one per --base_url with the run's key and limits."""
        if self.endpoints:
            return self.endpoints
        return [Endpoint(url.rstrip("/"), self.api_key, rpm=self.rpm, tpm=self.tpm)
                for url in self.base_urls]

    def prices(self) -> tuple[float, float]:
        """USD per 1M (prompt, completion) tokens as this run sends them: the list price of a
        known model (its batch price with --batch), or --price_in/--price_out."""
        known = (KNOWN_BATCH_PRICES if self.batch else KNOWN_PRICES).get(self.model, (0.0, 0.0))
        return (
            self.price_in if self.price_in is not None else known[0],
            self.price_out if self.price_out is not None else known[1],
        )

    def price_source(self) -> str:
        """Where prices() comes from, for messages."""
        if self.price_in is not None or self.price_out is not None:
            return "--price_in/--price_out"
        if self.model in KNOWN_PRICES:
            return f"{'batch' if self.batch else 'list'} price of {self.model}"
        if self.embedded:
            return "embedded server: it runs on this machine, nothing is charged"
        return "no known price"

    @property
    def priced(self) -> bool:
        return any(self.prices())

    @property
    def num_chains(self) -> int:
        return self.chains or self.concurrency

    @property
    def stall_limit(self) -> int:
        return self.patience or max(100, 4 * self.concurrency)
