"""creator: turn one formatting exemplar into a whole training set through an OpenAI-compatible API.

    import creator
    result = creator.create(data_dir="data/yesno_close", data_name="example", setting="tree",
                            target=50, output="out/train_tree.jsonl")
    dataset = result.to_dataset()

Public API (the command line is a thin layer over it): `create`, `create_async`, `CreateResult`,
`read_dataset`, `report`, `Report`, `export`, the records (`Record`, `read_records`), and the
errors (`CreatorError` and its kinds `InputError`, `APIError`, `ServerError`, `OutputError`).
Importing the package is light: the engine loads on first use.
"""

from __future__ import annotations

from typing import Any

from .errors import APIError, CreatorError, InputError, OutputError, ServerError
from .records import Record, read_records

__all__ = [
    "APIError", "CreateResult", "CreatorError", "InputError", "OutputError", "Record",
    "Report", "ServerError", "create", "create_async", "export", "read_dataset",
    "read_records", "report",
]

_LAZY = {"create": "api", "create_async": "api", "CreateResult": "api", "read_dataset": "api",
         "export": "hubexport", "report": "quality", "Report": "quality"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'creator' has no attribute {name!r}")
