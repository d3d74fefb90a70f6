"""The ingest pipeline: decode -> assemble (reassemble, parse) -> classify -> metrics -> scrub -> sinks -> park.

Scrubbing happens at the boundary: every record handed to a sink and every parked item is scrubbed
in full (message, raw text, exception, fields); records that never leave the function (the "other"
kind, which only feeds the metric rules) are not, because nothing of them leaves but numbers.

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
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from logpipe.assemble import assemble_records, stream_context
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


class TextScrubber(Protocol):
    """What the pipeline needs from the scrubber (``logpipe.scrub.Scrubber``)."""

    def scrub(self, text: str) -> str:
        """Mask PII and secrets in text; return the same object when nothing matched."""
        ...

    def scrub_value(self, value: object) -> object:
        """Mask PII and secrets inside structured values; return the same object when unchanged."""
        ...


class _RunParking:
    """Forwards to the parking lot and remembers this run's items, for the last-resort path."""

    def __init__(self, lot: ParkingLot) -> None:
        self.lot = lot
        self.items: list[ParkedItem] = []

    def park(self, item: ParkedItem) -> None:
        self.items.append(item)
        self.lot.park(item)

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
        scrubber: TextScrubber | None,
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
        self.scrubber = scrubber if settings.scrub_enabled else None
        self.sinks = tuple(sinks)
        # LLM calls of these services keep prompt and response as logged, on their way to Langfuse only.
        self._prompt_services = settings.langfuse_unscrubbed_prompt_services if self.scrubber else frozenset()
        self._prompt_keys: frozenset[str] = frozenset()
        if self._prompt_services:
            from logpipe.langfuse.mapping import CONTENT_KEYS  # only when a service opted out

            self._prompt_keys = CONTENT_KEYS
        self.health = health
        self.emf_writer = emf_writer
        self.logger = logger if logger is not None else logging.getLogger("logpipe")
        self.clock = clock
        self.keep_records = keep_records
        self._wanted = frozenset(sink.kind for sink in self.sinks)
        self._run_parking = _RunParking(parking)

    def run(self, event: Mapping[str, Any], remaining_ms: Callable[[], int] | None = None) -> IngestSummary:
        """Process one Lambda event (direct subscription or Kinesis) end to end; never raises."""
        started = time.perf_counter()
        summary = IngestSummary()
        counters = summary.counters
        aggregator = MetricAggregator(self.rules)
        by_kind: dict[RecordKind, list[LogRecord]] = {kind: [] for kind in RecordKind}
        parking = _RunParking(self.parking)
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
                    body=self._scrub_text(body),
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
            if kind in wanted:
                by_kind[kind].append(self._scrub_record(record, keep_prompts=kind is RecordKind.LLM))
            elif keep:
                by_kind[kind].append(record)
        for kind, count in kind_counts.items():
            counters[f"records.{kind.value}"] += count

    def _scrub_text(self, text: str) -> str:
        return text if self.scrubber is None else self.scrubber.scrub(text)

    def _scrub_record(self, record: LogRecord, *, keep_prompts: bool = False) -> LogRecord:
        """The record as it may leave the function: every text part and every field scrubbed.

        Except, with ``keep_prompts`` (LLM records on their way to the LLM sink), the prompt and response
        fields of the services in ``LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES`` (raw text, message and
        other fields still scrubbed). Records borrowed as context (breadcrumbs) are scrubbed in full.
        """
        scrubber = self.scrubber
        if scrubber is None:
            return record
        raw = scrubber.scrub(record.raw)
        if raw is record.raw:
            # Message, exception and fields were all parsed out of ``raw``: a clean raw text means
            # clean parts, so the (much costlier) walk over every field is only paid when needed.
            return record
        message = scrubber.scrub(record.message)
        exception = None if record.exception is None else scrubber.scrub(record.exception)
        source = record.fields
        kept = self._prompt_keys
        if keep_prompts and record.service in self._prompt_services:
            # The service owner chose to see these prompts as logged; the rest of the record stays scrubbed.
            others = scrubber.scrub_value({key: value for key, value in source.items() if key not in kept})
            fields: object = (
                {key: value if key in kept else others[key] for key, value in source.items()}
                if isinstance(others, Mapping)
                else source
            )
        else:
            fields = scrubber.scrub_value(source)
        return replace(
            record,
            raw=raw,
            message=message,
            exception=exception,
            fields=fields if isinstance(fields, Mapping) else record.fields,
        )

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
            batch_records=all_records, scrub_record=self._scrub_record, parking=self._run_parking, deadline=deadline
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
        body = self._scrub_text(error.salvage)
        self._run_parking.park(
            ParkedItem(
                reason=ParkReason.MALFORMED_PAYLOAD,
                detail=f"{error.kind.value}: {error.detail}",
                body=body,
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
        events = []
        for event in batch.events:
            message = event.get("message") if isinstance(event, dict) else None
            if isinstance(message, str) and self.scrubber is not None:
                event = {**event, "message": self.scrubber.scrub(message)}  # noqa: PLW2901 - scrubbed copy, error path only
            events.append(event)
        body = orjson.dumps(
            {"logGroup": batch.log_group, "logStream": batch.log_stream, "owner": batch.owner, "logEvents": events},
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
