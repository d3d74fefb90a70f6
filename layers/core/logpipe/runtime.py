"""Build the ingest pipeline from settings; the handler calls this once per container and caches it."""

from __future__ import annotations

from typing import Any

from logpipe.health import HealthMetrics
from logpipe.metrics import load_metric_rules
from logpipe.parking import MemoryParkingLot, ParkingLot, SqsParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.scrub import Scrubber, load_scrub_rules
from logpipe.settings import Settings
from logpipe.sinks import Sink

PIPELINE_SERVICE = "logpipe-ingest"


def build_logger(service: str = PIPELINE_SERVICE) -> Any:
    """The pipeline's own structured logger (Powertools Logger, JSON to stdout)."""
    from aws_lambda_powertools import Logger

    return Logger(service=service)


def build_parking(settings: Settings, logger: Any) -> ParkingLot:
    """SQS when a queue is configured; in-memory (with a warning) only for local runs without one."""
    if settings.parking_queue_url:
        return SqsParkingLot(settings.parking_queue_url)
    logger.warning("LOGPIPE_PARKING_QUEUE_URL is not set: parked items stay in memory (local run only)")
    return MemoryParkingLot()


def build_sinks(settings: Settings) -> list[Sink]:  # noqa: ARG001 - Sentry and Langfuse sinks plug in here
    """The sinks configured for this deployment (none yet: metrics only)."""
    return []


def build_ingest_pipeline(settings: Settings) -> IngestPipeline:
    """Settings -> rules, scrubber, parking, sinks, health -> pipeline."""
    logger = build_logger()
    scrubber = Scrubber(load_scrub_rules(settings.scrub_rules_path)) if settings.scrub_enabled else None
    return IngestPipeline(
        settings,
        rules=load_metric_rules(settings.metric_rules_path),
        parking=build_parking(settings, logger),
        scrubber=scrubber,
        sinks=build_sinks(settings),
        health=HealthMetrics(settings.environment, service=PIPELINE_SERVICE),
        logger=logger,
    )
