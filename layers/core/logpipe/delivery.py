"""What happened to one HTTP delivery attempt, shared by every sink's transport (Sentry, Langfuse)."""

from __future__ import annotations

from enum import StrEnum


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
