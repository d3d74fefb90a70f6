"""Sample events that work any day: move a sample's log events to the present.

The committed samples (``events/``) carry the fixed times they were generated with, so tests and
golden files stay stable. CloudWatch refuses EMF points older than 14 days (and Sentry replaces
timestamps older than 30), so a sample run as is prints no PACS metrics once it is two weeks old.
Re-stamping shifts every log event's ``timestamp`` by the same whole number of minutes, so the newest
one lands in the current minute: the spacing, the per-minute EMF grouping and the event ids stay
as generated. The message text keeps its original time stamps (the pipeline uses CloudWatch's).
Malformed payloads cannot be decoded and are left exactly as they are.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import time
import zlib
from collections.abc import Mapping
from typing import Any

import orjson

_MINUTE_MS = 60_000


def _decoded(data: object) -> dict[str, Any] | None:
    if not isinstance(data, str):
        return None
    try:
        document = orjson.loads(gzip.decompress(base64.b64decode(data, validate=True)))
    except (binascii.Error, OSError, EOFError, zlib.error, orjson.JSONDecodeError, ValueError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("logEvents"), list):
        return None
    return document


def _timestamps(document: Mapping[str, Any]) -> list[int]:
    return [
        event["timestamp"]
        for event in document["logEvents"]
        if isinstance(event, dict) and type(event.get("timestamp")) is int
    ]


def _payloads(event: Mapping[str, Any]) -> list[str]:
    """Every base64 gzip payload of a CloudWatch Logs (``awslogs``) or Kinesis event."""
    awslogs = event.get("awslogs")
    if isinstance(awslogs, dict):
        data = awslogs.get("data")
        return [data] if isinstance(data, str) else []
    records = event.get("Records")
    if isinstance(records, list):
        return [
            record["kinesis"]["data"]
            for record in records
            if isinstance(record, dict)
            and isinstance(record.get("kinesis"), dict)
            and isinstance(record["kinesis"].get("data"), str)
        ]
    return []


def newest_timestamp_ms(event: Mapping[str, Any]) -> int | None:
    """The newest log event time in a sample (None when nothing in it decodes)."""
    stamps = [stamp for data in _payloads(event) if (doc := _decoded(data)) for stamp in _timestamps(doc)]
    return max(stamps) if stamps else None


def restamp_offset_ms(event: Mapping[str, Any], now_ms: int) -> int:
    """The whole-minute shift that brings the sample's newest event into the minute of ``now_ms`` (0 if none)."""
    newest = newest_timestamp_ms(event)
    if newest is None:
        return 0
    return (now_ms - newest) // _MINUTE_MS * _MINUTE_MS


def _shift(data: str, offset_ms: int) -> str:
    document = _decoded(data)
    if document is None:
        return data
    for log_event in document["logEvents"]:
        if isinstance(log_event, dict) and type(log_event.get("timestamp")) is int:
            log_event["timestamp"] += offset_ms
    # mtime=0: the same sample re-stamped to the same minute gives the same bytes.
    return base64.b64encode(gzip.compress(orjson.dumps(document), mtime=0)).decode()


def restamp_event(event: Mapping[str, Any], now_ms: int | None = None) -> tuple[dict[str, Any], int]:
    """The sample with its log events moved to ``now_ms`` (default: now), and the shift applied in ms."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    offset = restamp_offset_ms(event, now)
    if offset == 0:
        return dict(event), 0
    awslogs = event.get("awslogs")
    if isinstance(awslogs, dict) and isinstance(awslogs.get("data"), str):
        return {**event, "awslogs": {**awslogs, "data": _shift(awslogs["data"], offset)}}, offset
    records = []
    for record in event.get("Records", []):
        kinesis = record.get("kinesis") if isinstance(record, dict) else None
        if isinstance(kinesis, dict) and isinstance(kinesis.get("data"), str):
            record = {**record, "kinesis": {**kinesis, "data": _shift(kinesis["data"], offset)}}  # noqa: PLW2901 - shifted copy
        records.append(record)
    return {**event, "Records": records}, offset


def describe_offset(offset_ms: int) -> str:
    """``+15d 21h 12m`` for a shift in milliseconds."""
    minutes = abs(offset_ms) // _MINUTE_MS
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d"] * bool(days) + [f"{hours}h"] * bool(hours) + [f"{minutes}m"]
    return ("+" if offset_ms >= 0 else "-") + " ".join(parts)
