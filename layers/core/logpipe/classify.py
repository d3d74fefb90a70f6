"""Sort records into the three routes: errors (Sentry), LLM calls (Langfuse), everything else."""

from __future__ import annotations

from enum import StrEnum

from logpipe.records import ERROR_LEVELS, Level, LogRecord


class RecordKind(StrEnum):
    """The route a record takes."""

    ERROR = "error"
    LLM = "llm"
    OTHER = "other"


# Levels an application gives to lines that are context, not problems (an access log line, a trace).
_CONTEXT_LEVELS = frozenset({Level.DEBUG, Level.INFO})
_TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens", "usage")
_GENAI_KEYS = ("gen_ai.request.model", "gen_ai.system", "gen_ai.usage.input_tokens", "gen_ai.response.model")


def is_llm_call(fields: object) -> bool:
    """Whether structured fields describe an LLM call (model plus usage, or OpenTelemetry GenAI names)."""
    if not isinstance(fields, dict):
        return False
    if "model" in fields:
        for key in _TOKEN_KEYS:
            if key in fields:
                return True
        if "prompt" in fields or "messages" in fields or "completion" in fields:
            return True
    for key in _GENAI_KEYS:
        if key in fields:
            return True
    return fields.get("event") == "llm_call"


def classify(record: LogRecord) -> RecordKind:
    """Decide a record's route from its log type and its content, without copying it."""
    if is_llm_call(record.fields):
        return RecordKind.LLM
    log_type = record.stream.log_type
    if log_type == "errors":
        # What an application routes to its errors group is an error by its own decision, unless the
        # line itself says it is below WARNING: then it is context (a breadcrumb of the next error of
        # its request or stream), not a Sentry issue. A line without a level is read as ERROR there.
        if record.level in _CONTEXT_LEVELS and record.exception is None:
            return RecordKind.OTHER
        return RecordKind.ERROR
    if record.level in ERROR_LEVELS or record.exception is not None:
        return RecordKind.ERROR
    return RecordKind.OTHER
