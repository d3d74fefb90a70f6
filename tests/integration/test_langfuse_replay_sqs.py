"""Parked Langfuse deliveries replayed end to end: real SQS and DynamoDB (moto), the replay function's handler.

Langfuse answers 429 or 500, so the ingest pipeline parks every generation on the SQS queue; the
receiver is switched to 200 and the replay function (``functions/replay/app.py``, built from its
environment as in Lambda) is handed the messages read from the queue. The spans must arrive once,
with the trace and observation ids (and times) of the first attempt; a repeated replay in another
container, and a redelivered ingest batch, must send nothing: the DynamoDB ledger knows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from logpipe.boundary import Boundary
from logpipe.idempotency import DeliveryLedger, KeyState
from logpipe.langfuse.config import KEY_PREFIX, RECORD_SECONDS
from logpipe.langfuse.replay import replay_key
from logpipe.langfuse.sink import LangfuseSink
from logpipe.langfuse.transport import CredentialsSource, OtlpTransport
from logpipe.metrics import load_metric_rules
from logpipe.parking import SqsParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.settings import Settings
from logpipe_cli.embedded_aws import create_idempotency_table
from logpipe_cli.otlp_receiver import Answer, OtlpReceiver, otlp_receiver
from payloads import sqs_lambda_event, subscription_event

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "events" / "decoded" / "cwl-pacs-backend-llm.json"
CALLS = len(json.loads(SAMPLE.read_text())["logEvents"])
PUBLIC, SECRET = "pk-lf-replay", "sk-lf-" + os.urandom(6).hex()


@dataclass(frozen=True, slots=True)
class Aws:
    """The queues and the ledger table of one test, on the session's moto server."""

    sqs: SQSClient
    dynamodb: DynamoDBClient
    queue: str
    dlq: str
    table: str


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    # The replay function builds its own clients, as in Lambda: AWS_ENDPOINT_URL points them at moto.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    suffix = os.urandom(4).hex()
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="ap-northeast-2")
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="ap-northeast-2")
    queue = sqs.create_queue(QueueName=f"langfuse-replay-{suffix}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"langfuse-replay-{suffix}-dlq")["QueueUrl"]
    table = f"idempotency-{suffix}"
    create_idempotency_table(dynamodb, table)  # the template's IdempotencyTable layout
    yield Aws(sqs, dynamodb, queue, dlq, table)
    sqs.delete_queue(QueueUrl=queue)
    sqs.delete_queue(QueueUrl=dlq)
    dynamodb.delete_table(TableName=table)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def ledger(aws: Aws) -> DeliveryLedger:
    return DeliveryLedger.on_table(
        aws.table, key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS, client=aws.dynamodb
    )


def ingest_pipeline(aws: Aws, receiver: OtlpReceiver) -> IngestPipeline:
    transport = OtlpTransport(CredentialsSource.fixed(receiver.host, PUBLIC, SECRET), timeout=2.0, backoff=0.01)
    return IngestPipeline(
        Settings(environment="prod"),
        rules=load_metric_rules(),
        parking=SqsParkingLot(aws.queue, client=aws.sqs, dead_letter_url=aws.dlq),
        boundary=Boundary.default(),
        sinks=[LangfuseSink(transport, ledger(aws))],
        emf_writer=lambda line: None,
    )


def replay_container(aws: Aws, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh load of the replay function (a new container), configured the way the template does it."""
    for name, value in {
        "LOGPIPE_ENVIRONMENT": "prod",
        "LOGPIPE_PARKING_QUEUE_URL": aws.queue,
        "LOGPIPE_DEAD_LETTER_QUEUE_URL": aws.dlq,
        "LOGPIPE_IDEMPOTENCY_TABLE": aws.table,
        "LOGPIPE_LANGFUSE_HOST": receiver.host,
        "LOGPIPE_LANGFUSE_PUBLIC_KEY": PUBLIC,
        "LOGPIPE_LANGFUSE_SECRET_KEY": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(f"replay_app_{os.urandom(4).hex()}", ROOT / "functions/replay/app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def receive_all(aws: Aws, expected: int) -> list[MessageTypeDef]:
    """Read the parked messages as the event source mapping would (they may sit out a short delivery delay)."""
    messages: dict[str, MessageTypeDef] = {}
    deadline = time.monotonic() + 15
    while len(messages) < expected and time.monotonic() < deadline:
        batch = aws.sqs.receive_message(
            QueueUrl=aws.queue, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=1
        ).get("Messages", [])
        messages.update({message["MessageId"]: message for message in batch})
    return list(messages.values())


def span_ids(spans: list[Any]) -> list[tuple[str, str]]:
    return sorted((span.trace_id.hex(), span.span_id.hex()) for span in spans)


@pytest.mark.parametrize(
    "answers",
    [[Answer(429, retry_after="1")], [Answer(500, retry_after="1")] * 3],
    ids=["429", "500"],
)
def test_parked_generations_are_replayed_once_with_their_original_ids(
    aws: Aws, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, answers: list[Answer]
) -> None:
    receiver.script.extend(answers)
    event = subscription_event(json.loads(SAMPLE.read_text()))
    ingest = ingest_pipeline(aws, receiver)

    summary = ingest.run(event).to_dict()
    assert summary["deliveries"] == {"langfuse.parked": CALLS}
    assert summary["parked"] == CALLS
    assert len(receiver.received) == len(answers)  # the 500s were retried inline first, with the same ids
    assert receiver.accepted_spans() == []
    first_attempt = {(span.trace_id.hex(), span.span_id.hex()): span for span in receiver.received[0].spans()}
    assert len(first_attempt) == CALLS
    assert all(span_ids(request.spans()) == sorted(first_attempt) for request in receiver.received)

    messages = receive_all(aws, CALLS)
    assert len(messages) == CALLS
    bodies = [json.loads(message["Body"]) for message in messages]
    assert {(body["attributes"]["trace_id"], body["attributes"]["observation_id"]) for body in bodies} == set(
        first_attempt
    )
    assert all(body["attributes"]["sink"] == "langfuse" and not body["dead_letter"] for body in bodies)
    # Replay re-checks not-before (Retry-After) with its own clock: wait until the items are due.
    time.sleep(max(0.0, max(body["not_before"] for body in bodies) - time.time() + 0.05))

    sent_before_replay = len(receiver.received)
    lambda_event = sqs_lambda_event(messages)
    replay = replay_container(aws, receiver, monkeypatch)
    assert replay.lambda_handler(lambda_event, None) == {"batchItemFailures": []}
    replayed = receiver.received[sent_before_replay:]
    assert len(replayed) == CALLS  # one request per parked generation
    assert all(item.status == 200 for item in replayed)
    spans = [span for item in replayed for span in item.spans()]
    assert span_ids(spans) == sorted(first_attempt)  # every span once, under its original ids
    for span in spans:
        original = first_attempt[(span.trace_id.hex(), span.span_id.hex())]
        assert (span.start_time_unix_nano, span.end_time_unix_nano) == (
            original.start_time_unix_nano,
            original.end_time_unix_nano,
        )
    for message in messages:  # what Lambda does with a batch that reported no failures
        aws.sqs.delete_message(QueueUrl=aws.queue, ReceiptHandle=message["ReceiptHandle"])

    # SQS delivers the same messages again (at-least-once) to another container: the ledger stops them.
    again = replay_container(aws, receiver, monkeypatch)
    assert again.lambda_handler(lambda_event, None) == {"batchItemFailures": []}
    assert again._replayer.counts == {"duplicates_dropped": CALLS}
    # CloudWatch Logs redelivers the original batch: the chunk is settled in the ledger, nothing is sent.
    assert ingest.run(event).to_dict()["deliveries"] == {"langfuse.skipped": CALLS}
    assert len(receiver.received) == sent_before_replay + CALLS

    states = [ledger(aws).state(replay_key(observation_id)) for _, observation_id in first_attempt]
    assert states == [(KeyState.SETTLED, {"settled": "delivered"})] * len(first_attempt)
    assert aws.sqs.receive_message(QueueUrl=aws.dlq, WaitTimeSeconds=0).get("Messages", []) == []
