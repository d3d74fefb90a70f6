"""The record model: one parsed log line (or one reassembled multi-line trace) and where it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
        level = _LEVEL_ALIASES.get(value)  # type: ignore[call-overload]
        return level if level is not None else _LEVEL_ALIASES.get(value.upper())  # type: ignore[attr-defined]
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

    def field(self, name: str) -> Any:  # noqa: ANN401 - fields are whatever the application logged
        """A structured field by name, or None."""
        return self.fields.get(name)
