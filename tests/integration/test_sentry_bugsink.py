"""Errors to Sentry end to end: the real pipeline and SDK client against Bugsink, parking on moto SQS."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from logpipe.boundary import Boundary
from logpipe.metrics import load_metric_rules
from logpipe.parking import SqsParkingLot
from logpipe.pipeline import IngestPipeline, IngestSummary
from logpipe.replay import Replayer
from logpipe.sentry.event import sentry_event_id
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import SentrySink
from logpipe.settings import Settings
from logpipe_cli.bugsink import BugsinkProject, BugsinkServer
from payloads import data_message, restamp, sqs_lambda_event, subscription_event

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events"
ERROR_SAMPLES = ["cwl-pacs-backend-errors.json", "cwl-keycloak.json", "cwl-lambda-thumbnailer.json"]
# Strings the samples carry that must never reach Sentry.
PII = ["@example.com", "010-", "HONG^GILDONG", "P-000", "Bearer ey", "postgres://pacs:"]


@pytest.fixture
def queues(moto_endpoint: str, request: pytest.FixtureRequest) -> Iterator[tuple[SQSClient, str, str]]:
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="ap-northeast-2")
    name = request.node.name[:40].replace("[", "-").replace("]", "").replace(".", "-")
    queue = sqs.create_queue(QueueName=f"sentry-{name}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"sentry-{name}-dlq")["QueueUrl"]
    yield sqs, queue, dlq
    sqs.delete_queue(QueueUrl=queue)
    sqs.delete_queue(QueueUrl=dlq)


def _pipeline(dsn: str, sqs: SQSClient, queue: str, dlq: str, *, workers: int = 8) -> IngestPipeline:
    # The parking clock runs an hour ahead: SQS's delivery delay (DelaySeconds for not-before) is
    # not what these tests are about, and replay checks not-before itself with its own clock.
    parking = SqsParkingLot(queue, client=sqs, dead_letter_url=dlq, clock=lambda: time.time() + 3600)
    return IngestPipeline(
        Settings(environment="prod"),
        rules=load_metric_rules(),
        parking=parking,
        boundary=Boundary.default(),
        sinks=[SentrySink(DsnRouter.single(dsn), environment="prod", send_timeout=3.0, max_workers=workers)],
        emf_writer=lambda line: None,
        keep_records=True,
    )


def _sample(name: str) -> dict[str, Any]:
    return restamp(json.loads((EVENTS / name).read_text()))


def _sentry_counts(summary: IngestSummary) -> dict[str, int]:
    return {key.removeprefix("sentry."): value for key, value in summary.to_dict()["deliveries"].items()}


def _replay_all(sqs: SQSClient, queue: str, dlq: str, dsn: str, *, now: float) -> dict[str, Any]:
    """Receive every parked message and hand it to the replayer as Lambda's SQS event."""
    replayer = Replayer(queue_url=queue, dead_letter_url=dlq, router=DsnRouter.single(dsn), sqs=sqs, clock=lambda: now)
    failures: list[Any] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
        if not messages:
            break
        response = replayer.handle(sqs_lambda_event(messages))
        failures.extend(response["batchItemFailures"])
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:  # Lambda deletes what the partial response did not list
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return {"failures": failures, "counts": replayer.counts}


@pytest.mark.parametrize("sample", ERROR_SAMPLES)
def test_sample_error_batches_become_native_quality_sentry_events(
    bugsink: BugsinkServer, sentry_project: BugsinkProject, queues: tuple[SQSClient, str, str], sample: str
) -> None:
    sqs, queue, dlq = queues
    pipeline = _pipeline(sentry_project.dsn, sqs, queue, dlq)
    summary = pipeline.run(_sample(sample))
    errors = summary.records_by_kind[next(k for k in summary.records_by_kind if k.value == "error")]
    assert errors, "the sample has error records"
    assert _sentry_counts(summary) == {"delivered": len(errors)}
    stored = {event["event_id"].replace("-", ""): event for event in bugsink.events(sentry_project)}
    assert len(stored) == len(errors)
    for record in errors:
        event = stored[sentry_event_id(record.log_group, record.event_id)]
        tags = event["tags"] if isinstance(event["tags"], dict) else dict(event["tags"])
        assert tags["service"] == record.service
        assert tags["log_group"] == record.log_group
        assert abs(_timestamp(event) - record.timestamp_ms / 1000) < 0.002
        if record.exception is not None:
            values = event["exception"]["values"]
            assert values
            assert values[-1]["type"]
        assert event["contexts"]["cloudwatch"]["log_group"] == record.log_group
    text = json.dumps(list(stored.values()))
    for secret in PII:
        assert secret not in text
    if sample == "cwl-pacs-backend-errors.json":
        chained = [
            e
            for e in stored.values()
            if any(v["type"].endswith("StudyUnavailable") for v in e.get("exception", {}).get("values", []))
        ]
        assert chained
        [event] = chained
        types = [value["type"] for value in event["exception"]["values"]]
        assert types[0].endswith("OperationalError")  # root cause first, as Sentry expects
        frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
        assert [frame["function"] for frame in frames] == ["get_study", "get"]
        assert event["breadcrumbs"]["values"] is not None


def _timestamp(event: dict[str, Any]) -> float:
    value = event["timestamp"]
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


def test_grouping_puts_one_bug_in_one_issue(
    bugsink: BugsinkServer, sentry_project: BugsinkProject, queues: tuple[SQSClient, str, str]
) -> None:
    sqs, queue, dlq = queues
    lines = [
        f'{{"level":"ERROR","message":"Study {1000 + i} not found for request {i:08x}","request_id":"r{i}",'
        f'"exc_info":"Traceback (most recent call last):\\n  File \\"/app/x.py\\", line 3, in get\\nKeyError: {i}"}}'
        for i in range(4)
    ]
    start = int(time.time() * 1000) - 60_000
    _pipeline(sentry_project.dsn, sqs, queue, dlq).run(
        subscription_event(data_message("/aws/ecs/pacs-backend/errors", lines, start_ms=start))
    )
    assert len(bugsink.events(sentry_project)) == 4
    assert len(bugsink.issues(sentry_project)) == 1


def test_the_same_batch_twice_stores_nothing_new(
    bugsink: BugsinkServer, sentry_project: BugsinkProject, queues: tuple[SQSClient, str, str]
) -> None:
    sqs, queue, dlq = queues
    event = _sample("cwl-pacs-backend-errors.json")
    first = _pipeline(sentry_project.dsn, sqs, queue, dlq).run(event)
    stored = len(bugsink.events(sentry_project))
    second = _pipeline(sentry_project.dsn, sqs, queue, dlq).run(event)
    assert _sentry_counts(first) == _sentry_counts(second)
    assert len(bugsink.events(sentry_project)) == stored
    assert len(bugsink.issues(sentry_project)) > 0


def test_rate_limited_events_are_parked_and_replay_stores_each_exactly_once(
    bugsink_factory: Callable[..., BugsinkServer], tmp_path: Path, queues: tuple[SQSClient, str, str]
) -> None:
    sqs, queue, dlq = queues
    limited = bugsink_factory(data_dir=tmp_path / "bugsink", max_events_per_project_per_5_minutes=3)
    project = limited.create_project("rate-limited", max_events_per_5_minutes=3)
    # One send at a time: under parallel sends Bugsink may answer 200 for an event its quota then
    # drops (accepted is not stored), which would make the counts below racy.
    summary = _pipeline(project.dsn, sqs, queue, dlq, workers=1).run(_sample("cwl-pacs-backend-errors.json"))
    counts = _sentry_counts(summary)
    errors = sum(counts.values())
    assert counts == {"delivered": 3, "parked": errors - 3}
    assert len(limited.events(project)) == 3
    # The window passes: Bugsink comes back on the same port with the limit lifted.
    limited.stop()
    after = bugsink_factory(port=limited.port, data_dir=limited.data_dir)
    result = _replay_all(sqs, queue, dlq, project.dsn, now=time.time() + 3600)
    assert result["failures"] == []
    assert result["counts"] == {"delivered": counts["parked"]}
    assert len(after.events(project)) == errors
    # Replaying again (an at-least-once redelivery) changes nothing.
    _pipeline(project.dsn, sqs, queue, dlq).run(_sample("cwl-pacs-backend-errors.json"))
    assert len(after.events(project)) == errors


def test_server_down_events_are_parked_and_replay_delivers_them_after_restart(
    bugsink_factory: Callable[..., BugsinkServer], tmp_path: Path, queues: tuple[SQSClient, str, str]
) -> None:
    sqs, queue, dlq = queues
    server = bugsink_factory(data_dir=tmp_path / "bugsink")
    project = server.create_project("down-and-up")
    server.stop()
    summary = _pipeline(project.dsn, sqs, queue, dlq).run(_sample("cwl-keycloak.json"))
    counts = _sentry_counts(summary)
    assert counts.keys() == {"parked"}
    server.start()
    result = _replay_all(sqs, queue, dlq, project.dsn, now=time.time() + 3600)
    assert result["counts"] == {"delivered": counts["parked"]}
    assert len(server.events(project)) == counts["parked"]


def test_every_record_is_accounted_for(
    bugsink_factory: Callable[..., BugsinkServer], tmp_path: Path, queues: tuple[SQSClient, str, str]
) -> None:
    sqs, queue, dlq = queues
    limited = bugsink_factory(data_dir=tmp_path / "bugsink", max_events_per_project_per_5_minutes=2)
    project = limited.create_project("accounting", max_events_per_5_minutes=2)
    summaries = [_pipeline(project.dsn, sqs, queue, dlq, workers=1).run(_sample(name)) for name in ERROR_SAMPLES]
    for summary in summaries:
        result = summary.to_dict()
        counts = _sentry_counts(summary)
        assert sum(counts.values()) == result["records"]["error"]
        assert set(counts) <= {"delivered", "parked", "dead_lettered", "skipped"}
    parked = sum(_sentry_counts(s).get("parked", 0) for s in summaries)
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    in_queue = int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesDelayed"])
    assert in_queue == parked
    assert len(limited.events(project)) == sum(_sentry_counts(s).get("delivered", 0) for s in summaries)


def test_parking_after_a_failed_send_never_meets_sdk_annotations(
    bugsink_factory: Callable[..., BugsinkServer], tmp_path: Path, queues: tuple[SQSClient, str, str]
) -> None:
    # Regression: the SDK's own EventScrubber replaced breadcrumb data under keys like "password"
    # with AnnotatedValue objects, in place, so parking the event after a 429/5xx/network error
    # raised "TypeError: Type is not JSON serializable: AnnotatedValue" and failed the invocation.
    sqs, queue, dlq = queues
    server = bugsink_factory(data_dir=tmp_path / "bugsink")
    project = server.create_project("annotations")
    server.stop()
    lines = [
        json.dumps(
            {"level": "INFO", "message": "login", "request_id": "r-9", "password": "hunter2", "session": "s-42"}
        ),
        json.dumps({"level": "ERROR", "message": "upload failed", "request_id": "r-9", "exc_info": "ValueError: x"}),
    ]
    event = subscription_event(
        data_message("/aws/ecs/pacs-backend/application", lines, start_ms=int(time.time() * 1000))
    )
    summary = _pipeline(project.dsn, sqs, queue, dlq).run(event)
    assert _sentry_counts(summary) == {"parked": 1}
    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    parked = json.loads(json.loads(message["Body"])["body"])
    [crumb] = parked["breadcrumbs"]["values"]
    # Our boundary masked the password; the SDK (whose denylist also has "session") touched nothing.
    assert crumb["data"] == {"request_id": "r-9", "password": "[REDACTED:secret]", "session": "s-42"}
    assert "hunter2" not in message["Body"]
