"""Build the ingest pipeline from settings; the handler calls this once per container and caches it."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from logpipe.boundary import Boundary
from logpipe.health import REPLAY_METRICS, HealthMetrics
from logpipe.metrics import load_metric_rules
from logpipe.parking import MemoryParkingLot, ParkingLot, SqsParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.scrub_rules import load_scrub_config
from logpipe.settings import Settings, SettingsError
from logpipe.sinks import Sink

if TYPE_CHECKING:
    from logpipe.replay import Replayer
    from logpipe.sentry.routing import DsnRouter

PIPELINE_SERVICE = "logpipe-ingest"
REPLAY_SERVICE = "logpipe-replay"


def build_logger(service: str = PIPELINE_SERVICE, boundary: Boundary | None = None) -> Any:
    """The pipeline's own structured logger (Powertools Logger, JSON to stdout) at ``POWERTOOLS_LOG_LEVEL``.

    Every line passes the PHI boundary (``boundary``, or the bundled rules) before it is written.
    """
    from aws_lambda_powertools import Logger

    from logpipe.boundary import BoundaryLogFilter

    logger = Logger(service=service)
    underlying = logging.getLogger(logger.name)
    # Loggers of one service share the standard logger underneath: one filter is enough.
    if not any(isinstance(existing, BoundaryLogFilter) for existing in underlying.filters):
        underlying.addFilter((boundary or Boundary.default()).log_filter())
    # Inside Powertools, Lambda's level (ApplicationLogLevel, as AWS_LAMBDA_LOG_LEVEL) wins over
    # POWERTOOLS_LOG_LEVEL. The template keeps Lambda's at INFO (DEBUG for LogLevel=DEBUG): Lambda
    # reads a JSON line without a level -- every EMF document -- as INFO and would drop all metrics
    # at WARN or ERROR. So a quieter POWERTOOLS_LOG_LEVEL is applied here, to the logger itself.
    wanted = logging.getLevelNamesMapping().get(os.environ.get("POWERTOOLS_LOG_LEVEL", "").strip().upper())
    if wanted is not None and wanted > underlying.getEffectiveLevel():
        underlying.setLevel(wanted)
    return logger


def build_parking(settings: Settings, logger: Any) -> ParkingLot:
    """SQS when a queue is configured; in-memory (with a warning) only for local runs without one."""
    if settings.parking_queue_url:
        return SqsParkingLot(settings.parking_queue_url, dead_letter_url=settings.dead_letter_queue_url)
    logger.warning("LOGPIPE_PARKING_QUEUE_URL is not set: parked items stay in memory (local run only)")
    return MemoryParkingLot()


def build_sinks(settings: Settings) -> list[Sink]:
    """The sinks configured for this deployment: Sentry (DSN or DSN secret), Langfuse (keys or secret)."""
    sinks: list[Sink] = []
    router = build_router(settings)
    if router is not None:
        from logpipe.sentry.sink import SentrySink

        sinks.append(
            SentrySink(
                router, environment=settings.environment, max_per_fingerprint=settings.sentry_max_per_fingerprint
            )
        )
    from logpipe.langfuse.config import build_langfuse_sink  # light: OTel and boto3 load on first send

    langfuse = build_langfuse_sink(settings)
    if langfuse is not None:
        sinks.append(langfuse)
    return sinks


def build_router(settings: Settings) -> DsnRouter | None:
    """The Sentry DSN router: the secret in AWS, ``LOGPIPE_SENTRY_DSN`` locally, else none."""
    # Sentry modules load only when Sentry is configured: they cost ~15 ms of cold start.
    from logpipe.sentry.routing import DsnRouter

    if settings.sentry_secret_id:
        return DsnRouter.from_secret(settings.sentry_secret_id)
    if settings.sentry_dsn:
        return DsnRouter.single(settings.sentry_dsn)
    return None


def build_replayer(settings: Settings) -> Replayer:
    """Settings -> the parked-item replayer."""
    from logpipe.langfuse.config import build_langfuse_resender
    from logpipe.replay import Replayer

    if not settings.parking_queue_url:
        msg = "LOGPIPE_PARKING_QUEUE_URL is required for replay"
        raise SettingsError(msg)
    return Replayer(
        queue_url=settings.parking_queue_url,
        dead_letter_url=settings.dead_letter_queue_url or settings.parking_queue_url,
        router=build_router(settings),
        langfuse=build_langfuse_resender(settings),
        horizon_hours=settings.replay_horizon_hours,
        health=HealthMetrics(settings.environment, service=REPLAY_SERVICE, metrics=REPLAY_METRICS),
        logger=build_logger(REPLAY_SERVICE),
    )


def build_boundary(settings: Settings) -> Boundary:
    """Settings -> the PHI boundary everything that leaves passes through."""
    return Boundary(
        load_scrub_config(settings.scrub_rules_path),
        ip_addresses=settings.scrub_ip_addresses,
        prompt_services=settings.langfuse_unscrubbed_prompt_services,
        enabled=settings.scrub_enabled,
    )


def build_ingest_pipeline(settings: Settings) -> IngestPipeline:
    """Settings -> rules, boundary, parking, sinks, health -> pipeline."""
    boundary = build_boundary(settings)
    # Before anything logs: the pipeline's own lines pass the boundary too.
    logger = build_logger(boundary=boundary)
    return IngestPipeline(
        settings,
        rules=load_metric_rules(settings.metric_rules_path),
        parking=build_parking(settings, logger),
        boundary=boundary,
        sinks=build_sinks(settings),
        health=HealthMetrics(settings.environment, service=PIPELINE_SERVICE),
        logger=logger,
    )
