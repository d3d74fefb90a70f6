"""The Sentry sink with a scripted sender: outcomes, parking, dead letters, spike protection, deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from logpipe.boundary import Boundary
from logpipe.classify import RecordKind, classify
from logpipe.parking import MemoryParkingLot, ParkReason
from logpipe.records import LogRecord
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import SentrySink
from logpipe.sentry.transport import SendOutcome, SendResult
from logpipe.sinks import DeliveryOutcome, SendContext
from payloads import parsed_records

pytestmark = pytest.mark.unit

NOW = 1_795_300_000.0
DSN = "https://public@sentry.example.com/7"


class ScriptedSender:
    """Answers each event with the outcome a script picks; remembers what was sent."""

    def __init__(self, answer: Callable[[dict[str, Any]], SendResult]) -> None:
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        self.sent.append(event)
        return self.answer(event)


def accepted(event: dict[str, Any]) -> SendResult:
    return SendResult(event["event_id"], SendOutcome.ACCEPTED, 200, None, "accepted")


def _records(messages: list[str], log_group: str = "/aws/ecs/pacs-backend/application") -> list[LogRecord]:
    return parsed_records(log_group, messages, start_ms=int(NOW * 1000))


def _errors(count: int, *, distinct: bool = False) -> list[LogRecord]:
    lines = [
        f'{{"level":"ERROR","message":"Failed to store instance {i}","request_id":"r{i}",'
        f'"exc_info":"Traceback (most recent call last):\\n  File \\"/app/x.py\\", line 1, in f\\n'
        f'{"KeyError" if not distinct else f"Error{i}"}: {i}"}}'
        for i in range(count)
    ]
    return [record for record in _records(lines) if classify(record) is RecordKind.ERROR]


def _sink(sender: ScriptedSender, **kwargs: Any) -> SentrySink:
    return SentrySink(DsnRouter.single(DSN), sender_factory=lambda dsn: sender, clock=lambda: NOW, **kwargs)


def _context(parking: MemoryParkingLot, records: list[LogRecord], deadline: float | None = None) -> SendContext:
    return SendContext(
        batch_records=records,
        boundary=Boundary.disabled(),
        parking=parking,
        deadline=time.monotonic() + 30 if deadline is None else deadline,
    )


def test_accepted_events_are_delivered_with_deterministic_ids() -> None:
    sender = ScriptedSender(accepted)
    records = _errors(3, distinct=True)
    deliveries = _sink(sender).send(records, _context(MemoryParkingLot(), records))
    assert [d.outcome for d in deliveries] == [DeliveryOutcome.DELIVERED] * 3
    assert len({event["event_id"] for event in sender.sent}) == 3
    again = ScriptedSender(accepted)
    _sink(again).send(records, _context(MemoryParkingLot(), records))
    assert [e["event_id"] for e in again.sent] == [e["event_id"] for e in sender.sent]


def test_rate_limited_events_are_parked_with_their_not_before() -> None:
    sender = ScriptedSender(
        lambda e: SendResult(e["event_id"], SendOutcome.RATE_LIMITED, 429, 42.0, "rate limited for 42s")
    )
    parking = MemoryParkingLot()
    records = _errors(2, distinct=True)
    deliveries = _sink(sender).send(records, _context(parking, records))
    assert [d.outcome for d in deliveries] == [DeliveryOutcome.PARKED] * 2
    assert [item.not_before for item in parking.items] == [NOW + 42.0] * 2
    assert {item.reason for item in parking.items} == {ParkReason.SINK_RETRY}
    assert all(
        not item.dead_letter and item.attributes == {"sink": "sentry", "service": "pacs-backend"}
        for item in parking.items
    )
    assert {item.item_id for item in parking.items} == {event["event_id"] for event in sender.sent}


def test_rejected_events_are_dead_lettered_with_the_reason() -> None:
    sender = ScriptedSender(lambda e: SendResult(e["event_id"], SendOutcome.REJECTED, 400, None, "HTTP 400: bad event"))
    parking = MemoryParkingLot()
    records = _errors(1)
    [delivery] = _sink(sender).send(records, _context(parking, records))
    assert delivery.outcome is DeliveryOutcome.DEAD_LETTERED
    [item] = parking.items
    assert item.dead_letter
    assert item.reason is ParkReason.SINK_REJECTED
    assert "HTTP 400: bad event" in item.detail


def test_network_errors_and_server_errors_are_retried_later() -> None:
    answers = iter([SendOutcome.NETWORK_ERROR, SendOutcome.RETRYABLE])
    sender = ScriptedSender(lambda e: SendResult(e["event_id"], next(answers), None, None, "down"))
    parking = MemoryParkingLot()
    records = _errors(2, distinct=True)
    deliveries = _sink(sender, max_workers=1).send(records, _context(parking, records))
    assert [d.outcome for d in deliveries] == [DeliveryOutcome.PARKED] * 2
    assert all(item.not_before == NOW + 60.0 for item in parking.items)


def test_spike_protection_sends_n_per_fingerprint_and_reports_the_rest_on_the_last() -> None:
    sender = ScriptedSender(accepted)
    records = _errors(15)
    sink = _sink(sender, max_per_fingerprint=10, max_workers=1)
    deliveries = sink.send(records, _context(MemoryParkingLot(), records))
    outcomes = [d.outcome for d in deliveries]
    assert outcomes.count(DeliveryOutcome.DELIVERED) == 10
    assert outcomes.count(DeliveryOutcome.SKIPPED) == 5
    assert sink.suppressed == 5
    assert len({tuple(event["fingerprint"]) for event in sender.sent}) == 1
    assert [event.get("extra", {}).get("suppressed_similar_events") for event in sender.sent].count(5) == 1
    assert sender.sent[-1]["extra"]["suppressed_similar_events"] == 5


def test_past_the_deadline_everything_is_parked_not_lost() -> None:
    sender = ScriptedSender(accepted)
    parking = MemoryParkingLot()
    records = _errors(4, distinct=True)
    deliveries = _sink(sender).send(records, _context(parking, records, deadline=time.monotonic() - 1))
    assert len(deliveries) == 4
    parked = [d for d in deliveries if d.outcome is DeliveryOutcome.PARKED]
    delivered = [d for d in deliveries if d.outcome is DeliveryOutcome.DELIVERED]
    assert len(parked) + len(delivered) == 4
    assert len(parking.items) == len(parked)
    assert all(item.not_before == NOW for item in parking.items)


def test_no_dsn_for_a_service_is_skipped_and_said_so() -> None:
    sink = SentrySink(
        DsnRouter(load=lambda: {"keycloak": DSN}, source="t"), sender_factory=lambda dsn: ScriptedSender(accepted)
    )
    records = _errors(1)
    [delivery] = sink.send(records, _context(MemoryParkingLot(), records))
    assert delivery.outcome is DeliveryOutcome.SKIPPED
    assert delivery.reason == "no DSN for service"


def test_breadcrumbs_pass_through_the_boundary() -> None:
    records = _records(
        [
            '{"level":"INFO","message":"Opening study for hong@example.com","request_id":"r1"}',
            '{"level":"ERROR","message":"Study failed","request_id":"r1","exc_info":"ValueError: x"}',
        ],
    )
    sender = ScriptedSender(accepted)
    errors = [r for r in records if classify(r) is RecordKind.ERROR]
    context = SendContext(
        batch_records=records, boundary=Boundary.default(), parking=MemoryParkingLot(), deadline=time.monotonic() + 30
    )
    _sink(sender).send(errors, context)
    [crumb] = sender.sent[0]["breadcrumbs"]["values"]
    assert crumb["message"] == "Opening study for [REDACTED:email]"
