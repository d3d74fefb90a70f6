"""The ingest pipeline: decode -> assemble (reassemble, parse) -> classify -> metrics -> sinks -> park.

Scrubbing happens at the boundary (``logpipe.boundary``), where things are serialized to leave: each
sink passes its payload (Sentry event, generation) through it, every parked item passes through it
here on its way to the parking lot, and so does every line of the pipeline's own log. Records are
read unscrubbed; records that never leave the function (the "other" kind, which only feeds the
metric rules) are never scrubbed, because nothing of them leaves but numbers.

Order matters for retries: everything that can fail is done before the first externally visible
side effect (EMF on stdout), so the one failure that must fail the invocation -- the parking queue
being unreachable -- happens while a Lambda retry can still redo the batch cleanly.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from logpipe.assemble import assemble_records, stream_context
from logpipe.boundary import Boundary, BoundaryLogFilter
from logpipe.classify import RecordKind, classify
from logpipe.decode import LogBatch, MalformedPayloadError, decode_payload, iter_payloads
from logpipe.metrics import MetricAggregator, MetricRuleSet
from logpipe.parking import ParkedItem, ParkingError, ParkingLot, ParkReason, item_id_for
from logpipe.records import LogRecord
from logpipe.settings import Settings
from logpipe.sinks import SendContext, Sink

# Sinks must stop sending this long before Lambda's own timeout: parking and EMF still have to run.
SEND_SAFETY_MARGIN_SECONDS = 3.0
# Without a Lambda context (local runs, tests), sends get this long.
DEFAULT_SEND_BUDGET_SECONDS = 30.0


class _RunParking:
    """Scrubs each item at the boundary, forwards it to the parking lot and remembers it for the last-resort path."""

    def __init__(self, lot: ParkingLot, boundary: Boundary) -> None:
        self.lot = lot
        self.boundary = boundary
        self.items: list[ParkedItem] = []

    def park(self, item: ParkedItem) -> None:
        clean = self.boundary.parked(item)
        self.items.append(clean)
        self.lot.park(clean)

    def flush(self) -> int:
        return self.lot.flush()


class HealthPublisher(Protocol):
    """Where the run's own counters go (Powertools Metrics in Lambda, nothing in unit tests)."""

    def publish(self, counters: Counter[str]) -> None:
        """Publish the counters of one run."""
        ...


def counters_under(counters: Mapping[str, int], prefix: str) -> dict[str, int]:
    """The counters named ``<prefix><rest>``, keyed by the rest, in name order."""
    return {key.removeprefix(prefix): value for key, value in sorted(counters.items()) if key.startswith(prefix)}


@dataclass(slots=True)
class IngestSummary:
    """What one invocation did: counts per kind and outcome, and the PACS metric totals."""

    counters: Counter[str] = field(default_factory=Counter)
    metric_sums: dict[str, float] = field(default_factory=dict)
    metric_samples: dict[str, int] = field(default_factory=dict)
    records_by_kind: dict[RecordKind, list[LogRecord]] = field(default_factory=dict)
    seconds: float = 0.0
    from_kinesis: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready summary the handler returns."""
        counters = self.counters
        return {
            "payloads": counters["payloads"],
            "events_in": counters["events_in"],
            "records": {kind.value: counters[f"records.{kind.value}"] for kind in RecordKind},
            "control_messages": counters["control_messages"],
            "malformed": {
                "payloads": counters["malformed_payloads"],
                "events": counters["malformed_events"],
                "processing_errors": counters["processing_errors"],
                "by_kind": counters_under(counters, "malformed."),
            },
            "parked": counters["parked"],
            "parking_failures": counters["parking_failures"],
            "deliveries": counters_under(counters, "delivery."),
            "metrics": {
                name: {"sum": self.metric_sums[name], "samples": self.metric_samples[name]}
                for name in sorted(self.metric_sums)
            },
            "emf_documents": counters["emf_documents"],
            "seconds": round(self.seconds, 6),
        } | (
            # Kinesis event source mappings with ReportBatchItemFailures read this key. Nothing is
            # ever reported failed: a record that cannot be processed is parked, not retried.
            {"batchItemFailures": []} if self.from_kinesis else {}
        )


def _stdout_writer(line: bytes) -> None:
    sys.stdout.write(line.decode())


class IngestPipeline:
    """Routes CloudWatch Logs subscription events; one instance is reused across invocations."""

    def __init__(  # noqa: PLR0913 - explicit dependencies beat hidden globals
        self,
        settings: Settings,
        *,
        rules: MetricRuleSet,
        parking: ParkingLot,
        boundary: Boundary,
        sinks: Sequence[Sink] = (),
        health: HealthPublisher | None = None,
        emf_writer: Callable[[bytes], object] = _stdout_writer,
        logger: logging.Logger | Any | None = None,
        clock: Callable[[], float] = time.time,
        keep_records: bool = False,
    ) -> None:
        """Wire the pipeline; nothing here touches the network."""
        self.settings = settings
        self.rules = rules
        self.parking = parking
        self.boundary = boundary
        self.sinks = tuple(sinks)
        self.health = health
        self.emf_writer = emf_writer
        self.logger = logger if logger is not None else logging.getLogger("logpipe")
        if not any(isinstance(existing, BoundaryLogFilter) for existing in self.logger.filters):
            # The pipeline's own log lines leave too (to CloudWatch, and on to whatever reads it).
            self.logger.addFilter(boundary.log_filter())
        self.clock = clock
        self.keep_records = keep_records
        self._wanted = frozenset(sink.kind for sink in self.sinks)
        self._run_parking = _RunParking(parking, boundary)

    def run(self, event: Mapping[str, Any], remaining_ms: Callable[[], int] | None = None) -> IngestSummary:
        """Process one Lambda event (direct subscription or Kinesis) end to end; never raises."""
        started = time.perf_counter()
        summary = IngestSummary()
        counters = summary.counters
        aggregator = MetricAggregator(self.rules)
        by_kind: dict[RecordKind, list[LogRecord]] = {kind: [] for kind in RecordKind}
        parking = _RunParking(self.parking, self.boundary)
        self._run_parking = parking
        all_records: list[LogRecord] | None = [] if self.sinks else None
        summary.from_kinesis = isinstance(event.get("Records"), list)
        for payload in iter_payloads(event):
            counters["payloads"] += 1
            try:
                batch = decode_payload(payload)
            except MalformedPayloadError as error:
                self._park_malformed_payload(error, payload.source, counters)
                continue
            if batch.is_control:
                counters["control_messages"] += 1
                continue
            counters["events_in"] += len(batch.events)
            try:
                self._process_batch(batch, aggregator, by_kind, counters, all_records)
            except Exception as error:  # noqa: BLE001 - a parser bug must cost one batch's routing, never its data
                self._park_unprocessable_batch(batch, error, counters)
        self._deliver(by_kind, counters, all_records or [], self._deadline(remaining_ms))
        self._flush_parking(parking, counters)
        scrubbing = self.boundary.take_counters()
        if scrubbing:
            counters.update(scrubbing)
            # Counts only: what failed to scrub must not be written anywhere, this log included.
            self.logger.warning("Values left as redaction markers: scrubbing failed closed", extra=dict(scrubbing))
        if self.settings.metrics_enabled:
            counters["emf_documents"] += aggregator.write(int(self.clock() * 1000), self.emf_writer)
        counters["metric_bad_values"] += aggregator.totals.bad_values
        counters["metric_out_of_window"] += aggregator.totals.out_of_window
        summary.metric_sums = dict(aggregator.totals.sums)
        summary.metric_samples = dict(aggregator.totals.samples)
        if self.keep_records:
            summary.records_by_kind = by_kind
        if self.health is not None:
            self.health.publish(counters)
        summary.seconds = time.perf_counter() - started
        return summary

    def _process_batch(
        self,
        batch: LogBatch,
        aggregator: MetricAggregator,
        by_kind: dict[RecordKind, list[LogRecord]],
        counters: Counter[str],
        all_records: list[LogRecord] | None,
    ) -> None:
        context = stream_context(batch, self.settings.region, self.settings.environment)
        records, bad_events = assemble_records(batch, context)
        if all_records is not None:
            all_records.extend(records)
        for bad in bad_events:
            counters["malformed_events"] += 1
            body = orjson.dumps(bad.event, default=str).decode()
            self._run_parking.park(
                ParkedItem(
                    reason=ParkReason.MALFORMED_EVENT,
                    detail=bad.problem,
                    body=body,
                    item_id=item_id_for(batch.payload_id, body),
                    log_group=batch.log_group,
                    log_stream=batch.log_stream,
                    source=batch.source,
                ),
            )
            self.logger.error(
                "Malformed log event parked", extra={"problem": bad.problem, "log_group": batch.log_group}
            )
        wanted = self._wanted
        keep = self.keep_records
        observe = aggregator.observe
        kind_counts: Counter[RecordKind] = Counter()
        for record in records:
            kind = classify(record)
            kind_counts[kind] += 1
            observe(record)
            if kind in wanted or keep:
                by_kind[kind].append(record)
        for kind, count in kind_counts.items():
            counters[f"records.{kind.value}"] += count

    def _deadline(self, remaining_ms: Callable[[], int] | None) -> float:
        budget = DEFAULT_SEND_BUDGET_SECONDS if remaining_ms is None else remaining_ms() / 1000
        return time.monotonic() + max(budget - SEND_SAFETY_MARGIN_SECONDS, 0.0)

    def _deliver(
        self,
        by_kind: Mapping[RecordKind, list[LogRecord]],
        counters: Counter[str],
        all_records: list[LogRecord],
        deadline: float,
    ) -> None:
        context = SendContext(
            batch_records=all_records, boundary=self.boundary, parking=self._run_parking, deadline=deadline
        )
        for sink in self.sinks:
            records = by_kind[sink.kind]
            if not records:
                continue
            try:
                deliveries = sink.send(records, context)
                sink.flush()
            except Exception as error:  # noqa: BLE001 - a sink's bug costs its records' delivery, never the batch's EMF
                self._park_undelivered(sink.name, records, error, counters)
                continue
            for delivery in deliveries:
                counters[f"delivery.{sink.name}.{delivery.outcome.value}"] += 1

    def _park_undelivered(
        self, sink: str, records: Sequence[LogRecord], error: Exception, counters: Counter[str]
    ) -> None:
        """A sink raised: dead-letter its (already scrubbed) records with the error's type, and count it."""
        counters["processing_errors"] += 1
        counters[f"delivery.{sink}.dead_lettered"] += len(records)
        detail = f"sink {sink} failed: {type(error).__name__}"
        for record in records:
            self._run_parking.park(
                ParkedItem(
                    reason=ParkReason.PROCESSING_ERROR,
                    detail=detail,
                    body=record.raw,
                    item_id=item_id_for(sink, record.event_id),
                    log_group=record.log_group,
                    log_stream=record.log_stream,
                    source=sink,
                    attributes={"sink": sink, "service": record.service},
                    dead_letter=True,
                ),
            )
        self.logger.error(
            "Sink failed; its records were dead-lettered",
            exc_info=error,
            extra={"sink": sink, "records": len(records), "error": type(error).__name__},
        )

    def _flush_parking(self, parking: _RunParking, counters: Counter[str]) -> None:
        try:
            counters["parked"] += parking.flush()
        except ParkingError as error:
            # Sends may already have happened, so failing the invocation would make Lambda retry
            # and double-send. Last resort instead: the items (already scrubbed) go to this
            # function's own log group, which is never subscribed, and an alarm watches the metric.
            counters["parking_failures"] += len(parking.items)
            for item in parking.items:
                self.logger.critical(
                    "Parking failed: item kept in this log as a last resort",
                    extra={"parking_error": str(error), "parked_item": item.to_message().decode()},
                )

    def _park_malformed_payload(self, error: MalformedPayloadError, source: str, counters: Counter[str]) -> None:
        counters["malformed_payloads"] += 1
        counters[f"malformed.{error.kind.value}"] += 1
        self._run_parking.park(
            ParkedItem(
                reason=ParkReason.MALFORMED_PAYLOAD,
                detail=f"{error.kind.value}: {error.detail}",
                body=error.salvage,
                item_id=error.payload_id,
                source=source,
            ),
        )
        # Only the kind, the id and sizes are logged: the payload itself may hold PII.
        self.logger.error(
            "Malformed subscription payload parked",
            extra={"kind": error.kind.value, "detail": error.detail, "payload_id": error.payload_id, "source": source},
        )

    def _park_unprocessable_batch(self, batch: LogBatch, error: Exception, counters: Counter[str]) -> None:
        counters["processing_errors"] += 1
        body = orjson.dumps(
            {
                "logGroup": batch.log_group,
                "logStream": batch.log_stream,
                "owner": batch.owner,
                "logEvents": batch.events,
            },
            default=str,
        ).decode()
        self._run_parking.park(
            ParkedItem(
                reason=ParkReason.PROCESSING_ERROR,
                detail=f"processing_error: {type(error).__name__}",
                body=body,
                item_id=batch.payload_id,
                log_group=batch.log_group,
                log_stream=batch.log_stream,
                source=batch.source,
            ),
        )
        self.logger.error(
            "Batch could not be processed and was parked",
            exc_info=error,
            extra={"log_group": batch.log_group, "payload_id": batch.payload_id, "error": type(error).__name__},
        )
