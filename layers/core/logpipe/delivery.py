"""The delivery vocabulary shared by every sink (Sentry, Langfuse): one attempt's HTTP outcome, one replay's result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class HttpOutcome(StrEnum):
    """What the destination (or the network) did with one request."""

    ACCEPTED = "accepted"
    RATE_LIMITED = "rate_limited"
    RETRYABLE = "retryable"
    REJECTED = "rejected"
    NETWORK_ERROR = "network_error"

    @property
    def should_retry(self) -> bool:
        """Rate-limited, retryable and network failures are parked for a later attempt; rejections are not."""
        return self in {HttpOutcome.RATE_LIMITED, HttpOutcome.RETRYABLE, HttpOutcome.NETWORK_ERROR}


class ResendOutcome(StrEnum):
    """How one replayed item ended."""

    DELIVERED = "delivered"
    DUPLICATE = "duplicate"
    RETRY_LATER = "retry_later"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ResendResult:
    """The outcome of re-sending one parked item."""

    outcome: ResendOutcome
    reason: str
    retry_after: float | None = None


class Resender(Protocol):
    """Re-sends one parked item of its sink (the replay route of that sink)."""

    def resend(self, message: Mapping[str, Any], deadline: float) -> ResendResult:
        """Send the parked message's payload again and say how it ended."""
        ...
