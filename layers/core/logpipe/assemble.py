"""Turn a decoded batch into records: reassemble split stack traces, parse.

The awslogs driver writes every line of a stack trace as its own event. Those continuation lines
are folded into the record they belong to, so one exception is one record (and one Sentry event),
not one per line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from logpipe.decode import MAX_EVENT_TIMESTAMP_MS, LogBatch, event_problem
from logpipe.formats import parse_line
from logpipe.loggroups import parse_log_group
from logpipe.records import Level, LogRecord, StreamContext, new_record

_ALWAYS_CONTINUES = (
    "Traceback (most recent call last)",
    "Caused by: ",
    "Suppressed: ",
    "During handling of the above exception",
    "The above exception was the direct cause",
    "Exception in thread ",
)
# The last line of a Python traceback (``ValueError: x``, ``psycopg.errors.UniqueViolation: y``).
_PYTHON_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(?::\s.*)?\Z", re.DOTALL)
# The first line of a Java trace (``java.lang.NullPointerException: msg``).
_JAVA_EXCEPTION_LINE = re.compile(
    r"(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable)(?::\s.*)?\Z", re.DOTALL
)
_POSTGRES_CONTINUATION = re.compile(
    r"[^\n]*?:\[\d+\]:(?P<severity>DETAIL|HINT|STATEMENT|CONTEXT|QUERY|LOCATION):\s+(?P<text>.*)\Z", re.DOTALL
)


class _Unit:
    """One record in the making: a head event and its continuation lines."""

    __slots__ = ("continuation", "event", "folded", "in_trace", "message", "postgres_extra")

    def __init__(
        self,
        event: dict[str, Any],
        message: str,
        continuation: list[str] | None,
        postgres_extra: dict[str, str] | None,
        in_trace: bool,
    ) -> None:
        self.event = event
        self.message = message
        self.continuation = continuation
        self.postgres_extra = postgres_extra
        self.in_trace = in_trace
        # Every event folded into this unit after the head (continuation and PostgreSQL lines), in order.
        self.folded: list[dict[str, Any]] | None = None

    def fold(self, event: dict[str, Any]) -> None:
        if self.folded is None:
            self.folded = []
        self.folded.append(event)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The head event and every event folded into it."""
        return [self.event, *(self.folded or ())]


@dataclass(frozen=True, slots=True)
class FailedUnit:
    """The events of one record whose building raised: parked whole with the error, never dropped."""

    events: list[dict[str, Any]]
    error: Exception


@dataclass(frozen=True, slots=True)
class BadEvent:
    """A log event that lacks id, timestamp or message; parked whole, never dropped."""

    event: object
    problem: str


def stream_context(batch: LogBatch, region: str, default_environment: str) -> StreamContext:
    """Build the per-batch context every record of the batch shares."""
    info = parse_log_group(batch.log_group)
    return StreamContext(
        log_group=batch.log_group,
        log_stream=batch.log_stream,
        owner=batch.owner,
        region=region,
        platform=info.platform,
        service=info.service,
        log_type=info.log_type,
        default_environment=default_environment,
    )


def _continues(message: str, unit: _Unit) -> bool:
    """Whether ``message`` is a continuation line of the trace being built in ``unit``."""
    first = message[:1]
    if first in {" ", "\t"}:
        return True
    if not message.strip():
        # Blank lines separate chained Python exceptions; they belong to a trace already started.
        return unit.in_trace or unit.continuation is not None
    if message.startswith(_ALWAYS_CONTINUES):
        return True
    if unit.in_trace:
        return _PYTHON_EXCEPTION_LINE.match(message) is not None or message.startswith("...")
    if first.islower() and unit.continuation is None:
        return _JAVA_EXCEPTION_LINE.match(message) is not None and _head_is_problem(unit.message)
    return False


def _head_is_problem(message: str) -> bool:
    head = message[:120]
    return "ERROR" in head or "WARN" in head or "SEVERE" in head or "FATAL" in head or "Exception" in head


def _ordered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Subscription batches are almost always in order; only sort when they are not.
    previous = -1
    for event in events:
        timestamp = event["timestamp"]
        if timestamp < previous:
            return sorted(events, key=lambda item: (item["timestamp"], item["id"]))
        previous = timestamp
    return events


def _units(events: list[dict[str, Any]], postgres: bool) -> Iterator[_Unit]:
    """Group events into units (head + continuation lines); only multi-line units allocate a list."""
    unit: _Unit | None = None
    for event in events:
        message: str = event["message"]
        if unit is not None:
            first = message[:1]
            # Most lines start with a timestamp or "{": they can only be heads, so skip the checks.
            if first == "{" or first.isdigit():
                if postgres and ":[" in message[:120]:
                    extra = _POSTGRES_CONTINUATION.match(message)
                    if extra is not None:
                        if unit.postgres_extra is None:
                            unit.postgres_extra = {}
                        key, text = extra.group("severity").lower(), extra.group("text")
                        earlier = unit.postgres_extra.get(key)
                        # Two lines of one severity (two DETAILs) are both kept, in order.
                        unit.postgres_extra[key] = text if earlier is None else f"{earlier}\n{text}"
                        unit.fold(event)
                        continue
            elif _continues(message, unit):
                if unit.continuation is None:
                    unit.continuation = []
                unit.continuation.append(message)
                unit.fold(event)
                unit.in_trace = first in {" ", "\t"} or message.startswith("Traceback")
                continue
            yield unit
        if message[-1:] == "\n":
            message = message.rstrip("\n")
        unit = _Unit(event, message, None, None, message.startswith("Traceback"))
    if unit is not None:
        yield unit


def assemble_records(
    batch: LogBatch, context: StreamContext, failed: list[FailedUnit] | None = None
) -> tuple[list[LogRecord], list[BadEvent]]:
    """Parse every event of a batch into records; return the records and the unusable events.

    With ``failed``, a record whose building raises (a parser bug, hostile input) costs only its own
    events, which are appended there with the error; without it, the error propagates.
    """
    good: list[dict[str, Any]] = []
    bad: list[BadEvent] = []
    for event in batch.events:
        # Fast path for the overwhelmingly common well-formed event; event_problem explains the rest.
        if (
            type(event) is dict
            and type(event.get("id")) is str
            and type(timestamp := event.get("timestamp")) is int
            and 0 <= timestamp <= MAX_EVENT_TIMESTAMP_MS
            and type(event.get("message")) is str
        ):
            good.append(event)
        else:
            bad.append(BadEvent(event, event_problem(event) or "log event is malformed"))
    units = _units(_ordered(good), postgres=context.platform == "rds")
    if failed is None:
        return [_record(unit, context) for unit in units], bad
    records: list[LogRecord] = []
    for unit in units:
        try:
            records.append(_record(unit, context))
        except Exception as error:  # noqa: BLE001 - one record's bug must not cost the batch
            failed.append(FailedUnit(unit.events, error))
    return records, bad


def _record(unit: _Unit, context: StreamContext) -> LogRecord:
    event = unit.event
    extracted = event.get("extractedFields")
    parsed = parse_line(unit.message, extracted if isinstance(extracted, Mapping) else None)
    exception = parsed.exception
    raw = unit.message
    fields = parsed.fields
    if unit.continuation is not None:
        trace = "\n".join(line.rstrip("\n") for line in unit.continuation)
        raw = f"{unit.message}\n{trace}"
        exception = trace if exception is None else f"{exception}\n{trace}"
    if unit.postgres_extra is not None:
        fields = {**fields, **unit.postgres_extra}
    level = parsed.level
    if level is None:
        # A line without a level is INFO, unless it carries a trace or was written to an errors group.
        level = Level.ERROR if exception is not None or context.log_type == "errors" else Level.INFO
    return new_record(
        event["timestamp"],
        level,
        parsed.message,
        context.service,
        parsed.environment or context.default_environment,
        parsed.request_id,
        fields,
        exception,
        event["id"],
        context,
        parsed.format,
        parsed.logger,
        raw,
        1 + (0 if unit.folded is None else len(unit.folded)),
    )
