"""Replay of CloudWatch Logs exports from S3 against a real moto server, through the real ingest pipeline."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import boto3
import pytest

from logpipe.boundary import Boundary
from logpipe.classify import RecordKind
from logpipe.export import DAY_MS
from logpipe.metrics import load_metric_rules
from logpipe.parking import MemoryParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.records import LogRecord
from logpipe.s3replay import data_messages, list_export_keys, parse_target, replay_objects, subscription_event
from logpipe.settings import Settings
from logpipe.sinks import Delivery, DeliveryOutcome, SendContext

pytestmark = pytest.mark.integration

REGION: Final = "ap-northeast-2"
STREAMS = ("web-1", "web-2")
DAYS_BACK = (3, 2, 1)


class RecordingSink:
    """A fake ERROR sink that accepts everything and remembers it, and what it sends (through the boundary)."""

    def __init__(self) -> None:
        self.name = "fake-error"
        self.kind = RecordKind.ERROR
        self.received: list[LogRecord] = []
        self.sent: list[object] = []

    def send(self, records: Sequence[LogRecord], context: SendContext) -> Sequence[Delivery]:
        self.received.extend(records)
        self.sent.extend(context.boundary.scrub_value({"raw": r.raw, "message": r.message}) for r in records)
        return [Delivery(record.event_id, DeliveryOutcome.DELIVERED) for record in records]

    def flush(self) -> None:
        """Nothing is buffered."""


def pipeline_with(sink: RecordingSink) -> IngestPipeline:
    return IngestPipeline(
        Settings(environment="test", metrics_enabled=False),
        rules=load_metric_rules(),
        parking=MemoryParkingLot(),
        boundary=Boundary.default(),
        sinks=[sink],
        emf_writer=lambda _line: None,
    )


def day_path(day_ms: int) -> str:
    return time.strftime("%Y/%m/%d", time.gmtime(day_ms / 1000))


def iso_day(day_ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day_ms / 1000))


@dataclass
class Exported:
    """A log group with error events on several days, each day exported under the documented prefix."""

    endpoint: str
    s3: Any
    bucket: str
    group: str
    today_ms: int
    # (stream, day_ms) -> the events as written to CloudWatch Logs
    written: dict[tuple[str, int], list[dict[str, Any]]]
    # What the last replay's sink sent, through the boundary.
    last_sent: list[object] = field(default_factory=list)

    def url(self, start_back: int, end_back: int) -> str:
        start, end = (iso_day(self.today_ms - back * DAY_MS) for back in (start_back, end_back))
        return f"s3://{self.bucket}/exports/{self.group.lstrip('/')}/{start}..{end}"

    def replay(self, url: str) -> list[LogRecord]:
        sink = RecordingSink()
        pipeline = pipeline_with(sink)
        target = parse_target(url)
        replay_objects(self.s3, target.bucket, list_export_keys(self.s3, target), pipeline.run)
        self.last_sent = sink.sent
        return sink.received

    def live(self, days_back: Sequence[int]) -> list[LogRecord]:
        """The same events through the live path: one subscription payload per stream and day."""
        sink = RecordingSink()
        pipeline = pipeline_with(sink)
        for (stream, day_ms), events in sorted(self.written.items()):
            if (self.today_ms - day_ms) // DAY_MS in days_back:
                # CloudWatch assigns its own ids on the live path; only ids differ from a replay.
                with_ids = [{"id": str(day_ms + i).zfill(56), **event} for i, event in enumerate(events)]
                for document in data_messages(self.group, stream, with_ids):
                    pipeline.run(subscription_event(document))
        return sink.received


def error_messages(day: int, stream: str) -> list[str]:
    return [
        json.dumps({"level": "ERROR", "message": f"Study load failed day-{day} {stream}", "request_id": f"r{day}"}),
        f"2026-01-01 00:00:00,000 ERROR [pacs.api] request_id=q{day} Unhandled exception for hong{day}@example.com\n"
        'Traceback (most recent call last):\n  File "/app/pacs/api/views.py", line 120, in get_study\n'
        f"ValueError: study {day} not found",
        json.dumps({"level": "INFO", "message": "Request completed", "duration": 120 + day}),
    ]


@pytest.fixture
def exported(moto_endpoint: str) -> Exported:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    logs = boto3.client("logs", endpoint_url=moto_endpoint, region_name=REGION)
    bucket = f"logpipe-replay-{uuid.uuid4().hex[:12]}"
    group = f"/aws/ecs/pacs-{uuid.uuid4().hex[:8]}/application"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    logs.create_log_group(logGroupName=group)
    today_ms = int(time.time() * 1000) // DAY_MS * DAY_MS
    written: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for stream in STREAMS:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        events: list[Any] = []
        for back in DAYS_BACK:
            day_ms = today_ms - back * DAY_MS
            # Whole seconds: exports carry the time to the millisecond, moto only to the second.
            day_events = [
                {"timestamp": day_ms + 3_600_000 + index * 1000, "message": message}
                for index, message in enumerate(error_messages(back, stream))
            ]
            written[(stream, day_ms)] = day_events
            events.extend(day_events)
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
    for back in DAYS_BACK:
        day_ms = today_ms - back * DAY_MS
        logs.create_export_task(
            logGroupName=group,
            fromTime=day_ms,
            to=day_ms + DAY_MS - 1,
            destination=bucket,
            destinationPrefix=f"exports/{group.lstrip('/')}/{day_path(day_ms)}",
        )
    return Exported(moto_endpoint, s3, bucket, group, today_ms, written)


def view(records: Sequence[LogRecord]) -> list[tuple[Any, ...]]:
    return sorted(
        (r.log_group, r.log_stream, r.timestamp_ms, r.level, r.message, r.exception, r.raw, r.request_id)
        for r in records
    )


def test_replayed_error_records_equal_the_live_paths(exported: Exported) -> None:
    keys = [o["Key"] for o in exported.s3.list_objects_v2(Bucket=exported.bucket)["Contents"]]
    assert any(k.startswith(f"exports/{exported.group.lstrip('/')}/") and k.endswith(".gz") for k in keys)

    replayed = exported.replay(exported.url(3, 1))

    live = exported.live(DAYS_BACK)
    assert len(replayed) == 2 * len(STREAMS) * len(DAYS_BACK)
    assert view(replayed) == view(live)
    messages = {r.message for r in replayed}
    for back in DAYS_BACK:
        for stream in STREAMS:
            assert f"Study load failed day-{back} {stream}" in messages
    tracebacks = [r for r in replayed if r.exception]
    assert len(tracebacks) == len(STREAMS) * len(DAYS_BACK)
    assert all("not found" in (r.exception or "") for r in tracebacks)
    assert any("@example.com" in r.raw for r in replayed)  # records are read whole ...
    assert exported.last_sent
    assert not any("@example.com" in json.dumps(sent) for sent in exported.last_sent)  # ... what leaves is scrubbed


def test_replaying_twice_gives_identical_ids(exported: Exported) -> None:
    first = exported.replay(exported.url(3, 1))
    second = exported.replay(exported.url(3, 1))
    ids = [(r.event_id, r.timestamp_ms, r.message) for r in first]
    assert ids == [(r.event_id, r.timestamp_ms, r.message) for r in second]
    assert len({r.event_id for r in first}) == len(first)


def test_the_range_selects_only_the_given_days(exported: Exported) -> None:
    day_2 = exported.today_ms - 2 * DAY_MS
    only_day_2 = exported.replay(exported.url(2, 2))
    assert only_day_2
    assert {r.timestamp_ms // DAY_MS * DAY_MS for r in only_day_2} == {day_2}
    assert view(only_day_2) == view(exported.live([2]))
    two_days = exported.replay(exported.url(3, 2))
    assert {r.timestamp_ms // DAY_MS * DAY_MS for r in two_days} == {day_2 - DAY_MS, day_2}


def test_cli_replay_prints_a_summary_on_stdout_and_progress_on_stderr(
    exported: Exported, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from logpipe_cli.main import main

    for name in (
        "LOGPIPE_SENTRY_DSN",
        "LOGPIPE_SENTRY_SECRET_ID",
        "LOGPIPE_PARKING_QUEUE_URL",
        "LOGPIPE_LANGFUSE_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", exported.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("LOGPIPE_ENVIRONMENT", "test")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

    assert main(["replay", exported.url(3, 2)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["events"] == 2 * len(STREAMS) * 3
    assert summary["objects"] == 2 * len(STREAMS)
    assert summary["records"]["error"] == 2 * 2 * len(STREAMS)
    assert summary["metrics"] is False
    assert summary["deliveries"] == {}  # no sink configured in this environment
    assert "objects [" in captured.err

    assert main(["replay", "s3://bucket/exports/x/2026-02-30..2026-03-01"]) == 2
    assert "yyyy-mm-dd" in capsys.readouterr().err
