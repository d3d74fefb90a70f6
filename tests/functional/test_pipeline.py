"""The whole ingest path on real subscription payloads, with in-memory parking and a fake sink."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from logpipe.boundary import Boundary
from logpipe.classify import RecordKind
from logpipe.metrics import load_metric_rules, summarize
from logpipe.parking import MemoryParkingLot, ParkingError, ParkReason
from logpipe.pipeline import IngestPipeline, IngestSummary
from logpipe.records import LogRecord
from logpipe.settings import Settings
from logpipe.sinks import Delivery, DeliveryOutcome, SendContext
from payloads import data_message, encode, subscription_event

pytestmark = pytest.mark.functional

NOW_MS = 1_795_300_000_000


class RecordingSink:
    """A fake sink that accepts everything of one kind and remembers it, and what it would have sent.

    Like the real sinks, it serializes each record's parts through the context's boundary.
    """

    def __init__(self, kind: RecordKind) -> None:
        self.name = f"fake-{kind.value}"
        self.kind = kind
        self.received: list[LogRecord] = []
        self.sent: list[dict[str, Any]] = []
        self.flushes = 0

    def send(self, records: Sequence[LogRecord], context: SendContext) -> Sequence[Delivery]:
        self.received.extend(records)
        for record in records:
            payload = {
                "message": record.message,
                "raw": record.raw,
                "exception": record.exception,
                "request_id": record.request_id,
                "fields": dict(record.fields),
            }
            sent = context.boundary.scrub_value(payload)
            assert isinstance(sent, dict)
            self.sent.append(sent)
        return [Delivery(record.event_id, DeliveryOutcome.DELIVERED) for record in records]

    def flush(self) -> None:
        self.flushes += 1


class Harness:
    def __init__(self, *, scrub: bool = True) -> None:
        self.parking = MemoryParkingLot()
        self.emf: list[dict[str, Any]] = []
        self.errors = RecordingSink(RecordKind.ERROR)
        self.llm = RecordingSink(RecordKind.LLM)
        self.pipeline = IngestPipeline(
            Settings(environment="prod", scrub_enabled=scrub),
            rules=load_metric_rules(),
            parking=self.parking,
            boundary=Boundary.default() if scrub else Boundary.disabled(),
            sinks=[self.errors, self.llm],
            emf_writer=lambda line: self.emf.append(json.loads(line)),
            clock=lambda: NOW_MS / 1000,
        )

    def run(self, event: dict[str, Any]) -> IngestSummary:
        return self.pipeline.run(event)


APPLICATION = [
    '{"level":"INFO","message":"Request completed","duration":120,"request_id":"a"}',
    '2026-11-22T01:02:03.456Z r1 INFO "Request completed" 6200',
    "2026-11-22 01:02:03,456 INFO [pacs.dicom] request_id=r2 DICOM processed study_uid=1.2.840.113619.2.55.3.6046",
    "2026-11-22 01:02:03,456 ERROR [pacs.api] request_id=r3 Unhandled exception for hong@example.com",
    "Traceback (most recent call last):",
    '  File "/app/pacs/api/views.py", line 120, in get_study',
    "ValueError: study not found",
    '{"level":"INFO","event":"llm_call","model":"gpt-4o-mini","prompt_tokens":10,"completion_tokens":5}',
]


def test_records_are_classified_routed_and_measured() -> None:
    harness = Harness()
    summary = harness.run(
        subscription_event(data_message("/aws/ecs/pacs-backend/application", APPLICATION, start_ms=NOW_MS))
    )
    result = summary.to_dict()
    assert result["events_in"] == 8
    assert result["records"] == {"error": 1, "llm": 1, "other": 3}
    assert result["parked"] == 0
    assert [payload["message"] for payload in harness.errors.sent] == ["Unhandled exception for [REDACTED:email]"]
    assert len(harness.llm.received) == 1
    assert harness.errors.flushes == 1
    assert result["deliveries"] == {"fake-error.delivered": 1, "fake-llm.delivered": 1}
    totals = summarize(harness.emf)
    assert totals["PACSBackendErrors"] == {"sum": 1.0, "values": 1}
    assert totals["PACSBackendResponseTime"] == {"sum": 6320.0, "values": 2}
    assert totals["DICOMProcessed"] == {"sum": 1.0, "values": 1}
    assert result["emf_documents"] == len(harness.emf)


def test_control_messages_are_skipped_and_counted() -> None:
    harness = Harness()
    control = {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [
            {"id": "", "timestamp": NOW_MS, "message": "CWL CONTROL MESSAGE: Checking health of destination"}
        ],
    }
    result = harness.run(subscription_event(control)).to_dict()
    assert result["control_messages"] == 1
    # Received, and accounted for as a control event: not a record, not malformed.
    assert result["events_in"] == 1
    assert result["accounting"]["control_events"] == 1
    assert result["records"] == {"error": 0, "llm": 0, "other": 0}
    assert harness.emf == []
    assert harness.parking.flushed == []


MALFORMED = {
    "bad_base64": "%%%not base64%%%",
    "not_gzip": base64.b64encode(b"hello hong@example.com").decode(),
    "truncated_gzip": base64.b64encode(
        gzip.compress(b'{"messageType":"DATA_MESSAGE","x":"hong@example.com"}' * 100)[:60]
    ).decode(),
    "not_json": base64.b64encode(gzip.compress(b"hong@example.com is not json")).decode(),
    "invalid_utf8": base64.b64encode(
        gzip.compress(b'{"messageType":"DATA_MESSAGE","m":"\xff hong@example.com"}')
    ).decode(),
    "wrong_shape": encode({"messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "/g", "note": "hong@example.com"}),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_payloads_are_counted_parked_scrubbed_and_never_raise(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness()
    result = harness.run({"awslogs": {"data": MALFORMED[kind]}}).to_dict()
    assert result["malformed"]["payloads"] == 1
    assert result["malformed"]["by_kind"] == {kind: 1}
    assert result["parked"] == 1
    [item] = harness.parking.flushed
    assert item.reason is ParkReason.MALFORMED_PAYLOAD
    assert item.detail.startswith(kind)
    assert "hong@example.com" not in item.body
    assert "Malformed subscription payload parked" in caplog.text
    assert "hong@example.com" not in caplog.text


def test_one_bad_kinesis_record_does_not_stop_the_others() -> None:
    harness = Harness()
    good = encode(data_message("/aws/ecs/pacs-backend/application", APPLICATION[:2], start_ms=NOW_MS))
    event = {
        "Records": [
            {"kinesis": {"data": "%%%"}, "eventID": "shard:1"},
            {"kinesis": {"data": good}, "eventID": "shard:2"},
        ]
    }
    result = harness.run(event).to_dict()
    assert result["payloads"] == 2
    assert result["malformed"]["payloads"] == 1
    assert result["events_in"] == 2
    assert harness.parking.flushed[0].source == "shard:1"
    assert result["batchItemFailures"] == []  # parked, not failed: Kinesis must not retry the shard


def test_malformed_events_inside_a_good_batch_are_parked_alone() -> None:
    harness = Harness()
    document = data_message("/aws/ecs/pacs-backend/application", APPLICATION[:2], start_ms=NOW_MS)
    document["logEvents"].append({"id": "9".zfill(56), "message": "no timestamp for hong@example.com"})
    result = harness.run(subscription_event(document)).to_dict()
    assert result["records"]["other"] == 2
    assert result["malformed"]["events"] == 1
    [item] = harness.parking.flushed
    assert item.reason is ParkReason.MALFORMED_EVENT
    assert "[REDACTED:email]" in item.body


def test_a_classifier_bug_parks_each_record_alone_instead_of_crashing(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = Harness()
    calls: list[str] = []

    def explode_on_errors(record: LogRecord) -> RecordKind:
        calls.append(record.event_id)
        if record.level.value == "ERROR":
            msg = "boom"
            raise RuntimeError(msg)
        return RecordKind.OTHER

    monkeypatch.setattr("logpipe.pipeline.classify", explode_on_errors)
    result = harness.run(
        subscription_event(data_message("/aws/ecs/pacs-backend/application", APPLICATION, start_ms=NOW_MS))
    ).to_dict()
    # Only the error record (a line and its three-line traceback) is parked; the other four go on.
    assert result["malformed"]["processing_errors"] == 1
    assert result["records"] == {"error": 0, "llm": 0, "other": 4}
    [item] = harness.parking.flushed
    assert item.reason is ParkReason.PROCESSING_ERROR
    assert item.detail == "processing_error: RuntimeError"
    assert "[REDACTED:email]" in item.body
    assert "hong@example.com" not in item.body
    assert "ValueError: study not found" in item.body
    accounting = result["accounting"]
    assert accounting["parked_events"] == 4
    assert accounting["record_lines"] + accounting["parked_events"] == result["events_in"] == len(APPLICATION)


def test_a_bug_before_any_record_parks_the_batch_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = Harness()

    def explode(*_: object) -> None:
        msg = "boom"
        raise RuntimeError(msg)

    monkeypatch.setattr("logpipe.pipeline.stream_context", explode)
    result = harness.run(
        subscription_event(data_message("/aws/ecs/pacs-backend/application", APPLICATION, start_ms=NOW_MS))
    ).to_dict()
    assert result["malformed"]["processing_errors"] == 1
    [item] = harness.parking.flushed
    assert item.reason is ParkReason.PROCESSING_ERROR
    assert json.loads(item.body)["logEvents"][3]["message"].endswith("[REDACTED:email]")
    assert len(json.loads(item.body)["logEvents"]) == len(APPLICATION)
    assert result["accounting"]["parked_events"] == result["events_in"] == len(APPLICATION)


def test_every_event_is_accounted_for() -> None:
    harness = Harness()
    document = data_message("/aws/ecs/pacs-backend/application", APPLICATION, start_ms=NOW_MS)
    document["logEvents"].append({"id": "x", "timestamp": "bad", "message": "m"})
    result = harness.run(subscription_event(document)).to_dict()
    record_lines = sum(
        record.line_count for records in (harness.errors.received, harness.llm.received) for record in records
    )
    other_lines = result["records"]["other"]  # each "other" record here is one line
    assert record_lines + other_lines + result["malformed"]["events"] == result["events_in"]


def test_what_sinks_send_is_scrubbed_in_every_part() -> None:
    harness = Harness()
    messages = [
        '{"level":"ERROR","message":"Upload failed for hong@example.com","PatientName":"HONG^GILDONG",'
        '"extra":{"phone":"010-1234-5678"},"exc_info":"Traceback (most recent call last):\\nValueError: bad PatientID=P-000123"}',
        '{"level":"INFO","event":"llm_call","model":"gpt-4o-mini","prompt":"Summarize for hong@example.com",'
        '"completion":"ok","prompt_tokens":10,"completion_tokens":2}',
    ]
    harness.run(subscription_event(data_message("/aws/ecs/pacs-backend/errors", messages, start_ms=NOW_MS)))
    [error] = harness.errors.sent
    [llm] = harness.llm.sent
    for payload in (error, llm):
        text = json.dumps(payload, ensure_ascii=False)
        for secret in ("hong@example.com", "HONG^GILDONG", "010-1234-5678", "P-000123"):
            assert secret not in text
    assert error["message"] == "Upload failed for [REDACTED:email]"
    assert error["fields"]["PatientName"] == "[REDACTED:dicom]"
    assert llm["fields"]["prompt"] == "Summarize for [REDACTED:email]"
    assert llm["fields"]["prompt_tokens"] == 10  # counts are not secrets
    # Records themselves are read whole: parsing, classification and metrics need them unscrubbed.
    assert "hong@example.com" in harness.errors.received[0].message


def test_scrubbing_can_be_switched_off() -> None:
    harness = Harness(scrub=False)
    harness.run(subscription_event(data_message("/aws/ecs/pacs-backend/application", APPLICATION, start_ms=NOW_MS)))
    assert "hong@example.com" in harness.errors.sent[0]["message"]


def test_metrics_can_be_switched_off() -> None:
    harness = Harness()
    harness.pipeline.settings = Settings(environment="prod", metrics_enabled=False)
    harness.run(subscription_event(data_message("/aws/ecs/pacs-backend/application", APPLICATION, start_ms=NOW_MS)))
    assert harness.emf == []


class BrokenParkingLot(MemoryParkingLot):
    """A parking lot whose queue is unreachable."""

    def flush(self) -> int:
        msg = "could not park 1 messages: EndpointConnectionError"
        raise ParkingError(msg)


class RecordingHealth:
    def __init__(self) -> None:
        self.published: list[dict[str, int]] = []

    def publish(self, counters: Mapping[str, int]) -> None:
        self.published.append(dict(counters))


def test_parking_failure_fails_the_invocation_before_any_emf(caplog: pytest.LogCaptureFixture) -> None:
    # The one case the handler raises: Lambda's retry (then the on-failure destination) keeps the
    # batch, so nothing a retry would repeat may have been written: no PACS EMF, no health counts
    # except ParkingFailures.
    harness = Harness()
    harness.pipeline.parking = BrokenParkingLot()
    health = RecordingHealth()
    harness.pipeline.health = health
    document = data_message("/aws/ecs/pacs-backend/application", APPLICATION, start_ms=NOW_MS)
    with pytest.raises(ParkingError):
        harness.run(
            {
                "Records": [
                    {"kinesis": {"data": MALFORMED["not_json"]}, "eventID": "shard:1"},
                    {"kinesis": {"data": encode(document)}, "eventID": "shard:2"},
                ]
            }
        )
    assert harness.emf == []
    assert health.published == [{"parking_failures": 1}]
    assert "Parking failed: the invocation fails so Lambda retries the batch" in caplog.text
    assert "hong@example.com" not in caplog.text


class ExplodingSink(RecordingSink):
    """A sink with a bug: it raises instead of reporting outcomes."""

    def send(self, records: Sequence[LogRecord], context: SendContext) -> Sequence[Delivery]:
        raise KeyError("a bug in the sink")


def test_a_sink_that_raises_costs_its_records_delivery_never_the_emf() -> None:
    harness = Harness()
    harness.pipeline.sinks = (ExplodingSink(RecordKind.ERROR), harness.llm)
    summary = harness.run(
        subscription_event(data_message("/aws/ecs/pacs-backend/application", APPLICATION, start_ms=NOW_MS))
    )
    result = summary.to_dict()
    assert result["malformed"]["processing_errors"] == 1
    assert result["deliveries"] == {"fake-error.dead_lettered": 1, "fake-llm.delivered": 1}
    [item] = harness.parking.flushed
    assert item.reason is ParkReason.PROCESSING_ERROR
    assert item.dead_letter
    assert item.detail == "sink fake-error failed: KeyError"
    assert "hong@example.com" not in item.body  # parked scrubbed, like every record that leaves
    assert summarize(harness.emf)["PACSBackendErrors"] == {"sum": 1.0, "values": 1}
    assert result["emf_documents"] == len(harness.emf) > 0
