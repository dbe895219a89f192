"""Where created records go: an append-only JSONL file, read back on resume, and a run summary.

Each reply's kept records are encoded with orjson and appended with ONE os.write on an O_APPEND
descriptor: the OS has every record whole as soon as it is accepted, so a crash (even kill -9)
loses at most the line being written, which resume discards. A few hundred bytes per write do not
block the event loop in any way we could measure, so there is no aiofiles thread hop here.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .errors import OutputError
from .records import record_line
from .strategy import Node
from .task import TaskError, record_from_json


class SinkError(OutputError):
    pass


def summary_path(output: Path) -> Path:
    return output.with_name(output.stem + ".summary.json")


def node_to_line(node: Node) -> bytes:
    meta = {"id": node.id, "parent": node.parent, "depth": node.depth, "chain": node.chain}
    return record_line(node.record, meta)


def _meta_int(meta: dict[str, Any], key: str, default: int | None, where: str) -> int | None:
    value = meta.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TaskError(f"{where}: meta.{key} must be a whole number, got {value!r}")
    return value


def node_from_json(obj: dict[str, Any], where: str) -> Node:
    record = record_from_json(obj, where)
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    return Node(
        id=_meta_int(meta, "id", 0, where),  # type: ignore[arg-type]
        record=record,
        parent=_meta_int(meta, "parent", None, where),
        depth=_meta_int(meta, "depth", 1, where),  # type: ignore[arg-type]
        chain=_meta_int(meta, "chain", 0, where),  # type: ignore[arg-type]
    )


@dataclass
class ExistingOutput:
    nodes: list[Node]
    torn_bytes: int  # bytes of an unfinished last line, cut off on resume


def scan_output(path: Path) -> ExistingOutput:
    """Read an earlier run's records. Only the last line may be torn (a crash mid-write)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ExistingOutput([], 0)
    except OSError as exc:
        raise TaskError(f"cannot read {path}: {exc.strerror}") from None
    end = data.rfind(b"\n") + 1
    nodes = []
    for lineno, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise TaskError(
                f"{path}:{lineno}: not valid JSON; this file was not written by creator, "
                "or was edited: fix or remove that line to resume"
            ) from None
        nodes.append(node_from_json(obj, f"{path}:{lineno}"))
    # records without ids (written by other tools) get fresh ones after the highest id
    next_id = max((n.id for n in nodes), default=0) + 1
    for node in nodes:
        if node.id <= 0:
            node.id, next_id = next_id, next_id + 1
    return ExistingOutput(nodes, len(data) - end)


class JsonlSink:
    """Appends records; `open(truncate_to=...)` first cuts off a torn last line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self, truncate_to: int | None = None, overwrite: bool = False) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        if overwrite:
            flags |= os.O_TRUNC
        try:
            self._fd = os.open(self.path, flags, 0o644)
            if truncate_to is not None:
                os.ftruncate(self._fd, truncate_to)
        except OSError as exc:
            raise SinkError(f"cannot open {self.path} for writing: {exc.strerror}") from None

    def write(self, nodes: list[Node]) -> None:
        if not nodes:
            return
        assert self._fd is not None
        data = b"".join(node_to_line(n) for n in nodes)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            hint = " (the disk is full)" if exc.errno == errno.ENOSPC else ""
            raise SinkError(
                f"cannot write to {self.path}{hint}: {exc.strerror}. The records written so far "
                "are safe; free space and run again with --resume"
            ) from None

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write a whole JSON file or nothing: a crash never leaves half a summary."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def read_summary(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError):
        raise TaskError(f"{path} is unreadable or not JSON: remove it, or use another --output")
    return data if isinstance(data, dict) else None

