from __future__ import annotations

import orjson
import pytest

from logpipe.parking import MemoryParkingLot, ParkedItem, ParkReason, item_id_for, split_body

pytestmark = pytest.mark.unit


def test_split_body_keeps_everything_and_respects_the_limit() -> None:
    body = "가나다라마바사" * 1000 + "abc" * 1000
    chunks = split_body(body, 1000)
    assert "".join(chunks) == body
    assert all(len(chunk.encode()) <= 1000 for chunk in chunks)
    assert len(chunks) > 20


def test_split_body_leaves_small_bodies_alone() -> None:
    assert split_body("small", 100) == ["small"]


def test_item_id_is_deterministic_and_input_sensitive() -> None:
    assert item_id_for("a", "b") == item_id_for("a", "b")
    assert item_id_for("a", "b") != item_id_for("ab", "")


def test_parked_item_message_carries_reason_origin_and_part() -> None:
    item = ParkedItem(ParkReason.MALFORMED_EVENT, "no id", "{}", "id1", "/g", "s", "awslogs")
    message = orjson.loads(item.to_message(2, 3, "chunk"))
    assert message["reason"] == "malformed_event"
    assert (message["part"], message["parts"], message["body"]) == (2, 3, "chunk")
    assert message["log_group"] == "/g"


def test_memory_parking_lot_flushes_what_it_buffered() -> None:
    lot = MemoryParkingLot()
    lot.park(ParkedItem(ParkReason.MALFORMED_PAYLOAD, "x", "b", "i"))
    assert lot.flush() == 1
    assert lot.flush() == 0
    assert [item.item_id for item in lot.flushed] == ["i"]
