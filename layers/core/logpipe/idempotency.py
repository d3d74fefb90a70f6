"""Once per key: Powertools Idempotency, the one mechanism that keeps a delivery from happening twice.

Langfuse does not dedupe re-sent spans and a chat message cannot be taken back, so the Langfuse
sink (one chunk of spans, keyed by its observation ids), the Langfuse replay (one parked generation,
keyed by its observation id) and the alert notifier (one post, keyed by the SNS ``MessageId`` and
the channel) each run their send inside Powertools' ``idempotent_function``:

- Powertools writes an INPROGRESS record (a conditional put), runs the action and records what it
  returned as COMPLETED (an update): two DynamoDB calls per key, the same as a hand-written
  claim-then-finish ledger;
- a key already COMPLETED is not run again: the recorded answer comes back (one call: the refused
  conditional put returns the old item), so a redelivered batch learns whether its chunk was
  delivered or parked, and skips it either way;
- a key INPROGRESS under a live claim raises ``LedgerBusyError``; the claim's lease is Powertools'
  in-progress expiry, after which a claim left by a crashed invocation is taken over;
- an action whose outcome must not be recorded, because it has to be able to run again (a replay
  that the destination refused for now, a post the notifier retries), raises ``Unsettled``:
  Powertools deletes the record and the outcome is handed back to the caller.

In AWS the records live in the stack's ``IdempotencyTable`` (Powertools' layout: key ``id``, TTL
``expiration``), shared by every user through its key prefix; locally and in unit tests in a
per-process store that applies the same conditions (no protection across processes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

# Lambda's longest timeout: a claim made without a Lambda context is never taken over while it may be live.
DEFAULT_LEASE_SECONDS = 900.0


class LedgerError(RuntimeError):
    """The ledger could not be read or written; acting now could do it twice."""


class LedgerBusyError(RuntimeError):
    """Another invocation holds this key's claim and its lease has not ended."""


class Unsettled(Exception):  # noqa: N818 - not an error: an outcome that must stay unrecorded
    """Raised by an action whose outcome must not be recorded, so that the key can run again later."""


class KeyState(StrEnum):
    """Where a key stands, without claiming it."""

    FREE = "free"  # never claimed, expired, or a claim whose lease ended
    IN_PROGRESS = "in_progress"
    SETTLED = "settled"


@dataclass(frozen=True, slots=True)
class Once:
    """What ``DeliveryLedger.run`` found or did."""

    answer: dict[str, Any]  # what the action returned, now or when it first ran
    duplicate: bool  # recorded earlier: the action did not run now
    recorded: bool = True  # False: the action ran, but its answer could not be recorded


@dataclass(frozen=True, slots=True)
class _Lease:
    """Stands in for a Lambda context: Powertools sets a claim's in-progress expiry from its remaining time."""

    seconds: float

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


class DeliveryLedger:
    """Runs an action at most once per key, through Powertools Idempotency, and remembers its answer."""

    def __init__(
        self,
        store: Callable[[], BasePersistenceLayer],
        *,
        key_prefix: str,
        expires_after_seconds: int,
    ) -> None:
        """``store`` builds the Powertools persistence layer on first use (no AWS client before)."""
        self._make_store = store
        self._store: BasePersistenceLayer | None = None
        self._lock = threading.Lock()
        self.key_prefix = key_prefix
        self.expires_after_seconds = expires_after_seconds

    @classmethod
    def on_table(
        cls, table_name: str, *, key_prefix: str, expires_after_seconds: int, client: DynamoDBClient | None = None
    ) -> DeliveryLedger:
        """Records in a DynamoDB table of Powertools' layout (key ``id``, TTL ``expiration``)."""

        def store() -> BasePersistenceLayer:
            from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

            return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)

        return cls(store, key_prefix=key_prefix, expires_after_seconds=expires_after_seconds)

    @classmethod
    def in_memory(cls, *, key_prefix: str, expires_after_seconds: int) -> DeliveryLedger:
        """Records in this process only (local runs, unit tests)."""
        return cls(_memory_store, key_prefix=key_prefix, expires_after_seconds=expires_after_seconds)

    def _config(self, lease_seconds: float) -> IdempotencyConfig:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

        # Powertools reads only get_remaining_time_in_millis() from the Lambda context it is given.
        lease = cast("LambdaContext", _Lease(max(lease_seconds, 0.0)))
        return IdempotencyConfig(expires_after_seconds=self.expires_after_seconds, lambda_context=lease)

    def _persistence(self) -> BasePersistenceLayer:
        with self._lock:
            if self._store is None:
                store = self._make_store()
                store.configure(self._config(DEFAULT_LEASE_SECONDS), key_prefix=self.key_prefix)
                self._store = store
            return self._store

    def run(self, key: str, action: Callable[[], dict[str, Any]], *, lease_seconds: float) -> Once:
        """Run ``action`` unless ``key`` is settled; claim it for ``lease_seconds`` while it runs.

        Raises ``LedgerBusyError`` (claimed elsewhere), ``LedgerError`` (the store failed before the
        action ran) and whatever ``Unsettled`` the action raised (its record is deleted).
        """
        from aws_lambda_powertools.utilities.idempotency import idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyInconsistentStateError,
            IdempotencyPersistenceLayerError,
        )

        store = self._persistence()
        answer: dict[str, Any] | None = None
        unsettled: Unsettled | None = None
        ran = False

        def act(delivery: dict[str, str]) -> dict[str, Any]:  # noqa: ARG001 - Powertools hashes it as the key
            nonlocal answer, unsettled, ran
            ran = True
            try:
                answer = action()
            except Unsettled as outcome:
                unsettled = outcome
                raise
            return answer

        guarded = idempotent_function(
            data_keyword_argument="delivery",
            persistence_store=store,
            config=self._config(lease_seconds),
            key_prefix=self.key_prefix,
        )(act)
        try:
            recorded = guarded(delivery={"key": key})
        except IdempotencyAlreadyInProgressError as error:
            raise LedgerBusyError(key) from error
        except (IdempotencyPersistenceLayerError, IdempotencyInconsistentStateError) as error:
            if unsettled is not None:
                # Its record could not be deleted: the claim stays until its lease ends.
                raise unsettled from error
            if ran and answer is not None:
                return Once(answer, duplicate=False, recorded=False)
            msg = f"idempotency store: {type(error).__name__}"
            raise LedgerError(msg) from error
        if not ran:
            return Once(recorded if isinstance(recorded, dict) else {}, duplicate=True)
        return Once(answer or {}, duplicate=False)

    def release(self, key: str) -> None:
        """Forget ``key``'s record (settled or claimed), so the action can run again; ``LedgerError`` if it cannot.

        For an outcome recorded before it was safe: a chunk recorded "parked" whose parking then
        failed, so the invocation fails and its retry must send the chunk again.
        """
        store = self._persistence()
        try:
            store.delete_record(data={"key": key}, exception=Unsettled(key))
        except Exception as error:  # botocore raises many unrelated types; all mean "still recorded"
            msg = f"idempotency store: {type(error).__name__}"
            raise LedgerError(msg) from error

    def state(self, key: str) -> tuple[KeyState, dict[str, Any] | None]:
        """Where ``key`` stands and, when settled, its recorded answer; never claims it."""
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemNotFoundError
        from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS

        store = self._persistence()
        try:
            record = store.get_record(data={"key": key})
        except IdempotencyItemNotFoundError:
            return KeyState.FREE, None
        except Exception as error:  # botocore raises many unrelated types; all mean "unknown state"
            msg = f"idempotency store: {type(error).__name__}"
            raise LedgerError(msg) from error
        if record is None or record.status == STATUS_CONSTANTS["EXPIRED"]:
            return KeyState.FREE, None
        if record.status == STATUS_CONSTANTS["INPROGRESS"]:
            lease_end = record.in_progress_expiry_timestamp
            if lease_end is not None and lease_end < time.time() * 1000:
                return KeyState.FREE, None
            return KeyState.IN_PROGRESS, None
        return KeyState.SETTLED, record.response_json_as_dict()


def _memory_store() -> BasePersistenceLayer:
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyItemAlreadyExistsError,
        IdempotencyItemNotFoundError,
    )
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord

    # Powertools' base __init__ carries no annotations; it only sets defaults.
    base_init = cast("Callable[[BasePersistenceLayer], None]", BasePersistenceLayer.__init__)

    class MemoryPersistenceLayer(BasePersistenceLayer):
        """Powertools records in a dict, under the conditions DynamoDBPersistenceLayer puts on its writes."""

        def __init__(self) -> None:
            base_init(self)
            self._guard = threading.Lock()
            self.items: dict[str, DataRecord] = {}

        def _get_record(self, idempotency_key: str) -> DataRecord:
            with self._guard:
                record = self.items.get(idempotency_key)
            if record is None:
                raise IdempotencyItemNotFoundError
            return record

        def _put_record(self, data_record: DataRecord) -> None:
            now = time.time()
            with self._guard:
                old = self.items.get(data_record.idempotency_key)
                # Free when absent, expired, or in progress under a lease that has ended.
                if (
                    old is None
                    or (old.expiry_timestamp is not None and old.expiry_timestamp < now)
                    or (
                        old.status == STATUS_CONSTANTS["INPROGRESS"]
                        and old.in_progress_expiry_timestamp is not None
                        and old.in_progress_expiry_timestamp < now * 1000
                    )
                ):
                    self.items[data_record.idempotency_key] = data_record
                    return
            raise IdempotencyItemAlreadyExistsError(old_data_record=old)

        def _update_record(self, data_record: DataRecord) -> None:
            with self._guard:
                old = self.items.get(data_record.idempotency_key)
                data_record.in_progress_expiry_timestamp = old.in_progress_expiry_timestamp if old else None
                self.items[data_record.idempotency_key] = data_record

        def _delete_record(self, data_record: DataRecord) -> None:
            with self._guard:
                self.items.pop(data_record.idempotency_key, None)

    return MemoryPersistenceLayer()
