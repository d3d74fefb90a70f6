"""Decode CloudWatch Logs subscription payloads (direct Lambda or Kinesis) into batches.

A payload is ``base64(gzip(json))``. The JSON is a DATA_MESSAGE (log events of one stream) or a
CONTROL_MESSAGE (a health check, skipped). Anything else is a ``MalformedPayloadError`` that names
what was wrong, so the caller can count and park it instead of crashing the invocation.
"""

from __future__ import annotations

import binascii
import hashlib
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import orjson

try:  # ISA-L inflates about 10% faster; plain zlib is the portable fallback.
    from isal import isal_zlib

    _decompress: Callable[[bytes, int], bytes] = isal_zlib.decompress
    # isal's stubs declare its error class as an instance (``error: Exception``); it is a class.
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, cast("type[Exception]", isal_zlib.error), EOFError)
except ImportError:  # pragma: no cover - exercised only where isal has no wheel
    _decompress = zlib.decompress
    _INFLATE_ERRORS = (zlib.error, EOFError)

_GZIP_WBITS = 31
_GZIP_MAGIC = b"\x1f\x8b"
DATA_MESSAGE = "DATA_MESSAGE"
CONTROL_MESSAGE = "CONTROL_MESSAGE"


class MalformedKind(StrEnum):
    """Why a payload could not be decoded."""

    BAD_BASE64 = "bad_base64"
    NOT_GZIP = "not_gzip"
    TRUNCATED_GZIP = "truncated_gzip"
    INVALID_UTF8 = "invalid_utf8"
    NOT_JSON = "not_json"
    WRONG_SHAPE = "wrong_shape"


class MalformedPayloadError(ValueError):
    """A subscription payload that cannot be decoded; carries what can be salvaged for parking."""

    def __init__(self, kind: MalformedKind, detail: str, salvage: str, payload_id: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail
        # Best-effort text of the payload (decompressed prefix when possible); still unscrubbed.
        self.salvage = salvage
        self.payload_id = payload_id


@dataclass(frozen=True, slots=True)
class Payload:
    """One encoded subscription payload and where it came from."""

    data: str | bytes
    source: str  # "awslogs" or the Kinesis eventID


@dataclass(frozen=True, slots=True)
class LogBatch:
    """A decoded DATA_MESSAGE or CONTROL_MESSAGE."""

    message_type: str
    owner: str
    log_group: str
    log_stream: str
    subscription_filters: tuple[str, ...]
    # Raw event dicts straight from orjson: no per-event copies on the hot path.
    events: list[dict[str, Any]]
    policy_level: str | None
    payload_id: str
    source: str

    @property
    def is_control(self) -> bool:
        """True for CloudWatch's health-check messages."""
        return self.message_type == CONTROL_MESSAGE


def payload_id_of(data: str | bytes) -> str:
    """Stable id of an encoded payload, so a parked copy of a redelivered batch is recognisable."""
    raw = data.encode("ascii", "backslashreplace") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:32]


def iter_payloads(event: Mapping[str, Any]) -> Iterator[Payload]:
    """Yield the encoded payloads of a direct subscription event or a Kinesis event."""
    awslogs = event.get("awslogs")
    if isinstance(awslogs, Mapping):
        yield Payload(data=awslogs.get("data", ""), source="awslogs")
        return
    records = event.get("Records")
    if isinstance(records, list):
        for index, record in enumerate(records):
            kinesis = record.get("kinesis") if isinstance(record, Mapping) else None
            source = str(record.get("eventID", f"record-{index}")) if isinstance(record, Mapping) else f"record-{index}"
            data = kinesis.get("data", "") if isinstance(kinesis, Mapping) else ""
            yield Payload(data=data if isinstance(data, str | bytes) else "", source=source)
        return
    yield Payload(data=orjson.dumps(event).decode(), source="unknown-event")


def inflate_gzip(compressed: bytes) -> bytes:
    """Decompress a whole gzip member (ISA-L when available)."""
    return _decompress(compressed, _GZIP_WBITS)


def _salvage_gzip(compressed: bytes) -> str:
    """Decompress as much of a damaged gzip stream as possible."""
    inflater = zlib.decompressobj(_GZIP_WBITS)
    try:
        prefix = inflater.decompress(compressed)
    except zlib.error:
        return ""
    return prefix.decode("utf-8", "backslashreplace")


def decode_payload(payload: Payload) -> LogBatch:
    """Decode one payload; raise ``MalformedPayloadError`` on anything unexpected."""
    data = payload.data
    pid = payload_id_of(data)
    if not isinstance(data, str | bytes) or not data:
        raise MalformedPayloadError(MalformedKind.WRONG_SHAPE, "no data in the event", "", pid)
    try:
        compressed = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError) as error:
        text = data if isinstance(data, str) else data.decode("utf-8", "backslashreplace")
        raise MalformedPayloadError(MalformedKind.BAD_BASE64, str(error), text, pid) from error
    if not compressed.startswith(_GZIP_MAGIC):
        text = compressed.decode("utf-8", "backslashreplace")
        raise MalformedPayloadError(MalformedKind.NOT_GZIP, "payload is not gzip", text, pid)
    try:
        raw = inflate_gzip(compressed)
    except _INFLATE_ERRORS as error:
        raise MalformedPayloadError(MalformedKind.TRUNCATED_GZIP, str(error), _salvage_gzip(compressed), pid) from error
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as utf_error:
            salvage = raw.decode("utf-8", "backslashreplace")
            raise MalformedPayloadError(MalformedKind.INVALID_UTF8, str(utf_error), salvage, pid) from error
        raise MalformedPayloadError(MalformedKind.NOT_JSON, str(error), text, pid) from error
    return _batch_from_document(document, raw, pid, payload.source)


def _batch_from_document(document: object, raw: bytes, pid: str, source: str) -> LogBatch:
    if not isinstance(document, dict):
        raise MalformedPayloadError(
            MalformedKind.WRONG_SHAPE, "top level is not an object", raw.decode("utf-8", "replace"), pid
        )
    message_type = document.get("messageType")
    events = document.get("logEvents")
    problem = None
    if message_type not in {DATA_MESSAGE, CONTROL_MESSAGE}:
        problem = f"messageType is {message_type!r}"
    elif not isinstance(events, list):
        problem = "logEvents is missing or not a list"
    elif message_type == DATA_MESSAGE and not isinstance(document.get("logGroup"), str):
        problem = "logGroup is missing"
    if problem is not None:
        raise MalformedPayloadError(MalformedKind.WRONG_SHAPE, problem, raw.decode("utf-8", "replace"), pid)
    filters = document.get("subscriptionFilters")
    policy_level = document.get("policyLevel")
    return LogBatch(
        message_type=str(message_type),
        owner=str(document.get("owner", "")),
        log_group=str(document.get("logGroup", "")),
        log_stream=str(document.get("logStream", "")),
        subscription_filters=tuple(str(name) for name in filters) if isinstance(filters, list) else (),
        events=events,  # type: ignore[arg-type]  # checked to be a list above; items checked per event
        policy_level=policy_level if isinstance(policy_level, str) else None,
        payload_id=pid,
        source=source,
    )


def event_problem(event: object) -> str | None:
    """Why a single log event is unusable, or None when it has id, timestamp and message."""
    if not isinstance(event, dict):
        return "log event is not an object"
    if not isinstance(event.get("id"), str):
        return "log event has no string id"
    timestamp = event.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        return "log event has no integer timestamp"
    if not isinstance(event.get("message"), str):
        return "log event has no string message"
    return None
