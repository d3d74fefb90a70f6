"""Embedded AWS for local runs: moto as a real HTTP server on 127.0.0.1, plus the stack's resources."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer
    from mypy_boto3_dynamodb import DynamoDBClient

LOCAL_REGION = "ap-northeast-2"
PARKING_QUEUE = "logpipe-parking"
PARKING_DLQ = "logpipe-parking-dlq"
EXPORT_BUCKET = "logpipe-local-exports"
IDEMPOTENCY_TABLE = "logpipe-idempotency"
STACK_NAME = "pacs-logpipe"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(slots=True)
class LocalStack:
    """The resources the template would create, made on the embedded server."""

    endpoint_url: str
    parking_queue_url: str
    parking_dlq_url: str
    export_bucket: str = EXPORT_BUCKET
    idempotency_table: str = IDEMPOTENCY_TABLE

    def template_resources(self) -> dict[str, str]:
        """Logical id -> physical value, for resolving ``!Ref`` in function environments."""
        return {
            "ParkingQueue": self.parking_queue_url,
            "ParkingDeadLetterQueue": self.parking_dlq_url,
            "ExportBucket": self.export_bucket,
            "IdempotencyTable": self.idempotency_table,
            "PipelineDashboard": f"{STACK_NAME}-pacs",
        }


def create_idempotency_table(dynamodb: DynamoDBClient, name: str) -> None:
    """The template's IdempotencyTable (Powertools Idempotency layout: key ``id``, TTL ``expiration``), if missing."""
    if name in dynamodb.list_tables().get("TableNames", []):
        return
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"AttributeName": "expiration", "Enabled": True}
    )


class EmbeddedAws:
    """Starts moto on 127.0.0.1 (unless AWS_ENDPOINT_URL is already set) and creates the queues."""

    def __init__(self) -> None:
        """Nothing starts until ``__enter__``."""
        self._server: ThreadedMotoServer | None = None
        self._saved: dict[str, str | None] = {}
        self.stack: LocalStack | None = None

    def _set_env(self, key: str, value: str) -> None:
        self._saved.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    def __enter__(self) -> LocalStack:
        """Start (or reuse) the endpoint and create the parking queues."""
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            from moto.server import ThreadedMotoServer

            # The embedded server's per-request access log would drown the demo's own output.
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            port = free_port()
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            self._server.start()
            endpoint = f"http://127.0.0.1:{port}"
            self._set_env("AWS_ENDPOINT_URL", endpoint)
            # Fake credentials: the embedded server accepts anything, and real ones must never be used here.
            self._set_env("AWS_ACCESS_KEY_ID", "testing")
            self._set_env("AWS_SECRET_ACCESS_KEY", "testing")
            self._set_env("AWS_SESSION_TOKEN", "testing")
        self._set_env("AWS_DEFAULT_REGION", os.environ.get("AWS_DEFAULT_REGION") or LOCAL_REGION)
        self._set_env("AWS_REGION", os.environ.get("AWS_REGION") or os.environ["AWS_DEFAULT_REGION"])
        import boto3

        sqs = boto3.client("sqs", endpoint_url=endpoint)
        dlq_url = sqs.create_queue(QueueName=PARKING_DLQ)["QueueUrl"]
        queue_url = sqs.create_queue(QueueName=PARKING_QUEUE)["QueueUrl"]
        s3 = boto3.client("s3", endpoint_url=endpoint)
        if EXPORT_BUCKET not in {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}:
            # Another account on a shared endpoint (AWS_ENDPOINT_URL) may own the name: invoke needs no bucket.
            with contextlib.suppress(s3.exceptions.BucketAlreadyExists):
                s3.create_bucket(
                    Bucket=EXPORT_BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-2"}
                )
        create_idempotency_table(boto3.client("dynamodb", endpoint_url=endpoint), IDEMPOTENCY_TABLE)
        self.stack = LocalStack(endpoint_url=endpoint, parking_queue_url=queue_url, parking_dlq_url=dlq_url)
        return self.stack

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server we started and restore the environment."""
        if self._server is not None:
            self._server.stop()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
