"""LLM-call record -> the fields of one Langfuse generation (pure Python: no OTel, no Langfuse import).

Accepted shapes, all from real applications:
- flat fields: ``model``, ``prompt``/``input``, ``completion``/``output``, ``prompt_tokens``,
  ``completion_tokens``, ``total_tokens``, ``total_cost``, ``latency_ms`` or ``start_time``/``end_time``,
  ``trace_id``, ``session_id``, ``user_id``, ``name``, ``metadata``;
- OpenAI style ``usage.prompt_tokens`` / ``usage.completion_tokens`` / ``usage.total_tokens``;
- Anthropic style ``usage.input_tokens`` / ``usage.output_tokens`` (cache token counts kept as is);
- OpenTelemetry GenAI names (``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ...).
A record whose fields are missing or of the wrong type raises ``MappingError`` naming the field.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from logpipe.records import Level, LogRecord

_MODEL_KEYS = ("model", "gen_ai.response.model", "gen_ai.request.model", "model_name")
_INPUT_KEYS = ("prompt", "input", "messages", "gen_ai.prompt", "gen_ai.input.messages")
_OUTPUT_KEYS = ("completion", "output", "response", "gen_ai.completion", "gen_ai.output.messages")
# Every field the mapping reads an LLM call's prompt or response from (LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES).
CONTENT_KEYS = frozenset(_INPUT_KEYS + _OUTPUT_KEYS)
_NAME_KEYS = ("name", "gen_ai.operation.name")
_TRACE_KEYS = ("trace_id", "traceId", "langfuse_trace_id")
_USER_KEYS = ("user_id", "user.id", "userId")
_SESSION_KEYS = ("session_id", "session.id", "sessionId")
_RELEASE_KEYS = ("release", "service_version", "version")
_INPUT_TOKEN_KEYS = ("input_tokens", "prompt_tokens")
_OUTPUT_TOKEN_KEYS = ("output_tokens", "completion_tokens")
_GENAI_INPUT_TOKEN_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_GENAI_OUTPUT_TOKEN_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
_COST_KEYS = ("total_cost", "cost_usd", "cost", "gen_ai.usage.cost")
_LATENCY_MS_KEYS = ("latency_ms", "duration_ms", "elapsed_ms")
# Keys that describe the log line itself or were mapped to a generation field: not repeated as metadata.
_CONSUMED = frozenset(
    {
        *_MODEL_KEYS,
        *_INPUT_KEYS,
        *_OUTPUT_KEYS,
        *_NAME_KEYS,
        *_TRACE_KEYS,
        *_USER_KEYS,
        *_SESSION_KEYS,
        *_RELEASE_KEYS,
        *_INPUT_TOKEN_KEYS,
        *_OUTPUT_TOKEN_KEYS,
        *_GENAI_INPUT_TOKEN_KEYS,
        *_GENAI_OUTPUT_TOKEN_KEYS,
        *_COST_KEYS,
        *_LATENCY_MS_KEYS,
        "total_tokens",
        "usage",
        "input_cost",
        "output_cost",
        "start_time",
        "end_time",
        "timestamp",
        "time",
        "level",
        "event",
        "message",
        "msg",
        "metadata",
        "environment",
        "error",
        "error.type",
    },
)
# Langfuse accepts environments matching this (and not starting with "langfuse").
_ENVIRONMENT_RE = re.compile(r"^(?!langfuse)[a-z0-9_-]{1,40}$")
# An epoch number's unit, from its size: below 1e11 seconds (until year 5138), below 1e14
# milliseconds, below 1e17 microseconds, else nanoseconds. Today is ~1.8e9 s = 1.8e12 ms = 1.8e15 us.
_EPOCH_MS_THRESHOLD = 100_000_000_000
_EPOCH_US_THRESHOLD = 100_000_000_000_000
_EPOCH_NS_THRESHOLD = 100_000_000_000_000_000
_NS_PER_MS = 1_000_000
# OTLP carries times as fixed64 nanoseconds and Langfuse stores them as ClickHouse DateTime64(3)
# (years 1900-2299); int64 nanoseconds (until 2262-04-11) fit every reader. A start or end outside
# [1970, 2262) is replaced by the log event's own time (start = end: a point in time), the logged
# values are kept in metadata ``time_out_of_range``, and the sink counts it (LangfuseTimesClamped).
MAX_OTLP_NS = 2**63 - 1
TIME_OUT_OF_RANGE_KEY = "time_out_of_range"


class MappingError(ValueError):
    """A record cannot become a generation; the message names the field and the problem."""


@dataclass(frozen=True, slots=True)
class Generation:
    """Everything one Langfuse generation needs, with ids already derived."""

    event_id: str
    trace_seed: str
    trace_id: str
    observation_id: str
    name: str
    model: str
    start_ns: int
    end_ns: int
    input: Any
    output: Any
    usage: dict[str, int]
    cost: dict[str, float]
    user_id: str | None
    session_id: str | None
    environment: str
    release: str | None
    level: str | None
    status_message: str | None
    service: str
    log_group: str
    log_stream: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for parking); ``from_json`` restores it."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Generation:
        """Restore a parked generation."""
        return cls(**{name: data[name] for name in cls.__slots__ if name in data})


def create_trace_id(seed: str) -> str:
    """The trace id ``Langfuse.create_trace_id(seed=...)`` returns: ``sha256(seed)[:16]`` as hex."""
    return hashlib.sha256(seed.encode("utf-8")).digest()[:16].hex()


def create_observation_id(seed: str) -> str:
    """The observation (span) id Langfuse derives from a seed: ``sha256(seed)[:8]`` as hex."""
    return hashlib.sha256(seed.encode("utf-8")).digest()[:8].hex()


def _first(fields: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, Any] | None:
    for key in keys:
        value = fields.get(key)
        if value is not None:
            return key, value
    return None


def _text(fields: Mapping[str, Any], keys: tuple[str, ...], *, required: bool = False) -> str | None:
    found = _first(fields, keys)
    if found is None:
        if required:
            msg = f"missing {keys[0]} (looked for {', '.join(keys)})"
            raise MappingError(msg)
        return None
    key, value = found
    if isinstance(value, str):
        if not value.strip() and required:
            msg = f"{key}: empty"
            raise MappingError(msg)
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # numeric ids (user 17) are common and unambiguous
    msg = f"{key}: expected a string, got {type(value).__name__}"
    raise MappingError(msg)


def _described(value: object) -> str:
    # Mapping errors end up in parked items and logs: say what a value is, never what it says.
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return f"a {type(value).__name__}"


def _count(name: str, value: object) -> int:
    if isinstance(value, bool):
        msg = f"{name}: expected a non-negative integer, got a boolean"
        raise MappingError(msg)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        msg = f"{name}: expected a non-negative integer, got {_described(value)}"
        raise MappingError(msg)
    if number < 0:
        msg = f"{name}: negative token count {number}"
        raise MappingError(msg)
    return number


def _amount(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        msg = f"{name}: expected a number, got {type(value).__name__}"
        raise MappingError(msg)
    try:
        number = float(value)
    except ValueError:
        msg = f"{name}: expected a number, got {_described(value)}"
        raise MappingError(msg) from None
    if not math.isfinite(number) or number < 0:
        msg = f"{name}: not a valid cost ({'negative' if number < 0 else 'not finite'})"
        raise MappingError(msg)
    return number


def _usage(fields: Mapping[str, Any]) -> dict[str, int]:
    usage: dict[str, int] = {}
    nested = fields.get("usage")
    if nested is not None and not isinstance(nested, Mapping):
        msg = f"usage: expected an object, got {type(nested).__name__}"
        raise MappingError(msg)
    sources: list[tuple[str, Mapping[str, Any], tuple[str, ...], tuple[str, ...], str]] = [
        ("", fields, _INPUT_TOKEN_KEYS, _OUTPUT_TOKEN_KEYS, "total_tokens"),
        ("", fields, _GENAI_INPUT_TOKEN_KEYS, _GENAI_OUTPUT_TOKEN_KEYS, "gen_ai.usage.total_tokens"),
    ]
    if nested is not None:
        sources.insert(0, ("usage.", nested, _INPUT_TOKEN_KEYS, _OUTPUT_TOKEN_KEYS, "total_tokens"))
    for prefix, source, input_keys, output_keys, total_key in sources:
        for target, keys in (("input", input_keys), ("output", output_keys), ("total", (total_key,))):
            if target in usage:
                continue
            found = _first(source, keys)
            if found is not None:
                usage[target] = _count(prefix + found[0], found[1])
    if isinstance(nested, Mapping):
        # Provider-specific counts (Anthropic cache reads/writes, OpenAI reasoning) kept under their names.
        for key, value in nested.items():
            if key not in _INPUT_TOKEN_KEYS + _OUTPUT_TOKEN_KEYS + ("total_tokens",) and isinstance(value, int):
                usage[str(key)] = _count(f"usage.{key}", value)
    return usage


def _cost(fields: Mapping[str, Any]) -> dict[str, float]:
    cost: dict[str, float] = {}
    found = _first(fields, _COST_KEYS)
    if found is not None:
        key, value = found
        if isinstance(value, Mapping):
            for part in ("input", "output", "total"):
                if value.get(part) is not None:
                    cost[part] = _amount(f"{key}.{part}", value[part])
        else:
            cost["total"] = _amount(key, value)
    for key, target in (("input_cost", "input"), ("output_cost", "output")):
        if fields.get(key) is not None:
            cost[target] = _amount(key, fields[key])
    return cost


def _epoch_ns(name: str, value: object) -> int:
    if isinstance(value, bool):
        msg = f"{name}: expected a timestamp, got a boolean"
        raise MappingError(msg)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            msg = f"{name}: not a finite timestamp"
            raise MappingError(msg)
        magnitude = abs(value)
        if magnitude < _EPOCH_MS_THRESHOLD:
            return round(value * 1_000_000_000)
        if magnitude < _EPOCH_US_THRESHOLD:
            return round(value * _NS_PER_MS)
        if magnitude < _EPOCH_NS_THRESHOLD:
            return round(value * 1000)
        return round(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            msg = f"{name}: not an ISO-8601 timestamp ({_described(value)})"
            raise MappingError(msg) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # application logs without an offset are UTC here
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    msg = f"{name}: expected a timestamp, got {type(value).__name__}"
    raise MappingError(msg)


def _in_otlp_range(nanoseconds: int) -> bool:
    return 0 <= nanoseconds <= MAX_OTLP_NS


def _times(record: LogRecord, fields: Mapping[str, Any]) -> tuple[int, int, dict[str, Any] | None]:
    """Start and end in ns; with the logged values when they had to be replaced by the event's time."""
    start_ns, end_ns = _logged_times(record, fields)
    if _in_otlp_range(start_ns) and _in_otlp_range(end_ns):
        return start_ns, end_ns, None
    event_ns = record.timestamp_ms * _NS_PER_MS
    if not _in_otlp_range(event_ns):
        msg = "timestamp: the log event's own time is out of OTLP's range (after 2262)"
        raise MappingError(msg)
    logged = {
        key: fields.get(key) for key in ("start_time", "end_time", *_LATENCY_MS_KEYS) if fields.get(key) is not None
    }
    return event_ns, event_ns, logged


def _logged_times(record: LogRecord, fields: Mapping[str, Any]) -> tuple[int, int]:
    end_value = fields.get("end_time")
    end_ns = record.timestamp_ms * _NS_PER_MS if end_value is None else _epoch_ns("end_time", end_value)
    start_value = fields.get("start_time")
    if start_value is not None:
        start_ns = _epoch_ns("start_time", start_value)
    else:
        latency = _first(fields, _LATENCY_MS_KEYS)
        if latency is None:
            start_ns = end_ns  # no duration logged: a point in time, still at the right moment
        else:
            millis = _amount(latency[0], latency[1])
            start_ns = end_ns - round(millis * _NS_PER_MS)
    if start_ns > end_ns:
        msg = "start_time is after end_time"
        raise MappingError(msg)
    return start_ns, end_ns


def _environment(record: LogRecord, fields: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    for candidate in (fields.get("environment"), metadata.get("environment"), record.environment):
        if isinstance(candidate, str) and _ENVIRONMENT_RE.match(candidate.lower()):
            return candidate.lower()
    return "default"


def _level(record: LogRecord, fields: Mapping[str, Any]) -> tuple[str | None, str | None]:
    error = fields.get("error")
    if error is not None:
        return "ERROR", str(error)
    if fields.get("error.type") is not None:
        return "ERROR", str(fields["error.type"])
    if record.level is Level.WARNING:
        return "WARNING", None
    if record.level in {Level.ERROR, Level.CRITICAL}:
        return "ERROR", record.message or None
    return None, None


def to_generation(record: LogRecord) -> Generation:
    """Map one LLM-call record; raise ``MappingError`` when a field is missing or has the wrong type."""
    fields: object = record.fields
    if not isinstance(fields, Mapping):  # typed as a Mapping, but fed from untrusted JSON
        msg = f"fields: expected an object, got {type(fields).__name__}"
        raise MappingError(msg)
    model = _text(fields, _MODEL_KEYS, required=True)
    raw_metadata = fields.get("metadata")
    if raw_metadata is not None and not isinstance(raw_metadata, Mapping):
        msg = f"metadata: expected an object, got {type(raw_metadata).__name__}"
        raise MappingError(msg)
    app_metadata: Mapping[str, Any] = raw_metadata or {}
    start_ns, end_ns, out_of_range = _times(record, fields)
    trace_seed = _text(fields, _TRACE_KEYS) or record.event_id
    level, status_message = _level(record, fields)
    input_found = _first(fields, _INPUT_KEYS)
    output_found = _first(fields, _OUTPUT_KEYS)
    metadata: dict[str, Any] = {str(key): value for key, value in app_metadata.items() if value is not None}
    for key, value in fields.items():
        if key not in _CONSUMED and value is not None:
            metadata.setdefault(key, value)
    metadata.update(
        {
            "service": record.service,
            "log_group": record.log_group,
            "log_stream": record.log_stream,
            "cloudwatch_event_id": record.event_id,
        },
    )
    if record.request_id:
        metadata["request_id"] = record.request_id
    if out_of_range is not None:
        metadata[TIME_OUT_OF_RANGE_KEY] = out_of_range
    return Generation(
        event_id=record.event_id,
        trace_seed=trace_seed,
        trace_id=create_trace_id(trace_seed),
        observation_id=create_observation_id(record.event_id),
        name=_text(fields, _NAME_KEYS) or f"{record.service} llm call",
        model=str(model),
        start_ns=start_ns,
        end_ns=end_ns,
        input=None if input_found is None else input_found[1],
        output=None if output_found is None else output_found[1],
        usage=_usage(fields),
        cost=_cost(fields),
        user_id=_text(fields, _USER_KEYS),
        session_id=_text(fields, _SESSION_KEYS),
        environment=_environment(record, fields, app_metadata),
        release=_text(fields, _RELEASE_KEYS),
        level=level,
        status_message=status_message,
        service=record.service,
        log_group=record.log_group,
        log_stream=record.log_stream,
        metadata=metadata,
    )
