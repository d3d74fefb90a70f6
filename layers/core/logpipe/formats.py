"""Parsers for the log formats the PACS services really write.

Dispatch is by the first character so that each line is tried against at most a few anchored
patterns. Every parser returns a ``ParsedLine``; a line nothing recognises is plain text, never an
error: an unparseable line is still a log line and must flow on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from logpipe.records import Level, LogFormat, normalize_level

_EMPTY: Mapping[str, Any] = {}


class ParsedLine(NamedTuple):
    """What a parser could read from one line; None means the line did not say."""

    level: Level | None
    message: str
    request_id: str | None
    fields: Mapping[str, Any]
    exception: str | None
    logger: str | None
    format: LogFormat
    environment: str | None


_TS = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2}| UTC)?"
_SPACE_DELIMITED = re.compile(
    rf'(?P<ts>{_TS}) (?:(?P<rid>[^\s"]+) )?(?P<level>[A-Za-z]+) "(?P<msg>(?:[^"\\]|\\.)*)"(?: +(?P<rest>.*))?\Z',
    re.DOTALL,
)
_TEXT_HEAD = re.compile(
    rf"(?P<ts>{_TS})\s+\[?(?P<level>[A-Za-z]+)\]?\s+(?:\[(?P<logger>[^\]]*)\]\s*)?(?:\((?P<thread>[^)]*)\)\s*)?"
    r"(?P<rest>.*)\Z",
    re.DOTALL,
)
_POSTGRES = re.compile(
    r"(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? ?[A-Z]{0,5}):(?P<host>[^:]*):(?P<user>[^@:]*)@(?P<db>[^:]*):"
    r"\[(?P<pid>\d+)\]:(?P<level>[A-Z0-9]+):\s+(?P<msg>.*)\Z",
    re.DOTALL,
)
_POSTGRES_DURATION = re.compile(r"duration: (?P<ms>\d+(?:\.\d+)?) ms")
_LAMBDA_TIMEOUT = re.compile(
    rf"(?P<ts>{_TS}) (?P<rid>[0-9a-f-]{{36}}) (?P<msg>Task timed out after (?P<s>[\d.]+) seconds)"
)
_LAMBDA_RUNTIME = re.compile(r"\[(?P<level>[A-Z]+)\]\t(?P<ts>[^\t]+)\t(?P<rid>[^\t]+)\t(?P<msg>.*)\Z", re.DOTALL)
_LAMBDA_RUNTIME_NOTAB = re.compile(r"\[(?P<level>[A-Z]+)\] (?P<msg>.*)\Z", re.DOTALL)
_PLATFORM_REQUEST_ID = re.compile(r"RequestId: (?P<rid>[0-9a-f-]+)")
# Keys are short ("Billed Restore Duration"): bounded, so a long run of letters is not rescanned from each one.
_REPORT_FIELD = re.compile(r"(?P<key>[A-Z][A-Za-z ]{1,40}+): (?P<value>[\d.]+) (?P<unit>ms|MB)")
_KEY_VALUE = re.compile(r'(?<![\w.\-/])(?P<key>[A-Za-z_][\w.\-]*)=(?P<value>"(?:[^"\\]|\\.)*"|[^\s,;"]*)')
_KEY_NAME = re.compile(r"[A-Za-z_][\w.\-]*")
_PLATFORM_PREFIXES = ("START RequestId:", "END RequestId:", "REPORT RequestId:", "INIT_START", "INIT_REPORT")
_LOGFMT_HINT = re.compile(r"[a-z_]+=")
_JSON_LEVEL_KEYS = ("level", "levelname", "severity", "log.level", "lvl", "loglevel")
_JSON_MESSAGE_KEYS = ("message", "msg", "event", "errorMessage")
_REQUEST_ID_KEYS = (
    "request_id",
    "requestId",
    "function_request_id",
    "aws_request_id",
    "correlation_id",
    "x_request_id",
    "req_id",
)
_EXCEPTION_KEYS = ("exception", "exc_info", "stack_trace", "stacktrace", "stack", "traceback", "error.stack_trace")
_PLATFORM_REPORT_KEYS = {
    "Duration": "duration_ms",
    "Billed Duration": "billed_duration_ms",
    "Memory Size": "memory_size_mb",
    "Max Memory Used": "max_memory_used_mb",
    "Init Duration": "init_duration_ms",
}


def _unquote(value: str) -> str:
    inner = value[1:-1]
    return inner.replace('\\"', '"').replace("\\\\", "\\") if "\\" in inner else inner


_PAIR_MARK = "\x00"


def _parse_key_values_regex(text: str) -> tuple[dict[str, str], str]:
    pairs = _KEY_VALUE.findall(text)
    if not pairs:
        return {}, text
    fields = {key: (_unquote(value) if value[:1] == '"' and len(value) > 1 else value) for key, value in pairs}
    words: list[str] = []
    for word in _KEY_VALUE.sub(f" {_PAIR_MARK} ", text).split():
        if word == _PAIR_MARK:  # where a pair was: separators before it went with it
            if words:
                _drop_trailing_separator(words)
        elif word.strip(",;"):
            words.append(word)
    return fields, _message_of(words)


def _message_of(words: list[str]) -> str:
    """The words between the pairs; punctuation inside the message ("Unhandled exception, retrying") is kept."""
    if words:
        _drop_trailing_separator(words)
    return " ".join(words)


def _drop_trailing_separator(words: list[str]) -> None:
    last = words[-1].rstrip(",;")
    if last:
        words[-1] = last
    else:
        words.pop()


def parse_key_values(text: str) -> tuple[dict[str, str], str]:
    """Extract ``key=value`` pairs (quoted or not); return them and the words between them."""
    if '\\"' in text:
        # Escaped quotes need the full grammar; they are rare enough to afford the regex.
        return _parse_key_values_regex(text)
    # A whitespace split runs in C and is ~3x cheaper than any regex scan of the same line.
    tokens = text.split()
    fields: dict[str, str] = {}
    words: list[str] = []
    index, count = 0, len(tokens)
    while index < count:
        token = tokens[index]
        index += 1
        key, separator, value = token.partition("=")
        if not separator or not (key.isidentifier() or _KEY_NAME.fullmatch(key)):
            words.append(token)
            continue
        first = value[:1]
        if first == '"':
            # A quoted value may hold spaces: take tokens until the closing quote.
            while index < count and (len(value) < 2 or not value.rstrip(",;").endswith('"')):
                value = f"{value} {tokens[index]}"
                index += 1
            value = value.rstrip(",;")
            if len(value) >= 2 and value[-1] == '"':
                value = value[1:-1]
        elif value[-1:] == ",":
            value = value[:-1]
        fields[key] = value
        if words:
            # "Request completed, duration=5": the comma separated the words from the pairs.
            _drop_trailing_separator(words)
    if not fields:
        return fields, text
    return fields, _message_of(words)


def _first(document: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = document.get(key)
        if value is not None and value != "":
            return value
    return None


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _lambda_error_exception(document: Mapping[str, Any]) -> str:
    """Render the runtime's error JSON as the trace its own language prints (Python, Node, Java)."""
    # Rare record type; the renderer's module compiles many patterns, so load it only when needed.
    from logpipe.sentry.stacktrace import lambda_error_trace

    return lambda_error_trace(
        str(document.get("errorType", "Error")), document.get("errorMessage", ""), document.get("stackTrace")
    )


def parse_json(document: dict[str, Any]) -> ParsedLine:
    """Interpret an already-decoded JSON log document."""
    if "errorType" in document and "errorMessage" in document:
        return ParsedLine(
            Level.ERROR,
            f"{document['errorType']}: {_as_text(document['errorMessage'])}",
            document.get("requestId") or document.get("requestID"),
            document,
            _lambda_error_exception(document),
            None,
            LogFormat.LAMBDA_ERROR_JSON,
            None,
        )
    kind = LogFormat.JSON
    fields: dict[str, Any] = document
    extra = document.get("extra")
    if isinstance(extra, dict):
        # Nested ``extra`` (python-json-logger, structlog): its keys are first-class fields.
        fields = document | extra
    logger = document.get("logger") or document.get("name") or document.get("loggerName")
    message_value = document.get("message")
    if message_value is None:
        message_value = _first(document, _JSON_MESSAGE_KEYS)
    message = "" if message_value is None else _as_text(message_value)
    if "loggerName" in document and "sequence" in document:
        kind = LogFormat.KEYCLOAK_JSON
        if "=" in message:
            key_values, _ = parse_key_values(message)
            fields = fields | key_values
    elif "location" in document and ("function_request_id" in document or "cold_start" in document):
        kind = LogFormat.POWERTOOLS
    elif str(document.get("type", "")).startswith("platform."):
        kind = LogFormat.LAMBDA_PLATFORM
        record = document.get("record")
        request_id = record.get("requestId") if isinstance(record, dict) else None
        return ParsedLine(Level.INFO, message or str(document["type"]), request_id, fields, None, None, kind, None)
    level_value = fields.get("level") or fields.get("levelname") or _first(fields, _JSON_LEVEL_KEYS)
    level = normalize_level(level_value)
    exception_value = fields.get("exception") or fields.get("exc_info")
    if exception_value is None:
        exception_value = _first(fields, _EXCEPTION_KEYS)
    exception = None if exception_value is None or exception_value is True else _as_text(exception_value)
    request_id = fields.get("request_id") or _first(fields, _REQUEST_ID_KEYS)
    environment = fields.get("environment") or fields.get("env")
    return ParsedLine(
        level,
        message,
        None if request_id is None else str(request_id),
        fields,
        exception,
        None if logger is None else str(logger),
        kind,
        None if environment is None else str(environment),
    )


def _split_first_line(text: str) -> tuple[str, str | None]:
    newline = text.find("\n")
    if newline < 0:
        return text, None
    rest = text[newline + 1 :]
    return text[:newline], rest or None


def _parse_space_delimited(match: re.Match[str], extracted: Mapping[str, Any] | None) -> ParsedLine | None:
    level = normalize_level(match.group("level"))
    if level is None:
        return None
    message = match.group("msg")
    if "\\" in message:
        message = message.replace('\\"', '"')
    rest = match.group("rest")
    values = rest.split() if rest else []
    fields: dict[str, Any] = {"values": values}
    if extracted:
        fields.update(extracted)
    else:
        key_values, _ = parse_key_values(rest) if rest and "=" in rest else ({}, "")
        fields.update(key_values)
    request_id = match.group("rid")
    return ParsedLine(level, message, request_id, fields, None, None, LogFormat.SPACE_DELIMITED, None)


def _parse_postgres(match: re.Match[str]) -> ParsedLine:
    severity = match.group("level")
    level = normalize_level(severity) or Level.INFO
    message = match.group("msg")
    fields: dict[str, Any] = {
        "pid": match.group("pid"),
        "user": match.group("user"),
        "database": match.group("db"),
        "client": match.group("host"),
        "severity": severity,
    }
    if severity == "LOG" and message.startswith("duration:"):
        duration = _POSTGRES_DURATION.match(message)
        if duration is not None:
            fields["duration_ms"] = float(duration.group("ms"))
    return ParsedLine(level, message, None, fields, None, None, LogFormat.POSTGRES, None)


def _parse_text_head(match: re.Match[str]) -> ParsedLine | None:
    level = normalize_level(match.group("level"))
    if level is None:
        return None
    rest = match.group("rest")
    first_line, exception = _split_first_line(rest)
    fields: dict[str, Any]
    if "=" in first_line:
        fields, message = parse_key_values(first_line)
        if not message:
            message = first_line
    else:
        fields, message = {}, first_line
    thread = match.group("thread")
    if thread is not None:
        fields["thread"] = thread
    logger = match.group("logger")
    kind = LogFormat.JBOSS_TEXT if thread is not None else LogFormat.KEY_VALUE
    request_id = fields.get("request_id") or fields.get("requestId") or fields.get("correlation_id")
    return ParsedLine(level, message, request_id, fields, exception, logger, kind, fields.get("environment"))


def _parse_lambda_runtime(message: str) -> ParsedLine | None:
    match = _LAMBDA_RUNTIME.match(message)
    request_id = None
    if match is not None:
        text = match.group("msg")
        request_id = match.group("rid")
    else:
        match = _LAMBDA_RUNTIME_NOTAB.match(message)
        if match is None:
            return None
        text = match.group("msg")
    level = normalize_level(match.group("level"))
    if level is None:
        return None
    first_line, rest = _split_first_line(text)
    exception = None
    if rest is not None and ("Traceback" in rest or "\n  File " in rest or rest.startswith("  File ")):
        exception = rest if rest.startswith("Traceback") else f"{first_line}\n{rest}"
        trace_end = exception.rstrip().rsplit("\n", 1)[-1]
        if trace_end[:1] in {" ", "\t"}:
            # The Python runtime prints "Type: message" first and the frames after it, without the
            # closing exception line a traceback normally ends with: put it back where it belongs.
            exception = f"{exception.rstrip()}\n{first_line}"
    elif rest is not None:
        first_line = text
    fields: Mapping[str, Any] = _EMPTY
    if first_line.startswith("{") and first_line.endswith("}"):
        try:
            decoded = orjson.loads(first_line)
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict):
            fields = decoded
    return ParsedLine(level, first_line, request_id, fields, exception, None, LogFormat.LAMBDA_RUNTIME, None)


def _parse_platform(message: str) -> ParsedLine:
    match = _PLATFORM_REQUEST_ID.search(message)
    request_id = match.group("rid") if match else None
    fields: dict[str, Any] = {"platform_event": message.split(" ", 1)[0]}
    if message.startswith("REPORT"):
        for report in _REPORT_FIELD.finditer(message):
            name = _PLATFORM_REPORT_KEYS.get(report.group("key").strip())
            if name is not None:
                fields[name] = float(report.group("value"))
        if "Status: timeout" in message:
            fields["status"] = "timeout"
    return ParsedLine(Level.INFO, message.rstrip(), request_id, fields, None, None, LogFormat.LAMBDA_PLATFORM, None)


def _parse_logfmt(message: str) -> ParsedLine | None:
    fields, remainder = parse_key_values(message)
    if not fields:
        return None
    level = normalize_level(fields.get("level") or fields.get("lvl") or fields.get("severity"))
    text = fields.get("msg") or fields.get("message") or remainder
    request_id = fields.get("request_id") or fields.get("requestId")
    return ParsedLine(level, text, request_id, fields, None, None, LogFormat.LOGFMT, fields.get("environment"))


def _parse_plain(message: str) -> ParsedLine:
    first_line, rest = _split_first_line(message)
    exception = message if first_line.startswith("Traceback") else rest
    if exception is not None and not _looks_like_trace(exception):
        exception = None
    return ParsedLine(None, first_line, None, _EMPTY, exception, None, LogFormat.TEXT, None)


def _looks_like_trace(text: str) -> bool:
    return (
        "Traceback (most recent call last)" in text
        or "\n\tat " in text
        or "\n    at " in text
        or text.startswith(("\tat ", "    at "))
    )


def parse_line(message: str, extracted_fields: Mapping[str, Any] | None = None) -> ParsedLine:  # noqa: PLR0911, PLR0912 - the dispatcher: one branch per format, cheapest test first
    """Parse one log line in whichever supported format it is written."""
    if not message:
        return ParsedLine(None, "", None, _EMPTY, None, None, LogFormat.TEXT, None)
    first = message[0]
    if first == "{":
        try:
            document = orjson.loads(message)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, dict):
            return parse_json(document)
    elif first.isdigit():
        if " UTC:" in message[:40] or "]:" in message[:120]:
            match = _POSTGRES.match(message)
            if match is not None:
                return _parse_postgres(match)
        if '"' in message:
            match = _SPACE_DELIMITED.match(message)
            if match is not None:
                parsed = _parse_space_delimited(match, extracted_fields)
                if parsed is not None:
                    return parsed
        match = _TEXT_HEAD.match(message)
        if match is not None:
            parsed = _parse_text_head(match)
            if parsed is not None:
                return parsed
        match = _LAMBDA_TIMEOUT.match(message)
        if match is not None:
            fields = {"timeout_seconds": float(match.group("s"))}
            return ParsedLine(
                Level.ERROR, match.group("msg"), match.group("rid"), fields, None, None, LogFormat.LAMBDA_RUNTIME, None
            )
    elif first == "[":
        parsed = _parse_lambda_runtime(message)
        if parsed is not None:
            return parsed
    elif message.startswith(_PLATFORM_PREFIXES):
        return _parse_platform(message)
    elif first.isalpha() and _LOGFMT_HINT.match(message):
        parsed = _parse_logfmt(message)
        if parsed is not None:
            return parsed
    return _parse_plain(message)
