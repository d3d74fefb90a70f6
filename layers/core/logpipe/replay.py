"""Replay of parked items: the SQS consumer behind ``functions/replay``.

Each parked message is handled on its own (Powertools BatchProcessor, partial batch responses):
- an item a sink parked as retryable is re-sent through that sink's route (a ``Resender``) once its
  not-before time has come. If it is not yet due, the message is made invisible until then; if the
  sink still refuses it for now (429, 5xx, network, credentials not readable), it is made invisible
  for an exponential backoff with jitter (1 min doubling up to 12 h, never less than the sink's
  Retry-After). Either way it is reported as failed, so SQS delivers it again. A sink outage of a
  day therefore costs about a dozen receives, far below the queue's maxReceiveCount;
- only an item the sink rejected (4xx other than 408/429), an item still undelivered after the
  horizon (``LOGPIPE_REPLAY_HORIZON_HOURS``, default 72 h since it was parked), and anything that needs
  a human (malformed input, an unreadable message) go to the DLQ with the reason, and count as handled.
Ids are the ones built at ingest time, so a re-sent item the destination already has is a no-op.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from logpipe.delivery import Resender, ResendOutcome, ResendResult
from logpipe.parking import ParkReason
from logpipe.sentry.replay import SentryResender
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import EventSender
from logpipe.settings import DEFAULT_REPLAY_HORIZON_HOURS

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from mypy_boto3_sqs import SQSClient

    from logpipe.langfuse.replay import LangfuseResender

MAX_VISIBILITY_SECONDS = 12 * 3600  # SQS's limit for ChangeMessageVisibility
BACKOFF_BASE_SECONDS = 60.0
# How long one re-send may take; the replay function's timeout leaves room for a batch of them.
RESEND_SECONDS = 20.0
_NEEDS_A_HUMAN = frozenset(
    {ParkReason.MALFORMED_PAYLOAD, ParkReason.MALFORMED_EVENT, ParkReason.PROCESSING_ERROR, ParkReason.SINK_REJECTED}
)
UNREADABLE_REASON = "unreadable_message"


def backoff_seconds(
    attempt: int, key: str, *, base: float = BACKOFF_BASE_SECONDS, cap: float = MAX_VISIBILITY_SECONDS
) -> float:
    """The wait after the ``attempt``-th failed delivery: ``base * 2**(attempt-1)``, at most ``cap``, with jitter.

    The jitter keeps between half and all of that ceiling, chosen by a hash of ``key`` (the message
    id) and the attempt: parked items of one outage spread out instead of returning together, and a
    redelivered batch computes the same wait.
    """
    ceiling = min(cap, base * 2 ** min(max(attempt, 1) - 1, 40))
    digest = hashlib.sha256(f"{key}:{attempt}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return float(ceiling * (0.5 + 0.5 * fraction))


def max_receives_within(
    horizon_seconds: float, *, base: float = BACKOFF_BASE_SECONDS, cap: float = MAX_VISIBILITY_SECONDS
) -> int:
    """The most receives a refused item can have before the horizon dead-letters it (every wait at its shortest)."""
    elapsed, receives = 0.0, 0
    while elapsed < horizon_seconds:
        receives += 1
        elapsed += min(cap, base * 2 ** min(receives - 1, 40)) / 2
    return receives + 1  # the receive that finds it past the horizon


class HealthPublisher(Protocol):
    """Where one batch's counters go (Powertools Metrics in Lambda)."""

    def publish(self, counters: Mapping[str, int]) -> None:
        """Publish the counters of one batch."""
        ...


class UnreadableMessageError(ValueError):
    """A message on the parking queue that is not a parked item (not JSON, wrong shape, unknown reason)."""


class ReplayLaterError(RuntimeError):
    """The item is not due yet or still refused; SQS will deliver it again."""


class Replayer:
    """Re-sends parked sink items and dead-letters the rest; one instance per container."""

    def __init__(  # noqa: PLR0913 - explicit dependencies
        self,
        *,
        queue_url: str,
        dead_letter_url: str,
        router: DsnRouter | None,
        sqs: SQSClient | None = None,
        sender_factory: Callable[[str], EventSender] | None = None,
        clock: Callable[[], float] = time.time,
        langfuse: LangfuseResender | None = None,
        horizon_hours: float = DEFAULT_REPLAY_HORIZON_HOURS,
        health: HealthPublisher | None = None,
        logger: logging.Logger | Any | None = None,
    ) -> None:
        """Wire the replayer and its routes, one per sink; clients are created on first use."""
        self.routes: dict[str, Resender | None] = {
            "sentry": SentryResender(router, sender_factory),
            "langfuse": langfuse,
        }
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url
        self.horizon_seconds = horizon_hours * 3600
        self.health = health
        self.logger = logger if logger is not None else logging.getLogger("logpipe.replay")
        self._sqs_client = sqs
        self._clock = clock
        self.counts: dict[str, int] = {}

    def _sqs(self) -> SQSClient:
        if self._sqs_client is None:
            import boto3  # the replay path always needs it, but not at import

            from logpipe.deadline import aws_config

            # Bounded like every call: a queue that does not answer fails this message, SQS redelivers it.
            self._sqs_client = boto3.client("sqs", config=aws_config(attempts=3))
        return self._sqs_client

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:  # LambdaContext
        """Process an SQS batch; return the partial batch response Lambda expects."""
        from aws_lambda_powertools.utilities.batch import (
            BatchProcessor,
            EventType,
            process_partial_response,
        )

        before = dict(self.counts)
        # An all-failed batch is normal here (nothing due yet): don't turn it into an exception.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        try:
            return dict(process_partial_response(event, self.replay_record, processor, context))
        finally:
            if self.health is not None:
                self.health.publish({key: value - before.get(key, 0) for key, value in self.counts.items()})

    def replay_record(self, record: SQSRecord) -> None:
        """Handle one parked message; raise ``ReplayLaterError`` to have SQS deliver it again."""
        try:
            message, reason = _parked_message(record.body)
        except UnreadableMessageError as error:
            self._dead_letter_unreadable(record, str(error))
            return
        if message.get("dead_letter") or reason in _NEEDS_A_HUMAN:
            self._dead_letter(message, f"needs a human: {message.get('detail', reason.value)}")
            return
        attributes: Mapping[str, str] = message.get("attributes") or {}
        sink = attributes.get("sink")
        if sink not in self.routes:
            self._dead_letter(message, f"no replay route for sink {sink!r}")
            return
        now = self._clock()
        age = _age_seconds(record, now)
        not_before = message.get("not_before")
        if isinstance(not_before, int | float) and now < not_before:
            if age >= self.horizon_seconds:
                self._expire(message, f"still not due after {age / 3600:.0f} h")
                return
            self._postpone(record, min(not_before - now, max(self.horizon_seconds - age, 1.0)))
            self._count("not_due")
            msg = f"not due for {not_before - now:.0f}s"
            raise ReplayLaterError(msg)
        route = self.routes[sink]
        if route is None:
            self._dead_letter(message, f"no {sink.capitalize()} credentials configured")
            return
        try:
            result = route.resend(message, time.monotonic() + RESEND_SECONDS)
        except Exception as error:  # an unforeseen failure of a route is retried like a refusal
            self._count("errors")
            self.logger.exception("Re-send failed unexpectedly", extra={"sink": sink, "error": type(error).__name__})
            result = ResendResult(ResendOutcome.RETRY_LATER, f"replay error: {type(error).__name__}")
        self._settle(record, message, result, age)

    def _settle(self, record: SQSRecord, message: Mapping[str, Any], result: ResendResult, age: float) -> None:
        """One outcome handler for every route."""
        if result.outcome is ResendOutcome.DELIVERED:
            self._count("delivered")
        elif result.outcome is ResendOutcome.DUPLICATE:
            self._count("duplicates_dropped")  # the destination already has it (or another copy is going)
        elif result.outcome is ResendOutcome.RETRY_LATER:
            if age >= self.horizon_seconds:
                self._expire(message, result.reason)
                return
            attempt = _receive_count(record)
            wait = max(result.retry_after or 0.0, backoff_seconds(attempt, record.message_id))
            # The last attempt happens at the horizon, not up to 12 h after it.
            self._postpone(record, min(wait, max(self.horizon_seconds - age, 1.0)))
            self._count("retry_later")
            raise ReplayLaterError(result.reason)
        else:
            self._dead_letter(message, result.reason)

    def _expire(self, message: Mapping[str, Any], last_reason: str) -> None:
        self._count("horizon_expired")
        hours = self.horizon_seconds / 3600
        self._dead_letter(message, f"not delivered within the {hours:g} h replay horizon: {last_reason}")

    def _postpone(self, record: SQSRecord, seconds: float) -> None:
        visibility = int(min(max(seconds, 0), MAX_VISIBILITY_SECONDS))
        self._sqs().change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=visibility
        )

    def _dead_letter(self, message: Mapping[str, Any], why: str) -> None:
        body = orjson.dumps({**message, "dead_letter": True, "dead_letter_reason": why}).decode()
        self._sqs().send_message(
            QueueUrl=self.dead_letter_url,
            MessageBody=body,
            MessageAttributes={"reason": {"DataType": "String", "StringValue": str(message.get("reason", ""))}},
        )
        self._count("dead_lettered")

    def _dead_letter_unreadable(self, record: SQSRecord, problem: str) -> None:
        """Not a parked item: kept whole on the DLQ for a person, logged by id and size only (it may hold PII)."""
        self._count("unreadable")
        self.logger.error(
            "Unreadable message on the parking queue dead-lettered",
            extra={"message_id": record.message_id, "bytes": len(record.body or ""), "problem": problem},
        )
        message = {
            "version": 1,
            "reason": UNREADABLE_REASON,
            "detail": problem,
            "item_id": record.message_id,
            "body": record.body or "",
        }
        self._dead_letter(message, f"unreadable parked message: {problem}")


def _parked_message(body: str | None) -> tuple[dict[str, Any], ParkReason]:
    """The parked item in an SQS message body, and its reason; ``UnreadableMessageError`` if it is none."""
    try:
        message = orjson.loads(body or "")
    except orjson.JSONDecodeError as error:
        msg = f"not JSON ({error.msg})"
        raise UnreadableMessageError(msg) from error
    if not isinstance(message, dict):
        msg = f"a JSON {type(message).__name__}, not an object"
        raise UnreadableMessageError(msg)
    try:
        reason = ParkReason(message.get("reason", ParkReason.MALFORMED_PAYLOAD))
    except ValueError as error:
        msg = f"unknown reason {message.get('reason')!r}"
        raise UnreadableMessageError(msg) from error
    if not isinstance(message.get("attributes") or {}, dict):
        msg = "attributes is not an object"
        raise UnreadableMessageError(msg)
    return message, reason


def _attribute(record: SQSRecord, name: str) -> int | None:
    """A numeric SQS system attribute of the record (Lambda always sends them; hand-made events may not)."""
    attributes = record.raw_event.get("attributes")
    raw = attributes.get(name) if isinstance(attributes, dict) else None
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def _receive_count(record: SQSRecord) -> int:
    return _attribute(record, "ApproximateReceiveCount") or 1


def _age_seconds(record: SQSRecord, now: float) -> float:
    """Seconds since the item was parked (SQS's SentTimestamp survives every visibility change); 0 if unknown."""
    sent_ms = _attribute(record, "SentTimestamp")
    return 0.0 if sent_ms is None else max(now - sent_ms / 1000, 0.0)
