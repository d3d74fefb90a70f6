"""Map one error ``LogRecord`` to a Sentry event payload: a plain dict, no SDK, no network, no clock.

Everything in the event derives from the record (and its breadcrumbs), so the same record always
gives the same event: a redelivered batch yields the same ``event_id`` and Sentry dedupes it.

Choices, each following Sentry's event-payload documentation:

* ``event_id``: ``uuid5(EVENT_ID_NAMESPACE, f"{log_group}/{cloudwatch_event_id}")`` as 32 lowercase
  hex digits, the form Sentry requires. The namespace is fixed forever (changing it would re-send
  every parked event as new): it is ``uuid5(NAMESPACE_URL, "urn:pacs-logpipe:sentry-event-id")``.
* ``timestamp``: the record's own CloudWatch timestamp as RFC 3339 UTC with milliseconds
  (``2026-11-22T01:00:03.613Z``); Sentry accepts RFC 3339 or epoch seconds, and the string is exact
  where a float is not. Breadcrumb timestamps use the same form.
* ``level``: debug/info/warning/error/fatal (CRITICAL maps to fatal).
* ``message``: ``{"formatted": ...}`` (the message interface), cut at ``MAX_MESSAGE_CHARS`` = 8192,
  the length Relay keeps.
* ``fingerprint``: ``[service, exception type or "log", normalized message]`` (plus the normalized
  exception message when the log message does not contain it) so one bug is one issue whatever
  ids, numbers or quoted values it logged.
* ``tags``: values cut at 200 characters without newlines (Sentry's tag limits).
* ``contexts.cloudwatch``: where the record came from, with a console deep link (``console_url``).
* ``breadcrumbs``: one per earlier record (the caller picks them with ``select_breadcrumbs`` and
  scrubs them); messages cut at 1024 characters, at most 8 small fields each.
* Size: with the caps here and in ``stacktrace`` an event stays far below Sentry's 1 MB limit.
"""

from __future__ import annotations

import re
import time
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from operator import attrgetter
from typing import Any
from urllib.parse import quote

import orjson

from logpipe import __version__
from logpipe.records import ERROR_LEVELS, Level, LogFormat, LogRecord, StreamContext
from logpipe.sentry.stacktrace import MECHANISM_TYPE, lambda_error_trace, parse_trace, truncate

EVENT_ID_NAMESPACE = uuid.UUID("3a46f6ee-6272-58de-ae8a-b0789d5606ba")
DEFAULT_BREADCRUMBS = 20
MAX_MESSAGE_CHARS = 8192
MAX_TAG_CHARS = 200
MAX_FINGERPRINT_MESSAGE_CHARS = 512
MAX_BREADCRUMB_MESSAGE_CHARS = 1024
MAX_BREADCRUMB_DATA_KEYS = 8
MAX_BREADCRUMB_DATA_CHARS = 256
MAX_CONTEXT_FIELDS = 30
MAX_CONTEXT_FIELD_CHARS = 1024
MAX_RELEASE_CHARS = 200
TIMEOUT_EXCEPTION_TYPE = "LambdaTimeout"

_SENTRY_LEVELS = {
    Level.DEBUG: "debug",
    Level.INFO: "info",
    Level.WARNING: "warning",
    Level.ERROR: "error",
    Level.CRITICAL: "fatal",
}
_TIMEOUT = re.compile(r"Task timed out after (?P<seconds>\d+(?:\.\d+)?) seconds")
_LAMBDA_VERSION = re.compile(r"\[(?P<version>[^\[\]]+)\]")
_RELEASE_KEYS = ("release", "version", "service.version", "service_version")
_RELEASE_FORBIDDEN = frozenset("\n\r\t/\\")
_SERVER_NAME_KEYS = ("hostname", "host", "server_name", "hostName")
_POSTGRES_KEYS = ("severity", "detail", "hint", "statement", "query", "context", "location", "user", "database", "pid")
# Fields already shown elsewhere in the event (message, level, time, logger, ids, traces, ...).
_CONSUMED_FIELDS = frozenset(
    {
        "message",
        "msg",
        "event",
        "level",
        "levelname",
        "lvl",
        "loglevel",
        "log.level",
        "timestamp",
        "time",
        "asctime",
        "@timestamp",
        "ts",
        "logger",
        "name",
        "loggerName",
        "loggerClassName",
        "service",
        "environment",
        "env",
        "request_id",
        "requestId",
        "requestID",
        "function_request_id",
        "aws_request_id",
        "correlation_id",
        "x_request_id",
        "req_id",
        "exception",
        "exc_info",
        "stack_trace",
        "stacktrace",
        "stack",
        "traceback",
        "error.stack_trace",
        "errorType",
        "errorMessage",
        "stackTrace",
        "trace",
        "extra",
        *_RELEASE_KEYS,
        *_SERVER_NAME_KEYS,
        "function_name",
        "function_arn",
        "function_version",
        "xray_trace_id",
        # Logger bookkeeping (JBoss/Quarkus JSON): identical on every line, no help in finding a bug.
        "sequence",
        "threadId",
        "processId",
        "processName",
        "ndc",
        "mdc",
    }
)
_PLAIN_SCALARS = frozenset({bool, int, float})
_POSTGRES_CONSUMED = _CONSUMED_FIELDS | frozenset(_POSTGRES_KEYS)
# encodeURIComponent's unreserved set: the console's own JavaScript escapes exactly the rest.
_URI_COMPONENT_SAFE = "-_.!~*'()"

# Message normalisation for fingerprints, one pass, first alternative wins at each position. The
# order matters: whole dates, uuids, emails and IPs before the generic hex/token/number rules that
# would otherwise eat their parts. ``id`` is a word of digits and lowercase letters mixed (request ids
# such as ``req-7f3c9a2b``), except a number with a unit (``5123ms``, left to ``num``); words of
# digits and capitals only are kept, because those are error codes (``KC-SERVICES0013``,
# ``ORA-00942``) that tell errors apart. An accession number is recognised by its label (the PHI
# boundary masks the keyed forms, ``AccessionNumber=``, before this sees them). A long token
# ends at ``=`` padding, so ``request_id=<uuid>`` keeps its key.
# Every alternative with an unbounded run starts only where that
# run starts (a lookbehind), so a long run is scanned once, not once per character: without it the
# e-mail rule made a 100 KB line of "900101-" take a minute (tests/unit/test_regex_linear.py). An
# accession value is bounded (DICOM's AccessionNumber is at most 16 characters) so that a line of
# "accession-accession-…" does not rescan the rest of the line from every label.
_NORMALIZE = re.compile(
    r"""
    (?P<datetime>\d{4}-\d{2}-\d{2}(?:[T\x20]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?)
    |(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
    |(?P<email>(?<![\w.+-])[\w.+-]++@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)
    |(?P<ip>(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])
        |(?<![\w:])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?![\w:])
        |(?<![\w:])(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){0,5})?(?![\w:]))
    |(?P<str>"[^"\n]*"|(?<!\w)'[^'\n]*'(?!\w))
    |(?P<hex>\b0x[0-9a-fA-F]+\b|(?<![\w-])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}(?![\w-]))
    |(?P<token>(?<![\w+/=-])(?=[\w+/-]*\d)(?=[\w+/-]*[A-Za-z])[\w+/-]{24,}=*)
    |(?P<accession>\b[Aa]ccession(?:[\x20_-]?(?:[Nn]umber|[Nn]o|\#))?\.?\x20*[:=\#]?\x20*[\w-]{0,63}\d[\w-]{0,63})
    |(?P<id>(?<![\w-])(?![0-9]+[a-z]+(?![\w-]))(?=[\w-]*\d)(?=[\w-]*[a-z])[\w-]+)
    |(?P<num>(?<![A-Za-z0-9])\d+(?:[.,:]\d+)*)
    """,
    re.VERBOSE,
)
# Every kind of identifier gets the same placeholder: the same error logs a uuid in one place and a
# prefixed hex id in another (an upstream trace header, a locally made id), and must stay one issue.
_PLACEHOLDERS = {
    "datetime": "<datetime>",
    "uuid": "<id>",
    "email": "<email>",
    "ip": "<ip>",
    "str": "<str>",
    "hex": "<id>",
    "token": "<id>",
    "accession": "accession <id>",
    "id": "<id>",
    "num": "<num>",
}


# ---------------------------------------------------------------------------------------------
# Identity, time, links, grouping
# ---------------------------------------------------------------------------------------------


def sentry_event_id(log_group: str, cloudwatch_event_id: str) -> str:
    """Deterministic Sentry event id (32 lowercase hex) of one CloudWatch log event."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{log_group}/{cloudwatch_event_id}").hex


@lru_cache(maxsize=4096)
def _utc_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def rfc3339(timestamp_ms: int) -> str:
    """RFC 3339 UTC with milliseconds for an epoch-milliseconds timestamp."""
    seconds, millis = divmod(timestamp_ms, 1000)
    return f"{_utc_second(seconds)}.{millis:03d}Z"


def _console_escape(value: str) -> str:
    # The console's hash route percent-encodes each value twice and writes '%' as '$':
    # '/' -> %2F -> %252F -> $252F, '[' -> $255B, '$' -> $2524.
    return quote(quote(value, safe=_URI_COMPONENT_SAFE), safe=_URI_COMPONENT_SAFE).replace("%", "$")


@lru_cache(maxsize=1024)
def _console_prefix(region: str, log_group: str, log_stream: str) -> str:
    if region.startswith("cn-"):
        host = f"https://{region}.console.amazonaws.cn"
    elif region.startswith("us-gov-"):
        host = f"https://{region}.console.amazonaws-us-gov.com"
    elif region:
        host = f"https://{region}.console.aws.amazon.com"
    else:
        host = "https://console.aws.amazon.com"
    query = f"?region={region}" if region else ""
    return (
        f"{host}/cloudwatch/home{query}#logsV2:log-groups/log-group/{_console_escape(log_group)}"
        f"/log-events/{_console_escape(log_stream)}"
    )


def console_url(region: str, log_group: str, log_stream: str, timestamp_ms: int, cloudwatch_event_id: str) -> str:
    """AWS console link that opens the log stream at the event and highlights it.

    The CloudWatch console keeps its route in the URL fragment:
    ``#logsV2:log-groups/log-group/<group>/log-events/<stream>$3Fstart$3D<ms>$26refEventId$3D<id>``.
    Group and stream are percent-encoded twice with '%' written as '$' (``/`` is ``$252F``); the
    route's own ``?``, ``=`` and ``&`` are encoded once the same way (``$3F``, ``$3D``, ``$26``).
    ``start`` is the event's epoch milliseconds and ``refEventId`` the CloudWatch event id.
    """
    # CloudWatch event ids are digits only: nothing to escape, so skip the two quote() passes.
    event_id = cloudwatch_event_id if cloudwatch_event_id.isdigit() else _console_escape(cloudwatch_event_id)
    return f"{_console_prefix(region, log_group, log_stream)}$3Fstart$3D{timestamp_ms}$26refEventId$3D{event_id}"


def _placeholder(match: re.Match[str]) -> str:
    return _PLACEHOLDERS[match.lastgroup or "num"]


@lru_cache(maxsize=8192)
def normalize_message(message: str) -> str:
    """Replace variable parts (ids, numbers, uuids, hex, emails, IPs, quoted values, long tokens) with placeholders."""
    normalized = _NORMALIZE.sub(_placeholder, message)
    return truncate(" ".join(normalized.split()), MAX_FINGERPRINT_MESSAGE_CHARS)


def fingerprint(record: LogRecord, exception_type: str | None, exception_value: str | None = None) -> list[str]:
    """Sentry grouping: [service, exception type (or "log"), normalized first line of the message].

    With ``exception_value`` (the raised exception's message) its normalized first line is added to
    the third element unless the log message already says it: a generic ``logger.exception(
    "Unhandled exception")`` must not fold every ValueError of a service into one issue.
    """
    text = record.message or record.raw
    message = normalize_message(text.split("\n", 1)[0])
    if exception_value:
        value = normalize_message(exception_value.split("\n", 1)[0])
        if value and value not in message:
            message = f"{message} | {value}" if message else value
    return [record.service, exception_type or "log", message]


# ---------------------------------------------------------------------------------------------
# Breadcrumb selection
# ---------------------------------------------------------------------------------------------


# (timestamp, event id): the order "earlier" means. attrgetter runs in C, for sorting whole batches.
_order_key: Callable[[LogRecord], tuple[int, str]] = attrgetter("timestamp_ms", "event_id")
_Group = tuple[list[tuple[int, str]], list[LogRecord]]


class BreadcrumbIndex:
    """Records of one batch grouped per request id and per log stream; each group sorted when first asked."""

    __slots__ = ("_by_request", "_by_stream", "_ready")

    def __init__(self, batch: Iterable[LogRecord]) -> None:
        """Group ``batch`` (any order); the batch is treated as immutable from here on."""
        by_request: dict[str, list[LogRecord]] = {}
        by_stream: dict[tuple[str, str], list[LogRecord]] = {}
        last_stream: StreamContext | None = None
        stream_group: list[LogRecord] = []
        for record in batch:
            request_id = record.request_id
            if request_id:
                group = by_request.get(request_id)
                if group is None:
                    by_request[request_id] = [record]
                else:
                    group.append(record)
            stream = record.stream
            if stream is not last_stream:  # one shared StreamContext per batch: usually a pointer compare
                stream_group = by_stream.setdefault((stream.log_group, stream.log_stream), [])
                last_stream = stream
            stream_group.append(record)
        self._by_request = by_request
        self._by_stream = by_stream
        # Only the groups an error record asks about are ever sorted (most batches have few errors).
        self._ready: dict[object, _Group] = {}

    def _sorted(self, cache_key: object, group: list[LogRecord]) -> _Group:
        ready = self._ready.get(cache_key)
        if ready is None:
            records = sorted(group, key=_order_key)  # Timsort: linear on the usual in-order batch
            ready = self._ready[cache_key] = (list(map(_order_key, records)), records)
        return ready

    def select(self, record: LogRecord, limit: int = DEFAULT_BREADCRUMBS) -> list[LogRecord]:
        """Up to ``limit`` records earlier than ``record``: same request id if it has one, else same stream."""
        if limit <= 0:
            return []
        cache_key: object
        if record.request_id:
            cache_key = record.request_id
            group = self._by_request.get(record.request_id)
        else:
            cache_key = (record.stream.log_group, record.stream.log_stream)
            group = self._by_stream.get(cache_key)
        if group is None:
            return []
        keys, records = self._sorted(cache_key, group)
        end = bisect_left(keys, _order_key(record))
        return records[max(0, end - limit) : end]


class _LastIndex:
    """The index of the batch seen last: the sink asks once per error record of the same batch."""

    __slots__ = ("entry",)

    def __init__(self) -> None:
        self.entry: tuple[Sequence[LogRecord], int, object, object, BreadcrumbIndex] | None = None

    def get(self, batch: Sequence[LogRecord]) -> BreadcrumbIndex:
        size = len(batch)
        first = batch[0] if size else None
        last = batch[-1] if size else None
        entry = self.entry
        if entry is not None and entry[0] is batch and entry[1] == size and entry[2] is first and entry[3] is last:
            return entry[4]
        index = BreadcrumbIndex(batch)
        self.entry = (batch, size, first, last, index)  # one tuple store: safe across threads
        return index


_LAST_INDEX = _LastIndex()


def select_breadcrumbs(
    record: LogRecord, batch: Sequence[LogRecord], limit: int = DEFAULT_BREADCRUMBS
) -> list[LogRecord]:
    """Up to ``limit`` records of ``batch`` earlier than ``record`` (by timestamp, then event id), most recent last.

    Earlier records with the same request id when the record has one, else of the same log stream.
    The index built for a batch is reused while the same (unchanged) sequence is passed again, so
    calling this once per error record of a batch costs O(n log n) in total, not O(n) per call.
    """
    if limit <= 0 or not batch:
        return []
    return _LAST_INDEX.get(batch).select(record, limit)


# ---------------------------------------------------------------------------------------------
# Event assembly
# ---------------------------------------------------------------------------------------------


def _clean(value: object, limit: int) -> str | None:
    """A short single-line string for tags and names; None when there is nothing to show."""
    if (
        type(value) is str
        and 0 < len(value) <= limit
        and not value[0].isspace()
        and not value[-1].isspace()
        and "\n" not in value
        and "\r" not in value
    ):
        return value  # the common case, already clean
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    if not text:
        return None
    if "\n" in text or "\r" in text:
        text = " ".join(text.split())
    return truncate(text, limit)


def _field_value(value: object, limit: int) -> object:
    if isinstance(value, str):
        return truncate(value, limit)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        text = str(value)
    return truncate(text, limit)


def release_of(record: LogRecord) -> str | None:
    """The record's release (``release``/``version``/``service.version``), as ``service@version``.

    Releases are unique per Sentry organisation, so a bare version gets the service as its package
    prefix (Sentry's recommended ``package@version``). Values Sentry refuses (newline, tab, slash,
    backslash, ``.``, ``..``, over 200 characters) are dropped.
    """
    fields = record.fields
    candidates: list[object] = [fields.get(key) for key in _RELEASE_KEYS]
    service = fields.get("service")
    if isinstance(service, Mapping):
        candidates.append(service.get("version"))
    for candidate in candidates:
        if candidate is None or isinstance(candidate, (dict, list, bool)):
            continue
        release = str(candidate).strip()
        if not release or release in {".", ".."} or any(char in release for char in _RELEASE_FORBIDDEN):
            continue
        if "@" not in release:
            # A nested service name ("team/api") would bring in a forbidden slash.
            release = f"{record.service.replace('/', '-').replace(chr(92), '-')}@{release}"
        if len(release) <= MAX_RELEASE_CHARS:
            return release
    return None


def server_name_of(record: LogRecord) -> str | None:
    """The host the record was written on (``hostname``/``host``/``server_name``/``hostName``), if logged."""
    fields = record.fields
    for key in _SERVER_NAME_KEYS:
        value = fields.get(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            value = value.get("name") or value.get("hostname")
        name = _clean(value, MAX_TAG_CHARS)
        if name is not None:
            return name
    return None


def _exceptions(record: LogRecord) -> tuple[str | None, list[dict[str, Any]]]:
    """(platform, exception values) of a record; (None, []) when it carries no trace."""
    trace = record.exception
    fields = record.fields
    if record.format is LogFormat.LAMBDA_ERROR_JSON:
        error_type = fields.get("errorType")
        if isinstance(error_type, str):
            # Rebuilt from the JSON: the flattened text loses the line breaks of Node/Java stacks.
            # Python and Java runtimes write "stackTrace"; Node writes "stack" or "trace".
            stack = fields.get("stackTrace") or fields.get("trace") or fields.get("stack")
            trace = lambda_error_trace(error_type, fields.get("errorMessage", ""), stack)
    if trace:
        parsed = parse_trace(trace, message=record.message)
        return parsed.platform, parsed.exceptions
    timeout = _TIMEOUT.search(record.message) if record.message.startswith("Task timed out") else None
    if timeout is not None:
        value: dict[str, Any] = {
            "type": TIMEOUT_EXCEPTION_TYPE,
            "value": record.message,
            "mechanism": {
                "type": MECHANISM_TYPE,
                "handled": False,
                "data": {"timeout_seconds": float(timeout.group(1))},
            },
        }
        return None, [value]
    return None, []


def _platform_hint(record: LogRecord) -> str:
    if record.format is LogFormat.POWERTOOLS:
        return "python"
    if record.format in {LogFormat.KEYCLOAK_JSON, LogFormat.JBOSS_TEXT}:
        return "java"
    return "other"


def _qualified_type(value: Mapping[str, Any]) -> str:
    module = value.get("module")
    return f"{module}.{value['type']}" if module else str(value["type"])


@lru_cache(maxsize=256)
def _stream_tags(stream: StreamContext) -> tuple[tuple[str, str], ...]:
    # Shared by every record of a batch: cleaned once per stream, not once per event.
    candidates = (
        ("log_group", stream.log_group),
        ("log_stream", stream.log_stream),
        ("region", stream.region),
        ("account", stream.owner),
    )
    return tuple((key, text) for key, value in candidates if (text := _clean(value, MAX_TAG_CHARS)) is not None)


def _tags(record: LogRecord) -> dict[str, str]:
    tags: dict[str, str] = {}
    for key, value in (
        ("service", record.service),
        ("environment", record.environment),
        ("request_id", record.request_id),
    ):
        text = _clean(value, MAX_TAG_CHARS)
        if text is not None:
            tags[key] = text
    tags.update(_stream_tags(record.stream))
    tags["logpipe.format"] = record.format.value
    return tags


def _contexts(record: LogRecord) -> dict[str, Any]:
    stream = record.stream
    contexts: dict[str, Any] = {
        "cloudwatch": {
            "log_group": stream.log_group,
            "log_stream": stream.log_stream,
            "event_id": record.event_id,
            "timestamp": record.timestamp_ms,
            "console_url": console_url(
                stream.region, stream.log_group, stream.log_stream, record.timestamp_ms, record.event_id
            ),
            "account": stream.owner,
            "region": stream.region,
            "line_count": record.line_count,
        }
    }
    fields = record.fields
    if stream.platform == "lambda":
        contexts["aws_lambda"] = _lambda_context(record)
    consumed = _CONSUMED_FIELDS
    if record.format is LogFormat.POSTGRES:
        consumed = _POSTGRES_CONSUMED
        postgres = {
            key: _field_value(fields[key], MAX_CONTEXT_FIELD_CHARS) for key in _POSTGRES_KEYS if fields.get(key)
        }
        if postgres:
            contexts["postgres"] = postgres
    extra: dict[str, Any] = {}
    for key, value in fields.items():
        if key in consumed or not isinstance(key, str) or key == "type":
            continue  # "type" is reserved in a Sentry context
        extra[key] = _field_value(value, MAX_CONTEXT_FIELD_CHARS)
        if len(extra) >= MAX_CONTEXT_FIELDS:
            break
    if extra:
        contexts["log_fields"] = extra
    return contexts


def _lambda_context(record: LogRecord) -> dict[str, Any]:
    fields = record.fields
    context: dict[str, Any] = {"function_name": _clean(fields.get("function_name"), MAX_TAG_CHARS) or record.service}
    version = _clean(fields.get("function_version"), MAX_TAG_CHARS)
    if version is None:
        match = _LAMBDA_VERSION.search(record.stream.log_stream)
        version = match.group("version") if match else None
    if version is not None:
        context["function_version"] = version
    if record.request_id:
        context["aws_request_id"] = record.request_id
    for source, target in (("function_arn", "invoked_function_arn"), ("xray_trace_id", "xray_trace_id")):
        value = _clean(fields.get(source), MAX_CONTEXT_FIELD_CHARS)
        if value is not None:
            context[target] = value
    return context


def breadcrumb(record: LogRecord) -> dict[str, Any]:
    """One Sentry breadcrumb for an earlier record (already scrubbed by the caller)."""
    level = record.level
    message = record.message or record.raw.split("\n", 1)[0]
    if len(message) > MAX_BREADCRUMB_MESSAGE_CHARS:
        message = truncate(message, MAX_BREADCRUMB_MESSAGE_CHARS)
    crumb: dict[str, Any] = {
        "timestamp": rfc3339(record.timestamp_ms),
        "type": "error" if level in ERROR_LEVELS else "default",
        "level": _SENTRY_LEVELS[level],
        "category": record.logger or record.service,
        "message": message,
    }
    data: dict[str, Any] = {}
    if record.request_id:
        data["request_id"] = record.request_id
    consumed = _CONSUMED_FIELDS
    # Up to 20 breadcrumbs per event, each walking its record's fields: type() checks, not isinstance.
    for key, value in record.fields.items():
        if key in consumed:
            continue
        kind = type(value)
        if kind is str:
            data[key] = value if len(value) <= MAX_BREADCRUMB_DATA_CHARS else truncate(value, MAX_BREADCRUMB_DATA_CHARS)
        elif kind in _PLAIN_SCALARS or value is None:
            data[key] = value
        else:
            continue
        if len(data) >= MAX_BREADCRUMB_DATA_KEYS:
            break
    if data:
        crumb["data"] = data
    return crumb


def build_event(
    record: LogRecord,
    *,
    breadcrumbs: Sequence[LogRecord] = (),
    suppressed_similar: int = 0,
    sdk_name: str = "logpipe",
    sdk_version: str = __version__,
) -> dict[str, Any]:
    """The Sentry event payload for one error record (deterministic: no clock, no randomness)."""
    platform, exceptions = _exceptions(record)
    exception_type = _qualified_type(exceptions[-1]) if exceptions else None
    message = record.message or record.raw.split("\n", 1)[0]
    event: dict[str, Any] = {
        "event_id": sentry_event_id(record.stream.log_group, record.event_id),
        "timestamp": rfc3339(record.timestamp_ms),
        "platform": platform if platform and platform != "other" else _platform_hint(record),
        "level": _SENTRY_LEVELS[record.level],
    }
    if record.logger:
        event["logger"] = record.logger
    event["message"] = {"formatted": truncate(message, MAX_MESSAGE_CHARS)}
    if exceptions:
        event["exception"] = {"values": exceptions}
    event["fingerprint"] = fingerprint(record, exception_type, exceptions[-1]["value"] if exceptions else None)
    event["environment"] = record.environment
    release = release_of(record)
    if release is not None:
        event["release"] = release
    server_name = server_name_of(record)
    if server_name is not None:
        event["server_name"] = server_name
    event["tags"] = _tags(record)
    event["contexts"] = _contexts(record)
    event["breadcrumbs"] = {"values": [breadcrumb(crumb) for crumb in breadcrumbs]}
    if suppressed_similar > 0:
        event["extra"] = {"suppressed_similar_events": suppressed_similar}
    event["sdk"] = {"name": sdk_name, "version": sdk_version}
    return event
