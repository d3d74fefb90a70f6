"""Time limits for every call the pipeline makes: connect and read timeouts, and a retry budget from the time left.

Lambda stops an invocation at its deadline whatever it is doing, and a network that accepts a
connection and never answers would otherwise hold a call (and botocore's own retries) far past it.
So:

* every AWS client is created with :func:`aws_config`: short connect and read timeouts, and no
  retries of its own;
* every call runs through :func:`call_within`, which retries transient failures (throttling, 5xx,
  network) with backoff only while the invocation's time allows another attempt, and gives up at the
  deadline even if the socket is still waiting (the stuck attempt is left to its read timeout in a
  worker thread, so the invocation can return);
* the invocation's deadline lives in one :class:`Deadline` per process (:data:`INVOCATION`), which the
  pipeline sets from ``context.get_remaining_time_in_millis()`` at the start of every run, and which
  the parking lot, the Langfuse ledger and the secret store read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.config import Config

# Every AWS call: a TCP connection to a regional endpoint takes milliseconds; one that does not come in
# this long is not coming. A read of SQS, DynamoDB or Secrets Manager answers in well under a second.
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
# The handler returns (or raises) at least this long before Lambda's own deadline.
RETURN_MARGIN_SECONDS = 1.0
# Calls end this much earlier still: what follows the last call (EMF, the health metrics, the log
# lines of a failure) takes milliseconds, and must fit before that margin too.
WRAP_UP_SECONDS = 0.5
# Without a Lambda context (local runs, tests) an invocation gets this long.
DEFAULT_INVOCATION_SECONDS = 60.0
# Another attempt is only worth starting with at least this much time left.
MIN_ATTEMPT_SECONDS = 0.25
# At most this many attempts of one call (botocore's standard mode makes 3), however much time is left:
# a service that failed four times in a row is down for this invocation.
MAX_ATTEMPTS = 4
_BACKOFF_SECONDS = 0.1
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "SlowDown",
    }
)


class DeadlineExceededError(TimeoutError):
    """The call did not complete before the invocation's deadline (or its retry budget ran out)."""


class Deadline:
    """The monotonic time by which the current invocation's calls must be done; set per run, cleared after.

    Outside a run (the replay function, the CLI, tests) no invocation deadline is set and every call
    gets ``DEFAULT_INVOCATION_SECONDS`` of its own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """No deadline until ``start``."""
        self._clock = clock
        self.end: float | None = None

    def start(self, remaining_seconds: float) -> float:
        """A new invocation with ``remaining_seconds`` until Lambda stops it; return the time calls must end by."""
        self.end = self._clock() + max(remaining_seconds - RETURN_MARGIN_SECONDS - WRAP_UP_SECONDS, 0.0)
        return self.end

    def clear(self) -> None:
        """The invocation is over."""
        self.end = None

    def remaining(self) -> float:
        """Seconds left for calls (never negative)."""
        if self.end is None:
            return DEFAULT_INVOCATION_SECONDS
        return max(self.end - self._clock(), 0.0)


# One invocation runs at a time in a Lambda container: the pipeline sets it, the clients read it.
INVOCATION = Deadline()

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 - one small pool per process, created on first use
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bounded-call")
        return _pool


def aws_config(
    *, connect: float = CONNECT_TIMEOUT_SECONDS, read: float = READ_TIMEOUT_SECONDS, attempts: int = 1
) -> Config:
    """Settings of botocore for the pipeline's clients: bounded timeouts, and by default no retries of its own.

    On the ingest path retries are ours (``call_within``), bounded by the time left instead of a
    fixed count; a client outside an invocation's deadline (the replay) may let botocore retry.
    """
    from botocore.config import Config

    return Config(
        connect_timeout=connect,
        read_timeout=read,
        retries={"total_max_attempts": attempts, "mode": "standard"},
        tcp_keepalive=True,
    )


def is_transient(error: BaseException) -> bool:
    """Whether another attempt may succeed: throttling, a 5xx, a timeout or a network failure."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return code in _TRANSIENT_CODES or status >= 500 or status == 429
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # pragma: no cover - botocore is part of the runtime
        return isinstance(error, OSError)
    return isinstance(error, BotoConnectionError | HTTPClientError | OSError)


def call_within[T](
    call: Callable[[], T],
    *,
    deadline: Deadline | None = None,
    transient: Callable[[BaseException], bool] = is_transient,
    max_attempts: int = MAX_ATTEMPTS,
) -> T:
    """Run ``call``, retrying transient failures while time is left; raise ``DeadlineExceededError`` past the deadline.

    The retry budget is the smaller of ``max_attempts`` and what fits in the time left (with backoff).

    Each attempt runs in a worker thread and is waited for only until the deadline: a call stuck on a
    silent socket cannot hold the invocation (its thread ends at the client's read timeout).
    Non-transient errors are raised as they are.
    """
    limit = deadline or INVOCATION
    attempt = 0
    while True:
        remaining = limit.remaining()
        if remaining < MIN_ATTEMPT_SECONDS:
            msg = f"no time left for another attempt after {attempt}"
            raise DeadlineExceededError(msg)
        attempt += 1
        future = _executor().submit(call)
        try:
            return future.result(timeout=remaining)
        except FutureTimeoutError:
            future.cancel()
            msg = f"the call did not answer within the {remaining:.1f}s left (attempt {attempt})"
            raise DeadlineExceededError(msg) from None
        except Exception as error:
            if not transient(error) or attempt >= max_attempts:
                raise
            pause = _BACKOFF_SECONDS * 2 ** min(attempt - 1, 5)
            if limit.remaining() - pause < MIN_ATTEMPT_SECONDS:
                raise
            time.sleep(pause)


def run_until[T](call: Callable[[], T], deadline: float) -> T:
    """Run ``call`` in a worker thread and wait for it until ``deadline`` (a ``time.monotonic()`` value).

    For HTTP calls whose socket timeouts bound each read but not the whole answer: a server that
    trickles its response byte by byte cannot hold the caller past the deadline.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        msg = "no time left"
        raise DeadlineExceededError(msg)
    future = _executor().submit(call)
    try:
        return future.result(timeout=remaining)
    except FutureTimeoutError:
        future.cancel()
        msg = f"no answer within {remaining:.1f}s"
        raise DeadlineExceededError(msg) from None
