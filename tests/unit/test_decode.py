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


def test_inflation_stops_at_the_cap_and_keeps_a_bounded_prefix() -> None:
    from logpipe.decode import GzipError, inflate_members

    exactly = gzip.compress(b"x" * 1000)
    assert inflate_members(exactly, limit=1000) == ([b"x" * 1000], b"")
    with pytest.raises(GzipError) as caught:
        inflate_members(exactly, limit=999)
    assert caught.value.kind is MalformedKind.TOO_LARGE
    assert caught.value.prefix == b"x" * 999
    # The cap counts every member together.
    with pytest.raises(GzipError) as caught:
        inflate_members(gzip.compress(b"a" * 600) + gzip.compress(b"b" * 600), limit=1000)
    assert caught.value.kind is MalformedKind.TOO_LARGE


def test_every_member_is_inflated_and_trailing_bytes_are_returned() -> None:
    from logpipe.decode import inflate_members

    data = gzip.compress(b"one") + gzip.compress(b"two") + gzip.compress(b"three") + b"\x00\x00tail"
    assert inflate_members(data) == ([b"one", b"two", b"three"], b"\x00\x00tail")


def test_a_damaged_later_member_salvages_the_members_before_it() -> None:
    from logpipe.decode import GzipError, inflate_members

    second = gzip.compress(b"second member " * 200)
    with pytest.raises(GzipError) as caught:
        inflate_members(gzip.compress(b"first;") + second[:40])
    assert caught.value.kind is MalformedKind.TRUNCATED_GZIP
    assert caught.value.prefix.startswith(b"first;second member")


def test_trailing_garbage_of_a_single_document_payload_is_a_typed_error() -> None:
    data = base64.b64encode(gzip.compress(orjson.dumps(data_message("/aws/ecs/api/application", ["x"]))) + b"junk")
    with pytest.raises(MalformedPayloadError) as caught:
        decode_payload(Payload(data.decode(), "awslogs"))
    assert caught.value.kind is MalformedKind.TRAILING_GARBAGE
    assert caught.value.salvage == "junk"


@pytest.mark.parametrize("data", [12345, None, 2**80, ["a", 2**70], {"k": b"bytes"}, 1.5])
def test_payload_id_of_takes_any_value(data: object) -> None:
    from logpipe.decode import payload_id_of

    first = payload_id_of(data)
    assert first == payload_id_of(data)
    assert len(first) == 32


@pytest.mark.parametrize("event", [[], None, 7, "text", b"bytes", {"Records": "not a list"}, {"awslogs": None}])
def test_iter_payloads_turns_any_event_into_one_bad_payload(event: object) -> None:
    [payload] = iter_payloads(event)
    assert payload.problem is not None
    with pytest.raises(MalformedPayloadError) as caught:
        decode_payload(payload)
    assert caught.value.kind is MalformedKind.WRONG_SHAPE
