from __future__ import annotations

from typing import Any

import pytest

from logpipe.classify import RecordKind, classify, is_llm_call
from logpipe.records import Level, LogFormat, LogRecord, StreamContext

pytestmark = pytest.mark.unit


def _record(
    log_type: str, level: Level, fields: dict[str, Any] | None = None, exception: str | None = None
) -> LogRecord:
    context = StreamContext("/aws/ecs/api/" + log_type, "s", "1", "ap-northeast-2", "ecs", "api", log_type, "prod")
    return LogRecord(
        1, level, "m", "api", "prod", None, fields or {}, exception, "1", context, LogFormat.JSON, None, "m"
    )


@pytest.mark.parametrize(
    ("log_type", "level", "fields", "exception", "kind"),
    [
        ("application", Level.INFO, {}, None, RecordKind.OTHER),
        ("application", Level.WARNING, {}, None, RecordKind.OTHER),
        ("application", Level.ERROR, {}, None, RecordKind.ERROR),
        ("application", Level.CRITICAL, {}, None, RecordKind.ERROR),
        ("application", Level.INFO, {}, "Traceback (most recent call last):", RecordKind.ERROR),
        # An errors group: a line marked below WARNING is a breadcrumb of the next error, not an event.
        ("errors", Level.DEBUG, {}, None, RecordKind.OTHER),
        ("errors", Level.INFO, {}, None, RecordKind.OTHER),
        ("errors", Level.INFO, {}, "Traceback (most recent call last):", RecordKind.ERROR),
        ("errors", Level.WARNING, {}, None, RecordKind.ERROR),
        ("errors", Level.ERROR, {}, None, RecordKind.ERROR),
        ("llm", Level.INFO, {"model": "gpt-4o-mini", "prompt_tokens": 5}, None, RecordKind.LLM),
        ("llm", Level.ERROR, {"model": "gpt-4o-mini", "usage": {"input_tokens": 3}}, None, RecordKind.LLM),
        ("llm", Level.INFO, {"note": "not a call"}, None, RecordKind.OTHER),
        ("application", Level.INFO, {"gen_ai.request.model": "claude"}, None, RecordKind.LLM),
        ("application", Level.INFO, {"model": "resnet", "prompt": "x"}, None, RecordKind.LLM),
        ("application", Level.INFO, {"model": "CT-scanner-9"}, None, RecordKind.OTHER),
    ],
)
def test_classify(log_type: str, level: Level, fields: dict[str, Any], exception: str | None, kind: RecordKind) -> None:
    assert classify(_record(log_type, level, fields, exception)) is kind


def test_is_llm_call_rejects_non_dicts() -> None:
    assert not is_llm_call(None)
    assert not is_llm_call(["model"])
    assert is_llm_call({"event": "llm_call"})
