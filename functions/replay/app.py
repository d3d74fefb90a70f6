"""Replay: re-sends parked items to their sink when due; dead-letters what needs a human."""

from __future__ import annotations

from typing import Any

from logpipe.replay import Replayer
from logpipe.runtime import build_replayer
from logpipe.settings import Settings

_replayer: Replayer | None = None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # LambdaContext
    """Handle one SQS batch of parked items; return the partial batch response."""
    global _replayer  # noqa: PLW0603 - clients and DSN cache live for the container's lifetime
    if _replayer is None:
        _replayer = build_replayer(Settings.from_env())
    return _replayer.handle(event, context)
