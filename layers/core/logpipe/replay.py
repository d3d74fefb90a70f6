"""Replay of parked items: the SQS consumer behind ``functions/replay``.

Each parked message is handled on its own (Powertools BatchProcessor, partial batch responses):
- an item a sink parked as retryable is re-sent through that sink's route (a ``Resender``) once its
  not-before time has come; if it is not yet due, or still refused for now, the message is made
  invisible until then and reported as failed, so SQS redelivers it (after the queue's maximum
  receive count, SQS moves it to the DLQ);
- anything that needs a human (malformed input, an item a sink rejected) goes to the DLQ with its
  reason, and counts as handled.
Ids are the ones built at ingest time, so a re-sent item the destination already has is a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from logpipe.delivery import DEFAULT_RETRY_SECONDS, Resender, ResendOutcome, ResendResult
from logpipe.parking import ParkReason
from logpipe.sentry.replay import SentryResender
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import EventSender

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from mypy_boto3_sqs import SQSClient

    from logpipe.langfuse.replay import LangfuseResender

MAX_VISIBILITY_SECONDS = 12 * 3600
# How long one re-send may take; the replay function's timeout leaves room for a batch of them.
RESEND_SECONDS = 20.0
_NEEDS_A_HUMAN = frozenset(
    {ParkReason.MALFORMED_PAYLOAD, ParkReason.MALFORMED_EVENT, ParkReason.PROCESSING_ERROR, ParkReason.SINK_REJECTED}
)


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
    ) -> None:
        """Wire the replayer and its routes, one per sink; clients are created on first use."""
        self.routes: dict[str, Resender | None] = {
            "sentry": SentryResender(router, sender_factory),
            "langfuse": langfuse,
        }
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url
        self._sqs_client = sqs
        self._clock = clock
        self.counts: dict[str, int] = {}

    def _sqs(self) -> SQSClient:
        if self._sqs_client is None:
            import boto3  # the replay path always needs it, but not at import

            self._sqs_client = boto3.client("sqs")
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

        # An all-failed batch is normal here (nothing due yet): don't turn it into an exception.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(process_partial_response(event, self.replay_record, processor, context))

    def replay_record(self, record: SQSRecord) -> None:
        """Handle one parked message; raise ``ReplayLaterError`` to have SQS deliver it again."""
        message = orjson.loads(record.body)
        reason = ParkReason(message.get("reason", ParkReason.MALFORMED_PAYLOAD))
        if message.get("dead_letter") or reason in _NEEDS_A_HUMAN:
            self._dead_letter(message, f"needs a human: {message.get('detail', reason.value)}")
            return
        attributes: Mapping[str, str] = message.get("attributes") or {}
        sink = attributes.get("sink")
        if sink not in self.routes:
            self._dead_letter(message, f"no replay route for sink {sink!r}")
            return
        not_before = message.get("not_before")
        now = self._clock()
        if isinstance(not_before, int | float) and now < not_before:
            self._postpone(record, not_before - now)
            self._count("not_due")
            msg = f"not due for {not_before - now:.0f}s"
            raise ReplayLaterError(msg)
        route = self.routes[sink]
        if route is None:
            self._dead_letter(message, f"no {sink.capitalize()} credentials configured")
            return
        self._settle(record, message, route.resend(message, time.monotonic() + RESEND_SECONDS))

    def _settle(self, record: SQSRecord, message: Mapping[str, Any], result: ResendResult) -> None:
        """One outcome handler for every route."""
        if result.outcome is ResendOutcome.DELIVERED:
            self._count("delivered")
        elif result.outcome is ResendOutcome.DUPLICATE:
            self._count("duplicates_dropped")  # the destination already has it (or another copy is going)
        elif result.outcome is ResendOutcome.RETRY_LATER:
            self._postpone(record, result.retry_after if result.retry_after is not None else DEFAULT_RETRY_SECONDS)
            self._count("retry_later")
            raise ReplayLaterError(result.reason)
        else:
            self._dead_letter(message, result.reason)

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
