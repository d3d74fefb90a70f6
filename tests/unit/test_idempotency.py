"""The one delivery ledger: Powertools Idempotency, on a store that applies DynamoDB's conditions in memory."""

from __future__ import annotations

import time
from typing import Any

import pytest

from logpipe.idempotency import DeliveryLedger, KeyState, LedgerBusyError, LedgerError, Unsettled

pytestmark = pytest.mark.unit


def ledger() -> DeliveryLedger:
    return DeliveryLedger.in_memory(key_prefix="test", expires_after_seconds=3600)


class Action:
    """Counts its runs and answers with what it is told."""

    def __init__(self, answer: dict[str, Any] | None = None, *, unsettled: bool = False) -> None:
        self.answer = answer or {"settled": "delivered"}
        self.unsettled = unsettled
        self.runs = 0

    def __call__(self) -> dict[str, Any]:
        self.runs += 1
        if self.unsettled:
            raise Unsettled("later")
        return self.answer


def test_a_key_runs_once_and_its_answer_is_remembered() -> None:
    book = ledger()
    first, second = Action({"settled": "parked"}), Action()
    assert book.run("chunk-1", first, lease_seconds=60).duplicate is False
    once = book.run("chunk-1", second, lease_seconds=60)
    assert (first.runs, second.runs) == (1, 0)
    assert (once.answer, once.duplicate) == ({"settled": "parked"}, True)
    assert book.state("chunk-1") == (KeyState.SETTLED, {"settled": "parked"})
    assert book.run("chunk-2", second, lease_seconds=60).duplicate is False  # keys are independent
    assert book.state("never") == (KeyState.FREE, None)


def test_an_unsettled_outcome_is_not_recorded_so_the_key_runs_again() -> None:
    book = ledger()
    later = Action(unsettled=True)
    with pytest.raises(Unsettled):
        book.run("replay-1", later, lease_seconds=60)
    assert book.state("replay-1") == (KeyState.FREE, None)
    now = Action()
    assert book.run("replay-1", now, lease_seconds=60).duplicate is False
    assert (later.runs, now.runs) == (1, 1)


def test_a_live_claim_makes_others_wait_and_an_ended_lease_is_taken_over() -> None:
    book = ledger()
    inner = Action()

    def holder() -> dict[str, Any]:
        assert book.state("chunk") == (KeyState.IN_PROGRESS, None)
        with pytest.raises(LedgerBusyError):
            book.run("chunk", inner, lease_seconds=60)
        return {"settled": "delivered"}

    book.run("chunk", holder, lease_seconds=60)
    assert inner.runs == 0
    # A crashed invocation's claim (its lease already over) does not block the key.
    book._persistence().save_inprogress(data={"key": "crashed"}, remaining_time_in_millis=0)
    time.sleep(0.002)
    assert book.state("crashed") == (KeyState.FREE, None)
    taker = Action()
    assert book.run("crashed", taker, lease_seconds=60).duplicate is False
    assert taker.runs == 1


def test_a_store_that_fails_before_the_action_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    book = ledger()
    store = book._persistence()

    def down(*_: Any) -> None:
        raise ConnectionError("dynamodb unreachable")

    monkeypatch.setattr(store, "_put_record", down)
    action = Action()
    with pytest.raises(LedgerError, match="idempotency store"):
        book.run("chunk", action, lease_seconds=60)
    assert action.runs == 0
    monkeypatch.setattr(store, "_get_record", down)
    with pytest.raises(LedgerError):
        book.state("chunk")


def test_a_store_that_fails_after_the_action_keeps_its_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    book = ledger()
    store = book._persistence()

    def down(*_: Any) -> None:
        raise ConnectionError("dynamodb unreachable")

    monkeypatch.setattr(store, "_update_record", down)
    action = Action({"settled": "delivered"})
    once = book.run("chunk", action, lease_seconds=60)
    assert (once.answer, once.duplicate, once.recorded) == ({"settled": "delivered"}, False, False)
    # Its claim stays until the lease ends: meanwhile nobody sends it again.
    assert book.state("chunk") == (KeyState.IN_PROGRESS, None)
    monkeypatch.setattr(store, "_delete_record", down)
    with pytest.raises(Unsettled):
        book.run("other", Action(unsettled=True), lease_seconds=60)


def test_records_expire() -> None:
    book = DeliveryLedger.in_memory(key_prefix="test", expires_after_seconds=0)
    first = Action()
    book.run("chunk", first, lease_seconds=60)
    time.sleep(1.05)  # expiry is in whole seconds
    assert book.state("chunk") == (KeyState.FREE, None)
    assert book.run("chunk", Action(), lease_seconds=60).duplicate is False
