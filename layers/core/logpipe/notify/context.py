"""Context from the logs: the top error messages of an alarm's window, read with its Logs Insights query.

Bounded on every side: one query over the alarm's window and the groups of the alarm's service, at
most ``limit`` rows, a few seconds in all, and stopped (``StopQuery``) as soon as its scan grows past
``max_bytes_scanned`` or the time is up. Whatever goes wrong (a missing group, throttling, a slow or
failed query), the notification goes out without context and says why. Every message is scrubbed
before it is counted, so variants that differ only in PII count as one and none of it leaves AWS.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from logpipe.formats import parse_line
from logpipe.notify.queries import InsightsQuery
from logpipe.records import Level

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

    from logpipe.boundary import Boundary

_DONE = frozenset({"Complete"})
_FAILED = frozenset({"Failed", "Cancelled", "Timeout", "Unknown"})
_ERROR_LEVELS = frozenset({Level.ERROR, Level.CRITICAL})
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_BYTES_SCANNED = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TopError:
    """One distinct (scrubbed) error message and how often it occurred in the rows read."""

    count: int
    message: str


@dataclass(frozen=True, slots=True)
class LogContext:
    """The top errors of the window, or why there are none to show."""

    errors: tuple[TopError, ...] = ()
    rows: int = 0
    bytes_scanned: float | None = None
    unavailable: str | None = None


def _field(row: Sequence[Mapping[str, Any]], name: str) -> str | None:
    for cell in row:
        if cell.get("field") == name:
            value = cell.get("value")
            return None if value is None else str(value)
    return None


def error_message(line: str) -> str | None:
    """The message of an error line (its own words, without timestamp or request id), else None."""
    parsed = parse_line(line)
    if parsed.level is not None and parsed.level not in _ERROR_LEVELS:
        return None
    if parsed.level is None and "ERROR" not in line and "CRITICAL" not in line:
        return None
    text = parsed.message or (parsed.exception or line).strip().splitlines()[-1]
    first = text.strip().splitlines()[0] if text.strip() else ""
    return " ".join(first.split()) or None


class LogContextReader:
    """Runs one bounded Logs Insights query and condenses its rows into the top error messages."""

    def __init__(  # noqa: PLR0913 - explicit knobs, all with defaults
        self,
        client: CloudWatchLogsClient | None = None,
        *,
        boundary: Boundary | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_bytes_scanned: float = DEFAULT_MAX_BYTES_SCANNED,
        poll_seconds: float = 0.5,
        top: int = 5,
        max_chars: int = 200,
        limit: int = 100,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Remember the bounds; the client is created on first use."""
        self._client = client
        self._boundary = boundary
        self.timeout_seconds = timeout_seconds
        self.max_bytes_scanned = max_bytes_scanned
        self.poll_seconds = poll_seconds
        self.top = top
        self.max_chars = max_chars
        self.limit = limit
        self._clock = clock
        self._sleep = sleep

    def _logs(self) -> CloudWatchLogsClient:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # One attempt with short timeouts: the whole read must fit in a few seconds.
            bounded = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 1, "mode": "standard"})
            # Its own session: the credentials are those of this container's environment, never a default
            # session some other code resolved earlier in the process.
            self._client = boto3.session.Session().client("logs", config=bounded)
        return self._client

    def _scrub(self, text: str) -> str:
        # The messages leave for Slack or Teams: the same PHI boundary as everything else that leaves.
        if self._boundary is None:
            from logpipe.boundary import Boundary

            self._boundary = Boundary.default()
        return self._boundary.scrub_text(text)

    def read(self, query: InsightsQuery, start: datetime, end: datetime) -> LogContext:
        """The top error messages of ``query`` over ``start``..``end``; never raises."""
        deadline = self._clock() + self.timeout_seconds
        client = self._logs()
        try:
            query_id = client.start_query(
                logGroupNames=list(query.log_groups),
                startTime=int(start.timestamp()),
                endTime=int(end.timestamp()) + 1,
                queryString=query.query,
                limit=self.limit,
            )["queryId"]
        except Exception as error:  # noqa: BLE001 - botocore raises many types; all mean "no context"
            return LogContext(unavailable=f"StartQuery failed: {type(error).__name__}")
        while True:
            try:
                response = client.get_query_results(queryId=query_id)
            except Exception as error:  # noqa: BLE001 - see above
                self._stop(query_id)
                return LogContext(unavailable=f"GetQueryResults failed: {type(error).__name__}")
            status = str(response.get("status", "Unknown"))
            scanned = response.get("statistics", {}).get("bytesScanned")
            if status in _DONE:
                return self._condense(response.get("results", []), scanned)
            if status in _FAILED:
                return LogContext(bytes_scanned=scanned, unavailable=f"query ended {status}")
            if scanned is not None and scanned > self.max_bytes_scanned:
                self._stop(query_id)
                limit_mb = self.max_bytes_scanned / 1024 / 1024
                return LogContext(bytes_scanned=scanned, unavailable=f"scan passed {limit_mb:g} MB (stopped)")
            if self._clock() + self.poll_seconds > deadline:
                self._stop(query_id)
                return LogContext(
                    bytes_scanned=scanned,
                    unavailable=f"query still {status} after {self.timeout_seconds:g} s (stopped)",
                )
            self._sleep(self.poll_seconds)

    def _stop(self, query_id: str) -> None:
        # A query left running keeps scanning (and costing); stopping is best effort (it also times out alone).
        with contextlib.suppress(Exception):
            self._logs().stop_query(queryId=query_id)

    def _condense(self, rows: Sequence[Sequence[Mapping[str, Any]]], scanned: float | None) -> LogContext:
        counts: Counter[str] = Counter()
        for row in rows:
            line = _field(row, "@message")
            if line is None:
                continue
            message = error_message(line)
            if message is None:
                continue
            scrubbed = self._scrub(message)
            if len(scrubbed) > self.max_chars:
                scrubbed = scrubbed[: self.max_chars - 1] + "…"
            counts[scrubbed] += 1
        errors = tuple(TopError(count, message) for message, count in counts.most_common(self.top))
        return LogContext(errors=errors, rows=len(rows), bytes_scanned=scanned)
