"""The delivery vocabulary shared by every sink (Sentry, Langfuse): one attempt's HTTP outcome, one replay's result."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

# How long a parked item waits when the destination did not say (no Retry-After).
DEFAULT_RETRY_SECONDS = 60.0
# A gateway timeout: the request reached the server, which may have stored it before the gateway gave up.
UNCERTAIN_STATUSES = frozenset({504})


def request_may_have_arrived(error: BaseException) -> bool:
    """Whether a request that failed with ``error`` may nevertheless have been received and stored.

    A connection that was never made (refused, unresolvable, connect timeout, TLS handshake) sent
    nothing. A read timeout, a connection dropped mid-response or a truncated body (a cut 200) came
    after the request was written: the server may have it, so the outcome is uncertain.
    """
    import urllib3

    exceptions = urllib3.exceptions
    return not isinstance(error, exceptions.ConnectTimeoutError | exceptions.SSLError | exceptions.LocationParseError)


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


def resend_result(outcome: HttpOutcome, reason: str, retry_after: float | None) -> ResendResult:
    """The replay's outcome of one re-send attempt: delivered, retried later (after ``retry_after``) or rejected."""
    if outcome is HttpOutcome.ACCEPTED:
        return ResendResult(ResendOutcome.DELIVERED, "accepted")
    detail = f"{outcome.value}: {reason}"
    if outcome.should_retry:
        return ResendResult(
            ResendOutcome.RETRY_LATER, detail, retry_after if retry_after is not None else DEFAULT_RETRY_SECONDS
        )
    return ResendResult(ResendOutcome.REJECTED, detail)


def bounded_chunks[T](items: Iterable[T], size_of: Callable[[T], int], max_items: int, max_bytes: int) -> list[list[T]]:
    """Consecutive chunks of at most ``max_items`` items and ``max_bytes`` in all (one oversized item alone)."""
    chunks: list[list[T]] = []
    current: list[T] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if current and (len(current) >= max_items or size + item_size > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        chunks.append(current)
    return chunks


class Resender(Protocol):
    """Re-sends one parked item of its sink (the replay route of that sink)."""

    def resend(self, message: Mapping[str, Any], deadline: float) -> ResendResult:
        """Send the parked message's payload again and say how it ended."""
        ...
