"""creator: turn one formatting exemplar into a whole training set through an OpenAI-compatible API.

Public surface: `create` (the async engine), `RunConfig`, `RunResult`, and the `creator` CLI
(`creator.cli.main`). Everything else is internal and may change.
"""

from .config import RunConfig
from .engine import RunResult, create

__all__ = ["RunConfig", "RunResult", "create"]
