"""Each notification posts once per channel, however often SNS and Lambda deliver it.

The key is the SNS ``MessageId`` and the channel. In AWS this is Powertools Idempotency on the
stack's ``IdempotencyTable`` (key ``id``, TTL ``expiration``): the post runs inside an
``idempotent_function``; an accepted or rejected post is recorded as completed, so a retry of the
invocation (another channel failed) returns the recorded answer instead of posting again; a
retryable failure raises inside it, Powertools deletes the in-progress record, and the retry posts.
A record left in progress by a crashed invocation expires with that invocation's remaining time
(the Lambda context is registered per invocation). Without a table (local runs) a per-process
memory guard does the same within one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from logpipe.delivery import HttpOutcome
from logpipe.notify.webhook import WebhookResult

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

IDEMPOTENCY_KEY_PREFIX = "logpipe-notify"
DEFAULT_EXPIRES_AFTER_SECONDS = 24 * 3600  # far past Lambda's retries of an SNS event (at most 6 h)


class DeliveryGuard(Protocol):
    """Runs a channel's post at most once per notification (retryable failures do not count)."""

    def register_invocation(self, context: Any) -> None:
        """Tell the guard about the current Lambda invocation (in-progress records expire with it)."""
        ...

    def once(self, message_id: str, channel: str, send: Callable[[], WebhookResult]) -> tuple[WebhookResult, bool]:
        """``send()`` unless already settled; returns the result and whether it was a recorded duplicate."""
        ...


class _DeliveryRetryError(Exception):
    """Carries a retryable result out of the idempotent function, so that its record is deleted."""

    def __init__(self, result: WebhookResult) -> None:
        super().__init__(result.reason)
        self.result = result


def _settled(result: WebhookResult) -> dict[str, Any]:
    return {"outcome": result.outcome.value, "status": result.status, "reason": result.reason}


def _from_record(record: Any) -> WebhookResult:
    if not isinstance(record, dict):
        return WebhookResult(HttpOutcome.ACCEPTED, None, "recorded earlier")
    try:
        outcome = HttpOutcome(str(record.get("outcome")))
    except ValueError:
        outcome = HttpOutcome.ACCEPTED
    status = record.get("status")
    return WebhookResult(outcome, int(status) if status is not None else None, str(record.get("reason") or ""))


class MemoryDeliveryGuard:
    """Per-process guard for local runs and tests (no protection across containers)."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self.settled: dict[tuple[str, str], WebhookResult] = {}

    def register_invocation(self, context: Any) -> None:
        """Nothing expires in memory."""

    def once(self, message_id: str, channel: str, send: Callable[[], WebhookResult]) -> tuple[WebhookResult, bool]:
        """Post unless settled; settle accepted and rejected posts."""
        key = (message_id, channel)
        with self._lock:
            earlier = self.settled.get(key)
        if earlier is not None:
            return earlier, True
        result = send()
        if not result.outcome.should_retry:
            with self._lock:
                self.settled[key] = result
        return result, False


class IdempotentDeliveryGuard:
    """Powertools Idempotency on a DynamoDB table of its layout (key ``id``, TTL ``expiration``)."""

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        expires_after_seconds: int = DEFAULT_EXPIRES_AFTER_SECONDS,
    ) -> None:
        """Remember the table; Powertools and the client load on first use."""
        self.table_name = table_name
        self._client = client
        self._expires_after = expires_after_seconds
        self._store: Any = None
        self._config: Any = None

    def _idempotency(self) -> tuple[Any, Any]:
        if self._store is None:
            from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

            self._config = IdempotencyConfig(expires_after_seconds=self._expires_after)
            self._store = DynamoDBPersistenceLayer(table_name=self.table_name, boto3_client=self._client)
        return self._store, self._config

    def register_invocation(self, context: Any) -> None:
        """In-progress records expire when this invocation would time out, so a crash does not block retries."""
        _, config = self._idempotency()
        config.register_lambda_context(context)

    def once(self, message_id: str, channel: str, send: Callable[[], WebhookResult]) -> tuple[WebhookResult, bool]:
        """Post inside a Powertools idempotent function keyed by ``{message_id, channel}``."""
        from aws_lambda_powertools.utilities.idempotency import idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyInconsistentStateError,
            IdempotencyPersistenceLayerError,
        )

        store, config = self._idempotency()
        called = False

        def post_once(delivery: dict[str, str]) -> dict[str, Any]:  # noqa: ARG001 - Powertools hashes it as the key
            nonlocal called
            called = True
            result = send()
            if result.outcome.should_retry:
                raise _DeliveryRetryError(result)
            return _settled(result)

        guarded = idempotent_function(
            data_keyword_argument="delivery",
            persistence_store=store,
            config=config,
            key_prefix=IDEMPOTENCY_KEY_PREFIX,
        )(post_once)
        try:
            record = guarded(delivery={"message_id": message_id, "channel": channel})
        except _DeliveryRetryError as retry:
            return retry.result, False
        except IdempotencyAlreadyInProgressError:
            return WebhookResult(HttpOutcome.RETRYABLE, None, "another invocation is posting it right now"), False
        except (IdempotencyPersistenceLayerError, IdempotencyInconsistentStateError) as error:
            # Posting without the ledger could post twice: let the invocation fail and be retried.
            return WebhookResult(
                HttpOutcome.RETRYABLE, None, f"delivery ledger unavailable: {type(error).__name__}"
            ), False
        return _from_record(record), not called
