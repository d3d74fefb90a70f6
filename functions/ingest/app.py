"""Ingest router: CloudWatch Logs subscription (or Kinesis) batches -> PACS metrics, sinks, parking.

It raises in exactly one case: what had to be parked could not be (the parking queue is down or does
not answer in time, or the function's configuration is broken so it has no parking at all). Lambda
then retries the event and finally hands it to the on-failure destination, so the batch is kept.
"""

from __future__ import annotations

from typing import Any

from logpipe.pipeline import IngestPipeline
from logpipe.runtime import build_ingest_pipeline
from logpipe.settings import Settings

_pipeline: IngestPipeline | None = None


def lambda_handler(event: object, context: Any) -> dict[str, Any]:  # LambdaContext
    """Route one subscription event (any other event is parked as malformed); return the counts per kind and outcome."""
    global _pipeline  # noqa: PLW0603 - one pipeline (clients, rules) per container, built on first use
    if _pipeline is None:
        _pipeline = build_ingest_pipeline(Settings.from_env())
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    return _pipeline.run(event, remaining_ms).to_dict()
