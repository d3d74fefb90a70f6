"""Parking on a real SQS API: moto running as a server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import orjson
import pytest
from botocore.config import Config

from logpipe.parking import ParkedItem, ParkingError, ParkReason, SqsParkingLot

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.integration


@pytest.fixture
def sqs(moto_endpoint: str) -> SQSClient:
    return boto3.client("sqs", endpoint_url=moto_endpoint, region_name="ap-northeast-2")


@pytest.fixture
def queue_url(sqs: SQSClient, request: pytest.FixtureRequest) -> Iterator[str]:
    url = sqs.create_queue(QueueName=f"parking-{request.node.name[:60]}")["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


def _drain(sqs: SQSClient, queue_url: str) -> list[dict[str, object]]:
    bodies: list[dict[str, object]] = []
    while True:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        messages = response.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            body = orjson.loads(message["Body"])
            body["_attributes"] = {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}
            bodies.append(body)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_items_are_stored_with_reason_and_id(sqs: SQSClient, queue_url: str) -> None:
    lot = SqsParkingLot(queue_url, client=sqs)
    for index in range(23):
        lot.park(ParkedItem(ParkReason.MALFORMED_EVENT, "no timestamp", f'{{"n": {index}}}', f"id-{index}", "/g", "s"))
    assert lot.flush() == 23
    stored = _drain(sqs, queue_url)
    assert sorted(str(body["item_id"]) for body in stored) == sorted(f"id-{i}" for i in range(23))
    assert {body["reason"] for body in stored} == {"malformed_event"}
    assert all(body["_attributes"] == {"reason": "malformed_event", "item_id": body["item_id"]} for body in stored)


def test_large_bodies_are_split_and_reassemble_exactly(sqs: SQSClient, queue_url: str) -> None:
    body = "".join(f"line {i} 한국어 텍스트\n" for i in range(40_000))  # ~1 MB, multi-byte characters
    lot = SqsParkingLot(queue_url, client=sqs, max_body_bytes=100 * 1024)
    lot.park(ParkedItem(ParkReason.MALFORMED_PAYLOAD, "truncated_gzip", body, "big"))
    assert lot.flush() == 1
    assert lot.messages_sent > 5
    parts = sorted(_drain(sqs, queue_url), key=lambda part: int(str(part["part"])))
    assert len(parts) == lot.messages_sent
    assert {int(str(part["parts"])) for part in parts} == {lot.messages_sent}
    assert "".join(str(part["body"]) for part in parts) == body


def test_unreachable_queue_raises_parking_error() -> None:
    # Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    unreachable = boto3.client(
        "sqs",
        endpoint_url="http://127.0.0.1:9",
        region_name="ap-northeast-2",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    lot = SqsParkingLot("http://127.0.0.1:9/000000000000/nope", client=unreachable)
    lot.park(ParkedItem(ParkReason.MALFORMED_PAYLOAD, "x", "y", "z"))
    with pytest.raises(ParkingError, match="could not park 1 messages"):
        lot.flush()
