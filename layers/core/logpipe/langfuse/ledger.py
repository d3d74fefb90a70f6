"""The delivery ledger: Langfuse does not dedupe re-sent ids, so every chunk is claimed before it is sent.

A chunk's key is derived from the observation ids it holds, so a redelivered batch (same events, same
order, same chunking) maps to the same keys. A claim is a conditional write that succeeds only if the
key is new, or if an earlier claim was left ``in_progress`` past its lease (that invocation died).
After the POST the key is marked ``done`` (accepted) or ``parked`` (parked or dead-lettered: the
parked items carry the data onward, so a redelivery must not send it a second time). Items expire
through DynamoDB TTL on ``expires_at``, long after CloudWatch Logs stops redelivering.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Protocol

from logpipe.deadline import INVOCATION, Deadline, aws_config, call_within

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_LEASE_SECONDS = 900  # Lambda's maximum timeout: a live claim is never taken over
DEFAULT_TTL_SECONDS = 7 * 24 * 3600


class ClaimResult(StrEnum):
    """What a claim found."""

    CLAIMED = "claimed"
    ALREADY_DONE = "already_done"
    ALREADY_PARKED = "already_parked"
    IN_PROGRESS = "in_progress"


class LedgerError(RuntimeError):
    """The ledger could not be read or written; sending now could duplicate."""


def chunk_key(observation_ids: Sequence[str]) -> str:
    """The ledger key of one chunk: a digest of its observation ids, in order."""
    return "langfuse:" + hashlib.sha256("\n".join(observation_ids).encode()).hexdigest()[:40]


class DeliveryLedger(Protocol):
    """Claim before sending, then record how it ended."""

    def claim(self, key: str) -> ClaimResult:
        """Take the key for this invocation unless it is done, parked, or claimed by a live one."""
        ...

    def finish(self, key: str, *, delivered: bool) -> None:
        """Mark the key ``done`` (delivered) or ``parked``."""
        ...

    def peek(self, key: str) -> ClaimResult:
        """The key's state without claiming it: CLAIMED here means "free to claim"."""
        ...

    def release(self, key: str) -> None:
        """Drop this invocation's claim so a later attempt can claim the key again."""
        ...


class MemoryLedger:
    """A per-process ledger for local runs and unit tests (no protection across containers)."""

    def __init__(self, clock: Callable[[], float] = time.time, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        """Start empty."""
        self._clock = clock
        self._lease = lease_seconds
        self._lock = threading.Lock()
        self.entries: dict[str, tuple[str, float]] = {}

    def claim(self, key: str) -> ClaimResult:
        """Claim the key unless taken."""
        now = self._clock()
        with self._lock:
            entry = self.entries.get(key)
            if entry is not None:
                status, lease_until = entry
                if status == "done":
                    return ClaimResult.ALREADY_DONE
                if status == "parked":
                    return ClaimResult.ALREADY_PARKED
                if lease_until > now:
                    return ClaimResult.IN_PROGRESS
            self.entries[key] = ("in_progress", now + self._lease)
            return ClaimResult.CLAIMED

    def finish(self, key: str, *, delivered: bool) -> None:
        """Record the end state."""
        with self._lock:
            self.entries[key] = ("done" if delivered else "parked", 0.0)

    def release(self, key: str) -> None:
        """Forget the key."""
        with self._lock:
            self.entries.pop(key, None)

    def peek(self, key: str) -> ClaimResult:
        """The key's state without claiming it."""
        entry = self.entries.get(key)
        if entry is None:
            return ClaimResult.CLAIMED
        status, lease_until = entry
        if status == "done":
            return ClaimResult.ALREADY_DONE
        if status == "parked":
            return ClaimResult.ALREADY_PARKED
        return ClaimResult.IN_PROGRESS if lease_until > self._clock() else ClaimResult.CLAIMED


class DynamoDbLedger:
    """The ledger on a DynamoDB table with partition key ``pk`` (string) and TTL on ``expires_at``."""

    def __init__(  # noqa: PLR0913 - explicit knobs, all with defaults
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        deadline: Deadline | None = None,
    ) -> None:
        """Remember the table; the client is created on first use, and every call ends by ``deadline``."""
        self.table_name = table_name
        self._client = client
        self._clock = clock
        self._lease = lease_seconds
        self._ttl = ttl_seconds
        self._deadline = deadline or INVOCATION

    def _dynamodb(self) -> DynamoDBClient:
        if self._client is None:
            import boto3  # Langfuse path only

            self._client = boto3.client("dynamodb", config=aws_config())
        return self._client

    def claim(self, key: str) -> ClaimResult:
        """Conditional put: new key, or an ``in_progress`` claim whose lease ran out."""
        now = int(self._clock())
        client = self._dynamodb()
        try:
            call_within(
                partial(
                    client.put_item,
                    TableName=self.table_name,
                    Item={
                        "pk": {"S": key},
                        "status": {"S": "in_progress"},
                        "lease_until": {"N": str(now + self._lease)},
                        "expires_at": {"N": str(now + self._ttl)},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR (#s = :progress AND lease_until < :now)",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":progress": {"S": "in_progress"}, ":now": {"N": str(now)}},
                ),
                deadline=self._deadline,
            )
        except client.exceptions.ConditionalCheckFailedException:
            state = self.peek(key)
            # Freed between our write and our read (a lease ran out): report it as still taken.
            return ClaimResult.IN_PROGRESS if state is ClaimResult.CLAIMED else state
        except Exception as error:  # botocore raises many unrelated types; all mean "unknown state"
            msg = f"ledger {self.table_name}: claim failed: {type(error).__name__}"
            raise LedgerError(msg) from error
        return ClaimResult.CLAIMED

    def peek(self, key: str) -> ClaimResult:
        """The key's state without claiming it: CLAIMED means absent or a claim whose lease ran out."""
        try:
            client = self._dynamodb()
            item = call_within(
                partial(client.get_item, TableName=self.table_name, Key={"pk": {"S": key}}, ConsistentRead=True),
                deadline=self._deadline,
            )
        except Exception as error:  # see claim()
            msg = f"ledger {self.table_name}: read failed: {type(error).__name__}"
            raise LedgerError(msg) from error
        found = item.get("Item")
        if found is None:
            return ClaimResult.CLAIMED
        status = found.get("status", {}).get("S")
        if status == "done":
            return ClaimResult.ALREADY_DONE
        if status == "parked":
            return ClaimResult.ALREADY_PARKED
        lease_until = float(found.get("lease_until", {}).get("N", "0"))
        return ClaimResult.IN_PROGRESS if lease_until >= self._clock() else ClaimResult.CLAIMED

    def finish(self, key: str, *, delivered: bool) -> None:
        """Record ``done`` or ``parked``; raise ``LedgerError`` when the write fails."""
        now = int(self._clock())
        try:
            client = self._dynamodb()
            call_within(
                partial(
                    client.put_item,
                    TableName=self.table_name,
                    Item={
                        "pk": {"S": key},
                        "status": {"S": "done" if delivered else "parked"},
                        "finished_at": {"N": str(now)},
                        "expires_at": {"N": str(now + self._ttl)},
                    },
                ),
                deadline=self._deadline,
            )
        except Exception as error:  # see claim()
            msg = f"ledger {self.table_name}: finish failed: {type(error).__name__}"
            raise LedgerError(msg) from error

    def release(self, key: str) -> None:
        """Delete the claim, only while it is still ``in_progress`` (never a finished key)."""
        try:
            client = self._dynamodb()
            call_within(
                partial(
                    client.delete_item,
                    TableName=self.table_name,
                    Key={"pk": {"S": key}},
                    ConditionExpression="#s = :progress",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":progress": {"S": "in_progress"}},
                ),
                deadline=self._deadline,
            )
        except self._dynamodb().exceptions.ConditionalCheckFailedException:
            return
        except Exception as error:  # see claim()
            msg = f"ledger {self.table_name}: release failed: {type(error).__name__}"
            raise LedgerError(msg) from error
