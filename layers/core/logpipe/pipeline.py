"""The ingest pipeline: decode -> assemble (reassemble, parse) -> classify -> metrics -> sinks -> park.

Scrubbing happens at the boundary (``logpipe.boundary``), where things are serialized to leave: each
sink passes its payload (Sentry event, generation) through it, every parked item passes through it
here on its way to the parking lot, and so does every line of the pipeline's own log. Records are
read unscrubbed; records that never leave the function (the "other" kind, which only feeds the
metric rules) are never scrubbed, because nothing of them leaves but numbers.

Hostile input and faults cost the smallest unit they can: a payload that cannot be decoded is parked
as malformed, an event without id, time or message as a malformed event, and a record whose building,
classification, sending or parking raises is parked alone as ``processing_error`` (its traceback goes
to the pipeline's own log, through the boundary). ``run`` raises in exactly one case: parking itself
is impossible (``ParkingError``: the queue is down, refuses, or does not answer before the deadline).
Then the invocation fails before anything that is not idempotent was written -- no EMF (PACS metrics
or the pipeline's own), and the Langfuse ledger entries of what was to be parked are released -- so
Lambda's asynchronous retry, and after it the on-failure destination, keep the whole batch. A retry
after recovery rebuilds the same Sentry event ids and span ids: Sentry stores an event id once, and the
ledger skips every Langfuse chunk that was delivered. Every call is bounded by the invocation's deadline
(``logpipe.deadline``), so ``run`` returns or raises at least a second before Lambda would stop it.

Accounting: for every event, ``events_in`` = the lines inside records (``record_lines``) + the events
of control messages (``control_events``) + malformed events + the events parked whole because building
their record failed (``parked_events``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from logpipe import deadline as deadlines
from logpipe.assemble import FailedUnit, assemble_records, stream_context
from logpipe.boundary import FAILED_MARKER, Boundary, BoundaryLogFilter
from logpipe.classify import RecordKind, classify
from logpipe.decode import (
    PARKED_PREFIX_BYTES,
    LogBatch,
    MalformedKind,
    MalformedPayloadError,
    decode_batches,
    iter_payloads,
    json_text,
)
from logpipe.metrics import MetricAggregator, MetricRuleSet
from logpipe.parking import ParkedItem, ParkingError, ParkingLot, ParkReason, item_id_for
from logpipe.records import LogRecord
from logpipe.settings import Settings
from logpipe.sinks import SendContext, Sink

# Sinks must stop sending this long before Lambda's own timeout: parking and EMF still have to run,
# and the handler returns at least deadline.RETURN_MARGIN_SECONDS before Lambda's deadline.
SEND_SAFETY_MARGIN_SECONDS = 3.0
# Without a Lambda context (local runs, tests), an invocation gets this long.
DEFAULT_SEND_BUDGET_SECONDS = 30.0


class _RunParking:
    """Scrubs each item at the boundary and forwards it to the parking lot; never raises for one item."""

    def __init__(self, lot: ParkingLot, boundary: Boundary, logger: logging.Logger | Any | None = None) -> None:
        self.lot = lot
        self.boundary = boundary
        self.logger = logger if logger is not None else logging.getLogger("logpipe")
        self.count = 0
        self.failures = 0

    def park(self, item: ParkedItem) -> None:
        try:
            clean = self.boundary.parked(item)
            self.lot.park(clean)
        except Exception as error:  # one item's failure must not cost the others
            # What could not be scrubbed cannot leave: the item is parked by where it came from, so a
            # person can find the original in its log group, with the error's type as the detail.
            self.failures += 1
            self.logger.exception(
                "An item could not be prepared for parking; parked without its body",
                exc_info=error,
                extra={"item_id": item.item_id, "reason": item.reason.value, "error": type(error).__name__},
            )
            self.lot.park(
                ParkedItem(
                    reason=ParkReason.PROCESSING_ERROR,
                    detail=f"parking: {type(error).__name__} ({item.reason.value})",
                    body=FAILED_MARKER,
                    item_id=item.item_id,
                    log_group=item.log_group,
                    log_stream=item.log_stream,
                    source=item.source,
                    dead_letter=True,
                )
            )
        self.count += 1

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
            "accounting": {
                "record_lines": counters["record_lines"],
                "control_events": counters["control_events"],
                "malformed_events": counters["malformed_events"],
                "parked_events": counters["parked_events"],
            },
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
        deadline: deadlines.Deadline | None = None,
    ) -> None:
        """Wire the pipeline; nothing here touches the network.

        ``deadline`` is the per-process invocation deadline the parking lot, ledger and secret store
        read (``logpipe.deadline.INVOCATION`` unless a test gives its own); ``run`` sets it.
        """
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
        self.deadline = deadline or deadlines.INVOCATION
        self._wanted = frozenset(sink.kind for sink in self.sinks)
        self._run_parking = _RunParking(parking, boundary, self.logger)

    def run(self, event: object, remaining_ms: Callable[[], int] | None = None) -> IngestSummary:
        """Process one Lambda event (direct subscription or Kinesis; anything else is parked) end to end.

        Raises ``ParkingError`` when, and only when, what had to be parked could not be: the
        invocation must then fail so Lambda retries the batch (see the module docstring).
        """
        budget = DEFAULT_SEND_BUDGET_SECONDS if remaining_ms is None else remaining_ms() / 1000
        calls_end = self.deadline.start(budget)
        try:
            return self._run(event, calls_end)
        finally:
            self.deadline.clear()

    def _run(self, event: object, calls_end: float) -> IngestSummary:
        started = time.perf_counter()
        summary = IngestSummary()
        counters = summary.counters
        aggregator = MetricAggregator(self.rules)
        by_kind: dict[RecordKind, list[LogRecord]] = {kind: [] for kind in RecordKind}
        parking = _RunParking(self.parking, self.boundary, self.logger)
        self._run_parking = parking
        all_records: list[LogRecord] | None = [] if self.sinks else None
        summary.from_kinesis = isinstance(event, Mapping) and isinstance(event.get("Records"), list)
        for payload in iter_payloads(event):
            counters["payloads"] += 1
            try:
                decoded = decode_batches(payload)
            except MalformedPayloadError as error:
                self._park_malformed_payload(error, payload.source, counters)
                continue
            if decoded.trailing_garbage:
                self._park_trailing_garbage(decoded.trailing_garbage, decoded.payload_id, payload.source, counters)
            for batch in decoded.batches:
                counters["events_in"] += len(batch.events)
                if batch.is_control:
                    counters["control_messages"] += 1
                    counters["control_events"] += len(batch.events)
                    continue
                self._process_batch(batch, aggregator, by_kind, counters, all_records)
        after_parking: list[Callable[[bool], None]] = []
        self._deliver(
            by_kind,
            counters,
            all_records or [],
            calls_end + deadlines.RETURN_MARGIN_SECONDS + deadlines.WRAP_UP_SECONDS - SEND_SAFETY_MARGIN_SECONDS,
            after_parking,
        )
        self._flush_parking(parking, counters, after_parking)
        scrubbing = self.boundary.take_counters()
        if scrubbing:
            counters.update(scrubbing)
            # Counts only: what failed to scrub must not be written anywhere, this log included.
            self.logger.warning("Values left as redaction markers: scrubbing failed closed", extra=dict(scrubbing))
        if self.settings.metrics_enabled:
            try:
                counters["emf_documents"] += aggregator.write(int(self.clock() * 1000), self.emf_writer)
            except Exception as error:  # parking is settled: nothing may now fail the invocation
                counters["processing_errors"] += 1
                self.logger.exception("EMF could not be written", exc_info=error, extra={"error": type(error).__name__})
        counters["metric_bad_values"] += aggregator.totals.bad_values
        counters["metric_out_of_window"] += aggregator.totals.out_of_window
        summary.metric_sums = dict(aggregator.totals.sums)
        summary.metric_samples = dict(aggregator.totals.samples)
        if self.keep_records:
            summary.records_by_kind = by_kind
        if self.health is not None:
            try:
                self.health.publish(counters)
            except Exception as error:  # see above: the batch's outcome stands
                self.logger.exception(
                    "Health metrics could not be published", exc_info=error, extra={"error": type(error).__name__}
                )
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
        failed: list[FailedUnit] = []
        try:
            context = stream_context(batch, self.settings.region, self.settings.environment)
            records, bad_events = assemble_records(batch, context, failed)
        except Exception as error:  # noqa: BLE001 - a bug before any record exists costs the batch's routing, never its data
            self._park_unprocessable_batch(batch, error, counters)
            return
        for unit in failed:
            self._park_failed_unit(batch, unit, counters)
        for bad in bad_events:
            counters["malformed_events"] += 1
            body = json_text(bad.event)
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
        lines = 0
        failed_records: list[LogRecord] = []
        for record in records:
            try:  # free when nothing raises
                kind = classify(record)
                observe(record)
            except Exception as error:  # noqa: BLE001 - one record's bug costs that record only
                self._park_failed_record(record, error, counters)
                failed_records.append(record)
                continue
            kind_counts[kind] += 1
            lines += record.line_count
            if kind in wanted or keep:
                by_kind[kind].append(record)
        if all_records is not None:
            if failed_records:
                parked = {id(record) for record in failed_records}
                records = [record for record in records if id(record) not in parked]
            all_records.extend(records)
        counters["record_lines"] += lines
        for kind, count in kind_counts.items():
            counters[f"records.{kind.value}"] += count

    def _deliver(
        self,
        by_kind: Mapping[RecordKind, list[LogRecord]],
        counters: Counter[str],
        all_records: list[LogRecord],
        deadline: float,
        after_parking: list[Callable[[bool], None]],
    ) -> None:
        context = SendContext(
            batch_records=all_records,
            boundary=self.boundary,
            parking=self._run_parking,
            deadline=deadline,
            after_parking=after_parking,
        )
        try:
            self._send_to_sinks(by_kind, counters, context)
        finally:
            counters.update(context.counters)

    def _send_to_sinks(
        self, by_kind: Mapping[RecordKind, list[LogRecord]], counters: Counter[str], context: SendContext
    ) -> None:
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

    def _flush_parking(
        self, parking: _RunParking, counters: Counter[str], after_parking: Sequence[Callable[[bool], None]]
    ) -> None:
        """Write what was parked; when that is impossible, undo what a retry must redo, and raise."""
        try:
            counters["parked"] += parking.flush()
        except ParkingError:
            # The invocation fails so Lambda retries the whole batch (then its on-failure destination
            # keeps it): nothing that a retry would duplicate may have been written. EMF has not been
            # printed yet; ledger claims of what was to be parked are released; Sentry dedupes the
            # same event ids; only the ParkingFailures count is published (a zero for everything else).
            counters["parking_failures"] += parking.count
            self._settle_after_parking(after_parking, parked=False)
            self.boundary.take_counters()
            self.logger.critical(
                "Parking failed: the invocation fails so Lambda retries the batch",
                extra={"items": parking.count, "payloads": counters["payloads"], "events_in": counters["events_in"]},
            )
            if self.health is not None:
                self.health.publish(Counter({"parking_failures": parking.count}))
            raise
        self._settle_after_parking(after_parking, parked=True)

    def _settle_after_parking(self, callbacks: Sequence[Callable[[bool], None]], *, parked: bool) -> None:
        for callback in callbacks:
            try:
                callback(parked)
            except Exception as error:  # noqa: BLE001 - a ledger hiccup must not mask the parking outcome
                self.logger.warning(
                    "Could not record a parking outcome in the ledger",
                    extra={"error": type(error).__name__, "parked": parked},
                )

    def _park_malformed_payload(self, error: MalformedPayloadError, source: str, counters: Counter[str]) -> None:
        counters["malformed_payloads"] += 1
        counters[f"malformed.{error.kind.value}"] += 1
        too_large = error.kind is MalformedKind.TOO_LARGE
        self._run_parking.park(
            ParkedItem(
                reason=ParkReason.TOO_LARGE if too_large else ParkReason.MALFORMED_PAYLOAD,
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

    def _park_trailing_garbage(self, garbage: bytes, payload_id: str, source: str, counters: Counter[str]) -> None:
        counters["malformed_payloads"] += 1
        counters[f"malformed.{MalformedKind.TRAILING_GARBAGE.value}"] += 1
        detail = f"{MalformedKind.TRAILING_GARBAGE.value}: {len(garbage)} bytes after the gzip data"
        self._run_parking.park(
            ParkedItem(
                reason=ParkReason.MALFORMED_PAYLOAD,
                detail=detail,
                body=garbage[:PARKED_PREFIX_BYTES].decode("utf-8", "backslashreplace"),
                item_id=item_id_for(payload_id, MalformedKind.TRAILING_GARBAGE.value),
                source=source,
            ),
        )
        self.logger.error(
            "Bytes after a payload's gzip data parked as malformed",
            extra={"bytes": len(garbage), "payload_id": payload_id, "source": source},
        )

    def _park_failed_unit(self, batch: LogBatch, unit: FailedUnit, counters: Counter[str]) -> None:
        """The events of one record whose building raised: parked whole, the traceback in this log."""
        counters["processing_errors"] += 1
        counters["parked_events"] += len(unit.events)
        body = json_text({"logGroup": batch.log_group, "logStream": batch.log_stream, "logEvents": unit.events})
        head = unit.events[0]
        self._run_parking.park(
            ParkedItem(
                reason=ParkReason.PROCESSING_ERROR,
                detail=f"processing_error: building the record raised {type(unit.error).__name__}",
                body=body,
                item_id=item_id_for(batch.payload_id, str(head.get("id", ""))),
                log_group=batch.log_group,
                log_stream=batch.log_stream,
                source=batch.source,
            ),
        )
        self.logger.error(
            "A record could not be built and its events were parked",
            exc_info=unit.error,
            extra={"log_group": batch.log_group, "events": len(unit.events), "error": type(unit.error).__name__},
        )

    def _park_failed_record(self, record: LogRecord, error: Exception, counters: Counter[str]) -> None:
        """A record whose classification or metric rules raised: parked alone, the traceback in this log."""
        counters["processing_errors"] += 1
        counters["parked_events"] += record.line_count
        self._run_parking.park(
            ParkedItem(
                reason=ParkReason.PROCESSING_ERROR,
                detail=f"processing_error: {type(error).__name__}",
                body=record.raw,
                item_id=item_id_for("record", *record.origin),
                log_group=record.log_group,
                log_stream=record.log_stream,
                source="pipeline",
                attributes={"service": record.service},
            ),
        )
        self.logger.error(
            "A record could not be processed and was parked",
            exc_info=error,
            extra={"log_group": record.log_group, "error": type(error).__name__},
        )

    def _park_unprocessable_batch(self, batch: LogBatch, error: Exception, counters: Counter[str]) -> None:
        counters["processing_errors"] += 1
        counters["parked_events"] += len(batch.events)
        body = json_text(
            {
                "logGroup": batch.log_group,
                "logStream": batch.log_stream,
                "owner": batch.owner,
                "logEvents": batch.events,
            }
        )
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
