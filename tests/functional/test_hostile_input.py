"""Issue 12's regression tests: hostile input and odd events never crash the pipeline, and nothing is lost."""

from __future__ import annotations

import base64
import gzip
import json
import time
import tracemalloc
from typing import Any

import orjson
import pytest

from logpipe.boundary import Boundary
from logpipe.decode import MAX_INFLATED_BYTES, PARKED_PREFIX_BYTES
from logpipe.metrics import load_metric_rules
from logpipe.parking import MemoryParkingLot, ParkReason
from logpipe.pipeline import IngestPipeline
from logpipe.settings import Settings
from payloads import data_message

pytestmark = pytest.mark.functional

NOW_MS = 1_795_300_000_000


def pipeline(parking: MemoryParkingLot, emf: list[dict[str, Any]] | None = None) -> IngestPipeline:
    sink = [] if emf is None else emf
    return IngestPipeline(
        Settings(environment="prod"),
        rules=load_metric_rules(),
        parking=parking,
        boundary=Boundary.default(),
        emf_writer=lambda line: sink.append(json.loads(line)),
        clock=lambda: NOW_MS / 1000,
        keep_records=True,
    )


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_a_gzip_bomb_is_parked_as_too_large_within_bounded_memory() -> None:
    # 64 MiB of one repeated line compresses to ~64 KB: four times the decoding cap.
    bomb = gzip.compress(b'{"messageType":"DATA_MESSAGE","logEvents":["' + b"A" * (64 * 1024 * 1024))
    assert len(bomb) < 100 * 1024
    parking = MemoryParkingLot()
    tracemalloc.start()
    try:
        result = pipeline(parking).run({"awslogs": {"data": b64(bomb)}}).to_dict()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["malformed"]["by_kind"] == {"too_large": 1}
    assert result["malformed"]["payloads"] == 1
    [item] = parking.flushed
    assert item.reason is ParkReason.TOO_LARGE
    assert item.body.startswith('{"messageType":"DATA_MESSAGE"')
    assert len(item.body) == PARKED_PREFIX_BYTES
    assert f"more than {MAX_INFLATED_BYTES} bytes" in item.detail
    # The cap plus the prefix and its scrubbed copies; the bomb itself would need 64 MiB.
    assert peak < MAX_INFLATED_BYTES + 16 * 1024 * 1024


def test_a_payload_whose_data_is_not_text_is_parked_not_a_type_error() -> None:
    parking = MemoryParkingLot()
    result = pipeline(parking).run({"awslogs": {"data": 12345}}).to_dict()
    assert result["malformed"]["by_kind"] == {"wrong_shape": 1}
    [item] = parking.flushed
    assert item.reason is ParkReason.MALFORMED_PAYLOAD
    assert item.detail == "wrong_shape: awslogs.data is int, not base64 text"
    assert item.body == "12345"


POSTGRES = [
    "2026-11-22 01:02:03 UTC:10.0.1.23(53412):app@pacs:[4242]:ERROR:  duplicate key value violates unique constraint",
    "2026-11-22 01:02:03 UTC:10.0.1.23(53412):app@pacs:[4242]:DETAIL:  Key (study_uid)=(1.2.3) already exists.",
    "2026-11-22 01:02:03 UTC:10.0.1.23(53412):app@pacs:[4242]:DETAIL:  Second detail line.",
    "2026-11-22 01:02:03 UTC:10.0.1.23(53412):app@pacs:[4242]:STATEMENT:  INSERT INTO studies VALUES ('1.2.3')",
]


def test_two_postgres_detail_lines_are_both_kept_and_counted() -> None:
    parking = MemoryParkingLot()
    summary = pipeline(parking).run(
        {"awslogs": {"data": b64(gzip.compress(orjson.dumps(data_message("/aws/rds/pacs-db/error", POSTGRES))))}}
    )
    [record] = [record for records in summary.records_by_kind.values() for record in records]
    assert record.line_count == 4
    assert record.fields["detail"] == "Key (study_uid)=(1.2.3) already exists.\nSecond detail line."
    assert record.fields["statement"] == "INSERT INTO studies VALUES ('1.2.3')"
    result = summary.to_dict()
    assert result["accounting"]["record_lines"] == result["events_in"] == 4


def test_every_gzip_member_is_decoded_and_trailing_garbage_is_counted() -> None:
    first = data_message("/aws/ecs/api/application", ["one", "two"], start_ms=NOW_MS)
    second = data_message("/aws/ecs/api/application", ["three"], start_ms=NOW_MS, first_id=10)
    parking = MemoryParkingLot()
    members = gzip.compress(orjson.dumps(first)) + gzip.compress(orjson.dumps(second))
    result = pipeline(parking).run({"awslogs": {"data": b64(members + b"garbage tail")}}).to_dict()
    assert result["events_in"] == 3
    assert result["records"]["other"] == 3
    assert result["malformed"]["by_kind"] == {"trailing_garbage": 1}
    [item] = parking.flushed
    assert item.reason is ParkReason.MALFORMED_PAYLOAD
    assert item.body == "garbage tail"


def test_one_document_split_across_gzip_members_is_one_batch() -> None:
    raw = orjson.dumps(data_message("/aws/ecs/api/application", ["one", "two", "three"], start_ms=NOW_MS))
    middle = len(raw) // 2
    parking = MemoryParkingLot()
    data = b64(gzip.compress(raw[:middle]) + gzip.compress(raw[middle:]))
    result = pipeline(parking).run({"awslogs": {"data": data}}).to_dict()
    assert result["events_in"] == 3
    assert result["malformed"]["payloads"] == 0
    assert parking.flushed == []


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ([{"awslogs": {"data": "x"}}], "list"),
        (None, "NoneType"),
        ({"unknown": 2**80, "nested": [1, 2**70]}, "an object"),
        (b"\x1f\x8b raw bytes", "bytes"),
        ({"Records": [None, {"kinesis": {"data": 2**90}, "eventID": 2**70}]}, None),
    ],
)
def test_odd_lambda_events_are_parked_never_raised(event: object, kind: str | None) -> None:
    parking = MemoryParkingLot()
    result = pipeline(parking).run(event).to_dict()
    assert result["malformed"]["payloads"] == result["payloads"] == len(parking.flushed) >= 1
    assert set(result["malformed"]["by_kind"]) == {"wrong_shape"}
    if kind is not None:
        [item] = parking.flushed
        assert item.detail.startswith(f"wrong_shape: the Lambda event is {kind}")


def test_an_event_timestamp_past_9999_is_a_malformed_event_not_a_crash() -> None:
    document = data_message("/aws/ecs/pacs-backend/errors", ["ERROR boom"], start_ms=NOW_MS)
    document["logEvents"].append({"id": "9".zfill(56), "timestamp": 2**63 - 1, "message": "ERROR far future"})
    document["logEvents"].append({"id": "8".zfill(56), "timestamp": -5, "message": "ERROR before 1970"})
    parking = MemoryParkingLot()
    result = pipeline(parking).run({"awslogs": {"data": b64(gzip.compress(orjson.dumps(document)))}}).to_dict()
    assert result["malformed"]["events"] == 2
    assert {item.detail for item in parking.flushed} == {
        "log event timestamp is out of range (before 1970 or after 9999)"
    }
    accounting = result["accounting"]
    assert accounting["record_lines"] + accounting["malformed_events"] == result["events_in"] == 3


def test_hostile_inputs_finish_quickly() -> None:
    # A few of the shapes above in one Kinesis event: bounded time, everything accounted for.
    bomb = gzip.compress(b"B" * (32 * 1024 * 1024))
    good = gzip.compress(orjson.dumps(data_message("/aws/ecs/api/application", ["ok"], start_ms=NOW_MS)))
    event = {
        "Records": [
            {"kinesis": {"data": b64(bomb)}, "eventID": "s:1"},
            {"kinesis": {"data": b64(good + good)}, "eventID": "s:2"},
            {"kinesis": {"data": 7}, "eventID": "s:3"},
        ]
    }
    parking = MemoryParkingLot()
    started = time.perf_counter()
    result = pipeline(parking).run(event).to_dict()
    assert time.perf_counter() - started < 20
    assert result["batchItemFailures"] == []
    assert result["malformed"]["by_kind"] == {"too_large": 1, "wrong_shape": 1}
    assert result["events_in"] == 2


# Per-record isolation: an exception while building, sending or parking one record costs that record.

APPLICATION = [
    '{"level":"INFO","message":"Request completed","duration":120}',
    "2026-11-22 01:02:03,456 ERROR [pacs.api] request_id=r3 poison for kim@example.org",
    "Traceback (most recent call last):",
    "ValueError: poison",
    "2026-11-22 01:02:03,456 ERROR [pacs.api] request_id=r4 Upload failed",
]


def payload(lines: list[str], log_group: str = "/aws/ecs/pacs-backend/application") -> dict[str, Any]:
    return {"awslogs": {"data": b64(gzip.compress(orjson.dumps(data_message(log_group, lines, start_ms=NOW_MS))))}}


def test_a_record_whose_building_raises_is_parked_alone_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logpipe.assemble
    from logpipe.formats import parse_line as real

    def parse(message: str, extracted: Any = None) -> Any:
        if "poison" in message:
            msg = "parser bug"
            raise RuntimeError(msg)
        return real(message, extracted)

    monkeypatch.setattr(logpipe.assemble, "parse_line", parse)
    parking = MemoryParkingLot()
    result = pipeline(parking).run(payload(APPLICATION)).to_dict()
    assert result["records"] == {"error": 1, "llm": 0, "other": 1}
    [item] = parking.flushed
    assert item.reason is ParkReason.PROCESSING_ERROR
    assert "RuntimeError" in item.detail
    assert len(json.loads(item.body)["logEvents"]) == 3  # the head line and its traceback
    assert "kim@example.org" not in item.body
    [logged] = [record for record in caplog.records if "could not be built" in record.getMessage()]
    # The traceback goes to the pipeline's own log, scrubbed by the boundary's log filter.
    traceback = str(getattr(logged, "exception", ""))
    assert "Traceback" in traceback
    assert "RuntimeError: parser bug" in traceback
    accounting = result["accounting"]
    assert accounting["parked_events"] == 3
    assert accounting["record_lines"] + accounting["parked_events"] == result["events_in"] == 5


def test_an_error_record_that_cannot_become_a_sentry_event_costs_only_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    import logpipe.sentry.sink
    from logpipe.sentry.event import build_event as real
    from logpipe.sentry.routing import DsnRouter
    from logpipe.sentry.sink import SentrySink
    from logpipe.sentry.transport import SendOutcome, SendResult

    def build(record: Any, **kwargs: Any) -> dict[str, Any]:
        if "poison" in record.message:
            msg = "event bug"
            raise KeyError(msg)
        return real(record, **kwargs)

    monkeypatch.setattr(logpipe.sentry.sink, "build_event", build)
    sent: list[dict[str, Any]] = []

    class Sender:
        def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
            sent.append(event)
            return SendResult(str(event["event_id"]), SendOutcome.ACCEPTED, 200, None, "accepted")

    parking = MemoryParkingLot()
    ingest = pipeline(parking)
    ingest.sinks = (SentrySink(DsnRouter.single("https://k@sentry.invalid/1"), sender_factory=lambda _d: Sender()),)
    ingest._wanted = frozenset({ingest.sinks[0].kind})
    result = ingest.run(payload(APPLICATION)).to_dict()
    assert result["deliveries"] == {"sentry.delivered": 1, "sentry.dead_lettered": 1}
    assert [event["message"]["formatted"] for event in sent] == ["Upload failed"]
    [item] = parking.flushed
    assert item.detail == "processing_error: KeyError"
    assert item.dead_letter
    assert "kim@example.org" not in item.body


def test_an_item_that_cannot_be_prepared_for_parking_is_parked_by_its_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    parking = MemoryParkingLot()
    ingest = pipeline(parking)
    real = ingest.boundary.parked

    def parked(item: Any) -> Any:
        if "first" in item.body:
            msg = "boundary bug"
            raise RuntimeError(msg)
        return real(item)

    monkeypatch.setattr(ingest.boundary, "parked", parked)
    result = ingest.run(
        {"Records": [{"kinesis": {"data": "first %%%"}}, {"kinesis": {"data": "second %%%"}}]}
    ).to_dict()
    assert result["parked"] == 2
    first, second = parking.flushed
    assert first.reason is ParkReason.PROCESSING_ERROR
    assert first.body == "[REDACTED:scrub_failed]"
    assert first.detail == "parking: RuntimeError (malformed_payload)"
    assert second.reason is ParkReason.MALFORMED_PAYLOAD
    assert "second" in second.body


def test_nothing_after_parking_fails_the_invocation(monkeypatch: pytest.MonkeyPatch) -> None:
    parking = MemoryParkingLot()

    def broken_writer(line: bytes) -> None:
        msg = "stdout closed"
        raise OSError(msg)

    ingest = pipeline(parking)
    ingest.emf_writer = broken_writer
    result = ingest.run(payload(APPLICATION)).to_dict()
    assert result["malformed"]["processing_errors"] == 1
    assert result["records"]["error"] == 2
