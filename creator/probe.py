"""`--dry_run --probe N`: measure the model's replies before projecting a run.

Before any reply the projection takes a reply to be k exemplar-long objects, kept at
--acceptance_prior; a model that writes longer or shorter fields, or repeats itself, moves the
whole projection by that factor (the simulator's template-long fields: 1.02x-1.63x on the four
examples; the embedded SmolLM2: 0.94x-2.1x). A probe runs the very job (same prompts, settings,
checks and de-duplication) for N requests into a temporary folder, then projects from what those
measured, as a resumed run projects from its earlier sessions. Its requests are real and billed;
its records are thrown away, so the dry run still writes nothing beside the output.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import replace
from pathlib import Path

from .api import Prepared, Resources, run, summary_path
from .engine import make_projection, plan_run
from .errors import APIError, option
from .sink import read_summary


def probe_job(prepared: Prepared, folder: Path) -> Prepared:
    """The same job, stopped by a budget of N requests, written into `folder`."""
    cfg = replace(prepared.cfg, output=folder / "probe.jsonl", base_urls=list(
        prepared.cfg.base_urls), dry_run=False, probe=None, max_requests=prepared.cfg.probe,
        max_cost=None, resume=False, overwrite=False, progress=False, batch=False)
    return Prepared(cfg, plan_run(cfg), prepared.embedded, prepared.model_path)


async def measure(prepared: Prepared) -> None:
    """Send the probe and replace `prepared.projection` with one made from what it measured.
    Raises APIError (the API refused us) or ServerError (the embedded server did not start)."""
    cfg = prepared.cfg
    if prepared.projection.remaining <= 0:  # the output is complete: nothing to measure for
        return
    with tempfile.TemporaryDirectory(prefix="creator-probe-") as folder:
        job = probe_job(prepared, Path(folder))
        resources = Resources(job)
        await asyncio.to_thread(resources.__enter__)
        try:
            result = await run(job, resources)
        finally:
            await asyncio.to_thread(resources.__exit__)
        probed = read_summary(summary_path(job.cfg.output)) or {}
    if not int(probed.get("completions") or 0):
        raise APIError(f"{option('probe', cfg.probe)} got no reply to measure ({result.status}: "
                       f"{result.message or 'no message'}); nothing was written")
    cfg.model = cfg.model or job.cfg.model  # asked of the server: its price, if listed
    prepared.projection = make_projection(cfg, prepared.plan, probed=probed)
