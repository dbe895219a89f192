"""`--dry_run --probe N`: measure the model's replies before projecting a run.

Before any reply the projection takes a reply to be k exemplar-long objects, kept at
--acceptance_prior; a model that writes longer or shorter fields, or repeats itself, moves the
whole projection by that factor (the simulator's template-long fields: 1.02x-1.63x on the four
examples; the embedded SmolLM2: 0.94x-2.1x). A probe runs the very job (same prompts, settings,
checks and de-duplication) for N requests into a temporary folder, then projects from what those
measured, as a resumed run projects from its earlier sessions. Its requests are real and billed;
its records are thrown away, so the dry run still writes nothing beside the output. (The API runs
it: api.probe.)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import APIError, option


def probe_config(cfg: RunConfig, folder: Path) -> RunConfig:
    """The same job, stopped by a budget of N requests, written into `folder`; not in a batch
    (which may take 24 h)."""
    return replace(cfg, output=folder / "probe.jsonl", base_urls=list(cfg.base_urls),
                   dry_run=False, probe=None, max_requests=cfg.probe, max_cost=None,
                   resume=False, overwrite=False, progress=False, batch=False)


def check_probed(cfg: RunConfig, probed: dict[str, Any], status: str, message: str) -> None:
    """A probe that got no reply has nothing to project from."""
    if not int(probed.get("completions") or 0):
        raise APIError(f"{option('probe', cfg.probe)} got no reply to measure ({status}: "
                       f"{message or 'no message'}); nothing was written")
