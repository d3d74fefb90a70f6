"""Out-of-range times (issue 12, item 3): each sink clamps or rejects what it cannot take, counts it, never crashes.

Real sinks (the Langfuse one with the real OTel encoder, the Sentry one building real events) behind
in-process senders that accept everything, on the whole ingest path.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
import pytest

from logpipe.boundary import Boundary
from logpipe.idempotency import DeliveryLedger
from logpipe.langfuse.config import KEY_PREFIX, RECORD_SECONDS
from logpipe.langfuse.mapping import MAX_OTLP_NS, TIME_OUT_OF_RANGE_KEY, Generation, to_generation
from logpipe.langfuse.sink import LangfuseSink
from logpipe.langfuse.spans import SpanBuilder, encode_spans_body
from logpipe.langfuse.transport import PostOutcome, PostResult
from logpipe.metrics import load_metric_rules
from logpipe.parking import MemoryParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import SentrySink
from logpipe.sentry.transport import SendOutcome, SendResult
from logpipe.settings import Settings
from payloads import data_message, parsed_records, subscription_event

pytestmark = pytest.mark.functional

NOW_MS = int(time.time() * 1000)
DSN = "https://public@sentry.example.invalid/1"


class AcceptingPoster:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def post(self, body: bytes, deadline: float) -> PostResult:
        self.bodies.append(body)
        return PostResult(PostOutcome.ACCEPTED, 200, None, "accepted")


class AcceptingSender:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        self.events.append(event)
        return SendResult(str(event["event_id"]), SendOutcome.ACCEPTED, 200, None, "accepted")


def llm_line(**times: object) -> str:
    return json.dumps(
        {"event": "llm_call", "model": "gpt-4o-mini", "prompt_tokens": 3, "completion_tokens": 2, **times}
    )


def generation_of(**times: object) -> Generation:
    [record] = parsed_records("/aws/ecs/pacs-backend/llm", [llm_line(**times)], start_ms=NOW_MS)
    return to_generation(record)


def test_epoch_numbers_in_any_unit_become_the_same_nanoseconds() -> None:
    seconds = NOW_MS // 1000 - 2
    expected = seconds * 1_000_000_000
    for start in (seconds, seconds * 1000, seconds * 1_000_000, seconds * 1_000_000_000):
        generation = generation_of(start_time=start)
        assert generation.start_ns == expected
        assert TIME_OUT_OF_RANGE_KEY not in generation.metadata


@pytest.mark.parametrize(
    "times",
    [
        {"end_time": "9999-12-31T23:59:59Z"},
        {"start_time": "1969-01-01T00:00:00Z"},
        {"start_time": 1e30, "end_time": 2e30},
        {"latency_ms": 1e25},
    ],
)
def test_times_outside_otlp_are_replaced_by_the_event_time_and_encode(times: dict[str, object]) -> None:
    generation = generation_of(**times)
    assert generation.start_ns == generation.end_ns == NOW_MS * 1_000_000
    assert set(generation.metadata[TIME_OUT_OF_RANGE_KEY]) == set(times)
    body = encode_spans_body(SpanBuilder().build([generation]))
    assert body
    # What would be parked is plain 64-bit JSON.
    orjson.dumps(generation.to_json(), default=str)
    assert generation.end_ns <= MAX_OTLP_NS


def pipeline(sinks: list[Any], parking: MemoryParkingLot, emf: list[dict[str, Any]]) -> IngestPipeline:
    return IngestPipeline(
        Settings(environment="prod"),
        rules=load_metric_rules(),
        parking=parking,
        boundary=Boundary.default(),
        sinks=sinks,
        emf_writer=lambda line: emf.append(json.loads(line)),
    )


def test_out_of_range_times_are_clamped_per_sink_counted_and_never_crash() -> None:
    poster, sender = AcceptingPoster(), AcceptingSender()
    langfuse = LangfuseSink(
        poster, DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS)
    )
    sentry = SentrySink(DsnRouter.single(DSN), sender_factory=lambda _dsn: sender)
    parking = MemoryParkingLot()
    emf: list[dict[str, Any]] = []
    old_ms = NOW_MS - 40 * 24 * 3600 * 1000  # older than Sentry's 30 days and EMF's 14
    llm = data_message(
        "/aws/ecs/pacs-backend/llm",
        [llm_line(end_time="9999-12-31T23:59:59Z"), llm_line(start_time=(NOW_MS - 1500) * 1000)],
        start_ms=NOW_MS,
    )
    errors = data_message(
        "/aws/ecs/pacs-backend/application",
        ["2026-01-01 00:00:00,000 ERROR [pacs.api] request_id=r1 Old failure"],
        start_ms=old_ms,
        first_id=100,
    )
    event = {
        "Records": [
            {"kinesis": {"data": subscription_event(doc)["awslogs"]["data"]}, "eventID": f"s:{i}"}
            for i, doc in enumerate((llm, errors))
        ]
    }
    summary = pipeline([sentry, langfuse], parking, emf).run(event)
    result = summary.to_dict()
    assert result["deliveries"] == {"sentry.delivered": 1, "langfuse.delivered": 2}
    assert parking.flushed == []
    # Langfuse: the year-9999 end is replaced and counted; the microsecond start is read as microseconds.
    assert summary.counters["time_clamped.langfuse"] == 1
    assert len(poster.bodies) == 1
    # Sentry: a 40-day-old event gets the send time; its own time is kept beside it.
    [sent] = sender.events
    assert sent["extra"]["log_timestamp"].startswith(time.strftime("%Y-%m-%d", time.gmtime(old_ms / 1000)))
    assert sent["timestamp"] != sent["extra"]["log_timestamp"]
    assert summary.counters["time_clamped.sentry"] == 1
    # EMF: the old error's PACSBackendErrors point is outside CloudWatch's 14 days: counted, not sent.
    assert summary.counters["metric_out_of_window"] == 1
    assert result["emf_documents"] == len(emf)
    assert all(document["_aws"]["Timestamp"] > NOW_MS - 15 * 24 * 3600 * 1000 for document in emf)
