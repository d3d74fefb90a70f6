"""The Langfuse sink end to end against a loopback OTLP receiver, with the ledger on moto DynamoDB."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict

from logpipe.boundary import Boundary
from logpipe.idempotency import DeliveryLedger
from logpipe.langfuse.config import KEY_PREFIX, RECORD_SECONDS
from logpipe.langfuse.mapping import create_observation_id, create_trace_id
from logpipe.langfuse.sink import LangfuseSink
from logpipe.langfuse.transport import CredentialsSource, OtlpTransport
from logpipe.parking import MemoryParkingLot
from logpipe.records import LogRecord
from logpipe.sinks import SendContext
from logpipe_cli.otlp_receiver import Answer, OtlpReceiver, otlp_receiver, span_attributes
from payloads import records_of_document

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "langfuse"
SAMPLE = ROOT / "events" / "decoded" / "cwl-pacs-backend-llm.json"
PUBLIC, SECRET = "pk-lf-test", "sk-lf-" + os.urandom(6).hex()


def sample_records() -> list[LogRecord]:
    return records_of_document(json.loads(SAMPLE.read_text()))


def many_records(count: int) -> list[LogRecord]:
    base = sample_records()[0]
    from dataclasses import replace

    return [replace(base, event_id=f"{i:056d}", fields={**base.fields, "trace_id": f"trace-{i}"}) for i in range(count)]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def make_sink(receiver: OtlpReceiver, ledger: Any = None, **kwargs: Any) -> LangfuseSink:
    transport = OtlpTransport(
        CredentialsSource.fixed(receiver.host, PUBLIC, SECRET), timeout=kwargs.pop("timeout", 2.0), backoff=0.01
    )
    ledger = ledger or DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS)
    return LangfuseSink(transport, ledger, **kwargs)


def context(parking: MemoryParkingLot, seconds: float = 20.0, boundary: Boundary | None = None) -> SendContext:
    return SendContext(
        batch_records=[],
        boundary=Boundary.disabled() if boundary is None else boundary,
        parking=parking,
        deadline=time.monotonic() + seconds,
    )


def test_spans_carry_the_logs_ids_times_and_fields(receiver: OtlpReceiver) -> None:
    records = sample_records()
    deliveries = make_sink(receiver).send(records, context(MemoryParkingLot()))
    assert Counter(d.outcome.value for d in deliveries) == {"delivered": len(records)}
    (request,) = receiver.received
    assert request.path == "/api/public/otel/v1/traces"
    assert request.headers["x-langfuse-ingestion-version"] == "4"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert receiver.basic_auth() == (PUBLIC, SECRET)
    spans = request.spans()
    assert len(spans) == len(records)
    by_id = {span.span_id.hex(): span for span in spans}
    flat = by_id[create_observation_id(records[0].event_id)]
    assert flat.trace_id.hex() == create_trace_id("b722b0ef2b72131ed5fb94f5e944e48e")
    assert flat.end_time_unix_nano == records[0].timestamp_ms * 1_000_000
    assert flat.end_time_unix_nano - flat.start_time_unix_nano == 1840 * 1_000_000
    attributes = span_attributes(flat)
    assert attributes["langfuse.observation.type"] == "generation"
    assert attributes["langfuse.observation.model.name"] == "gpt-4o-mini"
    assert json.loads(str(attributes["langfuse.observation.usage_details"])) == {
        "input": 812,
        "output": 164,
        "total": 976,
    }
    assert json.loads(str(attributes["langfuse.observation.cost_details"])) == {"total": 0.00022}
    assert str(attributes["langfuse.observation.input"]).startswith("Summarize the CT report")
    assert attributes["langfuse.observation.output"] == records[0].fields["completion"]
    assert attributes["langfuse.observation.metadata.study_uid"] == records[0].fields["metadata"]["study_uid"]
    assert (attributes["user.id"], attributes["session.id"]) == ("radiologist-17", "sess-44f0bcf0e866")
    anthropic = by_id[create_observation_id(records[2].event_id)]
    assert anthropic.start_time_unix_nano == 1_795_309_208_645 * 1_000_000
    assert json.loads(str(span_attributes(anthropic)["langfuse.observation.input"]))[0]["role"] == "user"


def test_golden_payload(receiver: OtlpReceiver) -> None:
    # Through the real boundary, as in the pipeline (the sample holds a DICOM patient name).
    make_sink(receiver).send(sample_records(), context(MemoryParkingLot(), boundary=Boundary.default()))
    decoded = MessageToDict(receiver.received[0].request)
    golden = GOLDEN / "pacs-backend-llm.json"
    if os.environ.get("LOGPIPE_UPDATE_GOLDEN"):
        golden.write_text(json.dumps(decoded, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    assert decoded == json.loads(golden.read_text())


def test_large_batches_are_chunked(receiver: OtlpReceiver) -> None:
    deliveries = make_sink(receiver, max_spans_per_request=40).send(many_records(100), context(MemoryParkingLot()))
    assert [len(item.spans()) for item in receiver.received] == [40, 40, 20]
    assert len({span.span_id for span in receiver.accepted_spans()}) == 100
    assert all(d.outcome.value == "delivered" for d in deliveries)


@pytest.mark.parametrize(
    ("answers", "expected", "requests"),
    [
        ([Answer(429, retry_after="30")], {"parked": 6}, 1),
        ([Answer(500)] * 3, {"parked": 6}, 3),
        ([Answer(500), Answer(200)], {"delivered": 6}, 2),
        ([Answer(400)], {"dead_lettered": 6}, 1),
        # The request was read and may be stored: parked as uncertain, never re-sent inline (issue 12).
        ([Answer(hang_up=True)] * 3, {"parked": 6}, 1),
        ([Answer(delay=1.5)] * 3, {"parked": 6}, 1),
    ],
    ids=["429", "500-exhausted", "500-then-ok", "400", "no-answer", "slow"],
)
def test_failure_paths_end_parked_or_dead_lettered(
    receiver: OtlpReceiver, answers: list[Answer], expected: dict[str, int], requests: int
) -> None:
    receiver.script.extend(answers)
    parking = MemoryParkingLot()
    langfuse = make_sink(receiver, timeout=0.5)
    deliveries = langfuse.send(sample_records(), context(parking))
    counts = Counter(d.outcome.value for d in deliveries)
    assert counts == expected
    assert len(receiver.received) == requests
    assert len(parking.items) == counts["parked"] + counts["dead_lettered"]
    assert sum(item.dead_letter for item in parking.items) == counts["dead_lettered"]
    if answers[0].status == 429:
        assert all(item.not_before == pytest.approx(time.time() + 30, abs=5) for item in parking.items)
    uncertain = answers[0].hang_up or answers[0].delay > 0
    assert all((item.attributes.get("uncertain") == "true") is uncertain for item in parking.items)


def test_redelivered_batch_is_not_sent_twice_with_the_dynamodb_ledger(
    receiver: OtlpReceiver, moto_endpoint: str
) -> None:
    import boto3

    from logpipe_cli.embedded_aws import create_idempotency_table

    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="ap-northeast-2")
    table = "idempotency-" + os.urandom(4).hex()
    create_idempotency_table(client, table)  # the template's IdempotencyTable layout
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))

    def ledger() -> DeliveryLedger:
        return DeliveryLedger.on_table(
            table, key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS, client=client
        )

    records = many_records(30)
    # Two containers: the redelivery may land on a different one, so only the table is shared.
    first = make_sink(receiver, ledger(), max_spans_per_request=10)
    second = make_sink(receiver, ledger(), max_spans_per_request=10)
    assert Counter(d.outcome.value for d in first.send(records, context(MemoryParkingLot()))) == {"delivered": 30}
    # Powertools Idempotency: a conditional put (claim) and an update (settled) per chunk, as the
    # hand-written ledger did (claim, finish); 3 chunks of 10 spans.
    assert calls == ["PutItem", "UpdateItem"] * 3
    calls.clear()
    assert Counter(d.outcome.value for d in second.send(records, context(MemoryParkingLot()))) == {"skipped": 30}
    # A settled chunk costs one refused put (it returns the old item); the old ledger needed a second read.
    assert calls == ["PutItem"] * 3
    assert len(receiver.received) == 3
    assert len(receiver.accepted_spans()) == 30
    items = client.scan(TableName=table)["Items"]
    assert len(items) == 3
    assert {item["status"]["S"] for item in items} == {"COMPLETED"}
    assert {item["data"]["S"] for item in items} == {'{"settled": "delivered"}'}
    assert all(item["id"]["S"].startswith(f"{KEY_PREFIX}#") for item in items)
