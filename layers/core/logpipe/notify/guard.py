"""Each notification posts once per channel, however often SNS and Lambda deliver it.

The key is the SNS ``MessageId`` and the channel, in the project's one delivery ledger
(``logpipe.idempotency``: Powertools Idempotency on the stack's ``IdempotencyTable``, key prefix
``logpipe-notify``). An accepted or rejected post is recorded, so a retry of the invocation
(another channel failed) returns the recorded answer instead of posting again; a retryable failure
is not recorded (Powertools deletes the claim) and the retry posts. A claim left by a crashed
invocation expires with that invocation's remaining time (the Lambda context is registered per
invocation). Without a table (local runs) the ledger keeps its records in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from logpipe.delivery import HttpOutcome
from logpipe.idempotency import DEFAULT_LEASE_SECONDS, DeliveryLedger, LedgerBusyError, LedgerError, Unsettled
from logpipe.notify.webhook import WebhookResult

IDEMPOTENCY_KEY_PREFIX = "logpipe-notify"
DEFAULT_EXPIRES_AFTER_SECONDS = 24 * 3600  # far past Lambda's retries of an SNS event (at most 6 h)


def _settled(result: WebhookResult) -> dict[str, Any]:
    return {"outcome": result.outcome.value, "status": result.status, "reason": result.reason}


def _from_record(record: dict[str, Any]) -> WebhookResult:
    try:
        outcome = HttpOutcome(str(record.get("outcome")))
    except ValueError:
        outcome = HttpOutcome.ACCEPTED
    status = record.get("status")
    return WebhookResult(outcome, int(status) if status is not None else None, str(record.get("reason") or ""))


class DeliveryGuard:
    """Runs a channel's post at most once per notification (retryable failures do not count)."""

    def __init__(self, ledger: DeliveryLedger) -> None:
        """Guard posts with ``ledger`` (see ``for_table``/``in_memory``)."""
        self.ledger = ledger
        self._context: Any = None

    @classmethod
    def for_table(cls, table_name: str) -> DeliveryGuard:
        """Records in the stack's idempotency table."""
        return cls(
            DeliveryLedger.on_table(
                table_name, key_prefix=IDEMPOTENCY_KEY_PREFIX, expires_after_seconds=DEFAULT_EXPIRES_AFTER_SECONDS
            )
        )

    @classmethod
    def in_memory(cls) -> DeliveryGuard:
        """Records in this process only (local runs, tests)."""
        return cls(
            DeliveryLedger.in_memory(
                key_prefix=IDEMPOTENCY_KEY_PREFIX, expires_after_seconds=DEFAULT_EXPIRES_AFTER_SECONDS
            )
        )

    def register_invocation(self, context: Any) -> None:
        """Tell the guard about the current Lambda invocation: a claim lasts as long as it may still run."""
        self._context = context

    def _lease_seconds(self) -> float:
        remaining = getattr(self._context, "get_remaining_time_in_millis", None)
        return remaining() / 1000 if remaining is not None else DEFAULT_LEASE_SECONDS

    def once(self, message_id: str, channel: str, send: Callable[[], WebhookResult]) -> tuple[WebhookResult, bool]:
        """``send()`` unless already settled; returns the result and whether it was a recorded duplicate."""
        posted: list[WebhookResult] = []

        def post() -> dict[str, Any]:
            posted.append(send())
            if posted[0].outcome.should_retry:
                raise Unsettled(posted[0].reason)
            return _settled(posted[0])

        try:
            once = self.ledger.run(f"{message_id}/{channel}", post, lease_seconds=self._lease_seconds())
        except Unsettled:
            return posted[0], False
        except LedgerBusyError:
            return WebhookResult(HttpOutcome.RETRYABLE, None, "another invocation is posting it right now"), False
        except LedgerError as error:
            # Posting without the ledger could post twice: let the invocation fail and be retried.
            return WebhookResult(HttpOutcome.RETRYABLE, None, f"delivery ledger unavailable: {error}"), False
        return _from_record(once.answer), once.duplicate
