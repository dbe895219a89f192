"""Which process this is, under torchrun or accelerate launch (no torch needed to know)."""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """Rank 0 (RANK is set by torchrun and accelerate launch; absent: the only process)."""
    return os.environ.get("RANK", "0") == "0"
