"""The record model: one parsed log line (or one reassembled multi-line trace) and where it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any


class LogFormat(StrEnum):
    """Which of the understood log formats a line was written in."""

    JSON = "json"
    POWERTOOLS = "powertools"
    LAMBDA_ERROR_JSON = "lambda_error_json"
    LAMBDA_RUNTIME = "lambda_runtime"
    LAMBDA_PLATFORM = "lambda_platform"
    KEYCLOAK_JSON = "keycloak_json"
    JBOSS_TEXT = "jboss_text"
    SPACE_DELIMITED = "space_delimited"
    KEY_VALUE = "key_value"
    LOGFMT = "logfmt"
    POSTGRES = "postgres"
    TEXT = "text"


class Level(StrEnum):
    """Normalised severity; source spellings (WARN, FATAL, SEVERE, ...) map onto these."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


_LEVEL_ALIASES: dict[str, Level] = {
    "TRACE": Level.DEBUG,
    "FINEST": Level.DEBUG,
    "FINER": Level.DEBUG,
    "FINE": Level.DEBUG,
    "DEBUG": Level.DEBUG,
    "DEBUG1": Level.DEBUG,
    "DEBUG2": Level.DEBUG,
    "DEBUG3": Level.DEBUG,
    "DEBUG4": Level.DEBUG,
    "DEBUG5": Level.DEBUG,
    "INFO": Level.INFO,
    "INFORMATION": Level.INFO,
    "NOTICE": Level.INFO,
    "LOG": Level.INFO,
    "CONFIG": Level.INFO,
    "WARN": Level.WARNING,
    "WARNING": Level.WARNING,
    "ERROR": Level.ERROR,
    "ERR": Level.ERROR,
    "SEVERE": Level.ERROR,
    "FATAL": Level.CRITICAL,
    "CRITICAL": Level.CRITICAL,
    "CRIT": Level.CRITICAL,
    "PANIC": Level.CRITICAL,
    "ALERT": Level.CRITICAL,
    "EMERG": Level.CRITICAL,
    "EMERGENCY": Level.CRITICAL,
}
_LEVEL_ALIASES.update({name.lower(): level for name, level in list(_LEVEL_ALIASES.items())})
_LEVEL_ALIASES.update({name.capitalize(): level for name, level in list(_LEVEL_ALIASES.items())})
ERROR_LEVELS = frozenset({Level.ERROR, Level.CRITICAL})


def normalize_level(value: object) -> Level | None:
    """Map a source level spelling to a ``Level``; None when it is not a level at all."""
    if type(value) is str:
        # Exact spellings are looked up first: .upper() is only needed for unusual casing.
        level = _LEVEL_ALIASES.get(value)
        return level if level is not None else _LEVEL_ALIASES.get(value.upper())
    if isinstance(value, Level):
        return value
    return None


@dataclass(frozen=True, slots=True)
class StreamContext:
    """Everything shared by the records of one batch; built once per batch, referenced by each record."""

    log_group: str
    log_stream: str
    owner: str
    region: str
    platform: str
    service: str
    log_type: str
    default_environment: str


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log record, already scrubbed; ``raw`` is the (scrubbed) original text."""

    timestamp_ms: int
    level: Level
    message: str
    service: str
    environment: str
    request_id: str | None
    fields: Mapping[str, Any]
    exception: str | None
    event_id: str
    stream: StreamContext
    format: LogFormat
    logger: str | None
    raw: str
    line_count: int = 1

    @property
    def log_group(self) -> str:
        """The CloudWatch log group the record came from."""
        return self.stream.log_group

    @property
    def log_stream(self) -> str:
        """The CloudWatch log stream the record came from."""
        return self.stream.log_stream

    @property
    def origin(self) -> tuple[str, str, str]:
        """(log group, log stream, event id): enough to find the exact CloudWatch event again."""
        return (self.stream.log_group, self.stream.log_stream, self.event_id)

    def field(self, name: str) -> Any:
        """A structured field by name, or None."""
        return self.fields.get(name)


# The dataclass's own __init__ sets each of the 14 fields through object.__setattr__ (frozen): ~1.9 us
# per record against ~0.9 us for the slot descriptors' C-level setters used here; the result is an
# ordinary frozen LogRecord. bench/ingest.py times the full path both ways: the constructor makes it
# 5.6-9.8% slower across runs, so this stays (a trick that makes code harder to read must be worth more than 5%).
_new_object = object.__new__
(
    _set_timestamp,
    _set_level,
    _set_message,
    _set_service,
    _set_environment,
    _set_request_id,
    _set_fields,
    _set_exception,
    _set_event_id,
    _set_stream,
    _set_format,
    _set_logger,
    _set_raw,
    _set_line_count,
) = (LogRecord.__dict__[item.name].__set__ for item in fields(LogRecord))


def new_record(  # noqa: PLR0913, PLR0917 - mirrors the dataclass fields, positional for speed
    timestamp_ms: int,
    level: Level,
    message: str,
    service: str,
    environment: str,
    request_id: str | None,
    fields: Mapping[str, Any],
    exception: str | None,
    event_id: str,
    stream: StreamContext,
    format: LogFormat,  # noqa: A002 - the field's name
    logger: str | None,
    raw: str,
    line_count: int,
) -> LogRecord:
    """Build a ``LogRecord`` on the hot path; equal to calling the dataclass constructor."""
    record: LogRecord = _new_object(LogRecord)
    _set_timestamp(record, timestamp_ms)
    _set_level(record, level)
    _set_message(record, message)
    _set_service(record, service)
    _set_environment(record, environment)
    _set_request_id(record, request_id)
    _set_fields(record, fields)
    _set_exception(record, exception)
    _set_event_id(record, event_id)
    _set_stream(record, stream)
    _set_format(record, format)
    _set_logger(record, logger)
    _set_raw(record, raw)
    _set_line_count(record, line_count)
    return record
