"""`logpipe smoke` against a stack built on moto (a real server on 127.0.0.1).

moto does not create alarms or subscription filters through CloudFormation, so each test builds what
the deployed stack has directly with boto3 (the same names, KMS key, retention, alarms and
subscriptions as template.yaml) plus a small CloudFormation stack that carries the real stack's
parameters and outputs, which is all `logpipe smoke` reads from CloudFormation.

What is verified offline, and what is not:

- Verified: the smoke check's every boto3 call and verdict; that a synthetic event written to a
  subscribed group is delivered by the subscription (moto implements subscription delivery to a
  Kinesis stream - the stack's high-volume mode - with CloudWatch Logs' real gzip DATA_MESSAGE
  records); that the real ingest handler, fed those records as a Kinesis event, prints the EMF for
  the probe's metric in its own ``Environment=smoke`` series; and that the smoke check then finds
  the metric in CloudWatch.
- Not verifiable offline: CloudWatch's own extraction of EMF from the function's log output (the
  ``deliver`` stand-in publishes the EMF documents with PutMetricData, one datum per value and
  dimension set, which is what that extraction produces), Lambda's invocation by the subscription
  or the event source mapping, and filter patterns (moto ignores them).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import textwrap
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from logpipe_cli.invoke import invoke
from logpipe_cli.main import main
from logpipe_cli.smoke import (
    EXPECTED_ALARM_SUFFIXES,
    LOG_TYPES,
    PROBE_ENVIRONMENT,
    MetricProbe,
    SmokeClients,
    SmokeError,
    Status,
    Waiting,
    render,
    run_smoke,
)
from logpipe_cli.template_env import function_spec

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
SERVICES = ("pacs-backend", "api")
RETENTION = {"application": 14, "errors": 90, "llm": 60}
LAMBDA_RETENTION = 14


@dataclass
class FakeStack:
    """What `sam deploy` would have created, made with boto3 on moto in one region."""

    endpoint: str
    region: str
    name: str
    logs_key_arn: str = ""
    topic_arn: str = ""
    stream_name: str = ""
    stream_arn: str = ""
    function_arn: str = ""
    parking_queue_url: str = ""
    published_emf: list[dict[str, Any]] = field(default_factory=list)

    def client(self, service: Any) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region)

    def clients(self) -> SmokeClients:
        return SmokeClients(
            cloudformation=self.client("cloudformation"),
            logs=self.client("logs"),
            cloudwatch=self.client("cloudwatch"),
            sns=self.client("sns"),
        )

    @property
    def prefix(self) -> str:
        return f"{self.name}-"

    @property
    def function_name(self) -> str:
        return f"{self.name}-ingest"


def _build_stack(endpoint: str, region: str) -> FakeStack:
    stack = FakeStack(endpoint=endpoint, region=region, name=f"logpipe-{uuid.uuid4().hex[:8]}")
    account = "123456789012"
    stack.logs_key_arn = stack.client("kms").create_key(Description="logs")["KeyMetadata"]["Arn"]
    stack.topic_arn = stack.client("sns").create_topic(Name="pacs-alerts")["TopicArn"]
    stack.function_arn = f"arn:aws:lambda:{region}:{account}:function:{stack.function_name}"
    stack.parking_queue_url = stack.client("sqs").create_queue(QueueName=f"{stack.name}-parking")["QueueUrl"]
    kinesis = stack.client("kinesis")
    stack.stream_name = f"{stack.name}-logs"
    kinesis.create_stream(StreamName=stack.stream_name, ShardCount=1)
    stack.stream_arn = kinesis.describe_stream(StreamName=stack.stream_name)["StreamDescription"]["StreamARN"]

    logs = stack.client("logs")
    for service in SERVICES:
        for log_type in LOG_TYPES:
            group = f"/aws/ecs/{service}/{log_type}"
            logs.create_log_group(logGroupName=group, kmsKeyId=stack.logs_key_arn)
            logs.put_retention_policy(logGroupName=group, retentionInDays=RETENTION[log_type])
            logs.put_subscription_filter(
                logGroupName=group,
                filterName=f"{stack.name}-ingest-{service}-{log_type}",
                filterPattern="",
                destinationArn=stack.stream_arn,
                roleArn=f"arn:aws:iam::{account}:role/{stack.name}-logs-to-stream",
            )
    for function in (stack.function_name, f"{stack.name}-replay"):
        own = f"/aws/lambda/{function}"
        logs.create_log_group(logGroupName=own, kmsKeyId=stack.logs_key_arn)
        logs.put_retention_policy(logGroupName=own, retentionInDays=LAMBDA_RETENTION)

    cloudwatch = stack.client("cloudwatch")
    for suffix in EXPECTED_ALARM_SUFFIXES:
        cloudwatch.put_metric_alarm(
            AlarmName=stack.prefix + suffix,
            Namespace="LogPipe",
            MetricName="ProcessingErrors",
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
            AlarmActions=[stack.topic_arn],
        )

    # The real stack's parameters and outputs, which is what `logpipe smoke` reads from CloudFormation.
    parameters = {
        "Environment": "prod",
        "ServiceNames": ",".join(SERVICES),
        "ApplicationLogRetentionDays": str(RETENTION["application"]),
        "ErrorsLogRetentionDays": str(RETENTION["errors"]),
        "LlmLogRetentionDays": str(RETENTION["llm"]),
        "LambdaLogRetentionDays": str(LAMBDA_RETENTION),
    }
    outputs = {
        "LogsKeyArn": stack.logs_key_arn,
        "AlertTopicArn": stack.topic_arn,
        "AlarmNamePrefix": stack.prefix,
        "IngestFunctionArn": stack.function_arn,
        "IngestFunctionName": stack.function_name,
        "ReplayFunctionName": f"{stack.name}-replay",
        "LogStreamArn": stack.stream_arn,
    }
    template = {
        "Parameters": {name: {"Type": "String"} for name in parameters},
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    stack.client("cloudformation").create_stack(
        StackName=stack.name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
    )
    return stack


# One moto region per test: the log group names are fixed, as in a real account.
_REGIONS = iter(["eu-west-1", "us-west-2", "eu-central-1", "ap-southeast-1", "us-east-2", "ca-central-1", "sa-east-1"])


@pytest.fixture
def stack(moto_endpoint: str) -> FakeStack:
    return _build_stack(moto_endpoint, next(_REGIONS))


def _deliver_through_the_stream(stack: FakeStack, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Stand in for AWS: the subscription's Kinesis records -> ingest handler -> EMF -> CloudWatch."""

    def deliver(probe: MetricProbe) -> None:
        kinesis = stack.client("kinesis")
        shard = kinesis.list_shards(StreamName=stack.stream_name)["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(
            StreamName=stack.stream_name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator)["Records"]
        assert records, "moto did not deliver the subscription record to the stream"
        event = {
            "Records": [
                {
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": record["PartitionKey"],
                        "sequenceNumber": record["SequenceNumber"],
                        "data": base64.b64encode(_as_cloudwatch_sends_it(record["Data"])).decode(),
                        "approximateArrivalTimestamp": record["ApproximateArrivalTimestamp"].timestamp(),
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": f"{shard}:{record['SequenceNumber']}",
                    "eventName": "aws:kinesis:record",
                    "awsRegion": stack.region,
                    "eventSourceARN": stack.stream_arn,
                }
                for record in records
            ]
        }
        monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint)
        spec = function_spec(TEMPLATE, "ingest", {"ParkingQueue": stack.parking_queue_url})
        invocation = invoke(spec, event, echo=io.StringIO(), cold=True)
        documents = [
            json.loads(line)
            for line in invocation.output.splitlines()
            if line.startswith("{") and '"CloudWatchMetrics"' in line
        ]
        stack.published_emf.extend(documents)
        _publish_emf(stack.client("cloudwatch"), documents)
        assert probe.message in {
            event["message"] for record in records for event in _decode(record["Data"])["logEvents"]
        }

    return deliver


def _decode(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(gzip.decompress(data))
    return document


def _as_cloudwatch_sends_it(data: bytes) -> bytes:
    """moto's one deviation from the real payload: event ids are ints, CloudWatch sends 56-digit strings."""
    document = _decode(data)
    assert all(isinstance(event["id"], int) for event in document["logEvents"]), "moto changed: drop this fix-up"
    for event in document["logEvents"]:
        event["id"] = str(event["id"]).zfill(56)
    return gzip.compress(json.dumps(document).encode())


def _publish_emf(cloudwatch: Any, documents: list[dict[str, Any]]) -> None:
    """What CloudWatch does with EMF lines in a Lambda log: one datum per metric, value and dimension set."""
    for document in documents:
        timestamp = datetime.fromtimestamp(document["_aws"]["Timestamp"] / 1000, tz=UTC)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            data: list[MetricDatumTypeDef] = [
                {
                    "MetricName": definition["Name"],
                    "Dimensions": [{"Name": name, "Value": str(document[name])} for name in dimension_set],
                    "Timestamp": timestamp,
                    "Value": float(value),
                    "Unit": definition.get("Unit", "None"),
                }
                for definition in directive["Metrics"]
                for value in _values(document[definition["Name"]])
                for dimension_set in directive["Dimensions"]
            ]
            cloudwatch.put_metric_data(Namespace=directive["Namespace"], MetricData=data)


def _values(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture
def no_sleep() -> Waiting:
    ticks = iter(range(1_000_000))
    return Waiting(timeout_s=30, poll_s=10, sleep=lambda _: None, monotonic=lambda: float(next(ticks)))


def test_smoke_passes_when_the_metric_comes_back(
    stack: FakeStack, monkeypatch: pytest.MonkeyPatch, no_sleep: Waiting
) -> None:
    results = run_smoke(stack.clients(), stack.name, no_sleep, deliver=_deliver_through_the_stream(stack, monkeypatch))
    failed = [result for result in results if result.status is not Status.PASS]
    assert not failed, render(results)
    names = [result.name for result in results]
    assert sum(name.startswith("log group /aws/ecs/") for name in names) == 3 * len(SERVICES)
    assert f"log group /aws/lambda/{stack.function_name}" in names
    assert f"log group /aws/lambda/{stack.name}-replay" in names
    assert f"no feedback loop on /aws/lambda/{stack.name}-replay" in names
    assert sum(name.startswith("subscription ") for name in names) == 3 * len(SERVICES)
    assert sum(name.startswith(f"alarm {stack.prefix}") for name in names) == len(EXPECTED_ALARM_SUFFIXES)
    assert any(name.startswith("SNS test publish") for name in names)
    round_trip = results[-1]
    assert round_trip.name.endswith("PACS/Application/PACSBackendResponseTime")
    assert round_trip.detail.startswith("1 sample(s)")
    # The ingest handler printed the probe's metric in its own series, from the subscription payload.
    probe_documents = [
        d for d in stack.published_emf if d.get("Environment") == PROBE_ENVIRONMENT and "PACSBackendResponseTime" in d
    ]
    assert len(probe_documents) == 1
    assert probe_documents[0]["Service"] == "pacs-backend"
    assert probe_documents[0]["PACSBackendResponseTime"] == 1
    assert probe_documents[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service", "Environment"], []]


def test_smoke_reports_each_missing_or_wrong_piece(stack: FakeStack, no_sleep: Waiting) -> None:
    logs = stack.client("logs")
    logs.delete_subscription_filter(logGroupName="/aws/ecs/api/llm", filterName=f"{stack.name}-ingest-api-llm")
    logs.put_retention_policy(logGroupName="/aws/ecs/api/errors", retentionInDays=30)
    logs.delete_log_group(logGroupName="/aws/ecs/pacs-backend/llm")
    unencrypted = "/aws/ecs/api/application"
    logs.delete_log_group(logGroupName=unencrypted)
    logs.create_log_group(logGroupName=unencrypted)
    logs.put_retention_policy(logGroupName=unencrypted, retentionInDays=14)
    own = f"/aws/lambda/{stack.function_name}"
    logs.put_subscription_filter(
        logGroupName=own,
        filterName="loop",
        filterPattern="",
        destinationArn=stack.stream_arn,
        roleArn="arn:aws:iam::123456789012:role/x",
    )
    stack.client("cloudwatch").delete_alarms(AlarmNames=[stack.prefix + "parking-dlq-depth"])

    results = {result.name: result for result in run_smoke(stack.clients(), stack.name, no_sleep)}

    def failure(name: str) -> str:
        assert results[name].status is Status.FAIL, f"{name}: {results[name]}"
        return results[name].detail

    assert "not subscribed to the pipeline (no filter)" in failure("subscription /aws/ecs/api/llm")
    assert "retention 30 (expected 90 days)" in failure("log group /aws/ecs/api/errors")
    assert failure("log group /aws/ecs/pacs-backend/llm") == "missing"
    assert failure("subscription /aws/ecs/pacs-backend/llm") == "log group missing"
    assert "KMS key none" in failure(f"log group {unencrypted}")
    assert "subscribed" in failure(f"no feedback loop on {own}")
    assert failure(f"alarm {stack.prefix}parking-dlq-depth") == "missing"
    round_trip = next(r for n, r in results.items() if n.startswith("metric round trip"))
    assert round_trip.status is Status.FAIL
    assert "no sample after 30 s" in round_trip.detail
    assert results[f"alarm {stack.prefix}ingest-errors"].status is Status.PASS


def test_smoke_command_exit_codes_and_report(
    stack: FakeStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint)
    # Nothing delivers the probe here, so only the metric round trip fails (after a zero-second wait).
    code = main(["smoke", "--stack", stack.name, "--region", stack.region, "--metric-timeout", "0"])
    out = capsys.readouterr().out
    assert code == 1, out
    lines = out.splitlines()
    assert lines[-1].endswith("checks passed (1 failed, 0 skipped)"), out
    assert sum(line.startswith("FAIL") for line in lines) == 1
    assert any(line.startswith("FAIL  metric round trip") for line in lines)

    code = main(["smoke", "--stack", "no-such-stack", "--region", stack.region])
    captured = capsys.readouterr()
    assert code == 2
    [line] = captured.err.splitlines()  # one line on stderr, like every CLI error
    assert line.startswith("logpipe smoke: ")
    assert "no-such-stack" in line
    assert captured.out == ""


def test_a_stack_of_another_template_is_refused(stack: FakeStack) -> None:
    other = f"other-{uuid.uuid4().hex[:6]}"
    stack.client("cloudformation").create_stack(
        StackName=other,
        TemplateBody=textwrap.dedent(
            """
            {"Resources": {"Marker": {"Type": "AWS::SQS::Queue"}}}
            """
        ),
    )
    with pytest.raises(SmokeError, match="no parameter ServiceNames"):
        run_smoke(stack.clients(), other)
