"""LLM record -> generation: every field shape the applications log, and a clear error for bad records."""

from __future__ import annotations

import hashlib
import json

import pytest

from logpipe.langfuse.mapping import Generation, MappingError, create_observation_id, create_trace_id, to_generation
from logpipe.records import LogRecord
from logpipe_cli.workload import LlmCall, llm_call_anthropic, llm_call_flat, llm_call_openai, llm_call_otel
from payloads import parsed_records

pytestmark = pytest.mark.unit

TS_MS = 1_795_309_205_090
CALL = LlmCall(
    name="report-draft",
    provider="openai",
    model="gpt-4o",
    prompt="Draft a CT report",
    completion="Impression: normal.",
    input_tokens=1530,
    output_tokens=402,
    cost_usd=0.007845,
    latency_ms=4210,
    trace_id="683e5c8914da36f78b29eedcbe9ef69e",
    span_id="370e2face9303810",
    session_id="sess-90502baca184",
    user_id="radiologist-17",
    study_uid="1.2.840.113619.2.55.3.1",
)


def records(*messages: str, log_group: str = "/aws/ecs/pacs-backend/llm") -> list[LogRecord]:
    return parsed_records(log_group, messages, start_ms=TS_MS)


def one(message: str) -> Generation:
    return to_generation(records(message)[0])


def test_ids_follow_langfuse_seeded_rules() -> None:
    assert create_trace_id("abc") == hashlib.sha256(b"abc").digest()[:16].hex()
    assert create_observation_id("abc") == hashlib.sha256(b"abc").digest()[:8].hex()


def test_flat_record() -> None:
    generation = one(llm_call_flat(TS_MS, CALL))
    assert generation.model == "gpt-4o"
    assert generation.input == "Draft a CT report"
    assert generation.output == "Impression: normal."
    assert generation.usage == {"input": 1530, "output": 402, "total": 1932}
    assert generation.cost == {"total": 0.007845}
    assert generation.end_ns == TS_MS * 1_000_000
    assert generation.start_ns == (TS_MS - 4210) * 1_000_000
    assert generation.trace_id == create_trace_id(CALL.trace_id)
    assert generation.observation_id == create_observation_id(generation.event_id)
    assert (generation.user_id, generation.session_id, generation.name) == (
        "radiologist-17",
        "sess-90502baca184",
        "report-draft",
    )
    assert generation.metadata["study_uid"] == CALL.study_uid
    assert generation.environment == "prod"
    assert generation.level is None


def test_openai_usage_block() -> None:
    generation = one(llm_call_openai(TS_MS, CALL))
    assert generation.usage == {"input": 1530, "output": 402, "total": 1932}
    assert generation.start_ns == (TS_MS - 4210) * 1_000_000


def test_anthropic_usage_and_start_end_times() -> None:
    generation = one(llm_call_anthropic(TS_MS, CALL))
    assert generation.usage == {"input": 1530, "output": 402}
    assert generation.cost == {"total": 0.007845}
    assert generation.input == [{"role": "user", "content": "Draft a CT report"}]
    assert generation.start_ns == (TS_MS - 4210) * 1_000_000
    assert generation.end_ns == TS_MS * 1_000_000


def test_anthropic_cache_tokens_are_kept() -> None:
    message = json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "usage": {"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": 300},
            "prompt": "p",
        }
    )
    assert one(message).usage == {"input": 10, "output": 2, "cache_read_input_tokens": 300}


def test_otel_genai_names() -> None:
    generation = one(llm_call_otel(TS_MS, CALL))
    assert generation.model == "gpt-4o"
    assert generation.usage == {"input": 1530, "output": 402}
    assert generation.input == "Draft a CT report"
    assert generation.output == "Impression: normal."
    assert generation.metadata["span_id"] == CALL.span_id
    assert generation.metadata["gen_ai.system"] == "openai"
    assert generation.end_ns - generation.start_ns == 4210 * 1_000_000


def test_failed_call_is_an_error_level_generation() -> None:
    failed = LlmCall(**{**{k: getattr(CALL, k) for k in CALL.__slots__}, "error": "RateLimitError: 429"})
    generation = one(llm_call_flat(TS_MS, failed))
    assert generation.level == "ERROR"
    assert generation.status_message == "RateLimitError: 429"


def test_without_app_trace_id_the_event_id_seeds_the_trace() -> None:
    generation = one(json.dumps({"model": "gpt-4o", "prompt_tokens": 3}))
    assert generation.trace_seed == generation.event_id
    assert generation.trace_id == create_trace_id(generation.event_id)
    assert generation.start_ns == generation.end_ns  # no duration logged


def test_epoch_milliseconds_times() -> None:
    generation = one(json.dumps({"model": "m", "prompt": "p", "start_time": TS_MS - 5, "end_time": TS_MS}))
    assert generation.end_ns - generation.start_ns == 5_000_000


def test_parking_round_trip() -> None:
    generation = one(llm_call_anthropic(TS_MS, CALL))
    assert Generation.from_json(json.loads(json.dumps(generation.to_json()))) == generation


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"prompt_tokens": 3, "prompt": "p", "event": "llm_call"}, "missing model"),
        ({"model": 42.5e300, "prompt": "p", "usage": []}, "usage: expected an object"),
        ({"model": ["gpt"], "prompt": "p"}, "model: expected a string"),
        ({"model": "m", "prompt_tokens": "many"}, "prompt_tokens: expected a non-negative integer"),
        ({"model": "m", "prompt_tokens": -4}, "negative token count"),
        ({"model": "m", "prompt_tokens": True}, "got a boolean"),
        ({"model": "m", "prompt": "p", "total_cost": "free"}, "total_cost: expected a number"),
        ({"model": "m", "prompt": "p", "total_cost": -1}, "not a valid cost"),
        ({"model": "m", "prompt": "p", "start_time": "yesterday"}, "start_time: not an ISO-8601"),
        (
            {"model": "m", "prompt": "p", "start_time": "2026-11-22T01:00:10Z", "end_time": "2026-11-22T01:00:09Z"},
            "after",
        ),
        ({"model": "m", "prompt": "p", "metadata": "x"}, "metadata: expected an object"),
        ({"model": "m", "prompt": "p", "latency_ms": {"v": 1}}, "latency_ms: expected a number"),
    ],
)
def test_bad_records_raise_a_clear_error(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(MappingError, match=problem):
        one(json.dumps(fields))


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "m", "prompt_tokens": "kim@hospital.kr"},
        {"model": "m", "prompt": "p", "total_cost": "PID-0042"},
        {"model": "m", "prompt": "p", "start_time": "HONG^GILDONG"},
        {"model": "m", "prompt": "p", "latency_ms": "010-1234-5678"},
    ],
)
def test_mapping_errors_say_what_a_value_is_never_what_it_says(fields: dict[str, object]) -> None:
    # The message becomes the parked item's detail and a log line; a value cut to fit there would
    # also be cut past what the PHI rules recognise.
    with pytest.raises(MappingError) as info:
        one(json.dumps(fields))
    value = next(v for k, v in fields.items() if k not in {"model", "prompt"})
    assert str(value) not in str(info.value)
    assert "a string of" in str(info.value)
