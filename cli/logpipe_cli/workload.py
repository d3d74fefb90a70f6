"""Synthetic CloudWatch Logs workloads for the PACS platform.

Two layers:

* small, pure *line builders* (``backend_request_completed_json``, ``postgres_line``, ...) that render
  one log line in exactly the format the ingest parser has to understand;
* ``synthesize_workload``, which mixes those lines into batch-sized subscription streams across the
  platform's log groups and keeps exact bookkeeping of what it generated (``expected_counts``).

Everything is deterministic for a given seed and start time.
"""

from __future__ import annotations

import base64
import bisect
import gzip
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import orjson

__all__ = [
    "ACCOUNT_ID",
    "API_APPLICATION_GROUP",
    "BACKEND_APPLICATION_GROUP",
    "BACKEND_ERRORS_GROUP",
    "BACKEND_GROUPS",
    "BACKEND_LEGACY_GROUP",
    "BACKEND_LLM_GROUP",
    "CHAINED_CAUSE_LINE",
    "COUNT_KEYS",
    "DEFAULT_FILTER_NAME",
    "KEYCLOAK_APPLICATION_GROUP",
    "KEYCLOAK_GROUPS",
    "KEYCLOAK_LEGACY_GROUP",
    "MAX_BATCH_EVENTS",
    "MAX_PAYLOAD_BYTES",
    "RDS_ERROR_GROUP",
    "REGION",
    "THUMBNAILER_FUNCTION",
    "THUMBNAILER_GROUP",
    "LlmCall",
    "PythonFrame",
    "StreamBuilder",
    "SyntheticStream",
    "asctime_ms",
    "backend_dicom_processed_json",
    "backend_error_json",
    "backend_json_line",
    "backend_nested_extra_json",
    "backend_request_completed_json",
    "chained_traceback_lines",
    "control_message",
    "control_message_event",
    "decode_subscription_payload",
    "encode_subscription_payload",
    "event_id",
    "expected_counts",
    "iso_ms",
    "java_stack_trace_lines",
    "keycloak_event_details",
    "keycloak_jboss_line",
    "keycloak_json_line",
    "kinesis_event",
    "lambda_end",
    "lambda_report",
    "lambda_runtime_error_json",
    "lambda_start",
    "lambda_text_line",
    "lambda_timeout",
    "llm_call_anthropic",
    "llm_call_flat",
    "llm_call_openai",
    "llm_call_otel",
    "logfmt_line",
    "postgres_line",
    "postgres_time",
    "powertools_line",
    "powertools_time",
    "python_text_line",
    "python_traceback_lines",
    "space_delimited_line",
    "subscription_event",
    "subscription_message",
    "synthesize_workload",
]

ACCOUNT_ID = "123456789012"
REGION = "ap-northeast-2"
DEFAULT_FILTER_NAME = "logpipe-ingest"

BACKEND_APPLICATION_GROUP = "/aws/ecs/pacs-backend/application"
BACKEND_ERRORS_GROUP = "/aws/ecs/pacs-backend/errors"
BACKEND_LLM_GROUP = "/aws/ecs/pacs-backend/llm"
BACKEND_LEGACY_GROUP = "/aws/ecs/pacs-backend"  # the monitoring guide's group (no log-type suffix)
KEYCLOAK_APPLICATION_GROUP = "/aws/ecs/keycloak/application"
KEYCLOAK_LEGACY_GROUP = "/aws/ecs/keycloak"  # the monitoring guide's group
API_APPLICATION_GROUP = "/aws/ecs/api/application"
THUMBNAILER_FUNCTION = "pacs-thumbnailer"
THUMBNAILER_GROUP = f"/aws/lambda/{THUMBNAILER_FUNCTION}"
RDS_ERROR_GROUP = "/aws/rds/pacs-postgresql/error"

BACKEND_GROUPS: frozenset[str] = frozenset(
    {BACKEND_APPLICATION_GROUP, BACKEND_ERRORS_GROUP, BACKEND_LLM_GROUP, BACKEND_LEGACY_GROUP}
)
KEYCLOAK_GROUPS: frozenset[str] = frozenset({KEYCLOAK_APPLICATION_GROUP, KEYCLOAK_LEGACY_GROUP})

MAX_BATCH_EVENTS = 1000
MAX_PAYLOAD_BYTES = 1_000_000
_BATCH_BYTE_BUDGET = 700_000  # estimated decoded-JSON bytes per batch; keeps well under 1 MB
_BATCH_MAX_SPAN_MS = 60_000
_MAX_LAMBDA_ENVIRONMENTS = 64  # concurrent execution environments (log streams) of the synthetic Lambda
_EVENT_JSON_OVERHEAD = 110  # {"id":"<56 digits>","timestamp":...,"message":""} plus slack

#: Keys of ``expected_counts``. Every key is an exact count taken from the generator's bookkeeping.
#:
#: * ``events``: log events generated.
#: * ``request_completed``: lines containing ``Request completed`` (pacs-backend JSON, text,
#:   space-delimited and api logfmt); ``slow_requests``: those with duration > 5000 ms.
#: * ``dicom_processed``: lines containing ``DICOM processed``.
#: * ``auth_failures``: Keycloak ``LOGIN_ERROR`` events plus space-delimited ``"Authentication failed"``.
#: * ``backend_errors``: ERROR-level records in pacs-backend groups (a split traceback counts once).
#: * ``api_errors``, ``keycloak_errors``: ERROR-level records of those services (traces once).
#: * ``lambda_invocations`` (START lines), ``lambda_errors`` (one per failed invocation),
#:   ``lambda_timeouts`` (``Task timed out`` lines).
#: * ``rds_errors``: ERROR/FATAL entries (DETAIL/STATEMENT follow-ups not counted);
#:   ``rds_slow_queries``: ``duration:`` lines.
#: * ``llm_calls``: LLM-call records (every line in the llm group); token sums alongside.
#: * ``multiline_tracebacks``: tracebacks split over several events (Python and Java).
#: * ``pii_lines``: events carrying at least one PII item (email, 010 mobile number, PatientName=,
#:   "PatientID", (0010,0030), Bearer JWT, postgres:// URL with password).
COUNT_KEYS: tuple[str, ...] = (
    "events",
    "request_completed",
    "slow_requests",
    "dicom_processed",
    "auth_failures",
    "backend_errors",
    "api_errors",
    "keycloak_errors",
    "lambda_invocations",
    "lambda_errors",
    "lambda_timeouts",
    "rds_errors",
    "rds_slow_queries",
    "llm_calls",
    "llm_input_tokens",
    "llm_output_tokens",
    "multiline_tracebacks",
    "pii_lines",
)

#: The line between two chained Python tracebacks (``raise ... from``); blank lines surround it.
CHAINED_CAUSE_LINE = "The above exception was the direct cause of the following exception:"

_Line = tuple[int, str]
_Record = tuple[list[_Line], dict[str, int]]

#: (filename, line number, function, source line) of one Python traceback frame.
PythonFrame = tuple[str, int, str, str]


# --------------------------------------------------------------------------------------------------
# Streams, ids and payload encoding
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyntheticStream:
    """One log stream's events for one subscription batch, plus what the generator put in it."""

    log_group: str
    log_stream: str
    events: list[dict[str, object]]
    counts: dict[str, int] = field(default_factory=dict)


def _stream_key(log_group: str, log_stream: str) -> int:
    digest = hashlib.blake2b(f"{log_group}\n{log_stream}".encode(), digest_size=10).digest()
    return int.from_bytes(digest, "big")


def event_id(timestamp_ms: int, stream_key: int, sequence: int) -> str:
    """Return a 56-digit CloudWatch-style event id: timestamp in the high bits, then stream, then sequence."""
    value = (timestamp_ms << 144) | ((stream_key & ((1 << 80) - 1)) << 64) | (sequence & ((1 << 64) - 1))
    text = str(value)
    if len(text) > 56:
        raise ValueError(f"timestamp {timestamp_ms} too large for a 56-digit event id")
    return text.zfill(56)


def _estimate_bytes(message: str) -> int:
    raw = len(message.encode())
    return raw + raw // 8 + _EVENT_JSON_OVERHEAD


class StreamBuilder:
    """Accumulate one log stream's events, assign increasing ids and cut them into batches."""

    __slots__ = ("_bytes", "_counts", "_events", "_first_ts", "_key", "_last_ts", "_seq", "log_group", "log_stream")

    def __init__(self, log_group: str, log_stream: str, *, not_before_ms: int = 0) -> None:
        self.log_group = log_group
        self.log_stream = log_stream
        self._key = _stream_key(log_group, log_stream)
        self._seq = 0
        self._last_ts = not_before_ms
        self._first_ts: int | None = None
        self._events: list[dict[str, object]] = []
        self._counts: dict[str, int] = {}
        self._bytes = 0

    @property
    def last_timestamp(self) -> int:
        """Timestamp of the newest event added so far (0 before the first one)."""
        return self._last_ts

    @property
    def pending_events(self) -> int:
        """Number of events waiting in the current batch."""
        return len(self._events)

    @property
    def pending_bytes(self) -> int:
        """Estimated decoded-JSON size of the current batch."""
        return self._bytes

    @property
    def first_pending_timestamp(self) -> int | None:
        """Timestamp of the oldest event in the current batch, if any."""
        return self._first_ts

    def add(self, lines: Sequence[tuple[int, str]], counts: Mapping[str, int] | None = None) -> None:
        """Append events (timestamp, message) and add their bookkeeping counts to the current batch."""
        for ts, message in lines:
            if ts < self._last_ts:
                raise ValueError("timestamps must not go backwards within a log stream")
            self._seq += 1
            if self._first_ts is None:
                self._first_ts = ts
            self._events.append({"id": event_id(ts, self._key, self._seq), "timestamp": ts, "message": message})
            self._last_ts = ts
            self._bytes += _estimate_bytes(message)
        self._counts["events"] = self._counts.get("events", 0) + len(lines)
        if counts:
            for key, value in counts.items():
                self._counts[key] = self._counts.get(key, 0) + value

    def flush(self) -> SyntheticStream | None:
        """Return the current batch as a SyntheticStream (None when empty) and start a new one."""
        if not self._events:
            return None
        batch = SyntheticStream(self.log_group, self.log_stream, self._events, self._counts)
        self._events = []
        self._counts = {}
        self._bytes = 0
        self._first_ts = None
        return batch


def subscription_message(
    stream: SyntheticStream,
    owner: str = ACCOUNT_ID,
    filter_name: str = DEFAULT_FILTER_NAME,
    *,
    policy_level: str | None = None,
    extracted_fields: Sequence[str] | None = None,
) -> dict[str, object]:
    """Return the decoded DATA_MESSAGE document CloudWatch Logs would deliver for this stream."""
    events: list[dict[str, object]] = stream.events
    if extracted_fields is not None:
        events = [
            {**event, "extractedFields": _extract_fields(str(event["message"]), extracted_fields)}
            for event in stream.events
        ]
    message: dict[str, object] = {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": stream.log_group,
        "logStream": stream.log_stream,
        "subscriptionFilters": [filter_name],
        "logEvents": events,
    }
    if policy_level is not None:
        message["policyLevel"] = policy_level
    return message


def _extract_fields(message: str, names: Sequence[str]) -> dict[str, str]:
    """Split a space-delimited line like a CloudWatch ``[a, b, c]`` pattern (quotes group words)."""
    tokens: list[str] = []
    i, n = 0, len(message)
    while i < n:
        if message[i] == " ":
            i += 1
            continue
        if message[i] == '"':
            end = message.find('"', i + 1)
            end = n if end < 0 else end
            tokens.append(message[i + 1 : end])
            i = end + 1
        else:
            end = message.find(" ", i)
            end = n if end < 0 else end
            tokens.append(message[i:end])
            i = end
    fields: dict[str, str] = {}
    for index, name in enumerate(names):
        if index >= len(tokens):
            break
        if name.endswith("...") or index == len(names) - 1:
            fields[name.rstrip(".")] = " ".join(tokens[index:])
            break
        fields[name] = tokens[index]
    return fields


def encode_subscription_payload(message: Mapping[str, object]) -> str:
    """Return base64(gzip(json)) of a subscription document, byte-for-byte deterministic."""
    return base64.b64encode(gzip.compress(orjson.dumps(message), compresslevel=6, mtime=0)).decode("ascii")


def decode_subscription_payload(data: str | bytes) -> dict[str, object]:
    """Decode base64(gzip(json)) back into the subscription document (strict base64)."""
    decoded = orjson.loads(gzip.decompress(base64.b64decode(data, validate=True)))
    if not isinstance(decoded, dict):
        raise TypeError("subscription payload is not a JSON object")
    return decoded


def subscription_event(
    stream: SyntheticStream,
    owner: str = ACCOUNT_ID,
    filter_name: str = DEFAULT_FILTER_NAME,
    *,
    policy_level: str | None = None,
    extracted_fields: Sequence[str] | None = None,
) -> dict[str, object]:
    """Return the Lambda event ``{"awslogs": {"data": ...}}`` for one stream batch."""
    message = subscription_message(
        stream, owner, filter_name, policy_level=policy_level, extracted_fields=extracted_fields
    )
    return {"awslogs": {"data": encode_subscription_payload(message)}}


def control_message(timestamp_ms: int, destination: str = "Lambda function") -> dict[str, object]:
    """Return the decoded CONTROL_MESSAGE CloudWatch Logs sends to check a destination's health."""
    return {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [
            {
                "id": "",
                "timestamp": timestamp_ms,
                "message": f"CWL CONTROL MESSAGE: Checking health of destination {destination}.",
            }
        ],
    }


def control_message_event(timestamp_ms: int | None = None, destination: str = "Lambda function") -> dict[str, object]:
    """Return the Lambda event for a CONTROL_MESSAGE (timestamp defaults to now)."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return {"awslogs": {"data": encode_subscription_payload(control_message(ts, destination))}}


_KINESIS_SEQUENCE_BASE = 49_657 * 10**51  # Kinesis sequence numbers are 56-digit decimals


def kinesis_event(  # noqa: PLR0913
    streams: Sequence[SyntheticStream],
    *,
    owner: str = ACCOUNT_ID,
    filter_name: str = DEFAULT_FILTER_NAME,
    region: str = REGION,
    stream_name: str = "pacs-logs",
    shard_id: str = "shardId-000000000000",
) -> dict[str, object]:
    """Return a Kinesis-triggered Lambda event with one record (gzip DATA_MESSAGE) per stream batch."""
    stream_arn = f"arn:aws:kinesis:{region}:{owner}:stream/{stream_name}"
    records: list[dict[str, object]] = []
    for index, stream in enumerate(streams):
        last_ts = max((int(str(e["timestamp"])) for e in stream.events), default=0)
        arrival_ms = last_ts + 180 + 37 * index
        sequence = str(_KINESIS_SEQUENCE_BASE + (arrival_ms << 16) + index)
        partition_key = hashlib.blake2b(f"{stream.log_group}/{stream.log_stream}".encode(), digest_size=16).hexdigest()
        data = encode_subscription_payload(subscription_message(stream, owner, filter_name))
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": partition_key,
                    "sequenceNumber": sequence,
                    "data": data,
                    "approximateArrivalTimestamp": arrival_ms / 1000,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{owner}:role/logpipe-ingest-kinesis-role",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": records}


def expected_counts(streams: Iterable[SyntheticStream]) -> dict[str, int]:
    """Sum the generator's bookkeeping over stream batches: exact counts per ``COUNT_KEYS`` category."""
    totals = dict.fromkeys(COUNT_KEYS, 0)
    for stream in streams:
        for key, value in stream.counts.items():
            totals[key] = totals.get(key, 0) + value
    return totals


# --------------------------------------------------------------------------------------------------
# Time formats
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _utc_second(epoch_second: int) -> tuple[str, str]:
    parts = time.gmtime(epoch_second)
    return time.strftime("%Y-%m-%d", parts), time.strftime("%H:%M:%S", parts)


def iso_ms(ts_ms: int) -> str:
    """Format epoch ms as ``2026-11-22T01:02:03.456Z``."""
    day, clock = _utc_second(ts_ms // 1000)
    return f"{day}T{clock}.{ts_ms % 1000:03d}Z"


def asctime_ms(ts_ms: int) -> str:
    """Format epoch ms as Python logging / JBoss ``2026-11-22 01:02:03,456``."""
    day, clock = _utc_second(ts_ms // 1000)
    return f"{day} {clock},{ts_ms % 1000:03d}"


def powertools_time(ts_ms: int) -> str:
    """Format epoch ms as Powertools ``2026-11-22 01:02:03,456+0000``."""
    return asctime_ms(ts_ms) + "+0000"


def postgres_time(ts_ms: int) -> str:
    """Format epoch ms as PostgreSQL ``%t`` (``2026-11-22 01:02:03 UTC``, whole seconds)."""
    day, clock = _utc_second(ts_ms // 1000)
    return f"{day} {clock} UTC"


# --------------------------------------------------------------------------------------------------
# Line builders: pacs-backend
# --------------------------------------------------------------------------------------------------


def _dumps(record: Mapping[str, object]) -> str:
    return orjson.dumps(record).decode()


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kv(fields: Mapping[str, object]) -> str:
    parts: list[str] = []
    for key, value in fields.items():
        text = _scalar(value)
        if not text or any(ch in text for ch in ' "=\t\n'):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def backend_json_line(  # noqa: PLR0913
    ts_ms: int,
    *,
    level: str,
    logger: str,
    message: str,
    request_id: str | None = None,
    fields: Mapping[str, object] | None = None,
    service: str = "pacs-backend",
    environment: str = "prod",
) -> str:
    """Render a python-json-logger style pacs-backend record (compact JSON)."""
    record: dict[str, object] = {"timestamp": iso_ms(ts_ms), "level": level, "logger": logger, "message": message}
    if request_id is not None:
        record["request_id"] = request_id
    if fields:
        record.update(fields)
    record["service"] = service
    record["environment"] = environment
    return _dumps(record)


def backend_request_completed_json(  # noqa: PLR0913
    ts_ms: int,
    *,
    request_id: str,
    method: str,
    path: str,
    status: int,
    duration_ms: int,
    environment: str = "prod",
) -> str:
    """Render the pacs-backend ``Request completed`` JSON record (``duration`` in ms)."""
    return backend_json_line(
        ts_ms,
        level="INFO",
        logger="pacs.api",
        message="Request completed",
        request_id=request_id,
        fields={"method": method, "path": path, "status": status, "duration": duration_ms},
        environment=environment,
    )


def backend_dicom_processed_json(  # noqa: PLR0913
    ts_ms: int,
    *,
    request_id: str,
    study_uid: str,
    modality: str,
    instances: int,
    duration_ms: int,
    environment: str = "prod",
) -> str:
    """Render the pacs-backend ``DICOM processed`` JSON record."""
    return backend_json_line(
        ts_ms,
        level="INFO",
        logger="pacs.dicom",
        message="DICOM processed",
        request_id=request_id,
        fields={"study_uid": study_uid, "modality": modality, "instances": instances, "duration": duration_ms},
        environment=environment,
    )


def backend_error_json(  # noqa: PLR0913
    ts_ms: int,
    *,
    logger: str,
    message: str,
    request_id: str,
    exc_info: str | None = None,
    fields: Mapping[str, object] | None = None,
    environment: str = "prod",
) -> str:
    """Render an ERROR-level pacs-backend JSON record, optionally with a one-string ``exc_info``."""
    extra: dict[str, object] = dict(fields or {})
    if exc_info is not None:
        extra["exc_info"] = exc_info
    return backend_json_line(
        ts_ms,
        level="ERROR",
        logger=logger,
        message=message,
        request_id=request_id,
        fields=extra,
        environment=environment,
    )


def backend_nested_extra_json(  # noqa: PLR0913
    ts_ms: int,
    *,
    levelname: str,
    name: str,
    message: str,
    extra: Mapping[str, object],
    exc_info: str | None = None,
) -> str:
    """Render the older python-json-logger variant (asctime/levelname/name, nested ``extra``, spaced JSON)."""
    record: dict[str, object] = {
        "asctime": asctime_ms(ts_ms),
        "levelname": levelname,
        "name": name,
        "message": message,
        "extra": dict(extra),
    }
    if exc_info is not None:
        record["exc_info"] = exc_info
    return json.dumps(record)


def space_delimited_line(ts_ms: int, level: str, message: str, *values: object, request_id: str | None = None) -> str:
    """Render ``<iso> [<request_id>] <LEVEL> "<message>" <values...>`` (the metric-filter shape)."""
    head = iso_ms(ts_ms) if request_id is None else f"{iso_ms(ts_ms)} {request_id}"
    tail = "".join(f" {_scalar(v)}" for v in values)
    return f'{head} {level} "{message}"{tail}'


def python_text_line(  # noqa: PLR0913
    ts_ms: int,
    *,
    level: str,
    logger: str,
    message: str,
    request_id: str | None = None,
    fields: Mapping[str, object] | None = None,
) -> str:
    """Render python-logging text: ``<asctime> LEVEL [logger] request_id=... message k=v ...``."""
    parts = [asctime_ms(ts_ms), level, f"[{logger}]"]
    if request_id is not None:
        parts.append(f"request_id={request_id}")
    parts.append(message)
    if fields:
        parts.append(_kv(fields))
    return " ".join(parts)


def logfmt_line(ts_ms: int, *, level: str, msg: str, fields: Mapping[str, object] | None = None) -> str:
    """Render logfmt: ``time=<iso> level=info msg="..." k=v`` (values quoted when needed)."""
    return _kv({"time": iso_ms(ts_ms), "level": level, "msg": msg, **(fields or {})})


def python_traceback_lines(frames: Sequence[PythonFrame], exc_type: str, exc_message: str) -> list[str]:
    """Return a Python traceback as its lines (header, File/source pairs, final ``Type: message``)."""
    lines = ["Traceback (most recent call last):"]
    for filename, lineno, function, source in frames:
        lines.append(f'  File "{filename}", line {lineno}, in {function}')
        lines.append(f"    {source}")
    lines.append(f"{exc_type}: {exc_message}" if exc_message else exc_type)
    return lines


def chained_traceback_lines(cause: Sequence[str], effect: Sequence[str]) -> list[str]:
    """Join two tracebacks the way Python prints ``raise ... from`` (blank line, separator, blank line)."""
    return [*cause, "", CHAINED_CAUSE_LINE, "", *effect]


# --------------------------------------------------------------------------------------------------
# Line builders: Lambda
# --------------------------------------------------------------------------------------------------


def lambda_start(request_id: str, version: str = "$LATEST") -> str:
    """Render the platform START line (with the trailing newline Lambda emits)."""
    return f"START RequestId: {request_id} Version: {version}\n"


def lambda_end(request_id: str) -> str:
    """Render the platform END line."""
    return f"END RequestId: {request_id}\n"


def lambda_report(  # noqa: PLR0913
    request_id: str,
    *,
    duration_ms: float,
    memory_size_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None = None,
    status: str | None = None,
) -> str:
    """Render the platform REPORT line (tab-separated, billed duration rounded up to 1 ms)."""
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {math.ceil(duration_ms)} ms",
        f"Memory Size: {memory_size_mb} MB",
        f"Max Memory Used: {max_memory_used_mb} MB",
    ]
    if init_duration_ms is not None:
        parts.append(f"Init Duration: {init_duration_ms:.2f} ms")
    if status is not None:
        parts.append(f"Status: {status}")
    return "\t".join(parts) + "\t\n"


def lambda_text_line(ts_ms: int, level: str, request_id: str, message: str) -> str:
    """Render the Python runtime's tab-separated text line ``[LEVEL] <iso> <request id> <message>``."""
    return f"[{level}]\t{iso_ms(ts_ms)}\t{request_id}\t{message}\n"


def lambda_runtime_error_json(request_id: str, error_type: str, error_message: str, stack_trace: Sequence[str]) -> str:
    """Render the runtime's unhandled-error JSON document (spaced JSON, as the runtime prints it)."""
    document = {"errorMessage": error_message, "errorType": error_type, "requestId": request_id}
    return json.dumps({**document, "stackTrace": list(stack_trace)})


def lambda_timeout(ts_ms: int, request_id: str, seconds: float) -> str:
    """Render ``<iso> <request id> Task timed out after 30.03 seconds``."""
    return f"{iso_ms(ts_ms)} {request_id} Task timed out after {seconds:.2f} seconds"


def powertools_line(  # noqa: PLR0913
    ts_ms: int,
    *,
    level: str,
    location: str,
    message: str,
    function_name: str,
    request_id: str,
    xray_trace_id: str,
    cold_start: bool,
    memory_size_mb: int = 512,
    service: str | None = None,
    region: str = REGION,
    account: str = ACCOUNT_ID,
    extra: Mapping[str, object] | None = None,
    exception: str | None = None,
    exception_name: str | None = None,
) -> str:
    """Render an AWS Lambda Powertools structured log line (compact JSON)."""
    record: dict[str, object] = {
        "level": level,
        "location": location,
        "message": message,
        "timestamp": powertools_time(ts_ms),
        "service": service or function_name,
        "cold_start": cold_start,
        "function_name": function_name,
        "function_memory_size": str(memory_size_mb),
        "function_arn": f"arn:aws:lambda:{region}:{account}:function:{function_name}",
        "function_request_id": request_id,
        "xray_trace_id": xray_trace_id,
    }
    if extra:
        record.update(extra)
    if exception is not None:
        record["exception"] = exception
        record["exception_name"] = exception_name or exception.rsplit("\n", 1)[-1].split(":", 1)[0]
    return _dumps(record)


# --------------------------------------------------------------------------------------------------
# Line builders: Keycloak
# --------------------------------------------------------------------------------------------------


def keycloak_event_details(  # noqa: PLR0913
    event_type: str,
    *,
    realm_id: str,
    client_id: str,
    user_id: str | None,
    ip_address: str,
    username: str | None = None,
    error: str | None = None,
    details: Mapping[str, str] | None = None,
    quoted: bool = False,
) -> str:
    """Render the jboss-logging event listener text ``type=LOGIN_ERROR, realmId=pacs, ...``."""
    pairs: list[tuple[str, str]] = [
        ("type", event_type),
        ("realmId", realm_id),
        ("clientId", client_id),
        ("userId", user_id or "null"),
        ("ipAddress", ip_address),
    ]
    if error is not None:
        pairs.append(("error", error))
    if details:
        pairs.extend(details.items())
    if username is not None:
        pairs.append(("username", username))
    if quoted:
        return ", ".join(f'{key}="{value}"' for key, value in pairs)
    return ", ".join(f"{key}={value}" for key, value in pairs)


def keycloak_jboss_line(ts_ms: int, *, level: str, category: str, thread: str, message: str) -> str:
    """Render the JBoss/Quarkus console text ``<asctime> LEVEL [category] (thread) message``."""
    return f"{asctime_ms(ts_ms)} {level:<5} [{category}] ({thread}) {message}"


def keycloak_json_line(  # noqa: PLR0913
    ts_ms: int,
    *,
    level: str,
    logger_name: str,
    message: str,
    sequence: int,
    thread_name: str,
    thread_id: int,
    host_name: str,
    stack_trace: str | None = None,
) -> str:
    """Render Keycloak's Quarkus JSON console format line."""
    record: dict[str, object] = {
        "timestamp": iso_ms(ts_ms),
        "sequence": sequence,
        "loggerClassName": "org.jboss.logging.Logger",
        "loggerName": logger_name,
        "level": level,
        "message": message,
        "threadName": thread_name,
        "threadId": thread_id,
        "mdc": {},
        "ndc": "",
        "hostName": host_name,
        "processName": "QuarkusEntryPoint",
        "processId": 1,
    }
    if stack_trace is not None:
        record["stackTrace"] = stack_trace
    return _dumps(record)


def java_stack_trace_lines(
    exc_class: str,
    message: str,
    frames: Sequence[str],
    *,
    cause: tuple[str, str, Sequence[str], int] | None = None,
) -> list[str]:
    """Return a Java stack trace as lines; ``cause`` is (class, message, frames, N for ``... N more``)."""
    lines = [f"{exc_class}: {message}"]
    lines.extend(f"\tat {frame}" for frame in frames)
    if cause is not None:
        cause_class, cause_message, cause_frames, more = cause
        lines.append(f"Caused by: {cause_class}: {cause_message}")
        lines.extend(f"\tat {frame}" for frame in cause_frames)
        lines.append(f"\t... {more} more")
    return lines


# --------------------------------------------------------------------------------------------------
# Line builders: PostgreSQL (RDS, log_line_prefix '%t:%r:%u@%d:[%p]:')
# --------------------------------------------------------------------------------------------------


def postgres_line(  # noqa: PLR0913
    ts_ms: int,
    severity: str,
    message: str,
    *,
    pid: int,
    client: str = "",
    user: str = "",
    database: str = "",
) -> str:
    """Render ``<%t>:<host(port)>:<user>@<db>:[pid]:SEVERITY:  message`` (empty parts for background)."""
    return f"{postgres_time(ts_ms)}:{client}:{user}@{database}:[{pid}]:{severity}:  {message}"


# --------------------------------------------------------------------------------------------------
# Line builders: LLM-call records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LlmCall:
    """One LLM call as the pacs-backend records it; rendered by the ``llm_call_*`` shapes."""

    name: str
    provider: str
    model: str
    prompt: str
    completion: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: int
    trace_id: str
    span_id: str
    session_id: str
    user_id: str
    study_uid: str
    error: str | None = None


def _llm_level(call: LlmCall) -> str:
    # A failed provider call is logged as a warning (the request is retried or degraded), not an error.
    return "WARNING" if call.error else "INFO"


def llm_call_flat(ts_ms: int, call: LlmCall, *, environment: str = "prod") -> str:
    """Render the flat llm_call record (prompt/completion, *_tokens, total_cost, latency_ms)."""
    record: dict[str, object] = {
        "timestamp": iso_ms(ts_ms),
        "level": _llm_level(call),
        "event": "llm_call",
        "name": call.name,
        "model": call.model,
        "prompt": call.prompt,
        "completion": call.completion,
        "prompt_tokens": call.input_tokens,
        "completion_tokens": call.output_tokens,
        "total_tokens": call.input_tokens + call.output_tokens,
        "total_cost": call.cost_usd,
        "latency_ms": call.latency_ms,
        "trace_id": call.trace_id,
        "session_id": call.session_id,
        "user_id": call.user_id,
        "metadata": {"study_uid": call.study_uid, "environment": environment},
    }
    if call.error:
        record["error"] = call.error
    return _dumps(record)


def llm_call_openai(ts_ms: int, call: LlmCall, *, environment: str = "prod") -> str:
    """Render the OpenAI-style record (``usage`` with prompt/completion/total tokens)."""
    record: dict[str, object] = {
        "timestamp": iso_ms(ts_ms),
        "level": _llm_level(call),
        "event": "llm_call",
        "name": call.name,
        "model": call.model,
        "prompt": call.prompt,
        "completion": call.completion,
        "usage": {
            "prompt_tokens": call.input_tokens,
            "completion_tokens": call.output_tokens,
            "total_tokens": call.input_tokens + call.output_tokens,
        },
        "total_cost": call.cost_usd,
        "latency_ms": call.latency_ms,
        "trace_id": call.trace_id,
        "session_id": call.session_id,
        "user_id": call.user_id,
        "environment": environment,
        "metadata": {"study_uid": call.study_uid},
    }
    if call.error:
        record["error"] = call.error
    return _dumps(record)


def llm_call_anthropic(ts_ms: int, call: LlmCall, *, environment: str = "prod") -> str:
    """Render the Anthropic-style record (``input``/``output``, usage input/output tokens, start/end)."""
    record: dict[str, object] = {
        "timestamp": iso_ms(ts_ms),
        "level": _llm_level(call),
        "event": "llm_call",
        "name": call.name,
        "model": call.model,
        "input": [{"role": "user", "content": call.prompt}],
        "output": call.completion,
        "usage": {"input_tokens": call.input_tokens, "output_tokens": call.output_tokens},
        "cost_usd": call.cost_usd,
        "start_time": iso_ms(ts_ms - call.latency_ms),
        "end_time": iso_ms(ts_ms),
        "trace_id": call.trace_id,
        "session_id": call.session_id,
        "user_id": call.user_id,
        "environment": environment,
        "metadata": {"study_uid": call.study_uid},
    }
    if call.error:
        record["error"] = call.error
    return _dumps(record)


def llm_call_otel(ts_ms: int, call: LlmCall, *, environment: str = "prod") -> str:
    """Render the OpenTelemetry GenAI semantic-convention record (``gen_ai.*`` keys, start/end)."""
    record: dict[str, object] = {
        "timestamp": iso_ms(ts_ms),
        "level": _llm_level(call),
        "event": "llm_call",
        "name": call.name,
        "gen_ai.system": call.provider,
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": call.model,
        "gen_ai.response.model": call.model,
        "gen_ai.usage.input_tokens": call.input_tokens,
        "gen_ai.usage.output_tokens": call.output_tokens,
        "gen_ai.prompt": call.prompt,
        "gen_ai.completion": call.completion,
        "start_time": iso_ms(ts_ms - call.latency_ms),
        "end_time": iso_ms(ts_ms),
        "trace_id": call.trace_id,
        "span_id": call.span_id,
        "session_id": call.session_id,
        "user_id": call.user_id,
        "environment": environment,
        "study_uid": call.study_uid,
    }
    if call.error:
        record["error.type"] = call.error.split(":", 1)[0]
        record["error"] = call.error
    return _dumps(record)


# --------------------------------------------------------------------------------------------------
# Workload synthesis
# --------------------------------------------------------------------------------------------------

_UID_ROOTS = ("1.2.840.113619.2.55.3", "1.3.12.2.1107.5.1.4", "1.2.392.200036.9116.2.6.1.48")
_MODALITIES: tuple[tuple[str, int, int], ...] = (
    ("CT", 120, 900),
    ("MR", 80, 640),
    ("CR", 1, 4),
    ("DX", 1, 3),
    ("US", 8, 80),
    ("MG", 4, 8),
    ("PT", 200, 700),
    ("XA", 20, 160),
)
_MODALITY_CUM = (30, 52, 66, 76, 88, 94, 97, 100)
_PEOPLE: tuple[tuple[str, str], ...] = (
    ("HONG", "GILDONG"),
    ("KIM", "MINSU"),
    ("LEE", "JIEUN"),
    ("PARK", "SEOYEON"),
    ("CHOI", "JUNHO"),
    ("JUNG", "HAEUN"),
    ("KANG", "DOYUN"),
    ("YOON", "SEOJIN"),
)
_USERNAMES = (
    "jdoe",
    "kim.minsu",
    "lee.jieun",
    "park.sy",
    "radiologist01",
    "radiologist17",
    "tech.choi",
    "dr.kang",
    "yoon.sj",
    "admin.ops",
    "jung.haeun",
    "referrer.cho",
)
_EMAIL_DOMAINS = ("hospital.example.kr", "pacs-clinic.example.com", "example.org")
_KC_CLIENTS = ("pacs-viewer", "pacs-viewer", "pacs-viewer", "pacs-admin", "pacs-api")
_LLM_MODELS: tuple[tuple[str, str, float, float], ...] = (
    # provider, model, USD per 1M input tokens, per 1M output tokens
    ("openai", "gpt-4o-mini", 0.15, 0.60),
    ("openai", "gpt-4o", 2.50, 10.00),
    ("anthropic", "claude-3-5-haiku-20241022", 0.80, 4.00),
    ("anthropic", "claude-sonnet-4-5", 3.00, 15.00),
)
_LLM_TASKS = (
    ("report-summary", "Summarize the {mod} report for study {uid} in three bullet points for the referrer."),
    ("report-draft", "Draft a structured {mod} report from these findings for study {uid}: {findings}"),
    ("worklist-triage", "Classify the urgency (routine/urgent/critical) of study {uid} ({mod}) given: {findings}"),
    ("protocol-suggest", "Suggest a {mod} acquisition protocol for the indication: {findings}"),
)
_FINDINGS = (
    "No acute intracranial hemorrhage. Mild chronic small vessel ischemic change.",
    "3 mm non-calcified nodule in the right upper lobe. No pleural effusion.",
    "Degenerative change at L4-L5 with mild canal narrowing.",
    "No focal consolidation. Heart size within normal limits.",
    "Small hypodense lesion in segment VI of the liver, likely a cyst.",
)
_COMPLETIONS = (
    "- No acute findings.\n- Chronic small vessel change.\n- Routine follow-up.",
    "Impression: small pulmonary nodule; recommend CT follow-up in 12 months (Fleischner).",
    "우측 상엽에 3mm 결절이 있으며 12개월 후 추적 CT를 권고합니다.",
    "Urgency: routine. No critical findings identified.",
    "Protocol: non-contrast axial 1.25 mm, reconstruct bone and soft tissue kernels.",
)
_BACKEND_LOGGERS = ("pacs.api", "pacs.dicom", "pacs.worklist", "pacs.reports", "pacs.storage")

_TB_STORE: list[PythonFrame] = [
    ("/app/pacs/dicom/views.py", 64, "stow", "store.store(instance)"),
    ("/app/pacs/dicom/store.py", 88, "store", "conn.execute(sql)"),
]
_TB_GET_STUDY: list[PythonFrame] = [
    ("/app/pacs/api/views.py", 120, "get_study", "return repo.get(uid)"),
    ("/app/pacs/repo/studies.py", 45, "get", 'raise ValueError("study not found")'),
]
_TB_DB_CAUSE: list[PythonFrame] = [
    ("/app/pacs/repo/studies.py", 41, "get", "row = cur.fetchone()"),
    ("/app/.venv/lib/python3.12/site-packages/psycopg/cursor.py", 873, "fetchone", "self._fetch_pipeline()"),
]
_TB_DB_EFFECT: list[PythonFrame] = [
    ("/app/pacs/api/views.py", 120, "get_study", "return repo.get(uid)"),
    ("/app/pacs/repo/studies.py", 43, "get", "raise StudyUnavailable(uid) from exc"),
]
_TB_PARSE: list[PythonFrame] = [
    ("/app/pacs/dicom/ingest.py", 131, "handle", "meta = extract_metadata(ds)"),
    ("/app/pacs/dicom/parse.py", 57, "extract_metadata", 'series_uid = ds["SeriesInstanceUID"].value'),
    ("/app/.venv/lib/python3.12/site-packages/pydicom/dataset.py", 1005, "__getitem__", "tag = Tag(key)"),
]
_LAMBDA_TB: list[PythonFrame] = [("/var/task/app.py", 20, "lambda_handler", 'uid = ds["SeriesInstanceUID"]')]

_KC_FRAMES = (
    "org.keycloak.authentication.AuthenticationProcessor.authenticate(AuthenticationProcessor.java:1021)",
    "org.keycloak.protocol.AuthorizationEndpointBase.handleBrowserAuthenticationRequest(AuthorizationEndpointBase.java:139)",
    "org.keycloak.protocol.oidc.endpoints.AuthorizationEndpoint.process(AuthorizationEndpoint.java:203)",
    "org.keycloak.protocol.oidc.endpoints.AuthorizationEndpoint.buildGet(AuthorizationEndpoint.java:126)",
    "org.jboss.resteasy.reactive.server.handlers.InvocationHandler.handle(InvocationHandler.java:29)",
)
_KC_CAUSE_FRAMES = (
    "org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:346)",
    "org.postgresql.core.ConnectionFactory.openConnection(ConnectionFactory.java:54)",
    "org.postgresql.jdbc.PgConnection.<init>(PgConnection.java:263)",
)


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = 0.0
    out: list[float] = []
    for weight in weights:
        total += weight
        out.append(total)
    return out


@dataclass(slots=True)
class _Slot:
    """One log stream in the workload: how to make its records, and its batching state."""

    builder: StreamBuilder
    make: Callable[[_Slot, int], _Record]
    fallback: Callable[[_Slot, int], _Record]
    weight: float
    batch_target: int = MAX_BATCH_EVENTS
    cold: bool = True
    sequence: int = 0
    host: str = ""
    variant: str = ""


class _Workload:
    """Stateful generator behind ``synthesize_workload`` (one instance per call)."""

    def __init__(self, rng: random.Random, start_ms: int, environment: str) -> None:
        self.rng = rng
        self.start_ms = start_ms
        self.env = environment
        self.out: list[SyntheticStream] = []
        day = time.strftime("%Y/%m/%d", time.gmtime(start_ms // 1000))
        self.lambda_day = day
        tasks = [self.hex(32) for _ in range(4)]
        kc_tasks = [self.hex(32) for _ in range(3)]
        api_task = self.hex(32)
        s = self._slot
        self.slots: list[_Slot] = [
            s(BACKEND_APPLICATION_GROUP, f"ecs/pacs-backend/{tasks[0]}", self.backend_json, self.backend_json_fb, 22),
            s(BACKEND_APPLICATION_GROUP, f"ecs/pacs-backend/{tasks[1]}", self.backend_json, self.backend_json_fb, 22),
            s(BACKEND_APPLICATION_GROUP, f"ecs/pacs-backend/{tasks[2]}", self.backend_text, self.backend_text_fb, 12),
            s(BACKEND_LEGACY_GROUP, f"ecs/pacs-backend/{tasks[3]}", self.backend_space, self.backend_space_fb, 9),
            s(BACKEND_ERRORS_GROUP, f"ecs/pacs-backend/{tasks[0]}", self.backend_errors, self.backend_errors_fb, 0.42),
            s(BACKEND_ERRORS_GROUP, f"ecs/pacs-backend/{tasks[1]}", self.backend_errors, self.backend_errors_fb, 0.42),
            s(BACKEND_LLM_GROUP, f"ecs/pacs-backend/{tasks[0]}", self.llm, self.llm, 1.6),
            s(BACKEND_LLM_GROUP, f"ecs/pacs-backend/{tasks[1]}", self.llm, self.llm, 1.6),
            s(
                KEYCLOAK_APPLICATION_GROUP,
                f"ecs/keycloak/{kc_tasks[0]}",
                self.keycloak_jboss,
                self.keycloak_fb,
                6,
                host="keycloak-0",
                variant="quoted",
            ),
            s(
                KEYCLOAK_APPLICATION_GROUP,
                f"ecs/keycloak/{kc_tasks[1]}",
                self.keycloak_json,
                self.keycloak_json,
                4,
                host="keycloak-1",
                variant="quoted",
            ),
            s(
                KEYCLOAK_LEGACY_GROUP,
                f"ecs/keycloak/{kc_tasks[2]}",
                self.keycloak_jboss,
                self.keycloak_fb,
                3,
                host="keycloak-legacy-0",
                variant="unquoted",
            ),
            s(KEYCLOAK_LEGACY_GROUP, f"ecs/keycloak-auth/{kc_tasks[2]}", self.keycloak_space, self.keycloak_space, 2.5),
            s(API_APPLICATION_GROUP, f"ecs/api/{api_task}", self.api_logfmt, self.api_logfmt_fb, 9),
            # One entry for the whole function; ``lambda_environment`` picks an idle execution environment.
            s(THUMBNAILER_GROUP, self.lambda_stream_name(), self.lambda_invocation, self.lambda_fb, 2.8),
            s(RDS_ERROR_GROUP, "pacs-postgresql", self.rds, self.rds_fb, 4.5),
        ]
        self.cum = _cumulative([slot.weight for slot in self.slots])
        self.lambda_slot = next(slot for slot in self.slots if slot.builder.log_group == THUMBNAILER_GROUP)
        self.lambda_envs: list[_Slot] = [self.lambda_slot]

    # ---- small random helpers ------------------------------------------------------------------

    def _slot(  # noqa: PLR0913
        self,
        group: str,
        stream: str,
        make: Callable[[_Slot, int], _Record],
        fallback: Callable[[_Slot, int], _Record],
        weight: float,
        *,
        host: str = "",
        variant: str = "",
    ) -> _Slot:
        return _Slot(
            StreamBuilder(group, stream), make, fallback, weight, self.batch_target(), host=host, variant=variant
        )

    def batch_target(self) -> int:
        return self.rng.randint(100, MAX_BATCH_EVENTS)

    def lambda_stream_name(self) -> str:
        return f"{self.lambda_day}/[$LATEST]{self.hex(32)}"

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(4 * digits):0{digits}x}"

    def uuid4(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def study_uid(self) -> str:
        rng = self.rng
        root = _UID_ROOTS[rng.randrange(len(_UID_ROOTS))]
        return (
            f"{root}.{rng.randrange(10**8, 10**9)}.{rng.randrange(100, 1000)}"
            f".{rng.randrange(10**9, 2 * 10**9)}.{rng.randrange(1, 1000)}"
        )

    def modality(self) -> tuple[str, int]:
        index = bisect.bisect_right(_MODALITY_CUM, self.rng.randrange(100))
        name, low, high = _MODALITIES[index]
        return name, self.rng.randint(low, high)

    def duration(self) -> int:
        if self.chance(0.015):
            return self.rng.randint(5001, 15000)
        return max(1, min(4999, int(self.rng.lognormvariate(4.4, 0.9))))

    def status(self, method: str) -> int:  # noqa: PLR0911
        r = self.rng.random()
        ok = 201 if method == "POST" else 200
        if r < 0.86:
            return ok
        if r < 0.90:
            return 304 if method == "GET" else ok
        if r < 0.93:
            return 404
        if r < 0.95:
            return 400
        if r < 0.97:
            return 401
        if r < 0.98:
            return 403
        if r < 0.995:
            return 500
        return 503

    def request(self) -> tuple[str, str]:  # noqa: PLR0911
        r = self.rng.random()
        if r < 0.35:
            return "GET", f"/api/studies/{self.study_uid()}"
        if r < 0.48:
            return "GET", f"/api/studies/{self.study_uid()}/series"
        if r < 0.62:
            uid = self.study_uid()
            instance = f"{uid}.1.{self.rng.randint(1, 400)}"
            return "GET", f"/dicomweb/studies/{uid}/series/{uid}.1/instances/{instance}/frames/1"
        if r < 0.74:
            return "GET", "/api/worklist?status=unread&modality=" + self.modality()[0]
        if r < 0.84:
            return "POST", f"/api/studies/{self.study_uid()}/reports"
        if r < 0.93:
            return "POST", "/dicomweb/studies"
        return "GET", "/api/auth/me"

    def ip(self) -> str:
        if self.chance(0.8):
            return f"10.0.{self.rng.randint(1, 3)}.{self.rng.randint(5, 250)}"
        return f"203.0.113.{self.rng.randint(1, 254)}"

    def user(self) -> tuple[str, bool]:
        """A username; True when it is an email address (counts as PII)."""
        if self.chance(0.08):
            return self.email(), True
        return _USERNAMES[self.rng.randrange(len(_USERNAMES))], False

    # ---- PII items ------------------------------------------------------------------------------

    def person(self) -> tuple[str, str]:
        return _PEOPLE[self.rng.randrange(len(_PEOPLE))]

    def email(self) -> str:
        family, given = self.person()
        domain = _EMAIL_DOMAINS[self.rng.randrange(len(_EMAIL_DOMAINS))]
        return f"{given.lower()}.{family.lower()}{self.rng.randint(1, 99)}@{domain}"

    def phone(self) -> str:
        return f"010-{self.rng.randint(1000, 9999)}-{self.rng.randint(1000, 9999)}"

    def patient_name(self) -> str:
        family, given = self.person()
        return f"{family}^{given}"

    def patient_id(self) -> str:
        return f"P-{self.rng.randint(1, 999999):06d}"

    def birth_date_tag(self) -> str:
        rng = self.rng
        return f"(0010,0030) DA [{rng.randint(1935, 2015)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}]"

    def bearer(self, ts: int) -> str:
        header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').rstrip(b"=").decode()
        claims = {
            "sub": self.uuid4(),
            "preferred_username": _USERNAMES[self.rng.randrange(len(_USERNAMES))],
            "exp": ts // 1000 + 300,
        }
        payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
        signature = base64.urlsafe_b64encode(self.rng.randbytes(32)).rstrip(b"=").decode()
        return f"Bearer {header}.{payload}.{signature}"

    def dsn(self) -> str:
        return f"postgres://pacs:{self.hex(8)}@db:5432/pacs"

    # ---- pacs-backend ---------------------------------------------------------------------------

    def backend_json(self, slot: _Slot, ts: int) -> _Record:
        r = self.rng.random()
        rid = self.uuid4()
        counts: dict[str, int] = {}
        env = self.env
        if r < 0.55:
            return self.backend_json_fb(slot, ts)
        if r < 0.67:
            modality, instances = self.modality()
            line = backend_dicom_processed_json(
                ts,
                request_id=rid,
                study_uid=self.study_uid(),
                modality=modality,
                instances=instances,
                duration_ms=self.rng.randint(40, 200) * max(1, instances // 20),
                environment=env,
            )
            return [(ts, line)], {"dicom_processed": 1}
        if r < 0.89:
            logger, message, fields = self.backend_info_fields()
            return [
                (
                    ts,
                    backend_json_line(
                        ts, level="INFO", logger=logger, message=message, request_id=rid, fields=fields, environment=env
                    ),
                )
            ], counts
        if r < 0.935:
            logger, message, fields = self.backend_warning_fields()
            return [
                (
                    ts,
                    backend_json_line(
                        ts,
                        level="WARNING",
                        logger=logger,
                        message=message,
                        request_id=rid,
                        fields=fields,
                        environment=env,
                    ),
                )
            ], counts
        if r < 0.955:
            return [(ts, self.backend_error_json_line(ts, rid))], {"backend_errors": 1}
        return [(ts, self.backend_pii_json(ts, rid))], {"pii_lines": 1}

    def backend_json_fb(self, _slot: _Slot, ts: int) -> _Record:
        method, path = self.request()
        duration = self.duration()
        line = backend_request_completed_json(
            ts,
            request_id=self.uuid4(),
            method=method,
            path=path,
            status=self.status(method),
            duration_ms=duration,
            environment=self.env,
        )
        counts = {"request_completed": 1}
        if duration > 5000:
            counts["slow_requests"] = 1
        return [(ts, line)], counts

    def backend_info_fields(self) -> tuple[str, str, dict[str, object]]:
        r = self.rng.random()
        if r < 0.3:
            return "pacs.cache", "Study metadata cached", {"study_uid": self.study_uid(), "ttl": 300}
        if r < 0.55:
            modality = self.modality()[0]
            return "pacs.worklist", "Worklist query executed", {"rows": self.rng.randint(0, 250), "modality": modality}
        if r < 0.8:
            return (
                "pacs.dicomweb",
                "WADO-RS frame served",
                {"study_uid": self.study_uid(), "bytes": self.rng.randint(40_000, 4_000_000)},
            )
        if r < 0.92:
            return "pacs.reports", "Report saved", {"report_id": self.uuid4(), "study_uid": self.study_uid()}
        uid = self.study_uid()
        key = f"studies/{uid}/{self.uuid4()}.dcm"
        return "pacs.storage", "Instance uploaded", {"bucket": f"pacs-dicom-{self.env}", "key": key}

    def backend_warning_fields(self) -> tuple[str, str, dict[str, object]]:
        if self.chance(0.6):
            return (
                "pacs.db",
                "Slow query detected",
                {"duration": self.rng.randint(1000, 4800), "query": "select_study_instances"},
            )
        return "pacs.storage", "Retrying S3 upload", {"attempt": self.rng.randint(1, 3), "error": "ReadTimeoutError"}

    def backend_error_json_line(self, ts: int, rid: str) -> str:
        if self.chance(0.6):
            exc = "\n".join(
                python_traceback_lines(
                    _TB_STORE,
                    "psycopg.errors.UniqueViolation",
                    'duplicate key value violates unique constraint "instances_pkey"',
                )
            )
            return backend_error_json(
                ts,
                logger="pacs.dicom",
                message="Failed to store instance",
                request_id=rid,
                exc_info=exc,
                fields={"study_uid": self.study_uid()},
                environment=self.env,
            )
        return backend_error_json(
            ts,
            logger="pacs.api",
            message="Upstream PACS node unreachable",
            request_id=rid,
            fields={"node": f"orthanc-{self.rng.randint(1, 3)}", "error": "ConnectTimeout"},
            environment=self.env,
        )

    def backend_pii_json(self, ts: int, rid: str) -> str:
        env = self.env
        r = self.rng.random()
        if r < 0.3:
            return backend_json_line(
                ts,
                level="INFO",
                logger="pacs.worklist",
                message="Patient lookup",
                request_id=rid,
                fields={"PatientID": self.patient_id(), "matches": 1},
                environment=env,
            )
        if r < 0.5:
            return backend_json_line(
                ts,
                level="INFO",
                logger="pacs.reports",
                message="Report shared",
                request_id=rid,
                fields={"recipient": self.email()},
                environment=env,
            )
        if r < 0.7:
            return backend_json_line(
                ts,
                level="WARNING",
                logger="pacs.dicom",
                message="Unexpected patient tag",
                request_id=rid,
                fields={"tag": self.birth_date_tag(), "study_uid": self.study_uid()},
                environment=env,
            )
        if r < 0.88:
            return backend_json_line(
                ts,
                level="WARNING",
                logger="pacs.auth",
                message="Token rejected",
                request_id=rid,
                fields={"authorization": self.bearer(ts)},
                environment=env,
            )
        return backend_json_line(
            ts,
            level="INFO",
            logger="pacs.db",
            message="Database pool initialised",
            fields={"dsn": self.dsn(), "pool_size": 10},
            environment=env,
        )

    def backend_text(self, slot: _Slot, ts: int) -> _Record:  # noqa: PLR0911
        r = self.rng.random()
        rid = self.uuid4()
        if r < 0.55:
            return self.backend_text_fb(slot, ts)
        if r < 0.67:
            modality, instances = self.modality()
            line = python_text_line(
                ts,
                level="INFO",
                logger="pacs.dicom",
                message="DICOM processed",
                request_id=rid,
                fields={"study_uid": self.study_uid(), "modality": modality, "instances": instances},
            )
            return [(ts, line)], {"dicom_processed": 1}
        if r < 0.89:
            logger, message, fields = self.backend_info_fields()
            return [
                (ts, python_text_line(ts, level="INFO", logger=logger, message=message, request_id=rid, fields=fields))
            ], {}
        if r < 0.93:
            logger, message, fields = self.backend_warning_fields()
            return [
                (
                    ts,
                    python_text_line(
                        ts, level="WARNING", logger=logger, message=message, request_id=rid, fields=fields
                    ),
                )
            ], {}
        if r < 0.945:
            line = python_text_line(
                ts,
                level="ERROR",
                logger="pacs.dicom",
                message="Failed to store instance",
                request_id=rid,
                fields={"study_uid": self.study_uid(), "error": "UniqueViolation"},
            )
            return [(ts, line)], {"backend_errors": 1}
        if r < 0.96:
            return self.split_python_traceback(ts, rid)
        return [(ts, self.backend_pii_text(ts, rid))], {"pii_lines": 1}

    def backend_text_fb(self, _slot: _Slot, ts: int) -> _Record:
        method, path = self.request()
        duration = self.duration()
        line = python_text_line(
            ts,
            level="INFO",
            logger="pacs.api",
            message="Request completed",
            request_id=self.uuid4(),
            fields={"duration": duration, "status": self.status(method), "method": method, "path": path},
        )
        counts = {"request_completed": 1}
        if duration > 5000:
            counts["slow_requests"] = 1
        return [(ts, line)], counts

    def backend_pii_text(self, ts: int, rid: str) -> str:
        r = self.rng.random()
        if r < 0.4:
            return python_text_line(
                ts,
                level="INFO",
                logger="pacs.worklist",
                message="Worklist query",
                request_id=rid,
                fields={"PatientName": self.patient_name(), "modality": self.modality()[0]},
            )
        if r < 0.7:
            return python_text_line(
                ts,
                level="INFO",
                logger="pacs.notify",
                message="SMS notification sent",
                request_id=rid,
                fields={"phone": self.phone()},
            )
        return python_text_line(
            ts,
            level="INFO",
            logger="pacs.reports",
            message="Report shared",
            request_id=rid,
            fields={"recipient": self.email()},
        )

    def split_python_traceback(self, ts: int, rid: str) -> _Record:
        """An ERROR line followed by its traceback, one CloudWatch event per line (awslogs driver)."""
        header = python_text_line(
            ts,
            level="ERROR",
            logger="pacs.api",
            message="Unhandled exception",
            request_id=rid,
            fields={"path": f"/api/studies/{self.study_uid()}"},
        )
        r = self.rng.random()
        if r < 0.4:
            body = python_traceback_lines(_TB_GET_STUDY, "ValueError", "study not found")
        elif r < 0.7:
            body = chained_traceback_lines(
                python_traceback_lines(
                    _TB_DB_CAUSE,
                    "psycopg.OperationalError",
                    "consuming input failed: server closed the connection unexpectedly",
                ),
                python_traceback_lines(
                    _TB_DB_EFFECT, "pacs.repo.errors.StudyUnavailable", "study temporarily unavailable"
                ),
            )
        else:
            body = python_traceback_lines(_TB_PARSE, "KeyError", "(0020,000E)")
        return self.split_lines(ts, header, body), {"backend_errors": 1, "multiline_tracebacks": 1}

    def split_lines(self, ts: int, header: str, body: Sequence[str]) -> list[_Line]:
        """One event per line, as the awslogs driver writes them: same or +1 ms, blank lines dropped."""
        lines: list[_Line] = [(ts, header)]
        t = ts
        for text in body:
            if not text:
                continue
            t += self.rng.randint(0, 1)
            lines.append((t, text))
        return lines

    def backend_space(self, slot: _Slot, ts: int) -> _Record:
        r = self.rng.random()
        rid = self.uuid4()
        if r < 0.62:
            return self.backend_space_fb(slot, ts)
        if r < 0.82:
            return [(ts, space_delimited_line(ts, "INFO", "DICOM processed", self.study_uid(), request_id=rid))], {
                "dicom_processed": 1
            }
        if r < 0.9:
            return [
                (ts, space_delimited_line(ts, "INFO", "Worklist query", self.rng.randint(0, 250), request_id=rid))
            ], {}
        if r < 0.94:
            return [
                (ts, space_delimited_line(ts, "WARN", "Slow query", self.rng.randint(1000, 4800), request_id=rid))
            ], {}
        if r < 0.965:
            reason = ("timeout", "refused", "too_many_connections")[self.rng.randrange(3)]
            return [(ts, space_delimited_line(ts, "ERROR", "Database connection failed", reason, request_id=rid))], {
                "backend_errors": 1
            }
        if self.chance(0.5):
            line = space_delimited_line(ts, "INFO", "Notification sent", self.email(), request_id=rid)
        else:
            line = space_delimited_line(ts, "INFO", "SMS sent", self.phone(), request_id=rid)
        return [(ts, line)], {"pii_lines": 1}

    def backend_space_fb(self, _slot: _Slot, ts: int) -> _Record:
        duration = self.duration()
        line = space_delimited_line(ts, "INFO", "Request completed", duration, request_id=self.uuid4())
        counts = {"request_completed": 1}
        if duration > 5000:
            counts["slow_requests"] = 1
        return [(ts, line)], counts

    def backend_errors(self, slot: _Slot, ts: int) -> _Record:
        r = self.rng.random()
        rid = self.uuid4()
        if r < 0.4:
            return self.split_python_traceback(ts, rid)
        if r < 0.7:
            return self.backend_errors_fb(slot, ts)
        return [(ts, self.backend_error_json_line(ts, rid))], {"backend_errors": 1}

    def backend_errors_fb(self, _slot: _Slot, ts: int) -> _Record:
        rid = self.uuid4()
        uid = self.study_uid()
        counts = {"backend_errors": 1}
        extra: dict[str, object] = {"request_id": rid, "study_uid": uid}
        if self.chance(0.12):
            extra["PatientID"] = self.patient_id()
            counts["pii_lines"] = 1
        exc = "\n".join(
            python_traceback_lines(
                _TB_STORE,
                "psycopg.errors.UniqueViolation",
                'duplicate key value violates unique constraint "instances_pkey"',
            )
        )
        line = backend_nested_extra_json(
            ts, levelname="ERROR", name="pacs.dicom", message="Failed to store instance", extra=extra, exc_info=exc
        )
        return [(ts, line)], counts

    # ---- LLM calls --------------------------------------------------------------------------------

    def llm(self, _slot: _Slot, ts: int) -> _Record:
        rng = self.rng
        provider, model, in_price, out_price = _LLM_MODELS[rng.randrange(len(_LLM_MODELS))]
        name, template = _LLM_TASKS[rng.randrange(len(_LLM_TASKS))]
        uid = self.study_uid()
        prompt = template.format(mod=self.modality()[0], uid=uid, findings=_FINDINGS[rng.randrange(len(_FINDINGS))])
        counts: dict[str, int] = {"llm_calls": 1}
        if self.chance(0.06):
            prompt += f" Header: PatientName={self.patient_name()}"
            counts["pii_lines"] = 1
        error: str | None = None
        input_tokens = rng.randint(180, 2400)
        if self.chance(0.015):
            error = "RateLimitError: 429 Too Many Requests"
            output_tokens = 0
            completion = ""
            latency = rng.randint(80, 600)
        else:
            output_tokens = rng.randint(40, 600)
            completion = _COMPLETIONS[rng.randrange(len(_COMPLETIONS))]
            latency = rng.randint(350, 9000)
        cost = round((input_tokens * in_price + output_tokens * out_price) / 1_000_000, 6)
        call = LlmCall(
            name=name,
            provider=provider,
            model=model,
            prompt=prompt,
            completion=completion,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            latency_ms=latency,
            trace_id=self.hex(32),
            span_id=self.hex(16),
            session_id=f"sess-{self.hex(12)}",
            user_id=f"radiologist-{rng.randint(1, 40)}",
            study_uid=uid,
            error=error,
        )
        counts["llm_input_tokens"] = input_tokens
        counts["llm_output_tokens"] = output_tokens
        shape = rng.randrange(4)
        render = (llm_call_flat, llm_call_openai, llm_call_anthropic, llm_call_otel)[shape]
        if provider == "anthropic" and shape == 1:
            render = llm_call_anthropic
        elif provider == "openai" and shape == 2:
            render = llm_call_openai
        return [(ts, render(ts, call, environment=self.env))], counts

    # ---- Keycloak -----------------------------------------------------------------------------------

    def kc_thread(self) -> str:
        return f"executor-thread-{self.rng.randint(1, 24)}"

    def kc_event(self, *, quoted: bool, success_level: str) -> tuple[str, str, str, dict[str, int]]:  # noqa: PLR0911
        """(level, category, message, counts) for one Keycloak event-listener line."""
        rng = self.rng
        r = rng.random()
        client = _KC_CLIENTS[rng.randrange(len(_KC_CLIENTS))]
        ip = self.ip()
        counts: dict[str, int] = {}
        redirect = "https://pacs.example.com/viewer"
        if r < 0.13:
            username, is_email = self.user()
            error = (
                "invalid_user_credentials",
                "invalid_user_credentials",
                "invalid_user_credentials",
                "user_not_found",
                "user_not_found",
                "user_temporarily_disabled",
                "expired_code",
            )[rng.randrange(7)]
            user_id = None if error == "user_not_found" else self.uuid4()
            details = (
                {} if quoted else {"auth_method": "openid-connect", "redirect_uri": redirect, "code_id": self.uuid4()}
            )
            text = keycloak_event_details(
                "LOGIN_ERROR",
                realm_id="pacs",
                client_id=client,
                user_id=user_id,
                ip_address=ip,
                error=error,
                details=details,
                username=username,
                quoted=quoted,
            )
            counts["auth_failures"] = 1
            if is_email:
                counts["pii_lines"] = 1
            return "WARN", "org.keycloak.events", text, counts
        if r < 0.55:
            username, is_email = self.user()
            details = {
                "auth_method": "openid-connect",
                "auth_type": "code",
                "redirect_uri": redirect,
                "consent": "no_consent_required",
                "code_id": self.uuid4(),
            }
            text = keycloak_event_details(
                "LOGIN",
                realm_id="pacs",
                client_id=client,
                user_id=self.uuid4(),
                ip_address=ip,
                details=details,
                username=username,
                quoted=quoted,
            )
            if is_email:
                counts["pii_lines"] = 1
            return success_level, "org.keycloak.events", text, counts
        if r < 0.8:
            details = {
                "token_id": self.uuid4(),
                "grant_type": "authorization_code",
                "refresh_token_type": "Refresh",
                "scope": "openid profile",
                "refresh_token_id": self.uuid4(),
                "code_id": self.uuid4(),
                "client_auth_method": "client-secret",
            }
            text = keycloak_event_details(
                "CODE_TO_TOKEN",
                realm_id="pacs",
                client_id=client,
                user_id=self.uuid4(),
                ip_address=ip,
                details=details,
                quoted=quoted,
            )
            return success_level, "org.keycloak.events", text, counts
        if r < 0.93:
            details = {"token_id": self.uuid4(), "grant_type": "refresh_token", "refresh_token_id": self.uuid4()}
            text = keycloak_event_details(
                "REFRESH_TOKEN",
                realm_id="pacs",
                client_id=client,
                user_id=self.uuid4(),
                ip_address=ip,
                details=details,
                quoted=quoted,
            )
            return success_level, "org.keycloak.events", text, counts
        if r < 0.94:
            text = keycloak_event_details(
                "REFRESH_TOKEN_ERROR",
                realm_id="pacs",
                client_id=client,
                user_id=None,
                ip_address=ip,
                error="invalid_token",
                details={"grant_type": "refresh_token"},
                quoted=quoted,
            )
            return "WARN", "org.keycloak.events", text, counts
        if r < 0.98:
            text = keycloak_event_details(
                "LOGOUT",
                realm_id="pacs",
                client_id=client,
                user_id=self.uuid4(),
                ip_address=ip,
                details={"redirect_uri": redirect},
                quoted=quoted,
            )
            return success_level, "org.keycloak.events", text, counts
        return (
            "INFO",
            "org.infinispan.CLUSTER",
            "ISPN000094: Received new cluster view for channel ISPN: [keycloak-0|3] (2) [keycloak-0, keycloak-1]",
            counts,
        )

    def keycloak_jboss(self, slot: _Slot, ts: int) -> _Record:
        if self.chance(0.012):
            return self.split_java_trace(ts)
        return self.keycloak_fb(slot, ts)

    def keycloak_fb(self, slot: _Slot, ts: int) -> _Record:
        quoted = slot.variant == "quoted"
        level, category, text, counts = self.kc_event(quoted=quoted, success_level="INFO" if quoted else "DEBUG")
        thread = self.kc_thread() if category == "org.keycloak.events" else "jgroups-5,keycloak-0"
        return [(ts, keycloak_jboss_line(ts, level=level, category=category, thread=thread, message=text))], counts

    def split_java_trace(self, ts: int) -> _Record:
        """A Keycloak ERROR line and its Java stack trace, one event per line."""
        header = keycloak_jboss_line(
            ts,
            level="ERROR",
            category="org.keycloak.services",
            thread=self.kc_thread(),
            message="KC-SERVICES0013: Failed authentication",
        )
        body = java_stack_trace_lines(
            "java.lang.NullPointerException",
            'Cannot invoke "String.length()" because "<parameter1>" is null',
            _KC_FRAMES,
            cause=(
                "org.postgresql.util.PSQLException",
                (
                    "Connection to keycloak-db:5432 refused. Check that the hostname and port are correct and "
                    "that the postmaster is accepting TCP/IP connections."
                ),
                _KC_CAUSE_FRAMES,
                42,
            ),
        )
        return self.split_lines(ts, header, body), {"keycloak_errors": 1, "multiline_tracebacks": 1}

    def keycloak_json(self, slot: _Slot, ts: int) -> _Record:
        slot.sequence += 1
        if self.chance(0.008):
            trace = "\n".join(
                java_stack_trace_lines(
                    "java.lang.NullPointerException",
                    'Cannot invoke "String.length()" because "<parameter1>" is null',
                    _KC_FRAMES,
                )
            )
            line = keycloak_json_line(
                ts,
                level="ERROR",
                logger_name="org.keycloak.services",
                message="KC-SERVICES0013: Failed authentication",
                sequence=slot.sequence,
                thread_name=self.kc_thread(),
                thread_id=self.rng.randint(30, 120),
                host_name=slot.host,
                stack_trace=trace,
            )
            return [(ts, line)], {"keycloak_errors": 1}
        level, category, text, counts = self.kc_event(quoted=True, success_level="INFO")
        line = keycloak_json_line(
            ts,
            level=level,
            logger_name=category,
            message=text,
            sequence=slot.sequence,
            thread_name=self.kc_thread(),
            thread_id=self.rng.randint(30, 120),
            host_name=slot.host,
        )
        return [(ts, line)], counts

    def keycloak_space(self, _slot: _Slot, ts: int) -> _Record:
        username, is_email = self.user()
        counts: dict[str, int] = {"pii_lines": 1} if is_email else {}
        r = self.rng.random()
        if r < 0.25:
            counts["auth_failures"] = 1
            return [(ts, space_delimited_line(ts, "WARN", "Authentication failed", username, self.ip()))], counts
        if r < 0.9:
            return [(ts, space_delimited_line(ts, "INFO", "Login succeeded", username, self.ip()))], counts
        return [(ts, space_delimited_line(ts, "INFO", "Token refreshed", username, self.ip()))], counts

    # ---- api (logfmt) ---------------------------------------------------------------------------------

    def api_logfmt(self, slot: _Slot, ts: int) -> _Record:
        r = self.rng.random()
        if r < 0.7:
            return self.api_logfmt_fb(slot, ts)
        rid = self.uuid4()
        if r < 0.9:
            line = logfmt_line(
                ts, level="info", msg="Proxying request", fields={"upstream": "pacs-backend", "request_id": rid}
            )
            return [(ts, line)], {}
        if r < 0.95:
            line = logfmt_line(
                ts,
                level="warn",
                msg="Rate limit approaching",
                fields={"client": f"hospital-{self.rng.randint(1, 9)}", "remaining": 12},
            )
            return [(ts, line)], {}
        if r < 0.975:
            line = logfmt_line(
                ts,
                level="error",
                msg="Upstream request failed",
                fields={"upstream": "pacs-backend", "error": "context deadline exceeded", "request_id": rid},
            )
            return [(ts, line)], {"api_errors": 1}
        if self.chance(0.5):
            line = logfmt_line(
                ts, level="debug", msg="Incoming request", fields={"authorization": self.bearer(ts), "request_id": rid}
            )
        else:
            line = logfmt_line(
                ts, level="info", msg="Share link emailed", fields={"to": self.email(), "request_id": rid}
            )
        return [(ts, line)], {"pii_lines": 1}

    def api_logfmt_fb(self, _slot: _Slot, ts: int) -> _Record:
        method, path = self.request()
        duration = self.duration()
        line = logfmt_line(
            ts,
            level="info",
            msg="Request completed",
            fields={
                "duration": duration,
                "request_id": self.uuid4(),
                "method": method,
                "path": path.replace("/api/", "/v1/", 1),
                "status": self.status(method),
            },
        )
        counts = {"request_completed": 1}
        if duration > 5000:
            counts["slow_requests"] = 1
        return [(ts, line)], counts

    # ---- Lambda ---------------------------------------------------------------------------------------

    def powertools(  # noqa: PLR0913
        self,
        ts: int,
        *,
        level: str,
        location: str,
        message: str,
        rid: str,
        xray: str,
        cold: bool,
        extra: Mapping[str, object] | None = None,
        exception: str | None = None,
        exception_name: str | None = None,
    ) -> str:
        return powertools_line(
            ts,
            level=level,
            location=location,
            message=message,
            function_name=THUMBNAILER_FUNCTION,
            request_id=rid,
            xray_trace_id=xray,
            cold_start=cold,
            extra=extra,
            exception=exception,
            exception_name=exception_name,
        )

    def lambda_invocation(self, slot: _Slot, ts: int) -> _Record:
        rng = self.rng
        cold = slot.cold
        slot.cold = False
        rid = self.uuid4()
        xray = f"1-{ts // 1000:08x}-{self.hex(24)}"
        uid = self.study_uid()
        counts: dict[str, int] = {"lambda_invocations": 1}
        lines: list[_Line] = [(ts, lambda_start(rid))]
        t = ts + rng.randint(1, 4)
        lines.append(
            (
                t,
                self.powertools(
                    t,
                    level="INFO",
                    location="handler:42",
                    message="Processing DICOM object",
                    rid=rid,
                    xray=xray,
                    cold=cold,
                    extra={"bucket": f"pacs-dicom-{self.env}", "key": f"incoming/{uid}/{self.uuid4()}.dcm"},
                ),
            )
        )
        r = rng.random()
        status: str | None = None
        if r < 0.012:
            duration = 30000 + rng.uniform(20.0, 40.0)
            end = ts + int(duration)
            lines.append((end, lambda_timeout(end, rid, duration / 1000)))
            counts["lambda_timeouts"] = 1
            status = "timeout"
        elif r < 0.05:
            duration = rng.uniform(60.0, 450.0)
            end = ts + int(duration)
            t = max(t, end - rng.randint(1, 5))
            lines.append((t, self.lambda_error_line(t, rid, xray, cold)))
            counts["lambda_errors"] = 1
        else:
            duration = min(9000.0, max(40.0, rng.lognormvariate(6.4, 0.6)))
            end = ts + int(duration)
            if self.chance(0.05):
                t = min(end, t + rng.randint(5, 30))
                if self.chance(0.5):
                    line = self.powertools(
                        t,
                        level="WARNING",
                        location="render:88",
                        message="Unexpected patient tag",
                        rid=rid,
                        xray=xray,
                        cold=cold,
                        extra={"tag": self.birth_date_tag()},
                    )
                else:
                    line = lambda_text_line(t, "WARNING", rid, f"Header anomaly PatientName={self.patient_name()}")
                lines.append((t, line))
                counts["pii_lines"] = 1
            t = max(t, end - rng.randint(1, 5))
            if self.chance(0.5):
                lines.append((t, lambda_text_line(t, "INFO", rid, "Thumbnail written")))
            else:
                lines.append(
                    (
                        t,
                        self.powertools(
                            t,
                            level="INFO",
                            location="handler:61",
                            message="Thumbnail written",
                            rid=rid,
                            xray=xray,
                            cold=cold,
                            extra={"thumbnail_key": f"thumbnails/{uid}.jpg"},
                        ),
                    )
                )
        lines.append((end, lambda_end(rid)))
        lines.append(
            (
                end,
                lambda_report(
                    rid,
                    duration_ms=duration,
                    memory_size_mb=512,
                    max_memory_used_mb=rng.randint(70, 180),
                    init_duration_ms=rng.uniform(180.0, 450.0) if cold else None,
                    status=status,
                ),
            )
        )
        return lines, counts

    def lambda_error_line(self, ts: int, rid: str, xray: str, cold: bool) -> str:
        form = self.rng.randrange(3)
        tb = python_traceback_lines(_LAMBDA_TB, "KeyError", "'SeriesInstanceUID'")
        if form == 0:
            return lambda_text_line(ts, "ERROR", rid, "KeyError: 'SeriesInstanceUID'\n" + "\n".join(tb))
        if form == 1:
            stack = [f'  File "{f}", line {n}, in {fn}\n    {src}\n' for f, n, fn, src in _LAMBDA_TB]
            return lambda_runtime_error_json(rid, "KeyError", "'SeriesInstanceUID'", stack)
        return self.powertools(
            ts,
            level="ERROR",
            location="handler:57",
            message="Failed to render thumbnail",
            rid=rid,
            xray=xray,
            cold=cold,
            exception="\n".join(tb),
            exception_name="KeyError",
        )

    def lambda_fb(self, _slot: _Slot, ts: int) -> _Record:
        rid = self.uuid4()
        xray = f"1-{ts // 1000:08x}-{self.hex(24)}"
        line = self.powertools(
            ts,
            level="INFO",
            location="handler:42",
            message="Processing DICOM object",
            rid=rid,
            xray=xray,
            cold=False,
            extra={"bucket": f"pacs-dicom-{self.env}"},
        )
        return [(ts, line)], {}

    # ---- RDS PostgreSQL ---------------------------------------------------------------------------------

    def rds(self, slot: _Slot, ts: int) -> _Record:  # noqa: PLR0911
        rng = self.rng
        pid = rng.randint(1000, 65000)
        client = f"10.0.{rng.randint(1, 3)}.{rng.randint(5, 250)}({rng.randint(32768, 60999)})"
        user, db = ("pacs_app", "pacs") if self.chance(0.85) else ("keycloak", "keycloak")
        r = rng.random()

        def line(severity: str, message: str) -> str:
            return postgres_line(ts, severity, message, pid=pid, client=client, user=user, database=db)

        if r < 0.2:
            host, port = client[:-1].split("(")
            return [
                (
                    ts,
                    postgres_line(
                        ts,
                        "LOG",
                        f"connection received: host={host} port={port}",
                        pid=pid,
                        client=client,
                        user="[unknown]",
                        database="[unknown]",
                    ),
                ),
                (
                    ts,
                    line(
                        "LOG",
                        f"connection authorized: user={user} database={db} application_name="
                        "pacs-backend SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, "
                        "bits=256)",
                    ),
                ),
            ], {}
        if r < 0.32:
            host, port = client[:-1].split("(")
            return [
                (
                    ts,
                    line(
                        "LOG",
                        f"disconnection: session time: 0:{rng.randint(0, 59):02d}:"
                        f"{rng.uniform(0, 59.999):06.3f} user={user} database={db} "
                        f"host={host} port={port}",
                    ),
                )
            ], {}
        if r < 0.7:
            return self.rds_fb(slot, ts)
        if r < 0.76:
            if self.chance(0.5):
                message = "checkpoint starting: time"
            else:
                message = (
                    f"checkpoint complete: wrote {rng.randint(100, 9000)} buffers (0.{rng.randint(1, 9)}%); "
                    f"0 WAL file(s) added, 0 removed, 1 recycled; write={rng.uniform(1, 30):.3f} s, "
                    f"sync=0.00{rng.randint(1, 9)} s, total={rng.uniform(1, 30):.3f} s"
                )
            return [(ts, postgres_line(ts, "LOG", message, pid=rng.randint(300, 900)))], {}
        if r < 0.86:
            counts: dict[str, int] = {"rds_errors": 1}
            if self.chance(0.3):
                email = self.email()
                detail = f"Key (email)=({email}) already exists."
                statement = "INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3)"
                constraint = "users_email_key"
                counts["pii_lines"] = 1
            else:
                uid = self.study_uid()
                detail = f"Key (study_uid)=({uid}) already exists."
                statement = "INSERT INTO studies (study_uid, modality, study_date) VALUES ($1, $2, $3)"
                constraint = "studies_pkey"
            return [
                (ts, line("ERROR", f'duplicate key value violates unique constraint "{constraint}"')),
                (ts, line("DETAIL", detail)),
                (ts, line("STATEMENT", statement)),
            ], counts
        if r < 0.93:
            return [
                (ts, line("ERROR", "canceling statement due to statement timeout")),
                (
                    ts,
                    line(
                        "STATEMENT",
                        "SELECT s.study_uid, count(i.*) FROM studies s JOIN instances i "
                        "ON i.study_uid = s.study_uid GROUP BY s.study_uid",
                    ),
                ),
            ], {"rds_errors": 1}
        if r < 0.96:
            other = rng.randint(1000, 65000)
            xid = rng.randint(10**6, 10**7)
            return [
                (ts, line("ERROR", "deadlock detected")),
                (
                    ts,
                    line(
                        "DETAIL", f"Process {pid} waits for ShareLock on transaction {xid}; blocked by process {other}."
                    ),
                ),
                (ts, line("STATEMENT", "UPDATE studies SET status = 'read' WHERE study_uid = $1")),
            ], {"rds_errors": 1}
        role = ("report_ro", "analytics", "pacs_app")[rng.randrange(3)]
        return [
            (
                ts,
                postgres_line(
                    ts,
                    "FATAL",
                    f'password authentication failed for user "{role}"',
                    pid=pid,
                    client=client,
                    user=role,
                    database="pacs",
                ),
            ),
            (
                ts,
                postgres_line(
                    ts,
                    "DETAIL",
                    f'User "{role}" does not have a valid SCRAM secret.',
                    pid=pid,
                    client=client,
                    user=role,
                    database="pacs",
                ),
            ),
        ], {"rds_errors": 1}

    def rds_fb(self, _slot: _Slot, ts: int) -> _Record:
        rng = self.rng
        pid = rng.randint(1000, 65000)
        client = f"10.0.{rng.randint(1, 3)}.{rng.randint(5, 250)}({rng.randint(32768, 60999)})"
        duration = rng.uniform(1000.0, 4000.0) if self.chance(0.7) else rng.uniform(5000.0, 20000.0)
        statement = (
            "SELECT sop_instance_uid, instance_number FROM instances WHERE study_uid = $1 ORDER BY instance_number",
            "SELECT * FROM worklist WHERE status = 'unread' AND modality = ANY($1) ORDER BY priority DESC",
            "UPDATE studies SET last_accessed_at = now() WHERE study_uid = $1",
        )[rng.randrange(3)]
        line = postgres_line(
            ts,
            "LOG",
            f"duration: {duration:.3f} ms  statement: {statement}",
            pid=pid,
            client=client,
            user="pacs_app",
            database="pacs",
        )
        return [(ts, line)], {"rds_slow_queries": 1}

    # ---- driver -----------------------------------------------------------------------------------------

    def lambda_environment(self, ts: int) -> _Slot:
        """An idle execution environment (own log stream) for an invocation at ``ts``; a new one if all are busy."""
        for env in self.lambda_envs:
            if env.builder.last_timestamp <= ts:
                return env
        if len(self.lambda_envs) < _MAX_LAMBDA_ENVIRONMENTS:
            base = self.lambda_slot
            env = self._slot(THUMBNAILER_GROUP, self.lambda_stream_name(), base.make, base.fallback, 0.0)
            self.lambda_envs.append(env)
            return env
        return min(self.lambda_envs, key=lambda env: env.builder.last_timestamp)

    def emit(self, slot: _Slot) -> None:
        batch = slot.builder.flush()
        if batch is not None:
            self.out.append(batch)
        slot.batch_target = self.batch_target()

    def run(self, total_events: int) -> list[SyntheticStream]:
        rng = self.rng
        window_ms = max(60_000, min(600_000, total_events * 25))
        step = window_ms / max(total_events, 1)
        clock = float(self.start_ms)
        produced = 0
        top = self.cum[-1]
        while produced < total_events:
            slot = self.slots[bisect.bisect_right(self.cum, rng.random() * top)]
            if slot is self.lambda_slot:
                slot = self.lambda_environment(int(clock))
            builder = slot.builder
            ts = max(int(clock), builder.last_timestamp)
            lines, counts = slot.make(slot, ts)
            if len(lines) > total_events - produced:
                lines, counts = slot.fallback(slot, max(int(clock), builder.last_timestamp))
            size = sum(_estimate_bytes(message) for _, message in lines)
            first = builder.first_pending_timestamp
            if builder.pending_events and (
                builder.pending_events + len(lines) > slot.batch_target
                or builder.pending_bytes + size > _BATCH_BYTE_BUDGET
                or (first is not None and lines[-1][0] - first > _BATCH_MAX_SPAN_MS)
            ):
                self.emit(slot)
            builder.add(lines, counts)
            produced += len(lines)
            clock += step * len(lines) * 2.0 * rng.random()
        for slot in [*self.slots, *self.lambda_envs[1:]]:
            self.emit(slot)
        return self.out


def synthesize_workload(
    total_events: int,
    *,
    seed: int = 7,
    start_ms: int | None = None,
    environment: str = "prod",
) -> list[SyntheticStream]:
    """Generate exactly ``total_events`` realistic PACS log events as batch-sized subscription streams."""
    if total_events < 0:
        raise ValueError("total_events must be >= 0")
    if start_ms is None:
        start_ms = (int(time.time()) // 60 - 10) * 60_000
    return _Workload(random.Random(seed), start_ms, environment).run(total_events)
