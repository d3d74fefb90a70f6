"""The Sentry sink: error records -> Sentry events, sent concurrently with confirmed outcomes.

Per invocation: build one event per error record from the record as the PHI boundary scrubbed it,
pass the event through the boundary as a whole (tags reduced to an allow-list), hold back all but
the first N events of each fingerprint (spike protection; the last one sent reports how many were
held back), send the rest in parallel within the deadline, and park or dead-letter every event that
was not accepted. Every record gets exactly one outcome.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

import orjson

from logpipe.classify import RecordKind
from logpipe.delivery import DEFAULT_RETRY_SECONDS
from logpipe.parking import ParkedItem, ParkReason, item_id_for
from logpipe.records import LogRecord
from logpipe.secret_store import SecretNotConfiguredError, SecretUnavailableError
from logpipe.sentry.event import build_event, rfc3339, select_breadcrumbs
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.transport import SendOutcome, SendResult, SentryClient
from logpipe.sinks import Delivery, DeliveryOutcome, SendContext

DEFAULT_MAX_PER_FINGERPRINT = 10
DEFAULT_MAX_WORKERS = 8
SINK_NAME = "sentry"
# Sentry (Relay) keeps an event's own time only within this window around its arrival, and otherwise
# stores the arrival time: 30 days back, one minute ahead. Outside it the event is sent with the send
# time, its log's own time kept in ``extra.log_timestamp``, and counted (``SentryTimesClamped``).
MAX_PAST_SECONDS = 30 * 24 * 3600
MAX_FUTURE_SECONDS = 60


class EventSender(Protocol):
    """Sends one prepared event and confirms the outcome (``SentryClient`` or a test fake)."""

    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        """Send (retrying transient failures until ``deadline``, a ``time.monotonic()`` value) and confirm."""
        ...


def _not_json(value: object) -> str:
    # The events are built from JSON types only; anything else (an SDK annotation object, say) must
    # not make parking fail, and must not be parked as whatever its repr says.
    del value
    return "[REDACTED:unsupported_value]"


def parked_event(event: dict[str, Any], service: str, result: SendResult, now: float) -> ParkedItem:
    """A Sentry event that could not be delivered, ready for the retry queue or the DLQ."""
    contexts = event.get("contexts", {}).get("cloudwatch", {})
    return ParkedItem.undelivered(
        sink=SINK_NAME,
        retry=result.outcome.should_retry,
        detail=f"{result.outcome.value}: {result.reason}",
        body=orjson.dumps(event, default=_not_json).decode(),
        item_id=str(event["event_id"]),
        log_group=str(contexts.get("log_group", "")),
        log_stream=str(contexts.get("log_stream", "")),
        now=now,
        wait_seconds=result.retry_after if result.retry_after is not None else DEFAULT_RETRY_SECONDS,
        attributes={"sink": SINK_NAME, "service": service} | ({"uncertain": "true"} if result.uncertain else {}),
    )


class SentrySink:
    """Delivers error records to Sentry, one SDK client per DSN, reused across invocations."""

    name = SINK_NAME
    kind = RecordKind.ERROR

    def __init__(  # noqa: PLR0913 - explicit knobs, all with defaults
        self,
        router: DsnRouter,
        *,
        environment: str | None = None,
        max_per_fingerprint: int = DEFAULT_MAX_PER_FINGERPRINT,
        max_workers: int = DEFAULT_MAX_WORKERS,
        send_timeout: float = 5.0,
        sender_factory: Callable[[str], EventSender] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Configure the sink; clients are created on first use of each DSN."""
        self.router = router
        self.environment = environment
        self.max_per_fingerprint = max_per_fingerprint
        self.max_workers = max_workers
        self.send_timeout = send_timeout
        self._sender_factory = sender_factory or (lambda dsn: SentryClient(dsn, environment, send_timeout))
        self._senders: dict[str, EventSender] = {}
        self._clock = clock
        self.suppressed = 0  # held back by spike protection in the last send()

    def _sender(self, dsn: str) -> EventSender:
        sender = self._senders.get(dsn)
        if sender is None:
            sender = self._senders[dsn] = self._sender_factory(dsn)
        return sender

    def send(self, records: Sequence[LogRecord], context: SendContext) -> list[Delivery]:
        """Build, throttle, send and confirm; park or dead-letter what was not accepted."""
        deliveries: list[Delivery] = []
        prepared = self._prepare(records, context, deliveries)
        to_send = self._spike_protect(prepared, deliveries)
        self._send_all(to_send, context, deliveries)
        return deliveries

    def _prepare(
        self, records: Sequence[LogRecord], context: SendContext, deliveries: list[Delivery]
    ) -> list[tuple[LogRecord, dict[str, Any], str]]:
        prepared: list[tuple[LogRecord, dict[str, Any], str]] = []
        boundary = context.boundary
        # The event is built from scrubbed records (it truncates, normalises and parses their text),
        # then walked once more as a whole. Errors of one request share their breadcrumbs: each
        # record is scrubbed once, not once per error that cites it.
        scrubbed: dict[int, LogRecord] = {}

        def clean(record: LogRecord) -> LogRecord:
            done = scrubbed.get(id(record))
            if done is None:
                done = scrubbed[id(record)] = boundary.record(record)
            return done

        for record in records:
            dsn: str | None = None
            unavailable: str | None = None
            try:
                dsn = self.router.dsn_for(record.service)
            except SecretNotConfiguredError as error:
                deliveries.append(Delivery(record.event_id, DeliveryOutcome.NOT_CONFIGURED, str(error)))
                continue
            except SecretUnavailableError as error:
                # Configured but not readable right now: built like any event, then parked for the replay.
                unavailable = str(error)
            if dsn is None and unavailable is None:
                deliveries.append(Delivery(record.event_id, DeliveryOutcome.SKIPPED, "no DSN for service"))
                continue
            try:
                crumbs = [clean(crumb) for crumb in select_breadcrumbs(record, context.batch_records)]
                event = boundary.sentry_event(build_event(clean(record), breadcrumbs=crumbs))
            except Exception as error:  # noqa: BLE001 - one record that cannot become an event costs that record only
                deliveries.append(self._dead_letter_unbuildable(record, error, context))
                continue
            self._clamp_time(event, record, context)
            if unavailable is not None:
                result = SendResult(str(event["event_id"]), SendOutcome.RETRYABLE, None, None, unavailable)
                deliveries.append(self._settle(record, event, result, context, self._clock()))
                continue
            prepared.append((record, event, str(dsn)))
        return prepared

    def _clamp_time(self, event: dict[str, Any], record: LogRecord, context: SendContext) -> None:
        now = self._clock()
        seconds = record.timestamp_ms / 1000
        if now - MAX_PAST_SECONDS <= seconds <= now + MAX_FUTURE_SECONDS:
            return
        event.setdefault("extra", {})["log_timestamp"] = event["timestamp"]
        event["timestamp"] = rfc3339(int(now * 1000))
        context.counters[f"time_clamped.{SINK_NAME}"] += 1

    def _spike_protect(
        self, prepared: list[tuple[LogRecord, dict[str, Any], str]], deliveries: list[Delivery]
    ) -> list[tuple[LogRecord, dict[str, Any], str]]:
        groups: dict[tuple[str, ...], list[tuple[LogRecord, dict[str, Any], str]]] = defaultdict(list)
        for item in prepared:
            groups[tuple(item[1].get("fingerprint", ()))].append(item)
        to_send: list[tuple[LogRecord, dict[str, Any], str]] = []
        self.suppressed = 0
        for group in groups.values():
            kept, held = group[: self.max_per_fingerprint], group[self.max_per_fingerprint :]
            if held:
                # The last event sent carries the count, so the issue shows how big the spike was.
                kept[-1][1].setdefault("extra", {})["suppressed_similar_events"] = len(held)
                self.suppressed += len(held)
            deliveries.extend(
                Delivery(record.event_id, DeliveryOutcome.SKIPPED, "spike protection") for record, _, _ in held
            )
            to_send.extend(kept)
        return to_send

    def _send_all(
        self,
        to_send: list[tuple[LogRecord, dict[str, Any], str]],
        context: SendContext,
        deliveries: list[Delivery],
    ) -> None:
        if not to_send:
            return
        now = self._clock()
        pool = ThreadPoolExecutor(max_workers=min(self.max_workers, len(to_send)), thread_name_prefix="sentry")
        try:
            futures: list[tuple[LogRecord, dict[str, Any], Future[SendResult]]] = [
                (record, event, pool.submit(self._sender(dsn).send, event, context.deadline))
                for record, event, dsn in to_send
            ]
            remaining = max(context.deadline - time.monotonic(), 0.0)
            wait([future for _, _, future in futures], timeout=remaining)
        finally:
            # Never wait past the deadline for in-flight sends (a `with` block would).
            pool.shutdown(wait=False, cancel_futures=True)
        for record, event, future in futures:
            event_id = str(event["event_id"])
            if future.done() and not future.cancelled():
                try:
                    result = future.result()
                except Exception as error:  # noqa: BLE001 - one send's bug costs that event only
                    result = SendResult(
                        event_id, SendOutcome.RETRYABLE, None, None, f"send raised {type(error).__name__}"
                    )
            else:
                # Out of time: not started (cancelled: certainly not sent) or still in flight (it may
                # arrive: parked as uncertain; Sentry stores one event id once, within its dedupe window).
                started = not future.cancel()
                reason = "deadline reached while sending" if started else "deadline reached"
                result = SendResult(event_id, SendOutcome.RETRYABLE, None, 0.0, reason, uncertain=started)
            try:
                deliveries.append(self._settle(record, event, result, context, now))
            except Exception as error:  # noqa: BLE001 - parking one event must not cost the others
                deliveries.append(self._dead_letter_unbuildable(record, error, context))

    def _settle(
        self, record: LogRecord, event: dict[str, Any], result: SendResult, context: SendContext, now: float
    ) -> Delivery:
        if result.outcome is SendOutcome.ACCEPTED:
            return Delivery(record.event_id, DeliveryOutcome.DELIVERED)
        item = parked_event(event, record.service, result, now)
        context.parking.park(item)
        outcome = DeliveryOutcome.DEAD_LETTERED if item.dead_letter else DeliveryOutcome.PARKED
        return Delivery(record.event_id, outcome, item.detail)

    def _dead_letter_unbuildable(self, record: LogRecord, error: Exception, context: SendContext) -> Delivery:
        """A record whose event could not be built (or parked): dead-lettered raw (scrubbed when parked)."""
        detail = f"processing_error: {type(error).__name__}"
        logging.getLogger("logpipe").error(
            "An error record could not become a Sentry event and was dead-lettered",
            exc_info=error,
            extra={"log_group": record.log_group, "error": type(error).__name__},
        )
        context.parking.park(
            ParkedItem(
                reason=ParkReason.PROCESSING_ERROR,
                detail=detail,
                body=record.raw,
                item_id=item_id_for(SINK_NAME, *record.origin),
                log_group=record.log_group,
                log_stream=record.log_stream,
                source=SINK_NAME,
                attributes={"sink": SINK_NAME, "service": record.service},
                dead_letter=True,
            )
        )
        return Delivery(record.event_id, DeliveryOutcome.DEAD_LETTERED, detail)

    def flush(self) -> None:
        """Every send completed inline; nothing is buffered."""
