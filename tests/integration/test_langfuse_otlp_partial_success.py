"""OTLP partial_success end to end: the real pipeline and sink against a loopback receiver that rejects spans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logpipe.boundary import Boundary
from logpipe.idempotency import DeliveryLedger
from logpipe.langfuse.config import KEY_PREFIX, RECORD_SECONDS
from logpipe.langfuse.sink import LangfuseSink
from logpipe.langfuse.transport import CredentialsSource, OtlpTransport
from logpipe.metrics import load_metric_rules
from logpipe.parking import MemoryParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.settings import Settings
from logpipe_cli.otlp_receiver import Answer, OtlpReceiver, otlp_receiver
from payloads import subscription_event

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "events" / "decoded" / "cwl-pacs-backend-llm.json"
CALLS = len(json.loads(SAMPLE.read_text())["logEvents"])


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def langfuse_sink(receiver: OtlpReceiver) -> LangfuseSink:
    transport = OtlpTransport(CredentialsSource.fixed(receiver.host, "pk-lf-1", "sk-lf-1"), timeout=2.0, backoff=0.01)
    return LangfuseSink(
        transport, DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS)
    )


def pipeline(sink: LangfuseSink, parking: MemoryParkingLot) -> IngestPipeline:
    return IngestPipeline(
        Settings(environment="prod"),
        rules=load_metric_rules(),
        parking=parking,
        boundary=Boundary.default(),
        sinks=[sink],
        emf_writer=lambda line: None,
    )


def event() -> dict[str, Any]:
    return subscription_event(json.loads(SAMPLE.read_text()))


@pytest.mark.parametrize("json_body", [False, True], ids=["protobuf", "json"])
def test_rejected_spans_dead_letter_the_chunk_with_the_servers_message_and_are_never_resent(
    receiver: OtlpReceiver, *, json_body: bool
) -> None:
    receiver.script.append(Answer(200, rejected_spans=2, error_message="attribute too long", json_body=json_body))
    parking = MemoryParkingLot()
    sink = langfuse_sink(receiver)
    ingest = pipeline(sink, parking)
    deliveries = ingest.run(event()).to_dict()["deliveries"]
    assert deliveries == {"langfuse.dead_lettered": CALLS}  # none counted delivered
    assert (sink.stats.counters["spans_rejected"], sink.stats.counters["partial_success_chunks"]) == (2, 1)
    assert sink.stats.counters["spans_sent"] == 0
    assert len(receiver.received) == 1  # a partial success is never retried
    assert len(parking.flushed) == CALLS
    for item in parking.flushed:
        assert item.dead_letter
        assert item.detail.startswith("rejected: partial success: 2 spans rejected: attribute too long")
        assert f"of {CALLS} sent" in item.detail
    # Part of the chunk may be stored: a redelivered batch must not send it again.
    again = ingest.run(event()).to_dict()["deliveries"]
    assert again == {"langfuse.skipped": CALLS}
    assert len(receiver.received) == 1


def test_a_partial_success_that_only_warns_is_delivered(receiver: OtlpReceiver) -> None:
    receiver.script.append(Answer(200, error_message="resource attribute ignored"))
    parking = MemoryParkingLot()
    deliveries = pipeline(langfuse_sink(receiver), parking).run(event()).to_dict()["deliveries"]
    assert deliveries == {"langfuse.delivered": CALLS}
    assert parking.flushed == []
