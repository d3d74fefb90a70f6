"""Exporter: on each EventBridge Scheduler tick, advance the checkpointed export of aged logs to S3 by one step."""

from __future__ import annotations

from typing import Any

from logpipe.export import Exporter, build_exporter
from logpipe.settings import ExportSettings

_exporter: Exporter | None = None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # noqa: ARG001 - fixed Lambda signature
    """Run one export step (the schedule's payload carries no parameters); return the run summary."""
    global _exporter  # noqa: PLW0603 - clients live for the container's lifetime
    if _exporter is None:
        _exporter = build_exporter(ExportSettings.from_env())
    return _exporter.run().to_dict()
