"""Backfill replay: read CloudWatch Logs exports back from S3 and push them through the ingest pipeline.

Exports land under ``<root>/<log group path>/<yyyy>/<mm>/<dd>/<task id>/<stream>/<NNNNNN>.gz`` (see
``logpipe.export``); each object is gzip text with one event per line, ``<ISO-8601 timestamp> <message>``.
A line that does not start with a timestamp continues the previous event's message (a multi-line
message). The CloudWatch event id is not exported, so each event gets a deterministic 56-digit id
derived from (log group, stream folder, timestamp, line number): replaying the same objects twice
yields the same ids, and the Sentry/Langfuse ids derived from them stay stable.

Stream names may hold ``/`` (ECS ``ecs/<container>/<task id>``, Lambda ``yyyy/mm/dd/[$LATEST]<id>``).
AWS documents the key as ``<prefix>/<task id>/<log stream>/…`` but not what becomes of a ``/`` in it;
moto writes it as ``-``, and so do the keys of exports seen in the wild. So the key parser takes a
stream folder of one or more segments, and ``CloudWatchStreamNames`` maps a ``-`` folder back to the
real stream name (one DescribeLogStreams listing per group and name prefix) while the stream exists.

Events are grouped per stream into DATA_MESSAGE documents of at most ``MAX_BATCH_EVENTS`` events and
handed to the pipeline as ordinary subscription events, so routes, scrubbing and ids match the live path.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from logpipe.pipeline import counters_under

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client

    from logpipe.pipeline import IngestSummary

MAX_BATCH_EVENTS = 1_000
MAX_RANGE_DAYS = 3_660
DEFAULT_ROOT = "exports"
REPLAY_FILTER = "logpipe-replay"
ID_DIGITS = 56
_TIME_DIGITS = 15
_LINE_DIGITS = 9
_HASH_DIGITS = ID_DIGITS - _TIME_DIGITS - _LINE_DIGITS
_TIME_MODULUS = 10**_TIME_DIGITS
_LINE_MODULUS = 10**_LINE_DIGITS
_HASH_MODULUS = 10**_HASH_DIGITS

_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z(?: (.*))?$", re.DOTALL)
_KEY = re.compile(
    r"^(?P<group>.+?)/(?P<day>\d{4}/\d{2}/\d{2})/(?P<task>[^/]+)/(?P<stream>.+)/(?P<part>[^/]+\.gz)$",
)


class ReplayTargetError(ValueError):
    """The replay URL is not ``s3://bucket/<prefix>`` or its day range is invalid."""


@dataclass(frozen=True, slots=True)
class ReplayTarget:
    """What to replay: list ``prefixes`` in ``bucket``."""

    bucket: str
    prefixes: tuple[str, ...]
    root: str = DEFAULT_ROOT
    days: tuple[date, ...] = ()


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        msg = f"not a yyyy-mm-dd day: {text!r}"
        raise ReplayTargetError(msg) from error


def parse_target(url: str, root: str = DEFAULT_ROOT) -> ReplayTarget:
    """``s3://bucket/<root>/<group path>/<from>..<to>`` (inclusive days), or ``s3://bucket/<any prefix>``."""
    if not url.startswith("s3://"):
        msg = f"expected s3://bucket/prefix, got {url!r}"
        raise ReplayTargetError(msg)
    bucket, _, path = url.removeprefix("s3://").partition("/")
    if not bucket:
        msg = f"no bucket in {url!r}"
        raise ReplayTargetError(msg)
    root = root.strip("/")
    head, _, last = path.rstrip("/").rpartition("/")
    if ".." not in last:
        return ReplayTarget(bucket, (path,), root)
    start_text, _, end_text = last.partition("..")
    start, end = _parse_day(start_text), _parse_day(end_text)
    if end < start:
        msg = f"range ends before it starts: {last}"
        raise ReplayTargetError(msg)
    count = (end - start).days + 1
    if count > MAX_RANGE_DAYS:
        msg = f"range spans {count} days; at most {MAX_RANGE_DAYS}"
        raise ReplayTargetError(msg)
    if not head:
        msg = f"no log group path before the range in {url!r}"
        raise ReplayTargetError(msg)
    days = tuple(start + timedelta(days=offset) for offset in range(count))
    prefixes = tuple(f"{head.strip('/')}/{day.strftime('%Y/%m/%d')}/" for day in days)
    return ReplayTarget(bucket, prefixes, root, days)


@dataclass(frozen=True, slots=True)
class ExportKey:
    """One export object's key, split into its parts."""

    key: str
    group_path: str  # the path after the root, e.g. ``aws/ecs/pacs-backend/application``
    day: str  # ``yyyy/mm/dd``
    task_id: str
    stream: str
    part: str

    @property
    def log_group(self) -> str:
        """The log group the export was taken from (export paths drop the leading slash)."""
        return "/" + self.group_path


def parse_export_key(key: str, root: str = DEFAULT_ROOT) -> ExportKey | None:
    """Split an export object key, or None for anything else (e.g. ``aws-logs-write-test``).

    The stream is everything between the task id and the part file, so a stream name exported with
    its slashes kept (``…/<task>/ecs/app/abc/000000.gz``) and one written with ``-`` for ``/``
    (``…/<task>/ecs-app-abc/000000.gz``, moto) both parse; the group path is matched up to the first
    ``yyyy/mm/dd`` so a Lambda stream that starts with a date stays in the stream.
    """
    root = root.strip("/")
    rest = key
    if root:
        if not key.startswith(root + "/"):
            return None
        rest = key[len(root) + 1 :]
    match = _KEY.match(rest)
    if match is None:
        return None
    return ExportKey(
        key=key,
        group_path=match["group"],
        day=match["day"],
        task_id=match["task"],
        stream=match["stream"],
        part=match["part"],
    )


def event_id(log_group: str, stream: str, timestamp_ms: int, line_number: int) -> str:
    """A deterministic 56-digit id (CloudWatch ids are 56 digits) for an exported event.

    15 digits of timestamp, 9 of line number, then 32 digits of a hash of (group, stream, timestamp,
    line): ids sort in file order, which the pipeline relies on when it reorders same-millisecond
    events by ``(timestamp, id)``, and differ between groups and streams.
    """
    digest = hashlib.sha256(f"{log_group}\n{stream}\n{timestamp_ms}\n{line_number}".encode()).digest()
    tail = int.from_bytes(digest) % _HASH_MODULUS
    when = f"{timestamp_ms % _TIME_MODULUS:0{_TIME_DIGITS}d}"
    line = f"{line_number % _LINE_MODULUS:0{_LINE_DIGITS}d}"
    return f"{when}{line}{tail:0{_HASH_DIGITS}d}"


def parse_timestamp(text: str, fraction: str | None) -> int:
    """``yyyy-mm-ddThh:mm:ss`` (UTC) plus optional fraction digits -> epoch milliseconds."""
    seconds = datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    millis = int((fraction or "")[:3].ljust(3, "0"))
    return int(seconds) * 1000 + millis


@dataclass(slots=True)
class ParsedObject:
    """The events of one export object, and the lines that could not be attributed to an event."""

    events: list[dict[str, Any]] = field(default_factory=list)
    unparsed_lines: int = 0
    lines: int = 0


def parse_export_text(text: str, log_group: str, stream: str, first_line: int = 1) -> ParsedObject:
    """Lines -> log events ``{"id", "timestamp", "message"}``; ``first_line`` numbers the first line."""
    parsed = ParsedObject()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    parsed.lines = len(lines)
    for offset, line in enumerate(lines):
        match = _LINE.match(line)
        if match is None:
            if parsed.events:
                parsed.events[-1]["message"] += "\n" + line
            else:
                parsed.unparsed_lines += 1
            continue
        try:
            timestamp = parse_timestamp(match[1], match[2])
        except ValueError:
            parsed.unparsed_lines += 1
            continue
        parsed.events.append(
            {
                "id": event_id(log_group, stream, timestamp, first_line + offset),
                "timestamp": timestamp,
                "message": match[3] or "",
            },
        )
    return parsed


def data_messages(
    log_group: str,
    stream: str,
    events: Sequence[Mapping[str, Any]],
    *,
    owner: str = "",
    batch_size: int = MAX_BATCH_EVENTS,
) -> Iterator[dict[str, Any]]:
    """DATA_MESSAGE documents of at most ``batch_size`` events, as a subscription filter would send."""
    if batch_size < 1:
        msg = "batch_size must be at least 1"
        raise ValueError(msg)
    for start in range(0, len(events), batch_size):
        yield {
            "messageType": "DATA_MESSAGE",
            "owner": owner,
            "logGroup": log_group,
            "logStream": stream,
            "subscriptionFilters": [REPLAY_FILTER],
            "logEvents": [dict(event) for event in events[start : start + batch_size]],
        }


def subscription_event(document: Mapping[str, Any]) -> dict[str, Any]:
    """The Lambda event for one DATA_MESSAGE: ``{"awslogs": {"data": base64(gzip(json))}}``."""
    return {"awslogs": {"data": base64.b64encode(gzip.compress(orjson.dumps(document))).decode()}}


def list_export_keys(s3: S3Client, target: ReplayTarget) -> list[ExportKey]:
    """Every export object under the target's prefixes, in key order (parts of a stream in sequence)."""
    found: dict[str, ExportKey] = {}
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in target.prefixes:
        for page in paginator.paginate(Bucket=target.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                parsed = parse_export_key(item.get("Key", ""), target.root)
                if parsed is not None:
                    found[parsed.key] = parsed
    return [found[key] for key in sorted(found)]


def read_export_object(s3: S3Client, bucket: str, key: str) -> str:
    """An export object's text (gunzipped; invalid UTF-8 replaced rather than dropped)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return body.decode("utf-8", errors="replace")


class StreamNameResolver(Protocol):
    """Maps (log group, stream folder of an export key) to the log stream's real name."""

    def __call__(self, log_group: str, exported: str) -> str:
        """The real name, or ``exported`` itself when it cannot be told."""
        ...


@dataclass(slots=True)
class CloudWatchStreamNames:
    """Maps a stream folder written with ``-`` for ``/`` back to the real stream name via DescribeLogStreams.

    Only a folder with a ``-`` and no ``/`` is looked up. The text before its first ``-`` is a prefix
    of the real name whichever ``-`` stood for a ``/``, so one paginated DescribeLogStreams per (group,
    prefix) lists every candidate; a folder that two streams would both produce (``a/b`` and ``a-b``),
    or that no stream produces (deleted by retention, another account), keeps its exported name.
    A listing that fails (permissions, deleted group) is noted in ``errors`` and not retried for that
    group and prefix.
    """

    logs: CloudWatchLogsClient
    errors: list[str] = field(default_factory=list)
    _names: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def __call__(self, log_group: str, exported: str) -> str:
        """The real name of ``exported`` in ``log_group`` when exactly one stream has it flattened."""
        if "/" in exported or "-" not in exported:
            return exported  # slashes kept, or no '-' that could stand for one
        prefix = exported.split("-", 1)[0]
        names = self._names.get((log_group, prefix))
        if names is None:
            names = self._names[(log_group, prefix)] = self._flattened(log_group, prefix)
        return names.get(exported, exported)

    def _flattened(self, log_group: str, prefix: str) -> dict[str, str]:
        """``{name with '/' written as '-': name}`` for the group's streams starting with ``prefix``."""
        from botocore.exceptions import BotoCoreError, ClientError

        names: set[str] = set()
        paginator = self.logs.get_paginator("describe_log_streams")
        try:
            pages = (
                paginator.paginate(logGroupName=log_group, logStreamNamePrefix=prefix)
                if prefix  # the API refuses an empty prefix
                else paginator.paginate(logGroupName=log_group)
            )
            for page in pages:
                names.update(
                    stream["logStreamName"] for stream in page.get("logStreams", []) if "logStreamName" in stream
                )
        except (BotoCoreError, ClientError) as error:
            self.errors.append(f"{log_group}: stream names not looked up ({error})")
            return {}
        flattened: dict[str, str] = {}
        ambiguous: set[str] = set(names)  # a stream whose real name is the folder name wins over guessing
        for name in names:
            if "/" not in name:
                continue
            folder = name.replace("/", "-")
            if folder in flattened:
                ambiguous.add(folder)
            flattened[folder] = name
        return {folder: name for folder, name in flattened.items() if folder not in ambiguous}


@dataclass(slots=True)
class ReplaySummary:
    """What a replay did, summed over every pipeline run."""

    objects: int = 0
    events: int = 0
    batches: int = 0
    unparsed_lines: int = 0
    streams_renamed: int = 0  # objects whose ``-`` stream folder was mapped back to a name with ``/``
    counters: Counter[str] = field(default_factory=Counter)

    def add(self, summary: IngestSummary) -> None:
        """Fold one pipeline run's counters in."""
        self.counters.update(summary.counters)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view: events, records per kind, deliveries per sink."""
        deliveries: dict[str, dict[str, int]] = {}
        for key, value in counters_under(self.counters, "delivery.").items():
            sink, _, outcome = key.rpartition(".")
            deliveries.setdefault(sink, {})[outcome] = value
        return {
            "objects": self.objects,
            "events": self.events,
            "batches": self.batches,
            "unparsed_lines": self.unparsed_lines,
            "streams_renamed": self.streams_renamed,
            "records": counters_under(self.counters, "records."),
            "deliveries": deliveries,
            "malformed_events": self.counters["malformed_events"],
            "processing_errors": self.counters["processing_errors"],
            "parked": self.counters["parked"],
        }


def replay_objects(  # noqa: PLR0913 - the replay's inputs, keyword-only
    s3: S3Client,
    bucket: str,
    keys: Iterable[ExportKey],
    run: Callable[[dict[str, Any]], IngestSummary],
    *,
    owner: str = "",
    log_group: str | None = None,
    batch_size: int = MAX_BATCH_EVENTS,
    on_object: Callable[[ExportKey, int], None] | None = None,
    stream_names: StreamNameResolver | None = None,
) -> ReplaySummary:
    """Read, parse and batch each object, and hand every batch to ``run`` (e.g. ``IngestPipeline.run``).

    Line numbers continue across the parts of one stream's export (same task and stream), so two
    parts never yield the same id. ``on_object`` gets each object and its event count when done.
    ``stream_names`` gives the records their real stream name (``CloudWatchStreamNames``); ids stay
    derived from the key's stream folder, so they do not change when a stream later disappears.
    """
    summary = ReplaySummary()
    next_line: Counter[tuple[str, str, str]] = Counter()
    for export_key in keys:
        group = log_group or export_key.log_group
        stream = export_key.stream if stream_names is None else stream_names(group, export_key.stream)
        if stream != export_key.stream:
            summary.streams_renamed += 1
        stream_key = (group, export_key.task_id, export_key.stream)
        text = read_export_object(s3, bucket, export_key.key)
        parsed = parse_export_text(text, group, export_key.stream, first_line=next_line[stream_key] + 1)
        next_line[stream_key] += parsed.lines
        for document in data_messages(group, stream, parsed.events, owner=owner, batch_size=batch_size):
            summary.add(run(subscription_event(document)))
            summary.batches += 1
        summary.objects += 1
        summary.events += len(parsed.events)
        summary.unparsed_lines += parsed.unparsed_lines
        if on_object is not None:
            on_object(export_key, len(parsed.events))
    return summary


def s3_client() -> S3Client:
    """A boto3 S3 client (honours ``AWS_ENDPOINT_URL``); boto3 loads only when replay runs."""
    import boto3

    return boto3.client("s3")


def logs_client() -> CloudWatchLogsClient:
    """A boto3 CloudWatch Logs client (honours ``AWS_ENDPOINT_URL``), for ``CloudWatchStreamNames``."""
    import boto3

    return boto3.client("logs")
