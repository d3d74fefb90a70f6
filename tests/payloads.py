"""Builders for CloudWatch Logs subscription payloads used across the test suite."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

OWNER = "123456789012"


def encode(document: object) -> str:
    """base64(gzip(json)) exactly as CloudWatch Logs delivers it."""
    return base64.b64encode(gzip.compress(orjson.dumps(document))).decode()


def data_message(
    log_group: str,
    messages: Sequence[str],
    *,
    start_ms: int = 1_795_300_000_000,
    log_stream: str = "ecs/app/0123456789abcdef",
    step_ms: int = 1,
    first_id: int = 0,
) -> dict[str, Any]:
    """A decoded DATA_MESSAGE with one event per message, ids and timestamps increasing."""
    return {
        "messageType": "DATA_MESSAGE",
        "owner": OWNER,
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": ["logpipe-ingest"],
        "logEvents": [
            {"id": str(first_id + index).zfill(56), "timestamp": start_ms + index * step_ms, "message": message}
            for index, message in enumerate(messages)
        ],
    }


def subscription_event(document: object) -> dict[str, Any]:
    """The Lambda event for one encoded subscription payload."""
    return {"awslogs": {"data": encode(document)}}


def restamp(event: dict[str, Any], *, minutes_ago: int = 5) -> dict[str, Any]:
    """Move a sample event's log events to a few minutes before now, keeping their spacing.

    The committed samples carry fixed times; EMF refuses points older than 14 days, and Sentry
    replaces timestamps older than 30 days, so tests that check times re-stamp them first
    (the same re-stamping ``logpipe invoke`` does).
    """
    import time

    from logpipe_cli.samples import restamp_event

    restamped, _ = restamp_event(event, int(time.time() * 1000) - minutes_ago * 60_000)
    return restamped


def parsed_records(log_group: str, messages: Sequence[str], *, start_ms: int, environment: str = "prod") -> list[Any]:
    """The ``LogRecord``s the pipeline would build from these lines of one stream."""
    return records_of_document(data_message(log_group, messages, start_ms=start_ms), environment)


def records_of_document(document: Mapping[str, Any], environment: str = "prod") -> list[Any]:
    """The ``LogRecord``s the pipeline would build from a decoded DATA_MESSAGE whose events are all well-formed."""
    from logpipe.assemble import assemble_records, stream_context
    from logpipe.decode import LogBatch

    batch = LogBatch(
        message_type=document["messageType"],
        owner=document["owner"],
        log_group=document["logGroup"],
        log_stream=document["logStream"],
        subscription_filters=tuple(document["subscriptionFilters"]),
        events=document["logEvents"],
        policy_level=document.get("policyLevel"),
        payload_id="p",
        source="awslogs",
    )
    records, bad = assemble_records(batch, stream_context(batch, "ap-northeast-2", environment))
    assert bad == []
    return records


def sqs_lambda_event(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The event Lambda's SQS event source hands the replay function for received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                # What SQS returned for AttributeNames=["All"] (ApproximateReceiveCount, SentTimestamp, ...).
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:ap-northeast-2:123456789012:parking",
                "awsRegion": "ap-northeast-2",
            }
            for message in messages
        ],
    }
