"""Contract with the langfuse package and OpenTelemetry: seeded ids, attribute names and values, OTLP encoding.

The langfuse package is only a dev dependency; an SDK release that changes an id rule or an
attribute name fails here instead of silently splitting traces in production.
"""

from __future__ import annotations

import json

import pytest

from logpipe.langfuse import spans as our
from logpipe.langfuse.mapping import create_observation_id, create_trace_id, to_generation
from logpipe.langfuse.sink import SpanEncoder
from logpipe.langfuse.spans import SpanBuilder, generation_attributes
from logpipe.records import LogRecord
from logpipe_cli.workload import LlmCall
from payloads import parsed_records

pytestmark = pytest.mark.unit

TS_MS = 1_795_309_205_090
CALL = LlmCall(
    "report-draft",
    "openai",
    "gpt-4o",
    "Draft a CT report",
    "Impression: normal.",
    1530,
    402,
    0.007845,
    4210,
    "683e5c8914da36f78b29eedcbe9ef69e",
    "370e2face9303810",
    "sess-1",
    "radiologist-17",
    "1.2.3",
)


def records(*messages: str) -> list[LogRecord]:
    return parsed_records("/aws/ecs/pacs-backend/llm", messages, start_ms=TS_MS)


langfuse = pytest.importorskip("langfuse")
from langfuse._client.attributes import LangfuseOtelSpanAttributes as Names  # noqa: E402
from langfuse._client.attributes import create_generation_attributes  # noqa: E402


@pytest.mark.parametrize(
    "seed", ["683e5c8914da36f78b29eedcbe9ef69e", "40036733088686767257191147301707774643150202197409529857", "세션-1"]
)
def test_ids_equal_the_sdk(seed: str) -> None:
    assert create_trace_id(seed) == langfuse.Langfuse.create_trace_id(seed=seed)
    client = langfuse.Langfuse.__new__(langfuse.Langfuse)  # no network, no global provider: only the id helper
    assert create_observation_id(seed) == client._create_observation_id(seed=seed)


def test_attribute_names_equal_the_sdk() -> None:
    pairs = {
        our.OBSERVATION_TYPE: Names.OBSERVATION_TYPE,
        our.OBSERVATION_MODEL: Names.OBSERVATION_MODEL,
        our.OBSERVATION_INPUT: Names.OBSERVATION_INPUT,
        our.OBSERVATION_OUTPUT: Names.OBSERVATION_OUTPUT,
        our.OBSERVATION_USAGE_DETAILS: Names.OBSERVATION_USAGE_DETAILS,
        our.OBSERVATION_COST_DETAILS: Names.OBSERVATION_COST_DETAILS,
        our.OBSERVATION_METADATA: Names.OBSERVATION_METADATA,
        our.OBSERVATION_LEVEL: Names.OBSERVATION_LEVEL,
        our.OBSERVATION_STATUS_MESSAGE: Names.OBSERVATION_STATUS_MESSAGE,
        our.TRACE_NAME: Names.TRACE_NAME,
        our.TRACE_USER_ID: Names.TRACE_USER_ID,
        our.TRACE_SESSION_ID: Names.TRACE_SESSION_ID,
        our.ENVIRONMENT: Names.ENVIRONMENT,
        our.RELEASE: Names.RELEASE,
    }
    assert list(pairs) == [str(value) for value in pairs.values()]


def test_generation_attribute_values_equal_the_sdk() -> None:
    from logpipe_cli.workload import llm_call_anthropic

    generation = to_generation(records(llm_call_anthropic(TS_MS, CALL))[0])
    theirs = create_generation_attributes(
        model=generation.model,
        input=generation.input,
        output=generation.output,
        usage_details=generation.usage,
        cost_details=generation.cost,
        level=generation.level,  # type: ignore[arg-type]  # the SDK's Literal; ours is one of those values
        status_message=generation.status_message,
    )
    ours = generation_attributes(generation)
    for key, value in theirs.items():
        assert key in ours, key
        # JSON documents compare by content: the SDK's separators differ from ours.
        assert json.loads(ours[key]) == json.loads(value) if value.startswith(("{", "[")) else ours[key] == value


def test_the_request_body_is_the_official_otlp_encoding_of_the_spans() -> None:
    # The body the sink POSTs is built by OpenTelemetry's OTLP encoder (the exporters' own), not by
    # hand: it must be that encoder's bytes, and decode to the generations' ids, times and attributes.
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    from logpipe_cli.workload import llm_call_flat, llm_call_otel

    failed = type(CALL)(**{**{k: getattr(CALL, k) for k in CALL.__slots__}, "error": "APIError: 500"})
    generations = [to_generation(r) for r in records(llm_call_flat(TS_MS, CALL), llm_call_otel(TS_MS, failed))]
    body = SpanEncoder().encode(generations)
    assert body == encode_spans(SpanBuilder().build(generations)).SerializeToString()

    request = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = request.resource_spans
    assert [(a.key, a.value.string_value) for a in resource_spans.resource.attributes] == [
        ("service.name", our.RESOURCE_SERVICE_NAME)
    ]
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == (our.SCOPE_NAME, our.SCOPE_VERSION)
    assert len(scope_spans.spans) == len(generations) == 2
    for span, generation in zip(scope_spans.spans, generations, strict=True):
        assert span.trace_id.hex() == generation.trace_id
        assert span.span_id.hex() == generation.observation_id
        assert not span.parent_span_id  # every generation is a root span of its own trace
        assert (span.start_time_unix_nano, span.end_time_unix_nano) == (generation.start_ns, generation.end_ns)
        assert {a.key: a.value.string_value for a in span.attributes} == generation_attributes(generation)
    assert scope_spans.spans[0].status.code == Status.STATUS_CODE_UNSET
    assert scope_spans.spans[1].status.code == Status.STATUS_CODE_ERROR
    assert scope_spans.spans[1].status.message == generations[1].status_message
