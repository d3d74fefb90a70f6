"""How every HTTP destination (Sentry, Langfuse, chat webhooks) is delivered to, in one place.

The vocabulary (one attempt's ``HttpOutcome``, one replay's ``ResendResult``), the policy that maps
an HTTP status to an outcome, the server's own wait (``Retry-After``, Sentry's
``X-Sentry-Rate-Limits``), and the inline retry schedule within a deadline. The transports only do
the I/O: they post, then ask this module what the answer means and whether to try again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import urllib3

# Connecting is quick or it fails: the rest of an attempt's time is for the answer.
MAX_CONNECT_SECONDS = 3.0
# How long a parked item waits when the destination did not say (no Retry-After).
DEFAULT_RETRY_SECONDS = 60.0
# Rate-limit categories that cover what we send (error events): "" means every category.
_OUR_RATE_LIMIT_CATEGORIES = frozenset({"", "error", "default"})

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


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value whatever its case (urllib3's headers ignore case; a plain dict does not)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((item for key, item in headers.items() if key.lower() == lowered), None)
    return value


def _sentry_rate_limit_seconds(value: str) -> float | None:
    # "<seconds>:<categories separated by ;>:<scope>[:...]", several limits separated by commas.
    waits: list[float] = []
    for limit in value.split(","):
        seconds, _, rest = limit.strip().partition(":")
        categories = set(rest.split(":", 1)[0].split(";"))
        if categories & _OUR_RATE_LIMIT_CATEGORIES:
            try:
                waits.append(float(seconds))
            except ValueError:
                continue
    return max(waits) if waits else None


def retry_after_seconds(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asked us to wait: ``X-Sentry-Rate-Limits`` for our categories, else ``Retry-After``.

    ``Retry-After`` is either delay-seconds or an HTTP date (RFC 9110 section 10.2.3); a date in
    the past means "now" (0), an unreadable value the default wait. None when neither header says.
    """
    limits = header(headers, "X-Sentry-Rate-Limits")
    if limits:
        wait = _sentry_rate_limit_seconds(limits)
        if wait is not None:
            return wait
    value = header(headers, "Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # ~12 ms to import: only for the rare HTTP-date form

    try:
        return max(parsedate_to_datetime(value).timestamp() - now(), 0.0)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_SECONDS


@dataclass(frozen=True, slots=True)
class HttpVerdict:
    """What one HTTP answer means for delivery: the outcome, the wait the server asked for, a short reason."""

    outcome: HttpOutcome
    retry_after: float | None
    reason: str
    # A gateway timeout (504): the request reached the server, which may have stored it.
    uncertain: bool = False


def classify_status(status: int, headers: Mapping[str, str], body: bytes, *, detail_chars: int = 300) -> HttpVerdict:
    """The one status policy: 2xx accepted, 429 rate-limited, 408 and 5xx retryable, any other 4xx rejected.

    A 429 always carries a wait (the server's, else ``DEFAULT_RETRY_SECONDS``); a retryable answer
    carries the server's wait only if it gave one. The reason holds the start of the body, one line.
    """
    if 200 <= status < 300:  # HTTP success range
        return HttpVerdict(HttpOutcome.ACCEPTED, None, "accepted")
    detail = " ".join(body[:detail_chars].decode("utf-8", "replace").split())
    described = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    if status == 429:  # Too Many Requests
        wait = retry_after_seconds(headers)
        wait = DEFAULT_RETRY_SECONDS if wait is None else wait
        return HttpVerdict(HttpOutcome.RATE_LIMITED, wait, f"HTTP 429: rate limited for {wait:g}s")
    if status >= 500 or status == 408:  # server errors and request timeout are transient
        return HttpVerdict(
            HttpOutcome.RETRYABLE, retry_after_seconds(headers), described, uncertain=status in UNCERTAIN_STATUSES
        )
    return HttpVerdict(HttpOutcome.REJECTED, None, described)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What the destination answered to one POST."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class NetworkFailure:
    """A POST that got no answer; ``reason`` is the exception's type name only (its text may hold the URL)."""

    reason: str
    # Written before it failed (read timeout, cut answer): the server may have stored it.
    may_have_arrived: bool = False


def post_once(  # noqa: PLR0913 - one request's whole description
    pool: urllib3.PoolManager,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    *,
    redirect: bool = True,
) -> HttpAnswer | NetworkFailure:
    """One POST with a bounded connect and read time, no retries inside urllib3 (``RetryPolicy`` decides)."""
    import urllib3

    try:
        response = pool.request(
            "POST",
            url,
            body=body,
            headers=dict(headers),
            timeout=urllib3.Timeout(connect=min(timeout, MAX_CONNECT_SECONDS), read=timeout),
            retries=False,
            redirect=redirect,
            preload_content=True,
        )
    except urllib3.exceptions.HTTPError as error:
        return NetworkFailure(type(error).__name__, request_may_have_arrived(error))
    return HttpAnswer(response.status, response.headers, response.data)


class _HasOutcome(Protocol):
    @property
    def outcome(self) -> HttpOutcome: ...

    @property
    def uncertain(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Inline retries of retryable answers and network errors, with exponential backoff, never past a deadline.

    Rate limits are not retried inline: the server named its wait, which outlasts an invocation;
    the item is parked until then. Rejections are final. An uncertain attempt (the request may have
    been stored without an answer saying so) is not retried inline either: the caller parks it, and
    the replay checks before sending again where the destination does not dedupe.
    """

    retries: int = 2
    backoff: float = 0.5

    def run[R: _HasOutcome](
        self,
        attempt: Callable[[float], R],
        timeout: float,
        deadline: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> tuple[R | None, int]:
        """Call ``attempt(timeout)`` until it is final, retries run out or the deadline (``time.monotonic()``) nears.

        Returns the last result and the number of attempts made; ``(None, 0)`` when the deadline had
        already passed before the first attempt.
        """
        attempts = 0
        result: R | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return result, attempts
            attempts += 1
            result = attempt(min(timeout, remaining))
            if (
                result.uncertain  # it may be stored already: never re-sent blindly (see request_may_have_arrived)
                or result.outcome not in {HttpOutcome.RETRYABLE, HttpOutcome.NETWORK_ERROR}
                or attempts > self.retries
            ):
                return result, attempts
            pause = self.backoff * 2 ** (attempts - 1)
            if time.monotonic() + pause >= deadline:
                return result, attempts
            sleep(pause)


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
