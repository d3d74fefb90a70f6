"""Replay of parked items against a real SQS API (moto server): due, not due, rejected, malformed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest

from logpipe.parking import ParkedItem, ParkReason, SqsParkingLot
from logpipe.replay import Replayer
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.transport import SendOutcome, SendResult
from payloads import sqs_lambda_event

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.integration

NOW = 1_795_300_000.0
DSN = "https://public@sentry.example.com/7"


class ScriptedSender:
    def __init__(self, outcome: SendOutcome, retry_after: float | None = None) -> None:
        self.outcome = outcome
        self.retry_after = retry_after
        self.sent: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        self.sent.append(event)
        return SendResult(event["event_id"], self.outcome, None, self.retry_after, self.outcome.value)


@pytest.fixture
def queues(moto_endpoint: str, request: pytest.FixtureRequest) -> Iterator[tuple[SQSClient, str, str]]:
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="ap-northeast-2")
    name = request.node.name[:40].replace("[", "-").replace("]", "")
    queue = sqs.create_queue(QueueName=f"replay-{name}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"replay-{name}-dlq")["QueueUrl"]
    yield sqs, queue, dlq
    sqs.delete_queue(QueueUrl=queue)
    sqs.delete_queue(QueueUrl=dlq)


def _park(sqs: SQSClient, queue: str, dlq: str, *items: ParkedItem) -> None:
    lot = SqsParkingLot(queue, client=sqs, dead_letter_url=dlq, clock=lambda: NOW)
    for item in items:
        lot.park(item)
    lot.flush()


def _sqs_event(sqs: SQSClient, queue: str) -> dict[str, Any]:
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
    return sqs_lambda_event(messages)


def _sentry_item(event_id: str, not_before: float | None) -> ParkedItem:
    event = {"event_id": event_id, "message": {"formatted": "boom"}, "level": "error"}
    return ParkedItem(
        ParkReason.SINK_RETRY,
        "rate_limited: 429",
        orjson.dumps(event).decode(),
        event_id,
        "/aws/ecs/pacs-backend/application",
        "s",
        "sentry",
        not_before,
        {"sink": "sentry", "service": "pacs-backend"},
    )


def _replayer(sqs: SQSClient, queue: str, dlq: str, sender: ScriptedSender, now: float) -> Replayer:
    return Replayer(
        queue_url=queue,
        dead_letter_url=dlq,
        router=DsnRouter.single(DSN),
        sqs=sqs,
        sender_factory=lambda dsn: sender,
        clock=lambda: now,
    )


def test_due_items_are_resent_and_acknowledged(queues: tuple[SQSClient, str, str]) -> None:
    sqs, queue, dlq = queues
    _park(sqs, queue, dlq, _sentry_item("a" * 32, None), _sentry_item("b" * 32, NOW - 5))
    sender = ScriptedSender(SendOutcome.ACCEPTED)
    response = _replayer(sqs, queue, dlq, sender, NOW).handle(_sqs_event(sqs, queue))
    assert response == {"batchItemFailures": []}
    assert sorted(event["event_id"] for event in sender.sent) == ["a" * 32, "b" * 32]


def test_items_not_yet_due_are_failed_and_not_sent(queues: tuple[SQSClient, str, str]) -> None:
    sqs, queue, dlq = queues
    _park(sqs, queue, dlq, _sentry_item("c" * 32, None))
    event = _sqs_event(sqs, queue)
    event["Records"][0]["body"] = event["Records"][0]["body"].replace('"not_before":null', f'"not_before":{NOW + 3600}')
    sender = ScriptedSender(SendOutcome.ACCEPTED)
    response = _replayer(sqs, queue, dlq, sender, NOW).handle(event)
    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert sender.sent == []


def test_still_rate_limited_is_failed_for_a_later_retry(queues: tuple[SQSClient, str, str]) -> None:
    sqs, queue, dlq = queues
    _park(sqs, queue, dlq, _sentry_item("d" * 32, None))
    sender = ScriptedSender(SendOutcome.RATE_LIMITED, retry_after=30)
    event = _sqs_event(sqs, queue)
    replayer = _replayer(sqs, queue, dlq, sender, NOW)
    response = replayer.handle(event)
    assert len(response["batchItemFailures"]) == 1
    assert replayer.counts == {"retry_later": 1}


def test_rejected_and_malformed_items_go_to_the_dlq_with_a_reason(queues: tuple[SQSClient, str, str]) -> None:
    sqs, queue, dlq = queues
    malformed = ParkedItem(ParkReason.MALFORMED_PAYLOAD, "not_gzip: payload is not gzip", "junk", "m1")
    _park(sqs, queue, dlq, _sentry_item("e" * 32, None), malformed)
    sender = ScriptedSender(SendOutcome.REJECTED)
    response = _replayer(sqs, queue, dlq, sender, NOW).handle(_sqs_event(sqs, queue))
    assert response == {"batchItemFailures": []}
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    reasons = sorted(orjson.loads(m["Body"])["dead_letter_reason"] for m in dead)
    assert reasons == ["needs a human: not_gzip: payload is not gzip", "rejected: rejected"]


def test_dead_lettered_items_are_parked_straight_on_the_dlq(queues: tuple[SQSClient, str, str]) -> None:
    sqs, queue, dlq = queues
    item = ParkedItem(ParkReason.SINK_REJECTED, "rejected: HTTP 400", "{}", "x", dead_letter=True)
    _park(sqs, queue, dlq, item)
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []
    [message] = sqs.receive_message(QueueUrl=dlq).get("Messages", [])
    assert orjson.loads(message["Body"])["item_id"] == "x"
