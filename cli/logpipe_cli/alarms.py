"""The template's CloudWatch alarms, evaluated locally, and the SNS events CloudWatch would publish for them.

``logpipe demo`` evaluates the PACS alarms of ``template.yaml`` against the EMF the ingest handler
printed, the way CloudWatch would: the dimensionless series the alarms watch, the alarm's statistic
over each period (periods aligned to the clock), ``DatapointsToAlarm`` of the last
``EvaluationPeriods`` periods breaching, missing periods not breaching (``TreatMissingData:
notBreaching``). An alarm that fires becomes the SNS event the notifier receives, with CloudWatch's
own message layout (``events/generate.py`` writes its samples with the same builder).
"""

from __future__ import annotations

import json
import operator
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from logpipe_cli.template_env import load_template

ACCOUNT_ID = "123456789012"  # the embedded AWS (moto) account
REGION_NAMES = {"ap-northeast-2": "Asia Pacific (Seoul)", "us-east-1": "US East (N. Virginia)"}
_OPERATORS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}


@dataclass(frozen=True, slots=True)
class TemplateAlarm:
    """A metric alarm as template.yaml defines it (one metric, one statistic)."""

    logical_id: str
    name: str
    description: str
    namespace: str
    metric_name: str
    statistic: str
    period_seconds: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison_operator: str
    dimensions: tuple[tuple[str, str], ...] = ()

    def breaches(self, value: float) -> bool:
        """Whether one datapoint is on the alarming side of the threshold."""
        compare, _ = _OPERATORS[self.comparison_operator]
        return compare(value, self.threshold)


def _sub(value: object, stack_name: str) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"].replace("${AWS::StackName}", stack_name)
    return str(value)


def template_alarms(template_path: Path, stack_name: str, namespace_prefix: str = "PACS/") -> list[TemplateAlarm]:
    """The unconditional single-metric alarms of the template whose namespace starts with ``namespace_prefix``."""
    template = load_template(template_path)
    found = []
    for logical_id, resource in template.get("Resources", {}).items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        props = resource.get("Properties", {})
        namespace = props.get("Namespace")
        if not isinstance(namespace, str) or not namespace.startswith(namespace_prefix) or "Condition" in resource:
            continue
        evaluation_periods = int(props["EvaluationPeriods"])
        found.append(
            TemplateAlarm(
                logical_id=logical_id,
                name=_sub(props["AlarmName"], stack_name),
                description=str(props.get("AlarmDescription", "")),
                namespace=namespace,
                metric_name=str(props["MetricName"]),
                statistic=str(props["Statistic"]),
                period_seconds=int(props["Period"]),
                evaluation_periods=evaluation_periods,
                datapoints_to_alarm=int(props.get("DatapointsToAlarm", evaluation_periods)),
                threshold=float(props["Threshold"]),
                comparison_operator=str(props["ComparisonOperator"]),
                dimensions=tuple((str(d["Name"]), str(d["Value"])) for d in props.get("Dimensions", [])),
            )
        )
    return sorted(found, key=lambda alarm: alarm.name)


def dimensionless_samples(
    documents: Iterable[Mapping[str, Any]], namespace: str, metric: str
) -> dict[int, list[float]]:
    """Per EMF timestamp (ms), the values of the dimensionless series ``namespace``/``metric``."""
    samples: dict[int, list[float]] = defaultdict(list)
    for document in documents:
        aws = document.get("_aws", {})
        for directive in aws.get("CloudWatchMetrics", []):
            if directive.get("Namespace") != namespace or [] not in directive.get("Dimensions", []):
                continue
            if metric not in {definition.get("Name") for definition in directive.get("Metrics", [])}:
                continue
            value = document[metric]
            samples[int(aws["Timestamp"])].extend(float(v) for v in (value if isinstance(value, list) else [value]))
    return samples


def _statistic(name: str, values: Sequence[float]) -> float:
    if name == "Sum":
        return float(sum(values))
    if name == "Average":
        return float(statistics.fmean(values))
    if name == "Maximum":
        return float(max(values))
    if name == "Minimum":
        return float(min(values))
    if name == "SampleCount":
        return float(len(values))
    msg = f"statistic {name} is not evaluated locally"
    raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class Period:
    """One evaluated period: its start (ms), the statistic's value (None: no data) and whether it breached."""

    start_ms: int
    value: float | None
    breaching: bool


@dataclass(frozen=True, slots=True)
class AlarmEvaluation:
    """How an alarm fared over the data: its periods and, if it fired, when and why."""

    alarm: TemplateAlarm
    periods: tuple[Period, ...]
    fired_at_ms: int | None = None
    reason: str = ""
    breaching_periods: tuple[Period, ...] = field(default_factory=tuple)

    @property
    def fired(self) -> bool:
        """Whether the alarm went to ALARM."""
        return self.fired_at_ms is not None


def _stamp(ms: int) -> str:
    # CloudWatch's datapoint stamp in a state reason: dd/mm/yy HH:MM:SS
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%d/%m/%y %H:%M:%S")


def evaluate(alarm: TemplateAlarm, samples: Mapping[int, Sequence[float]]) -> AlarmEvaluation:
    """Evaluate ``alarm`` period by period over ``samples`` (timestamp ms -> values); the first firing counts."""
    period_ms = alarm.period_seconds * 1000
    buckets: dict[int, list[float]] = defaultdict(list)
    for timestamp, values in samples.items():
        buckets[timestamp // period_ms * period_ms].extend(values)
    if not buckets:
        return AlarmEvaluation(alarm, ())
    periods: list[Period] = []
    fired_at: int | None = None
    reason = ""
    breaching: tuple[Period, ...] = ()
    for start in range(min(buckets), max(buckets) + period_ms, period_ms):
        found = buckets.get(start)
        value = _statistic(alarm.statistic, found) if found else None
        periods.append(Period(start, value, value is not None and alarm.breaches(value)))
        window = periods[-alarm.evaluation_periods :]
        in_breach = tuple(p for p in window if p.breaching)
        if fired_at is None and len(window) == alarm.evaluation_periods and len(in_breach) >= alarm.datapoints_to_alarm:
            _, words = _OPERATORS[alarm.comparison_operator]
            points = ", ".join(f"{p.value!r} ({_stamp(p.start_ms)})" for p in reversed(window) if p.value is not None)
            reason = (
                f"Threshold Crossed: {len(in_breach)} out of the last {alarm.evaluation_periods} datapoints "
                f"[{points}] were {words} the threshold ({alarm.threshold!r}) (minimum {alarm.datapoints_to_alarm} "
                f"datapoints for OK -> ALARM transition)."
            )
            fired_at, breaching = start + period_ms, in_breach
    return AlarmEvaluation(alarm, tuple(periods), fired_at, reason, breaching)


def _cloudwatch_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def alarm_message(  # noqa: PLR0913 - a CloudWatch notification's fields
    alarm: TemplateAlarm,
    *,
    new_state: str,
    old_state: str,
    reason: str,
    changed_at: datetime,
    region: str = "ap-northeast-2",
    account_id: str = ACCOUNT_ID,
) -> dict[str, Any]:
    """The JSON document CloudWatch publishes to SNS when ``alarm`` changes state."""
    return {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account_id,
        "AlarmConfigurationUpdatedTimestamp": _cloudwatch_time(changed_at.replace(hour=0, minute=0, second=0)),
        "NewStateValue": new_state,
        "NewStateReason": reason,
        "StateChangeTime": _cloudwatch_time(changed_at),
        "Region": REGION_NAMES.get(region, region),
        "AlarmArn": f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{alarm.name}",
        "OldStateValue": old_state,
        "OKActions": [f"arn:aws:sns:{region}:{account_id}:pacs-alerts"],
        "AlarmActions": [f"arn:aws:sns:{region}:{account_id}:pacs-alerts"],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": alarm.metric_name,
            "Namespace": alarm.namespace,
            "StatisticType": "Statistic",
            "Statistic": alarm.statistic.upper(),
            "Unit": None,
            "Dimensions": [{"value": value, "name": name} for name, value in alarm.dimensions],
            "Period": alarm.period_seconds,
            "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.datapoints_to_alarm,
            "ComparisonOperator": alarm.comparison_operator,
            "Threshold": alarm.threshold,
            "TreatMissingData": "notBreaching",
            "EvaluateLowSampleCountPercentile": "",
        },
    }


def sns_event(  # noqa: PLR0913 - an SNS record's fields
    message: Mapping[str, Any] | str,
    *,
    message_id: str,
    subject: str,
    published_at: datetime,
    region: str = "ap-northeast-2",
    account_id: str = ACCOUNT_ID,
) -> dict[str, Any]:
    """The Lambda event SNS delivers for one message of the ``pacs-alerts`` topic."""
    topic = f"arn:aws:sns:{region}:{account_id}:pacs-alerts"
    text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
    stamp = published_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{published_at.microsecond // 1000:03d}Z"
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic}:{message_id}",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": topic,
                    "Subject": subject,
                    "Message": text,
                    "Timestamp": stamp,
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.ap-northeast-2.amazonaws.com/SimpleNotificationService-EXAMPLE.pem",
                    "UnsubscribeUrl": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {},
                },
            }
        ]
    }


def alarm_sns_event(  # noqa: PLR0913 - the notification's fields
    alarm: TemplateAlarm,
    *,
    new_state: str,
    old_state: str,
    reason: str,
    changed_at: datetime,
    message_id: str,
    region: str = "ap-northeast-2",
) -> dict[str, Any]:
    """The SNS event of one state change of ``alarm`` (subject as CloudWatch writes it)."""
    message = alarm_message(
        alarm, new_state=new_state, old_state=old_state, reason=reason, changed_at=changed_at, region=region
    )
    subject = f'{new_state}: "{alarm.name}" in {REGION_NAMES.get(region, region)}'
    return sns_event(message, message_id=message_id, subject=subject[:100], published_at=changed_at, region=region)
