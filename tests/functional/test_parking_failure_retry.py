"""A down parking queue (issue 12, item 7): the invocation fails cleanly, and Lambda's retry after recovery duplicates nothing.

The whole ingest path with the real Sentry and Langfuse sinks behind recording senders: the first
invocation cannot park (one Langfuse chunk was rate-limited, so something must be parked) and raises
before printing any EMF; the retry, with the queue back, sends the same Sentry event ids, sends no
delivered Langfuse span a second time (the ledger) but does send the chunk that was to be parked, and
prints the batch's EMF exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from logpipe.boundary import Boundary
from logpipe.idempotency import DeliveryLedger
from logpipe.langfuse.config import KEY_PREFIX, RECORD_SECONDS
from logpipe.langfuse.sink import LangfuseSink
from logpipe.langfuse.transport import PostOutcome, PostResult
from logpipe.metrics import load_metric_rules, summarize
from logpipe.parking import MemoryParkingLot, ParkingError
from logpipe.pipeline import IngestPipeline
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import SentrySink
from logpipe.sentry.transport import SendOutcome, SendResult
from logpipe.settings import Settings
from payloads import data_message, subscription_event

pytestmark = pytest.mark.functional

NOW_MS = 1_795_300_000_000


class QueueDown(MemoryParkingLot):
    def flush(self) -> int:
        msg = "could not park 3 messages: EndpointConnectionError"
        raise ParkingError(msg)


class Poster:
    """Langfuse stand-in: remembers every span body; the first request of the first run is rate-limited."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.rate_limit_next = True

    def post(self, body: bytes, deadline: float) -> PostResult:
        self.bodies.append(body)
        if self.rate_limit_next:
            self.rate_limit_next = False
            return PostResult(PostOutcome.RATE_LIMITED, 429, 30.0, "rate limited for 30s")
        return PostResult(PostOutcome.ACCEPTED, 200, None, "accepted")


class Sender:
    def __init__(self) -> None:
        self.event_ids: list[str] = []

    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        self.event_ids.append(str(event["event_id"]))
        return SendResult(str(event["event_id"]), SendOutcome.ACCEPTED, 200, None, "accepted")


def span_ids(body: bytes) -> list[str]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return [span.span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def test_a_retry_after_the_queue_recovers_duplicates_nothing() -> None:
    errors = [f"2026-11-22 01:02:03,456 ERROR [pacs.api] request_id=r{i} Upload {i} failed" for i in range(3)]
    llm = [
        json.dumps({"event": "llm_call", "model": "m", "prompt_tokens": 1, "completion_tokens": 1, "trace_id": f"t{i}"})
        for i in range(4)
    ]
    event = {
        "Records": [
            {"kinesis": {"data": subscription_event(data_message(group, lines, start_ms=NOW_MS))["awslogs"]["data"]}}
            for group, lines in (("/aws/ecs/pacs-backend/application", errors), ("/aws/ecs/pacs-backend/llm", llm))
        ]
    }
    poster, sender, ledger = (
        Poster(),
        Sender(),
        DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS),
    )
    emf: list[dict[str, Any]] = []
    pipeline = IngestPipeline(
        Settings(environment="prod"),
        rules=load_metric_rules(),
        parking=QueueDown(),
        boundary=Boundary.default(),
        sinks=[
            SentrySink(DsnRouter.single("https://k@sentry.invalid/1"), sender_factory=lambda _dsn: sender),
            # Two spans per request: the rate-limited chunk is parked, the other delivered.
            LangfuseSink(poster, ledger, max_spans_per_request=2),
        ],
        emf_writer=lambda line: emf.append(json.loads(line)),
        clock=lambda: NOW_MS / 1000,
    )
    with pytest.raises(ParkingError):
        pipeline.run(event)
    assert emf == []
    first_event_ids = list(sender.event_ids)
    first_spans = [span_ids(body) for body in poster.bodies]
    assert len(first_event_ids) == 3
    assert len(first_spans) == 2  # one chunk rate-limited (to be parked), one delivered

    # The queue is back; Lambda retries the same event.
    recovered = MemoryParkingLot()
    pipeline.parking = recovered
    result = pipeline.run(event).to_dict()
    assert sender.event_ids[3:] == first_event_ids  # the same ids: Sentry stores each once
    retry_spans = [span_ids(body) for body in poster.bodies[2:]]
    assert retry_spans == [first_spans[0]]  # only the chunk that was never stored
    delivered = Counter(span for spans in [first_spans[1], *retry_spans] for span in spans)
    assert set(delivered.values()) == {1}
    assert len(delivered) == 4
    assert result["deliveries"] == {"sentry.delivered": 3, "langfuse.delivered": 2, "langfuse.skipped": 2}
    assert recovered.flushed == []
    assert summarize(emf)["PACSBackendErrors"] == {"sum": 3.0, "values": 1}  # printed once, by the retry
