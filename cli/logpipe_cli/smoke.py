"""`logpipe smoke --stack NAME`: the seed's post-deploy test scripts, against a deployed stack, with boto3.

What it checks (test-monitoring.sh, test-log-collection.sh and test-notifications.sh of the monitoring
guide, made precise for this stack):

1. every service log group ``/aws/ecs/<svc>/application|errors|llm`` and the ingest function's own
   group exist, encrypted with the stack's logs key and retained as the stack's parameters say;
2. every service group has a subscription filter to the pipeline (the function, or the stream in
   high-volume mode), and the pipeline's own group has none (that would be a feedback loop);
3. the stack's alarms exist and notify the pacs-alerts topic;
4. a test message can be published to the topic;
5. a synthetic ``Request completed`` line written to a subscribed application group comes back as its
   PACS metric (``PACSBackendResponseTime``). The line carries ``environment=smoke`` so it lands in its
   own ``Environment=smoke`` series and real traffic in the same minute cannot make the check pass.

Everything is read from the stack: its parameters (environment, services, retention days) and outputs
(keys, topic, function, alarm prefix). Exit status 0 only if every check passed.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TextIO

from logpipe.metrics import MetricRule, load_metric_rules

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_logs.type_defs import InputLogEventTypeDef
    from mypy_boto3_sns import SNSClient

LOG_TYPES = ("application", "errors", "llm")
RETENTION_PARAMETERS = {
    "application": "ApplicationLogRetentionDays",
    "errors": "ErrorsLogRetentionDays",
    "llm": "LlmLogRetentionDays",
}
# The alarms every stack has (the optional RDS, S3, ECS and stream alarms depend on parameters).
EXPECTED_ALARM_SUFFIXES = (
    "pacs-backend-error-rate",
    "pacs-backend-response-time",
    "ingest-errors",
    "ingest-throttles",
    "ingest-events-dropped",
    "ingest-destination-failures",
    "parking-dlq-depth",
    "ingest-failure-queue-depth",
    "parking-queue-age",
    "ingest-processing-errors",
    "ingest-malformed-payloads",
    "ingest-parking-failures",
    "ingest-scrub-failures",
    "sentry-dead-lettered",
    "langfuse-dead-lettered",
    "sentry-not-configured",
    "langfuse-not-configured",
    "replay-errors",
    "export-lag",
    "export-retention-headroom",
    "export-consecutive-failures",
    "export-tasks-failed",
    "exporter-errors",
    "notifier-failures",
    "notify-errors",
    "notify-failure-queue-depth",
)
PROBE_METRIC = "PACSBackendResponseTime"
PROBE_ENVIRONMENT = "smoke"
PROBE_STREAM_PREFIX = "logpipe-smoke/"


class SmokeError(RuntimeError):
    """The stack cannot be smoke-tested at all (it does not exist, or is not this template's)."""


class Status(StrEnum):
    """How one check ended."""

    PASS = "PASS"  # noqa: S105 - a check status, not a password
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome, with what was seen (or missing)."""

    name: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        """Whether this check failed."""
        return self.status is Status.FAIL


@dataclass(frozen=True, slots=True)
class StackFacts:
    """What the deployed stack should have, from its parameters and outputs."""

    stack_name: str
    environment: str
    services: tuple[str, ...]
    retention_days: Mapping[str, int]
    lambda_retention_days: int
    logs_key_arn: str
    alert_topic_arn: str
    alarm_name_prefix: str
    ingest_function_name: str
    subscription_destinations: frozenset[str]
    other_function_names: tuple[str, ...] = ()

    def service_log_groups(self) -> list[tuple[str, int]]:
        """Every per-service log group name with its expected retention."""
        return [
            (f"/aws/ecs/{service}/{log_type}", self.retention_days[log_type])
            for service in self.services
            for log_type in LOG_TYPES
        ]

    @property
    def own_log_group(self) -> str:
        """The ingest function's own log group (never subscribed)."""
        return f"/aws/lambda/{self.ingest_function_name}"

    def own_log_groups(self) -> list[str]:
        """The log groups of every function of the pipeline (never subscribed)."""
        return [f"/aws/lambda/{name}" for name in (self.ingest_function_name, *self.other_function_names)]


@dataclass(slots=True)
class SmokeClients:
    """The boto3 clients the checks use."""

    cloudformation: CloudFormationClient
    logs: CloudWatchLogsClient
    cloudwatch: CloudWatchClient
    sns: SNSClient

    @classmethod
    def from_session(cls, region: str | None = None) -> SmokeClients:
        """Clients from the default credential chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL apply)."""
        import boto3

        session = boto3.session.Session(region_name=region)
        return cls(
            cloudformation=session.client("cloudformation"),
            logs=session.client("logs"),
            cloudwatch=session.client("cloudwatch"),
            sns=session.client("sns"),
        )


@dataclass(frozen=True, slots=True)
class MetricProbe:
    """The synthetic log event written for the metric round trip."""

    log_group: str
    log_stream: str
    timestamp_ms: int
    service: str
    rule: MetricRule
    message: str = field(repr=False)


def _required(values: Mapping[str, str], key: str, kind: str, stack_name: str) -> str:
    value = values.get(key)
    if not value:
        msg = f"stack {stack_name} has no {kind} {key}: is it a pacs-logpipe stack (template.yaml)?"
        raise SmokeError(msg)
    return value


def stack_facts(cloudformation: CloudFormationClient, stack_name: str) -> StackFacts:
    """Read the stack's parameters and outputs."""
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        msg = f"cannot describe stack {stack_name}: {error}"
        raise SmokeError(msg) from error
    if not stacks:
        msg = f"stack {stack_name} does not exist"
        raise SmokeError(msg)
    stack = stacks[0]
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    services = tuple(s.strip() for s in _required(parameters, "ServiceNames", "parameter", stack_name).split(","))
    destinations = {_required(outputs, "IngestFunctionArn", "output", stack_name)}
    if outputs.get("LogStreamArn"):
        destinations.add(outputs["LogStreamArn"])
    return StackFacts(
        stack_name=stack_name,
        environment=_required(parameters, "Environment", "parameter", stack_name),
        services=tuple(s for s in services if s),
        retention_days={
            log_type: int(_required(parameters, name, "parameter", stack_name))
            for log_type, name in RETENTION_PARAMETERS.items()
        },
        lambda_retention_days=int(_required(parameters, "LambdaLogRetentionDays", "parameter", stack_name)),
        logs_key_arn=_required(outputs, "LogsKeyArn", "output", stack_name),
        alert_topic_arn=_required(outputs, "AlertTopicArn", "output", stack_name),
        alarm_name_prefix=_required(outputs, "AlarmNamePrefix", "output", stack_name),
        ingest_function_name=_required(outputs, "IngestFunctionName", "output", stack_name),
        subscription_destinations=frozenset(destinations),
        other_function_names=tuple(
            outputs[key]
            for key in ("ReplayFunctionName", "ExporterFunctionName", "ServiceLogGroupsFunctionName")
            if outputs.get(key)
        ),
    )


def _describe_log_group(logs: CloudWatchLogsClient, name: str) -> Mapping[str, Any] | None:
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name):
        for group in page.get("logGroups", []):
            if group.get("logGroupName") == name:
                return group
    return None


def check_log_groups(logs: CloudWatchLogsClient, facts: StackFacts) -> list[CheckResult]:
    """Each log group exists, is encrypted with the stack's logs key and has the stack's retention."""
    expected = [*facts.service_log_groups(), *((own, facts.lambda_retention_days) for own in facts.own_log_groups())]
    results: list[CheckResult] = []
    for name, retention in expected:
        check = f"log group {name}"
        group = _describe_log_group(logs, name)
        if group is None:
            results.append(CheckResult(check, Status.FAIL, "missing"))
            continue
        problems = []
        if group.get("kmsKeyId") != facts.logs_key_arn:
            problems.append(f"KMS key {group.get('kmsKeyId') or 'none'} (expected {facts.logs_key_arn})")
        if group.get("retentionInDays") != retention:
            problems.append(f"retention {group.get('retentionInDays') or 'never expires'} (expected {retention} days)")
        if problems:
            results.append(CheckResult(check, Status.FAIL, "; ".join(problems)))
        else:
            results.append(CheckResult(check, Status.PASS, f"KMS-encrypted, {retention} days"))
    return results


def check_subscriptions(logs: CloudWatchLogsClient, facts: StackFacts) -> list[CheckResult]:
    """Each service group feeds the pipeline; the pipeline's own group does not."""
    results: list[CheckResult] = []
    for name, _ in facts.service_log_groups():
        check = f"subscription {name}"
        try:
            filters = logs.describe_subscription_filters(logGroupName=name).get("subscriptionFilters", [])
        except logs.exceptions.ResourceNotFoundException:
            results.append(CheckResult(check, Status.FAIL, "log group missing"))
            continue
        ours = [f for f in filters if f.get("destinationArn") in facts.subscription_destinations]
        if ours:
            pattern = ours[0].get("filterPattern") or "(all events)"
            results.append(CheckResult(check, Status.PASS, f"-> {ours[0]['destinationArn']} pattern {pattern}"))
        else:
            seen = ", ".join(str(f.get("destinationArn")) for f in filters) or "no filter"
            results.append(CheckResult(check, Status.FAIL, f"not subscribed to the pipeline ({seen})"))
    for own in facts.own_log_groups():
        try:
            own_filters = logs.describe_subscription_filters(logGroupName=own).get("subscriptionFilters", [])
        except logs.exceptions.ResourceNotFoundException:
            own_filters = []
        loops = [f for f in own_filters if f.get("destinationArn") in facts.subscription_destinations]
        if loops:
            detail = "the pipeline's own logs are subscribed to it"
            results.append(CheckResult(f"no feedback loop on {own}", Status.FAIL, detail))
        else:
            results.append(CheckResult(f"no feedback loop on {own}", Status.PASS, "not subscribed"))
    return results


def check_alarms(cloudwatch: CloudWatchClient, facts: StackFacts) -> list[CheckResult]:
    """The stack's alarms exist and notify the alert topic."""
    alarms: dict[str, Mapping[str, Any]] = {}
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=facts.alarm_name_prefix):
        for alarm in page.get("MetricAlarms", []):
            alarms[alarm["AlarmName"]] = alarm
    results: list[CheckResult] = []
    for suffix in EXPECTED_ALARM_SUFFIXES:
        name = facts.alarm_name_prefix + suffix
        found = alarms.get(name)
        if found is None:
            results.append(CheckResult(f"alarm {name}", Status.FAIL, "missing"))
        elif facts.alert_topic_arn not in found.get("AlarmActions", []):
            results.append(CheckResult(f"alarm {name}", Status.FAIL, "does not notify the alert topic"))
        else:
            results.append(CheckResult(f"alarm {name}", Status.PASS, f"state {found.get('StateValue', '?')}"))
    in_alarm = sorted(name for name, alarm in alarms.items() if alarm.get("StateValue") == "ALARM")
    detail = f"{len(alarms)} alarms, in ALARM: {', '.join(in_alarm) or 'none'}"
    results.append(CheckResult("alarms overview", Status.PASS, detail))
    return results


def check_notifications(sns: SNSClient, facts: StackFacts, now: datetime) -> CheckResult:
    """A test message can be published to the alert topic."""
    from botocore.exceptions import ClientError

    check = f"SNS test publish to {facts.alert_topic_arn}"
    try:
        response = sns.publish(
            TopicArn=facts.alert_topic_arn,
            Subject="PACS Monitoring Test",
            Message=f"Test message from logpipe smoke for stack {facts.stack_name} at {now.isoformat()}",
        )
    except ClientError as error:
        return CheckResult(check, Status.FAIL, str(error))
    return CheckResult(check, Status.PASS, f"message {response['MessageId']}")


def probe_rule(rules: Iterable[MetricRule], facts: StackFacts) -> tuple[MetricRule, str] | None:
    """The probe metric's rule and a subscribed service it reads, if the stack has one."""
    for rule in rules:
        if rule.name != PROBE_METRIC:
            continue
        for service in sorted(rule.services or facts.services):
            if service in facts.services:
                return rule, service
    return None


def probe_message(rule: MetricRule, marker: str) -> str:
    """A JSON log line that the rule's first alternative matches, tagged for its own series."""
    matcher = rule.when[0]
    document: dict[str, Any] = {
        "level": min(level.value for level in matcher.levels) if matcher.levels else "INFO",
        "message": matcher.message or matcher.message_prefix or "logpipe smoke",
        "environment": PROBE_ENVIRONMENT,
        "request_id": marker,
        "logger": "logpipe.smoke",
    }
    for name in (*matcher.has_fields, *rule.positional_fields):
        document[name] = 1
    if rule.value_field is not None:
        document[rule.value_field] = 1
    document.update(dict(matcher.fields))
    return json.dumps(document)


def write_probe(logs: CloudWatchLogsClient, rule: MetricRule, service: str, now_ms: int) -> MetricProbe:
    """Write the synthetic event to the service's application group, in a stream of its own."""
    marker = f"logpipe-smoke-{uuid.uuid4().hex[:12]}"
    group = f"/aws/ecs/{service}/application"
    stream = PROBE_STREAM_PREFIX + marker
    message = probe_message(rule, marker)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    events: list[InputLogEventTypeDef] = [{"timestamp": now_ms, "message": message}]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
    return MetricProbe(group, stream, now_ms, service, rule, message)


def probe_sample_count(cloudwatch: CloudWatchClient, probe: MetricProbe) -> float:
    """How many samples the probe's series holds in the probe's minute."""
    minute = datetime.fromtimestamp(probe.timestamp_ms // 60_000 * 60, tz=UTC)
    response = cloudwatch.get_metric_statistics(
        Namespace=probe.rule.namespace,
        MetricName=probe.rule.name,
        Dimensions=[
            {"Name": "Service", "Value": probe.service},
            {"Name": "Environment", "Value": PROBE_ENVIRONMENT},
        ],
        StartTime=minute,
        EndTime=minute + timedelta(minutes=1),
        Period=60,
        Statistics=["SampleCount"],
    )
    return sum(point.get("SampleCount", 0.0) for point in response.get("Datapoints", []))


@dataclass(frozen=True, slots=True)
class Waiting:
    """How long and how often to poll for the probe's metric (the clock is replaceable for tests)."""

    timeout_s: float = 300.0
    poll_s: float = 15.0
    sleep: Callable[[float], object] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


def wait_for_probe_metric(cloudwatch: CloudWatchClient, probe: MetricProbe, waiting: Waiting) -> CheckResult:
    """Poll CloudWatch until the probe's metric appears, or the timeout passes."""
    check = f"metric round trip {probe.log_group} -> {probe.rule.namespace}/{probe.rule.name}"
    deadline = waiting.monotonic() + waiting.timeout_s
    while True:
        count = probe_sample_count(cloudwatch, probe)
        if count >= 1:
            return CheckResult(check, Status.PASS, f"{count:g} sample(s) in Environment={PROBE_ENVIRONMENT}")
        if waiting.monotonic() >= deadline:
            return CheckResult(
                check,
                Status.FAIL,
                f"no sample after {waiting.timeout_s:g} s (event in stream {probe.log_stream}): subscription, "
                "ingest function or EMF extraction is not working",
            )
        waiting.sleep(waiting.poll_s)


def check_metric_round_trip(
    clients: SmokeClients,
    facts: StackFacts,
    waiting: Waiting,
    deliver: Callable[[MetricProbe], object] | None = None,
) -> CheckResult:
    """Write the probe event and wait for its metric. ``deliver`` stands in for AWS where nothing subscribes."""
    chosen = probe_rule(load_metric_rules().rules, facts)
    if chosen is None:
        services = ", ".join(facts.services)
        return CheckResult("metric round trip", Status.SKIP, f"no subscribed service feeds {PROBE_METRIC} ({services})")
    rule, service = chosen
    probe = write_probe(clients.logs, rule, service, int(time.time() * 1000))
    if deliver is not None:
        deliver(probe)
    return wait_for_probe_metric(clients.cloudwatch, probe, waiting)


def run_smoke(
    clients: SmokeClients,
    stack_name: str,
    waiting: Waiting | None = None,
    deliver: Callable[[MetricProbe], object] | None = None,
) -> list[CheckResult]:
    """Run every check against the stack; raises SmokeError only when the stack cannot be read."""
    facts = stack_facts(clients.cloudformation, stack_name)
    return [
        *check_log_groups(clients.logs, facts),
        *check_subscriptions(clients.logs, facts),
        *check_alarms(clients.cloudwatch, facts),
        check_notifications(clients.sns, facts, datetime.now(tz=UTC)),
        check_metric_round_trip(clients, facts, waiting or Waiting(), deliver),
    ]


def render(results: Sequence[CheckResult]) -> str:
    """One line per check, then a summary line."""
    lines = [f"{result.status.value:4}  {result.name}: {result.detail}" for result in results]
    failed = sum(result.failed for result in results)
    skipped = sum(result.status is Status.SKIP for result in results)
    passed = len(results) - failed - skipped
    lines.append(f"{passed} of {len(results)} checks passed ({failed} failed, {skipped} skipped)")
    return "\n".join(lines) + "\n"


def main_smoke(
    stack_name: str,
    *,
    metric_timeout_s: float,
    region: str | None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The `logpipe smoke` command: 0 when every check passed, 1 when one failed, 2 when the stack is unusable."""
    out = out or sys.stdout
    try:
        results = run_smoke(SmokeClients.from_session(region), stack_name, Waiting(timeout_s=metric_timeout_s))
    except SmokeError as error:
        (err or sys.stderr).write(f"logpipe smoke: {error}\n")  # like every CLI error: one line on stderr
        return 2
    out.write(render(results))
    return 1 if any(result.failed for result in results) else 0
