"""OTLP partial_success in a 2xx answer: decoded from protobuf or JSON, rejected spans never count as accepted."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from logpipe.langfuse.transport import PostOutcome, classify_response, partial_success

pytestmark = pytest.mark.unit

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"content-type": "application/json; charset=utf-8"}


def protobuf_answer(rejected: int, message: str) -> bytes:
    answer = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
    )
    body: bytes = answer.SerializeToString()
    return body


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (PROTOBUF, protobuf_answer(3, "span too large")),
        # The protobuf JSON mapping: lowerCamelCase names, int64 as a string.
        (JSON, json.dumps({"partialSuccess": {"rejectedSpans": "3", "errorMessage": "span too large"}}).encode()),
        # Hand-written servers use the proto names and plain numbers.
        (JSON, json.dumps({"partial_success": {"rejected_spans": 3, "error_message": "span too large"}}).encode()),
    ],
    ids=["protobuf", "json-mapping", "json-proto-names"],
)
def test_rejected_spans_make_the_request_rejected_with_the_servers_message(
    headers: dict[str, str], body: bytes
) -> None:
    assert partial_success(headers, body) == (3, "span too large")
    result = classify_response(200, headers, body)
    assert result.outcome is PostOutcome.REJECTED
    assert not result.outcome.should_retry  # the spec forbids retrying a partial success
    assert result.rejected_spans == 3
    assert result.status == 200
    assert result.reason == "partial success: 3 spans rejected: span too large"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (PROTOBUF, b""),
        (PROTOBUF, ExportTraceServiceResponse().SerializeToString()),
        (PROTOBUF, b"\xff\xff not protobuf"),
        (JSON, b"{}"),
        (JSON, b'{"id": "job-1", "name": "otel-ingestion-job"}'),  # what Langfuse answers
        (JSON, b"not json"),
        (JSON, b"[1, 2]"),
        ({"Content-Type": "text/plain"}, b"ok"),
    ],
)
def test_full_success_or_unreadable_body_is_accepted(headers: dict[str, str], body: bytes) -> None:
    assert partial_success(headers, body) == (0, "")
    result = classify_response(200, headers, body)
    assert (result.outcome, result.rejected_spans, result.reason) == (PostOutcome.ACCEPTED, 0, "accepted")


def test_a_warning_without_rejected_spans_is_still_accepted() -> None:
    result = classify_response(200, PROTOBUF, protobuf_answer(0, "attribute truncated"))
    assert result.outcome is PostOutcome.ACCEPTED
    assert result.rejected_spans == 0
    assert result.reason == "accepted with warning: attribute truncated"


def test_non_success_statuses_ignore_the_body() -> None:
    result = classify_response(400, PROTOBUF, protobuf_answer(3, "x"))
    assert result.outcome is PostOutcome.REJECTED
    assert result.rejected_spans == 0
