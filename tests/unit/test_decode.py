from __future__ import annotations

import base64
import gzip

import orjson
import pytest

from logpipe.decode import (
    MalformedKind,
    MalformedPayloadError,
    Payload,
    decode_payload,
    event_problem,
    iter_payloads,
)
from payloads import data_message, encode

pytestmark = pytest.mark.unit


def test_decodes_a_data_message() -> None:
    document = data_message("/aws/ecs/pacs-backend/application", ["one", "two"])
    batch = decode_payload(Payload(encode(document), "awslogs"))
    assert batch.message_type == "DATA_MESSAGE"
    assert batch.log_group == "/aws/ecs/pacs-backend/application"
    assert batch.owner == "123456789012"
    assert [event["message"] for event in batch.events] == ["one", "two"]
    assert batch.subscription_filters == ("logpipe-ingest",)
    assert not batch.is_control


def test_control_message_is_flagged() -> None:
    document = {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination"}],
    }
    assert decode_payload(Payload(encode(document), "awslogs")).is_control


def test_policy_level_is_kept() -> None:
    document = data_message("/aws/ecs/api/application", ["x"]) | {"policyLevel": "ACCOUNT_LEVEL_POLICY"}
    assert decode_payload(Payload(encode(document), "awslogs")).policy_level == "ACCOUNT_LEVEL_POLICY"


def test_payload_id_is_deterministic() -> None:
    data = encode(data_message("/aws/ecs/api/application", ["x"]))
    assert decode_payload(Payload(data, "a")).payload_id == decode_payload(Payload(data, "b")).payload_id


def _gzip_b64(raw: bytes) -> str:
    return base64.b64encode(gzip.compress(raw)).decode()


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ("this is not base64!!", MalformedKind.BAD_BASE64),
        (base64.b64encode(b"plain bytes, no gzip header").decode(), MalformedKind.NOT_GZIP),
        (
            base64.b64encode(gzip.compress(b'{"messageType": "DATA_MESSAGE"}' * 50)[:40]).decode(),
            MalformedKind.TRUNCATED_GZIP,
        ),
        (_gzip_b64(b"not json at all"), MalformedKind.NOT_JSON),
        (
            _gzip_b64(b'{"messageType":"DATA_MESSAGE","logGroup":"/g","logEvents":[{"message":"\xff\xfe"}]}'),
            MalformedKind.INVALID_UTF8,
        ),
        (_gzip_b64(b'{"messageType":"DATA_MESSAGE","logGroup":"/g"}'), MalformedKind.WRONG_SHAPE),
        (_gzip_b64(b'["a list"]'), MalformedKind.WRONG_SHAPE),
        (_gzip_b64(b'{"messageType":"SOMETHING","logEvents":[]}'), MalformedKind.WRONG_SHAPE),
        ("", MalformedKind.WRONG_SHAPE),
    ],
)
def test_malformed_payloads_raise_a_typed_error(data: str, kind: MalformedKind) -> None:
    with pytest.raises(MalformedPayloadError) as caught:
        decode_payload(Payload(data, "awslogs"))
    assert caught.value.kind is kind
    assert caught.value.payload_id
    assert kind.value in str(caught.value)


def test_truncated_gzip_salvages_the_readable_prefix() -> None:
    raw = orjson.dumps(data_message("/aws/ecs/api/application", [f"line {i}" for i in range(2000)]))
    compressed = gzip.compress(raw)
    data = base64.b64encode(compressed[: len(compressed) // 2]).decode()
    with pytest.raises(MalformedPayloadError) as caught:
        decode_payload(Payload(data, "awslogs"))
    assert caught.value.kind is MalformedKind.TRUNCATED_GZIP
    assert caught.value.salvage.startswith('{"messageType":"DATA_MESSAGE"')
    assert "line 1" in caught.value.salvage


def test_invalid_utf8_salvage_keeps_the_bytes_visible() -> None:
    data = _gzip_b64(b'{"messageType":"DATA_MESSAGE","logGroup":"/g","logEvents":[{"message":"caf\xe9"}]}')
    with pytest.raises(MalformedPayloadError) as caught:
        decode_payload(Payload(data, "awslogs"))
    assert "caf\\xe9" in caught.value.salvage


def test_iter_payloads_handles_direct_and_kinesis_events() -> None:
    direct = list(iter_payloads({"awslogs": {"data": "abc"}}))
    assert [(p.data, p.source) for p in direct] == [("abc", "awslogs")]
    kinesis = list(
        iter_payloads(
            {
                "Records": [
                    {"kinesis": {"data": "one"}, "eventID": "shardId-000000000000:1"},
                    {"kinesis": {"data": "two"}, "eventID": "shardId-000000000000:2"},
                ],
            },
        ),
    )
    assert [(p.data, p.source) for p in kinesis] == [
        ("one", "shardId-000000000000:1"),
        ("two", "shardId-000000000000:2"),
    ]


def test_an_unknown_event_shape_becomes_a_payload_that_will_fail_to_decode() -> None:
    payloads = list(iter_payloads({"hello": "world"}))
    assert len(payloads) == 1
    with pytest.raises(MalformedPayloadError):
        decode_payload(payloads[0])


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"id": "1", "timestamp": 1, "message": "ok"}, None),
        ("text", "log event is not an object"),
        ({"timestamp": 1, "message": "x"}, "log event has no string id"),
        ({"id": "1", "timestamp": "1", "message": "x"}, "log event has no integer timestamp"),
        ({"id": "1", "timestamp": True, "message": "x"}, "log event has no integer timestamp"),
        ({"id": "1", "timestamp": 1, "message": None}, "log event has no string message"),
    ],
)
def test_event_problem(event: object, problem: str | None) -> None:
    assert event_problem(event) == problem
