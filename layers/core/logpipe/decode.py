"""Decode CloudWatch Logs subscription payloads (direct Lambda or Kinesis) into batches.

A payload is ``base64(gzip(json))``. The JSON is a DATA_MESSAGE (log events of one stream) or a
CONTROL_MESSAGE (a health check, skipped). Anything else is a ``MalformedPayloadError`` that names
what was wrong, so the caller can count and park it instead of crashing the invocation.

Payloads are untrusted input, and decoding is bounded: inflation stops at ``MAX_INFLATED_BYTES``
(a gzip bomb becomes a ``too_large`` error carrying the first ``PARKED_PREFIX_BYTES``), every gzip
member is decoded (a Kinesis producer may concatenate them), and bytes after the last member are
reported as trailing garbage instead of vanishing.
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

    _decompressobj: Callable[[int], Any] = isal_zlib.decompressobj
    # isal's stubs declare its error class as an instance (``error: Exception``); it is a class.
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, cast("type[Exception]", isal_zlib.error), EOFError)
except ImportError:  # pragma: no cover - exercised only where isal has no wheel
    _decompressobj = zlib.decompressobj
    _INFLATE_ERRORS = (zlib.error, EOFError)

_GZIP_WBITS = 31
_GZIP_MAGIC = b"\x1f\x8b"
DATA_MESSAGE = "DATA_MESSAGE"
CONTROL_MESSAGE = "CONTROL_MESSAGE"

# The cap on what one payload may inflate to, derived from the service limits. A subscription batch
# is log events CloudWatch Logs accepted through PutLogEvents: at most 1,048,576 bytes per call,
# counted as the UTF-8 bytes of the messages plus 26 per event, and at most 10,000 events. In the
# delivered JSON each event adds its envelope (a 56-digit id, a 13-digit timestamp, the key names:
# about 100 bytes) and JSON escaping at most sextuples a message (a control character becomes
# ``\u00XX``). One PutLogEvents call therefore decodes to at most 6 x 1 MiB + 10,000 x 100 B ~ 7 MiB
# (ordinary text: ~2 MiB), and it reaches us in a payload of at most 1 MB (Lambda's asynchronous
# payload; 1 MiB for a Kinesis record). Twice the worst single call, 16 MiB, is therefore far above
# any batch CloudWatch produces, and keeps a decoded batch's Python objects (4-6x the JSON) well
# inside the function's 512 MB. A deflate stream can expand ~1000x, so without the cap a 1 MB
# payload could demand a gigabyte.
MAX_INFLATED_BYTES = 16 * 1024 * 1024
# What is kept of a payload past the cap (or of trailing garbage) when it is parked: enough for a
# person to see what sent it, and within what the PHI boundary scrubs in one piece.
PARKED_PREFIX_BYTES = 1024 * 1024
# The latest time a log event may carry: 9999-12-31T23:59:59.999Z. CloudWatch accepts events at most
# 2 h ahead, so anything later (or before 1970) is not a CloudWatch event; it is parked as malformed
# so no sink ever has to format a year past 9999.
MAX_EVENT_TIMESTAMP_MS = 253_402_300_799_999


class MalformedKind(StrEnum):
    """Why a payload could not be decoded."""

    BAD_BASE64 = "bad_base64"
    NOT_GZIP = "not_gzip"
    TRUNCATED_GZIP = "truncated_gzip"
    INVALID_UTF8 = "invalid_utf8"
    NOT_JSON = "not_json"
    WRONG_SHAPE = "wrong_shape"
    TOO_LARGE = "too_large"
    TRAILING_GARBAGE = "trailing_garbage"


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
    # Set when the Lambda event itself was not a subscription or Kinesis event (data is then its text).
    problem: str | None = None


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


@dataclass(frozen=True, slots=True)
class DecodedPayload:
    """What one payload held: its batches (one per JSON document) and any bytes after its gzip members."""

    batches: tuple[LogBatch, ...]
    payload_id: str
    # Bytes after the last gzip member that are not gzip: reported as malformed, never dropped silently.
    trailing_garbage: bytes = b""


def json_text(value: object) -> str:
    """JSON text of any value an event can hold: integers wider than 64 bits and bytes included; never raises."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # orjson refuses integers wider than 64 bits, even with a default
        import json  # the rare slow path

        return json.dumps(value, default=repr, ensure_ascii=False)


def payload_id_of(data: object) -> str:
    """Stable id of an encoded payload, so a parked copy of a redelivered batch is recognisable."""
    if isinstance(data, bytes):
        raw = data
    else:
        text = data if isinstance(data, str) else json_text(data)
        raw = text.encode("ascii", "backslashreplace")
    return hashlib.sha256(raw).hexdigest()[:32]


def iter_payloads(event: object) -> Iterator[Payload]:
    """Yield the encoded payloads of a direct subscription event or a Kinesis event (any other event: one bad one)."""
    if isinstance(event, Mapping):
        awslogs = event.get("awslogs")
        if isinstance(awslogs, Mapping):
            yield _payload(awslogs.get("data", ""), "awslogs", "awslogs.data")
            return
        records = event.get("Records")
        if isinstance(records, list):
            for index, record in enumerate(records):
                if not isinstance(record, Mapping):
                    yield _payload(record, f"record-{index}", "a Records item", wrong=True)
                    continue
                kinesis = record.get("kinesis")
                source = json_text(record.get("eventID", f"record-{index}")).strip('"')
                data = kinesis.get("data", "") if isinstance(kinesis, Mapping) else ""
                yield _payload(data, source, "kinesis.data")
            return
    kind = "an object" if isinstance(event, Mapping) else type(event).__name__
    yield Payload(
        data=json_text(event) if not isinstance(event, bytes) else event.decode("utf-8", "backslashreplace"),
        source="unknown-event",
        problem=f"the Lambda event is {kind}, not a CloudWatch Logs subscription or Kinesis event",
    )


def _payload(data: object, source: str, where: str, *, wrong: bool = False) -> Payload:
    if isinstance(data, str | bytes) and not wrong:
        return Payload(data=data, source=source)
    return Payload(data=json_text(data), source=source, problem=f"{where} is {type(data).__name__}, not base64 text")


def inflate_gzip(compressed: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """Decompress every gzip member (ISA-L when available), at most ``limit`` bytes; see ``inflate_members``."""
    members, trailing = inflate_members(compressed, limit)
    if trailing:
        raise GzipError(MalformedKind.TRAILING_GARBAGE, f"{len(trailing)} bytes after the gzip data", b"".join(members))
    return b"".join(members)


class GzipError(ValueError):
    """The gzip data is damaged, too large or followed by garbage; ``prefix`` is what inflated before that."""

    def __init__(self, kind: MalformedKind, detail: str, prefix: bytes) -> None:
        """Say what was wrong and keep the readable prefix."""
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.prefix = prefix


def inflate_members(compressed: bytes, limit: int = MAX_INFLATED_BYTES) -> tuple[list[bytes], bytes]:
    """Inflate each gzip member in turn; return the members' contents and any non-gzip bytes after them.

    Raises ``GzipError`` (``too_large`` past ``limit`` bytes in all, ``truncated_gzip`` for a damaged or
    cut member) carrying what inflated before the problem, at most ``limit`` bytes.
    """
    members: list[bytes] = []
    total = 0
    rest = compressed
    while rest:
        if not rest.startswith(_GZIP_MAGIC):
            if not members:
                raise GzipError(MalformedKind.NOT_GZIP, "payload is not gzip", b"")
            return members, rest
        inflater = _decompressobj(_GZIP_WBITS)
        try:
            # One byte more than the room left tells "exactly at the cap" from "past it".
            out = inflater.decompress(rest, limit - total + 1)
        except _INFLATE_ERRORS as error:
            salvage = _salvage(members, rest, min(limit - total, PARKED_PREFIX_BYTES))
            raise GzipError(MalformedKind.TRUNCATED_GZIP, str(error), salvage) from error
        total += len(out)
        if total > limit:
            prefix = _prefix([*members, out], min(limit, PARKED_PREFIX_BYTES))
            raise GzipError(MalformedKind.TOO_LARGE, f"inflates to more than {limit} bytes", prefix)
        if not inflater.eof:
            prefix = _prefix([*members, out], PARKED_PREFIX_BYTES)
            raise GzipError(MalformedKind.TRUNCATED_GZIP, "incomplete or truncated gzip stream", prefix)
        members.append(out)
        rest = inflater.unused_data
    return members, b""


def _prefix(pieces: list[bytes], size: int) -> bytes:
    """The first ``size`` bytes of the pieces joined, without joining more than that."""
    out: list[bytes] = []
    for piece in pieces:
        out.append(piece[:size] if len(piece) > size else piece)
        size -= len(out[-1])
        if size <= 0:
            break
    return b"".join(out)


def _salvage(members: list[bytes], damaged: bytes, room: int) -> bytes:
    """The members before a damaged one plus what of it inflates before the damage (bounded by ``room``)."""
    inflater = zlib.decompressobj(_GZIP_WBITS)
    pieces = list(members)
    step = 16 * 1024
    for start in range(0, len(damaged), step):
        try:
            piece = inflater.decompress(damaged[start : start + step], max(room, 0) + 1)
        except zlib.error:
            break
        pieces.append(piece[: max(room, 0)])
        room -= len(piece)
        if room <= 0 or inflater.eof:
            break
    return _prefix(pieces, PARKED_PREFIX_BYTES)


def _text_of(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def decode_payload(payload: Payload) -> LogBatch:
    """Decode a payload that holds one document; raise ``MalformedPayloadError`` on anything unexpected."""
    decoded = decode_batches(payload)
    if decoded.trailing_garbage:
        msg = f"{len(decoded.trailing_garbage)} bytes after the gzip data"
        raise MalformedPayloadError(
            MalformedKind.TRAILING_GARBAGE,
            msg,
            _text_of(decoded.trailing_garbage[:PARKED_PREFIX_BYTES]),
            decoded.payload_id,
        )
    return decoded.batches[0]


def decode_batches(payload: Payload, limit: int = MAX_INFLATED_BYTES) -> DecodedPayload:
    """Decode one payload into its batches; raise ``MalformedPayloadError`` when nothing usable is in it."""
    data = payload.data
    pid = payload_id_of(data)
    if payload.problem is not None:
        text = data if isinstance(data, str) else _text_of(data)
        raise MalformedPayloadError(MalformedKind.WRONG_SHAPE, payload.problem, text[:PARKED_PREFIX_BYTES], pid)
    if not data:
        raise MalformedPayloadError(MalformedKind.WRONG_SHAPE, "no data in the event", "", pid)
    try:
        compressed = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError) as error:
        text = data if isinstance(data, str) else _text_of(data)
        raise MalformedPayloadError(MalformedKind.BAD_BASE64, str(error), text, pid) from error
    try:
        members, trailing = inflate_members(compressed, limit)
    except GzipError as error:
        salvage = error.prefix if error.kind is not MalformedKind.NOT_GZIP else compressed
        raise MalformedPayloadError(error.kind, error.detail, _text_of(salvage[:PARKED_PREFIX_BYTES]), pid) from error
    raw = members[0] if len(members) == 1 else b"".join(members)
    try:
        documents: list[object] = [orjson.loads(raw)]
        sources = [raw]
    except orjson.JSONDecodeError as error:
        # A gzip file's members are one stream (RFC 1952); a producer that gzipped each document on its
        # own and concatenated them sent one document per member instead.
        documents, sources = _per_member_documents(members), members
        if not documents:
            _raise_not_json(raw, error, pid)
    batches = tuple(
        _batch_from_document(document, source, pid, payload.source)
        for document, source in zip(documents, sources, strict=True)
    )
    return DecodedPayload(batches, pid, trailing)


def _per_member_documents(members: list[bytes]) -> list[object]:
    if len(members) < 2:
        return []
    try:
        return [orjson.loads(member) for member in members]
    except orjson.JSONDecodeError:
        return []


def _raise_not_json(raw: bytes, error: orjson.JSONDecodeError, pid: str) -> None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as utf_error:
        salvage = _text_of(raw[:PARKED_PREFIX_BYTES])
        raise MalformedPayloadError(MalformedKind.INVALID_UTF8, str(utf_error), salvage, pid) from error
    raise MalformedPayloadError(MalformedKind.NOT_JSON, str(error), text[:PARKED_PREFIX_BYTES], pid) from error


def _batch_from_document(document: object, raw: bytes, pid: str, source: str) -> LogBatch:
    if not isinstance(document, dict):
        raise MalformedPayloadError(
            MalformedKind.WRONG_SHAPE, "top level is not an object", _text_of(raw[:PARKED_PREFIX_BYTES]), pid
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
        raise MalformedPayloadError(MalformedKind.WRONG_SHAPE, problem, _text_of(raw[:PARKED_PREFIX_BYTES]), pid)
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
    if not 0 <= timestamp <= MAX_EVENT_TIMESTAMP_MS:
        return "log event timestamp is out of range (before 1970 or after 9999)"
    if not isinstance(event.get("message"), str):
        return "log event has no string message"
    return None
