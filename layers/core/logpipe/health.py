"""The pipeline's own health, published with Powertools Metrics in its own namespace.

Kept apart from the PACS metrics: these describe the pipeline (events in, records per kind,
malformed input, parked items), not the services whose logs it reads. Every EMF document the
project writes goes through Powertools, except the PACS metrics (``logpipe.metrics``), whose
documents Powertools cannot express: two dimension sets one of which is empty (``[]``), the log's
minute as the timestamp, and value arrays split at 100 values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

DEFAULT_NAMESPACE = "LogPipe"

# Summary counter name -> published metric name. Only these are published; the summary may hold more.
HEALTH_METRICS: dict[str, str] = {
    "payloads": "PayloadsIn",
    "events_in": "EventsIn",
    "records.error": "RecordsError",
    "records.llm": "RecordsLlm",
    "records.other": "RecordsOther",
    "control_messages": "ControlMessagesSkipped",
    "malformed_payloads": "MalformedPayloads",
    "malformed_events": "MalformedEvents",
    "processing_errors": "ProcessingErrors",
    "parked": "ParkedMessages",
    "parking_failures": "ParkingFailures",
    "delivery.sentry.delivered": "SentryDelivered",
    "delivery.sentry.parked": "SentryParked",
    "delivery.sentry.dead_lettered": "SentryDeadLettered",
    "delivery.sentry.skipped": "SentrySkipped",
    "delivery.sentry.not_configured": "SentryNotConfigured",
    "delivery.langfuse.delivered": "LangfuseDelivered",
    "delivery.langfuse.parked": "LangfuseParked",
    "delivery.langfuse.dead_lettered": "LangfuseDeadLettered",
    "delivery.langfuse.skipped": "LangfuseSkipped",
    "delivery.langfuse.not_configured": "LangfuseNotConfigured",
    "time_clamped.sentry": "SentryTimesClamped",
    "time_clamped.langfuse": "LangfuseTimesClamped",
    "malformed.too_large": "PayloadsTooLarge",
    "metric_bad_values": "MetricValueErrors",
    "metric_out_of_window": "MetricPointsOutOfWindow",
    "emf_documents": "EmfDocuments",
    "scrub_failures": "ScrubFailures",
}


# The replay function's counters (logpipe.replay.Replayer.counts) -> published metric name.
REPLAY_METRICS: dict[str, str] = {
    "delivered": "ReplayDelivered",
    "duplicates_dropped": "ReplayDuplicatesDropped",
    "not_due": "ReplayNotDue",
    "retry_later": "ReplayPostponed",
    "dead_lettered": "ReplayDeadLettered",
    "horizon_expired": "ReplayHorizonExpired",
    "unreadable": "ReplayUnreadableMessages",
    "errors": "ReplayErrors",
}


def powertools_document(
    namespace: str, dimensions: Mapping[str, str], values: Mapping[str, float], *, timestamp_ms: int, unit: str = "None"
) -> dict[str, Any]:
    """One EMF document of ``values`` under one dimension set, serialized by Powertools, for the caller to write."""
    from aws_lambda_powertools.metrics import EphemeralMetrics

    # service="": without it Powertools adds the function's POWERTOOLS_SERVICE_NAME as a "service"
    # dimension, and these series are identified by exactly ``dimensions`` (the alarms name them).
    metrics = EphemeralMetrics(namespace=namespace, service="")
    for name in sorted(dimensions):
        metrics.add_dimension(name=name, value=dimensions[name])
    for name, value in values.items():
        metrics.add_metric(name=name, unit=unit, value=value)
    metrics.set_timestamp(timestamp_ms)
    return dict(metrics.serialize_metric_set())


class HealthMetrics:
    """Publishes a run's counters as EMF through Powertools Metrics (one document per invocation)."""

    def __init__(
        self,
        environment: str,
        namespace: str | None = None,
        service: str | None = None,
        metrics: Mapping[str, str] = HEALTH_METRICS,
    ) -> None:
        """Powertools Metrics with an Environment default dimension; ``metrics`` maps counters to published names."""
        from aws_lambda_powertools import Metrics

        self.names = dict(metrics)
        self._metrics: Metrics = Metrics(namespace=namespace, service=service)
        if not self._metrics.namespace:
            self._metrics.namespace = DEFAULT_NAMESPACE
        # Powertools keeps metrics and default dimensions on a process-wide singleton. Setting the same
        # default again, or another value over it, re-adds a dimension that is already there (and
        # Powertools warns it overwrites it): set it once, and replace it cleanly when it changes.
        current = self._metrics.default_dimensions.get("Environment")
        if current != environment:
            if current is not None:
                self._metrics.clear_default_dimensions()
                self._metrics.clear_metrics()
            self._metrics.set_default_dimensions(Environment=environment)

    def publish(self, counters: Mapping[str, int]) -> None:
        """Add every known counter (zeros included, so dashboards show a flat line, not a gap) and flush."""
        from aws_lambda_powertools.metrics import MetricUnit

        for key, metric_name in self.names.items():
            self._metrics.add_metric(name=metric_name, unit=MetricUnit.Count, value=counters.get(key, 0))
        self._metrics.flush_metrics()
