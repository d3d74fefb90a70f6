"""Replay backoff against a simulated day-long sink outage, on a fake clock.

``SimulatedQueue`` models what matters of SQS for the parking queue: visibility timeouts (the
replay's ChangeMessageVisibility, else the queue's default after a failed record), the receive
count and sent time Lambda passes as record attributes, and the redrive to the DLQ once a message
is received more than ``maxReceiveCount`` times (read from template.yaml). The real ``Replayer``
handles every batch the way Lambda's event source mapping would hand it over.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from logpipe.parking import ParkedItem
from logpipe.replay import Replayer, backoff_seconds, max_receives_within
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.transport import SendOutcome, SendResult

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0
START = 1_795_300_000.0
DSN = "https://public@sentry.example.com/7"


class _Loader(yaml.SafeLoader):
    """Reads template.yaml, short-form intrinsics as plain values (only literals are looked at)."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _template_queue() -> dict[str, Any]:
    template = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    properties: dict[str, Any] = template["Resources"]["ParkingQueue"]["Properties"]
    return properties


QUEUE = _template_queue()
MAX_RECEIVE_COUNT = int(QUEUE["RedrivePolicy"]["maxReceiveCount"])
DEFAULT_VISIBILITY = float(QUEUE["VisibilityTimeout"])


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Message:
    message_id: str
    body: str
    sent: float
    visible_at: float
    receives: int = 0
    receipt: str = ""


@dataclass
class SimulatedQueue:
    """The parking queue and its DLQ, driven by the fake clock (the subset of SQS the replay uses)."""

    clock: Clock
    messages: dict[str, Message] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    redriven: list[str] = field(default_factory=list)
    _receipts: itertools.count[int] = field(default_factory=itertools.count)

    def send(self, body: str, delay: float = 0.0) -> None:
        message_id = f"m-{len(self.messages):04d}"
        now = self.clock()
        self.messages[message_id] = Message(message_id, body, now, now + delay)

    def receive(self, limit: int = 10) -> list[Message]:
        now = self.clock()
        batch: list[Message] = []
        for message in sorted(self.messages.values(), key=lambda m: m.visible_at):
            if len(batch) == limit or message.visible_at > now:
                break
            if message.receives >= MAX_RECEIVE_COUNT:  # SQS's redrive: to the DLQ instead of a receive
                del self.messages[message.message_id]
                self.redriven.append(message.message_id)
                continue
            message.receives += 1
            message.receipt = f"r-{next(self._receipts)}"
            message.visible_at = now + DEFAULT_VISIBILITY
            batch.append(message)
        return batch

    def next_visible(self) -> float | None:
        return min((m.visible_at for m in self.messages.values()), default=None)

    # The two calls the Replayer makes (boto3's SQS client signatures).
    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:  # noqa: N803
        (message,) = [m for m in self.messages.values() if m.receipt == ReceiptHandle]
        message.visible_at = self.clock() + VisibilityTimeout

    def send_message(self, QueueUrl: str, MessageBody: str, MessageAttributes: dict[str, Any]) -> None:  # noqa: N803
        self.dead_letters.append(orjson.loads(MessageBody))

    def lambda_event(self, batch: list[Message]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt,
                    "body": m.body,
                    "attributes": {
                        "ApproximateReceiveCount": str(m.receives),
                        "SentTimestamp": str(int(m.sent * 1000)),
                    },
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:ap-northeast-2:123456789012:parking",
                    "awsRegion": "ap-northeast-2",
                }
                for m in batch
            ]
        }


class SentryDuringAnOutage:
    """503 until ``recovers_at`` (or 400 for every event when ``rejects``), then accepted."""

    def __init__(self, clock: Clock, recovers_at: float, *, rejects: bool = False) -> None:
        self.clock = clock
        self.recovers_at = recovers_at
        self.rejects = rejects
        self.attempts: list[float] = []
        self.delivered: list[str] = []
        self.delivered_at: list[float] = []

    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        self.attempts.append(self.clock())
        if self.rejects:
            return SendResult(event["event_id"], SendOutcome.REJECTED, 400, None, "HTTP 400: invalid event")
        if self.clock() < self.recovers_at:
            return SendResult(event["event_id"], SendOutcome.RETRYABLE, 503, None, "HTTP 503: unavailable")
        self.delivered.append(event["event_id"])
        self.delivered_at.append(self.clock())
        return SendResult(event["event_id"], SendOutcome.ACCEPTED, 200, None, "accepted")


def _park(queue: SimulatedQueue, count: int) -> None:
    """What the ingest function parks when Sentry answers 503: not before one minute (SQS delivery delay)."""
    for index in range(count):
        event_id = f"{index:032x}"
        item = ParkedItem.undelivered(
            sink="sentry",
            retry=True,
            detail="retryable: HTTP 503",
            body=orjson.dumps({"event_id": event_id, "message": {"formatted": "boom"}}).decode(),
            item_id=event_id,
            log_group="/aws/ecs/pacs-backend/errors",
            log_stream="s",
            now=queue.clock(),
            wait_seconds=60,
            attributes={"sink": "sentry", "service": "pacs-backend"},
        )
        queue.send(item.to_message().decode(), delay=60)


def _run(queue: SimulatedQueue, sentry: SentryDuringAnOutage, *, until: float, horizon_hours: float = 72) -> Replayer:
    """Lambda's SQS poller on the fake clock: jump to the next visible message, hand over batches of ten."""
    clock = queue.clock
    replayer = Replayer(
        queue_url="parking",
        dead_letter_url="dlq",
        router=DsnRouter.single(DSN),
        sqs=queue,  # type: ignore[arg-type]  # the simulated queue answers the two calls the replay makes
        sender_factory=lambda dsn: sentry,
        clock=clock,
        horizon_hours=horizon_hours,
    )
    while (visible := queue.next_visible()) is not None and visible <= until:
        clock.now = max(clock.now, visible)
        while batch := queue.receive():
            response = replayer.handle(queue.lambda_event(batch))
            failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
            for message in batch:
                if message.message_id not in failed:  # Lambda deletes what the partial response did not list
                    del queue.messages[message.message_id]
    return replayer


def test_a_24_hour_sentry_outage_never_reaches_the_dlq() -> None:
    clock = Clock()
    queue = SimulatedQueue(clock)
    _park(queue, 25)
    sentry = SentryDuringAnOutage(clock, recovers_at=START + 24 * HOUR)
    replayer = _run(queue, sentry, until=START + 14 * 24 * HOUR)
    assert sorted(sentry.delivered) == sorted(f"{index:032x}" for index in range(25))  # each exactly once
    assert queue.messages == {}
    assert queue.dead_letters == []
    assert queue.redriven == []
    assert replayer.counts["delivered"] == 25
    # About a dozen attempts each over the day, and everything is in within one 12 h wait of the recovery.
    attempts_per_item = len(sentry.attempts) / 25
    assert 8 <= attempts_per_item <= 16, attempts_per_item
    assert max(sentry.delivered_at) <= START + 24 * HOUR + 12 * HOUR


def test_the_waits_grow_exponentially_with_jitter_up_to_twelve_hours() -> None:
    waits = [backoff_seconds(attempt, "m-0001") for attempt in range(1, 16)]
    for attempt, wait in enumerate(waits, start=1):
        ceiling = min(12 * HOUR, 60 * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling, attempt
    assert waits[5] > 4 * waits[1]
    assert backoff_seconds(3, "m-0001") == backoff_seconds(3, "m-0001")  # a redelivered batch decides the same
    spread = {round(backoff_seconds(6, f"m-{index:04d}")) for index in range(50)}
    assert len(spread) > 40  # items of one outage do not come back together


def test_an_outage_longer_than_the_horizon_dead_letters_at_the_horizon_with_the_reason() -> None:
    clock = Clock()
    queue = SimulatedQueue(clock)
    _park(queue, 3)
    sentry = SentryDuringAnOutage(clock, recovers_at=START + 10 * 24 * HOUR)
    replayer = _run(queue, sentry, until=START + 14 * 24 * HOUR, horizon_hours=72)
    assert sentry.delivered == []
    assert queue.redriven == []  # the replay decided, not SQS's receive count
    assert len(queue.dead_letters) == 3
    for dead in queue.dead_letters:
        assert (
            dead["dead_letter_reason"]
            == "not delivered within the 72 h replay horizon: retryable: HTTP 503: unavailable"
        )
    assert replayer.counts["horizon_expired"] == 3
    # The last attempt happens at the horizon, not up to 12 h after it.
    assert 72 * HOUR <= max(sentry.attempts) - START <= 72 * HOUR + 15 * 60
    assert len(sentry.attempts) / 3 <= max_receives_within(72 * HOUR)


def test_a_rejection_goes_to_the_dlq_at_once() -> None:
    clock = Clock()
    queue = SimulatedQueue(clock)
    _park(queue, 2)
    sentry = SentryDuringAnOutage(clock, recovers_at=START, rejects=True)
    _run(queue, sentry, until=START + HOUR)
    assert len(sentry.attempts) == 2
    assert [dead["dead_letter_reason"] for dead in queue.dead_letters] == ["rejected: HTTP 400: invalid event"] * 2


@pytest.mark.parametrize("body", ["not json at all", "[1, 2]", '{"reason": "no_such_reason"}', ""])
def test_a_message_that_is_not_a_parked_item_is_logged_counted_and_dead_lettered(
    body: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    queue = SimulatedQueue(clock)
    queue.send(body)
    replayer = _run(queue, SentryDuringAnOutage(clock, recovers_at=START), until=START + HOUR)
    assert queue.messages == {}  # handled: not redelivered until SQS gives up on it
    [dead] = queue.dead_letters
    assert dead["reason"] == "unreadable_message"
    assert dead["body"] == body  # kept whole for the person who looks
    assert dead["dead_letter_reason"].startswith("unreadable parked message: ")
    assert replayer.counts == {"unreadable": 1, "dead_lettered": 1}
    [logged] = [r for r in caplog.records if r.getMessage() == "Unreadable message on the parking queue dead-lettered"]
    assert logged.levelname == "ERROR"
    if body:
        assert body not in caplog.text  # logged by id and size only
