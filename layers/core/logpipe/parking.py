"""Parking: where anything the pipeline could not process goes, so nothing is lost.

Parked items are already scrubbed. The SQS implementation splits bodies that exceed the queue's
message size into numbered parts (sharing the item's id) instead of dropping them. Its calls are
bounded by the invocation's deadline (``logpipe.deadline``): a queue that is down, or a network that
never answers, becomes a ``ParkingError`` in time for the invocation to fail cleanly, and Lambda's
retry (then the on-failure destination) keeps the batch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from logpipe.deadline import INVOCATION, Deadline, aws_config, call_within
from logpipe.delivery import DEFAULT_RETRY_SECONDS, bounded_chunks

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

# SQS accepts 256 KiB per message (body plus attributes); stay well below for the envelope.
DEFAULT_MAX_BODY_BYTES = 200 * 1024
_SQS_BATCH_SIZE = 10
_SQS_BATCH_BYTES = 250 * 1024
_SQS_MAX_DELAY = 900


class ParkReason(StrEnum):
    """Why an item was parked."""

    MALFORMED_PAYLOAD = "malformed_payload"
    MALFORMED_EVENT = "malformed_event"
    PROCESSING_ERROR = "processing_error"
    # A payload that inflates past the decoding cap (a gzip bomb, or not CloudWatch's): its prefix.
    TOO_LARGE = "too_large"
    SINK_RETRY = "sink_retry"
    SINK_REJECTED = "sink_rejected"


class ParkingError(RuntimeError):
    """Parking itself failed; the only case where the invocation must fail so Lambda retries it."""


@dataclass(frozen=True, slots=True)
class ParkedItem:
    """One thing set aside for later: its reason, detail, scrubbed body and origin."""

    reason: ParkReason
    detail: str
    body: str
    item_id: str
    log_group: str = ""
    log_stream: str = ""
    source: str = ""
    not_before: float | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    # Dead-lettered items need a human (rejected by a sink, or input nothing can process).
    dead_letter: bool = False

    @classmethod
    def undelivered(  # noqa: PLR0913 - everything a parked delivery records
        cls,
        *,
        sink: str,
        retry: bool,
        detail: str,
        body: str,
        item_id: str,
        log_group: str,
        log_stream: str,
        now: float,
        wait_seconds: float | None,
        attributes: dict[str, str],
    ) -> ParkedItem:
        """What a sink could not deliver: for the retry queue after ``wait_seconds``, or else for the DLQ.

        ``wait_seconds`` is what the destination asked for (Retry-After); None waits the default.
        """
        wait = DEFAULT_RETRY_SECONDS if wait_seconds is None else wait_seconds
        return cls(
            reason=ParkReason.SINK_RETRY if retry else ParkReason.SINK_REJECTED,
            detail=detail,
            body=body,
            item_id=item_id,
            log_group=log_group,
            log_stream=log_stream,
            source=sink,
            not_before=now + wait if retry else None,
            attributes=attributes,
            dead_letter=not retry,
        )

    def to_message(self, part: int = 1, parts: int = 1, body: str | None = None) -> bytes:
        """The JSON document stored in the queue."""
        return orjson.dumps(
            {
                "version": 1,
                "reason": self.reason.value,
                "detail": self.detail,
                "item_id": self.item_id,
                "part": part,
                "parts": parts,
                "log_group": self.log_group,
                "log_stream": self.log_stream,
                "source": self.source,
                "not_before": self.not_before,
                "dead_letter": self.dead_letter,
                "attributes": self.attributes,
                "body": self.body if body is None else body,
            },
        )


def item_id_for(*parts: str) -> str:
    """Deterministic id for a parked item, so re-parking the same input is recognisable."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "backslashreplace"))
    return digest.hexdigest()[:32]


class ParkingLot(Protocol):
    """Somewhere to put items the pipeline could not process."""

    def park(self, item: ParkedItem) -> None:
        """Queue one item; it may be buffered until ``flush``."""
        ...

    def flush(self) -> int:
        """Write everything buffered; return how many items were written. Raise ``ParkingError``."""
        ...


class MemoryParkingLot:
    """An in-memory parking lot for unit tests and dry runs."""

    def __init__(self) -> None:
        """Start empty."""
        self.items: list[ParkedItem] = []
        self.flushed: list[ParkedItem] = []

    def park(self, item: ParkedItem) -> None:
        """Buffer one item."""
        self.items.append(item)

    def flush(self) -> int:
        """Move buffered items to ``flushed``."""
        count = len(self.items)
        self.flushed.extend(self.items)
        self.items.clear()
        return count


def split_body(body: str, max_bytes: int) -> list[str]:
    """Split text into chunks whose UTF-8 encoding fits ``max_bytes``, never inside a character."""
    encoded = body.encode("utf-8", "backslashreplace")
    if len(encoded) <= max_bytes:
        return [body]
    chunks: list[str] = []
    start = 0
    while start < len(encoded):
        end = min(start + max_bytes, len(encoded))
        # Back off to a UTF-8 boundary: continuation bytes look like 0b10xxxxxx.
        while end < len(encoded) and (encoded[end] & 0xC0) == 0x80:
            end -= 1
        chunks.append(encoded[start:end].decode("utf-8"))
        start = end
    return chunks


def _batches(entries: Sequence[SendMessageBatchRequestEntryTypeDef]) -> list[list[SendMessageBatchRequestEntryTypeDef]]:
    """Group entries into SQS batches: at most ten messages and 256 KiB in all."""
    # 512 bytes per entry for its attributes and their names.
    return bounded_chunks(
        entries, lambda entry: len(entry["MessageBody"].encode()) + 512, _SQS_BATCH_SIZE, _SQS_BATCH_BYTES
    )


class SqsParkingLot:
    """Parks items on an SQS queue in batches of ten; the client is created on first use."""

    def __init__(  # noqa: PLR0913 - explicit knobs, all with defaults
        self,
        queue_url: str,
        client: SQSClient | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        dead_letter_url: str | None = None,
        clock: Callable[[], float] = time.time,
        *,
        deadline: Deadline | None = None,
    ) -> None:
        """Remember the queues; no AWS call happens until ``flush`` (bounded by ``deadline``, the invocation's)."""
        self.queue_url = queue_url
        # Without a dead-letter queue, dead-lettered items stay on the parking queue (marked as such).
        self.dead_letter_url = dead_letter_url or queue_url
        self._clock = clock
        self._client = client
        self._max_body_bytes = max_body_bytes
        self._pending: list[ParkedItem] = []
        self._deadline = deadline or INVOCATION
        self.messages_sent = 0

    def _sqs(self) -> SQSClient:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs", config=aws_config())
        return self._client

    def park(self, item: ParkedItem) -> None:
        """Buffer one item until ``flush``."""
        self._pending.append(item)

    def flush(self) -> int:
        """Send every buffered item; return how many; raise ``ParkingError`` if any could not be stored."""
        if not self._pending:
            return 0
        item_count = len(self._pending)
        by_queue: dict[str, list[SendMessageBatchRequestEntryTypeDef]] = {}
        now = self._clock()
        for item in self._pending:
            queue = self.dead_letter_url if item.dead_letter else self.queue_url
            entries = by_queue.setdefault(queue, [])
            chunks = split_body(item.body, self._max_body_bytes)
            # SQS holds a message back for at most 15 minutes; replay re-checks not_before beyond that.
            delay = 0 if item.not_before is None else int(min(max(item.not_before - now, 0), _SQS_MAX_DELAY))
            for index, chunk in enumerate(chunks, start=1):
                attributes: dict[str, Any] = {
                    "reason": {"DataType": "String", "StringValue": item.reason.value},
                    "item_id": {"DataType": "String", "StringValue": item.item_id},
                }
                entry: SendMessageBatchRequestEntryTypeDef = {
                    "Id": str(len(entries)),
                    "MessageBody": item.to_message(index, len(chunks), chunk).decode(),
                    "MessageAttributes": attributes,
                }
                if delay and not item.dead_letter:
                    entry["DelaySeconds"] = delay
                entries.append(entry)
        self._pending.clear()
        for queue, entries in by_queue.items():
            self._send(queue, entries)
            self.messages_sent += len(entries)
        return item_count

    def _send(self, queue_url: str, entries: Sequence[SendMessageBatchRequestEntryTypeDef]) -> None:
        client = self._sqs()
        for chunk in _batches(entries):
            try:
                response = call_within(
                    partial(client.send_message_batch, QueueUrl=queue_url, Entries=chunk), deadline=self._deadline
                )
            except Exception as error:  # botocore raises many unrelated types; all mean "not parked"
                msg = f"could not park {len(chunk)} messages: {type(error).__name__}"
                raise ParkingError(msg) from error
            failed = response.get("Failed", [])
            if failed:
                retry = [entry for entry in chunk if entry["Id"] in {failure["Id"] for failure in failed}]
                try:
                    retried = call_within(
                        partial(client.send_message_batch, QueueUrl=queue_url, Entries=retry), deadline=self._deadline
                    )
                except Exception as error:
                    msg = f"could not park {len(retry)} messages on retry: {type(error).__name__}"
                    raise ParkingError(msg) from error
                if retried.get("Failed"):
                    codes = sorted({failure["Code"] for failure in retried["Failed"]})
                    msg = f"SQS refused {len(retried['Failed'])} parked messages: {codes}"
                    raise ParkingError(msg)
