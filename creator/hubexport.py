"""`creator export`: a created JSONL file -> a dataset folder ready for `push_to_hub`.

    FOLDER/
      data/train.jsonl   the records (question, context, options, label), no run metadata
      README.md          a dataset card: YAML metadata (task, size, features, the data file)
                         and what made the data: the model and endpoint, the setting, the seed,
                         the exemplar, the run's figures and the quality report's headline

`datasets.load_dataset(FOLDER)` reads it as it will read it from the hub; pushing
(`Dataset.push_to_hub` or `huggingface-cli upload`) needs a hub and is left to the user.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, OutputError
from .records import Record, read_records, record_line
from .summary import RunSummary

PAPER = ("Lee et al., *Making Large Language Models Better Data Creators*, EMNLP 2023 "
         "(https://aclanthology.org/2023.emnlp-main.948/)")


@dataclass(frozen=True)
class Exported:
    folder: Path
    data_file: Path
    card: Path
    records: int


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def card_text(records: list[Record], summary: RunSummary | None,
              headline: dict[str, Any] | None, name: str, num_bytes: int) -> str:
    """The dataset card: YAML metadata the hub reads, then the provenance people read."""
    yes_no = bool(records) and all(r.yes_no for r in records)
    label = ("    dtype:\n      class_label:\n        names:\n          '0': 'False'\n"
             "          '1': 'True'\n") if yes_no else "    dtype: string\n"
    meta = (
        "---\n"
        "language:\n- en\n"
        f"task_categories:\n- {'text-classification' if yes_no else 'multiple-choice'}\n"
        f"size_categories:\n- {_size_category(len(records))}\n"
        "tags:\n- synthetic\n- llm-generated\n- llm-data-creator\n"
        f"pretty_name: {json.dumps(name)}\n"
        "configs:\n- config_name: default\n  data_files:\n  - split: train\n"
        "    path: data/train.jsonl\n"
        "dataset_info:\n  features:\n  - name: question\n    dtype: string\n"
        "  - name: context\n    dtype: string\n  - name: options\n    sequence: string\n"
        f"  - name: label\n{label}"
        f"  splits:\n  - name: train\n    num_bytes: {num_bytes}\n"
        f"    num_examples: {len(records)}\n"
        "---\n"
    )
    lines = [f"# {name}", "",
             f"{len(records)} {'yes/no' if yes_no else 'multiple-choice'} examples created by a "
             f"large language model from one formatting exemplar, with llm-data-creator "
             f"(the method of {PAPER}).", ""]
    if summary is not None:
        config, identity = summary.config, summary.identity
        endpoints = config.get("base_urls") or []
        lines += [
            "## How it was made", "",
            f"- model: `{config.get('model')}` at {', '.join(f'`{u}`' for u in endpoints)}",
            f"- setting: `{identity.get('setting')}`, {identity.get('num_examples')} examples "
            f"per request, seed {config.get('seed')}, temperature {config.get('temperature')}, "
            f"top_p {config.get('top_p')}",
            f"- the exemplar: `{json.dumps(identity.get('exemplar'), ensure_ascii=False)}`",
            f"- the run: {summary.requests} requests, {summary.prompt_tokens:,} prompt and "
            f"{summary.completion_tokens:,} completion tokens, estimated cost "
            f"${summary.estimated_cost_usd:.4f}, {summary.duration_s:.0f} s over "
            f"{summary.sessions} session(s), status {summary.status}",
            f"- candidates rejected, by reason: "
            f"{json.dumps(summary.rejected) if summary.rejected else 'none'}", ""]
    if headline:
        lines += ["## Quality (creator report)", ""]
        lines += [f"- {key}: {value}" for key, value in headline.items()]
        lines += [""]
    lines += ["## Use", "", "```python", "import datasets",
              "ds = datasets.load_dataset('path/or/hub/name', split='train')", "```", "",
              "Created data is only as good as the model that made it: check it (creator "
              "report) before training on it.", ""]
    return meta + "\n" + "\n".join(lines)


def export(created: str | os.PathLike, folder: str | os.PathLike, *, name: str | None = None,
           report: Any = None, headline: dict[str, Any] | None = None,
           overwrite: bool = False) -> Exported:
    """Write `folder` (see the module docstring) from a created JSONL file and its summary;
    `report` (a creator.Report) puts its headline in the card. Raises InputError for a missing
    or invalid file or an existing folder (unless overwrite)."""
    if report is not None:
        headline = {**report.headline(), **(headline or {})}
    source, target = Path(created), Path(folder)
    if not source.is_file():
        raise InputError(f"file not found: {source}")
    records = read_records(source)
    if not records:
        raise InputError(f"{source} has no records to export")
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise InputError(f"{target} exists and is not empty: choose another folder, or "
                         "overwrite it")
    summary_file = source.with_name(source.stem + ".summary.json")
    summary = None
    if summary_file.is_file():
        summary = RunSummary.from_json(json.loads(summary_file.read_text(encoding="utf-8")))
    name = name or f"{source.parent.name}-{source.stem}"
    data = target / "data" / "train.jsonl"
    card = target / "README.md"
    try:
        data.parent.mkdir(parents=True, exist_ok=True)
        content = b"".join(record_line(r) for r in records)
        data.write_bytes(content)
        card.write_text(card_text(records, summary, headline, name, len(content)),
                        encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    return Exported(target, data, card, len(records))
