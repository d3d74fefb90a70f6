"""What arrives on the alert topic: CloudWatch alarm state changes, and anything else published there.

SNS invokes the notifier with one record per message. A CloudWatch alarm publishes a JSON document
(``AlarmName``, ``NewStateValue``, ``NewStateReason``, ``StateChangeTime``, ``AlarmArn``, ``Trigger``
...); a metric-math alarm's ``Trigger`` lists ``Metrics`` instead of one ``MetricName``. Anything else
(the smoke check's test message, a person's ``aws sns publish``) is a plain notification: it is still
delivered, with its subject and text, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson


class AlarmState(StrEnum):
    """A CloudWatch alarm state."""

    ALARM = "ALARM"
    OK = "OK"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class AlarmMessageError(ValueError):
    """An SNS message claims to be an alarm notification but lacks what one always carries."""


# CloudWatch spells statistics in capitals in the notification (SUM), and like the API elsewhere (Sum).
_STATISTICS = {
    "SUM": "Sum",
    "AVERAGE": "Average",
    "SAMPLE_COUNT": "SampleCount",
    "SAMPLECOUNT": "SampleCount",
    "MINIMUM": "Minimum",
    "MAXIMUM": "Maximum",
}
COMPARISON_SYMBOLS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": "≥",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "≤",
}


@dataclass(frozen=True, slots=True)
class MetricTrigger:
    """What the alarm watches: one metric and statistic, or the expression a metric-math alarm returns."""

    namespace: str | None
    metric_name: str | None
    statistic: str | None
    dimensions: tuple[tuple[str, str], ...]
    period_seconds: int
    evaluation_periods: int
    threshold: float | None
    comparison_operator: str
    expression: str | None = None
    datapoints_to_alarm: int | None = None

    @property
    def metric(self) -> str:
        """``Namespace MetricName`` (or the expression of a metric-math alarm)."""
        if self.metric_name:
            return f"{self.namespace} {self.metric_name}" if self.namespace else self.metric_name
        return self.expression or "metric math"

    @property
    def condition(self) -> str:
        """The threshold as people read it, e.g. ``> 10``."""
        if self.threshold is None:
            return self.comparison_operator or "-"
        symbol = COMPARISON_SYMBOLS.get(self.comparison_operator, self.comparison_operator)
        return f"{symbol} {self.threshold:g}"

    @property
    def window_seconds(self) -> int:
        """How far back the alarm looks when it changes state (period x evaluation periods)."""
        return self.period_seconds * max(self.evaluation_periods, 1)


@dataclass(frozen=True, slots=True)
class AlarmNotification:
    """One CloudWatch alarm state change, as published to the topic."""

    message_id: str
    alarm_name: str
    description: str
    account_id: str
    region: str
    region_name: str
    old_state: str
    new_state: AlarmState
    reason: str
    changed_at: datetime
    trigger: MetricTrigger
    alarm_arn: str

    def window(self) -> tuple[datetime, datetime]:
        """The time range the alarm evaluated when it changed state."""
        return self.changed_at - timedelta(seconds=self.trigger.window_seconds), self.changed_at


@dataclass(frozen=True, slots=True)
class PlainNotification:
    """Anything published to the topic that is not an alarm state change."""

    message_id: str
    subject: str
    text: str
    topic_arn: str
    published_at: datetime | None


Notification = AlarmNotification | PlainNotification


def _text(document: Mapping[str, Any], key: str) -> str:
    value = document.get(key)
    return "" if value is None else str(value)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _whole(value: object, default: int) -> int:
    number = _number(value)
    return default if number is None else int(number)


def parse_time(value: str) -> datetime | None:
    """CloudWatch's ``2026-11-22T01:10:00.123+0000`` (or ISO 8601), as an aware UTC datetime."""
    text = value.strip()
    if not text:
        return None
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text, pattern).astimezone(UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _dimensions(raw: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        return ()
    found = []
    for item in raw:
        if isinstance(item, Mapping):
            name = item.get("name", item.get("Name"))
            value = item.get("value", item.get("Value"))
            if name is not None:
                found.append((str(name), "" if value is None else str(value)))
    return tuple(found)


def _statistic(trigger: Mapping[str, Any]) -> str | None:
    extended = trigger.get("ExtendedStatistic")
    if extended:
        return str(extended)
    raw = trigger.get("Statistic")
    if not raw:
        return None
    return _STATISTICS.get(str(raw).upper(), str(raw))


def parse_trigger(trigger: Mapping[str, Any]) -> MetricTrigger:
    """The ``Trigger`` of an alarm notification: a single metric, or the metric-math query's returned series."""
    period = _whole(trigger.get("Period"), 0)
    namespace = trigger.get("Namespace")
    metric_name = trigger.get("MetricName")
    statistic = _statistic(trigger)
    dimensions = _dimensions(trigger.get("Dimensions"))
    expression = None
    metrics = trigger.get("Metrics")
    if isinstance(metrics, list) and metrics:
        returned = next(
            (m for m in metrics if isinstance(m, Mapping) and m.get("ReturnData", True)),
            metrics[0] if isinstance(metrics[0], Mapping) else {},
        )
        expression = returned.get("Expression")
        stat = returned.get("MetricStat")
        if isinstance(stat, Mapping):
            metric = stat.get("Metric", {})
            namespace = metric.get("Namespace", namespace)
            metric_name = metric.get("MetricName", metric_name)
            dimensions = _dimensions(metric.get("Dimensions")) or dimensions
            statistic = str(stat.get("Stat") or statistic or "") or None
            period = period or _whole(stat.get("Period"), 0)
        period = period or _whole(returned.get("Period"), 0)
    datapoints = _whole(trigger.get("DatapointsToAlarm"), 0)
    return MetricTrigger(
        namespace=str(namespace) if namespace else None,
        metric_name=str(metric_name) if metric_name else None,
        statistic=statistic,
        dimensions=dimensions,
        period_seconds=period,
        evaluation_periods=_whole(trigger.get("EvaluationPeriods"), 1),
        threshold=_number(trigger.get("Threshold")),
        comparison_operator=_text(trigger, "ComparisonOperator"),
        expression=str(expression) if expression else None,
        datapoints_to_alarm=datapoints or None,
    )


def _region_of(arn: str) -> str:
    # arn:aws:cloudwatch:<region>:<account>:alarm:<name>
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[3] else ""


def parse_alarm(
    document: Mapping[str, Any], message_id: str, fallback_time: datetime | None = None
) -> AlarmNotification:
    """An alarm notification from the decoded SNS message; ``AlarmMessageError`` when it is not one."""
    name = _text(document, "AlarmName")
    state = _text(document, "NewStateValue")
    if not name or state not in AlarmState.__members__:
        msg = "not a CloudWatch alarm notification: AlarmName or a valid NewStateValue is missing"
        raise AlarmMessageError(msg)
    changed_at = parse_time(_text(document, "StateChangeTime")) or fallback_time or datetime.now(UTC)
    trigger = document.get("Trigger")
    arn = _text(document, "AlarmArn")
    region_name = _text(document, "Region")
    return AlarmNotification(
        message_id=message_id,
        alarm_name=name,
        description=_text(document, "AlarmDescription"),
        account_id=_text(document, "AWSAccountId"),
        region=_region_of(arn),
        region_name=region_name,
        old_state=_text(document, "OldStateValue"),
        new_state=AlarmState(state),
        reason=_text(document, "NewStateReason"),
        changed_at=changed_at,
        trigger=parse_trigger(trigger if isinstance(trigger, Mapping) else {}),
        alarm_arn=arn,
    )


def parse_record(record: Mapping[str, Any]) -> Notification:
    """One SNS record of the Lambda event: an alarm notification when it is one, otherwise a plain one."""
    from aws_lambda_powertools.utilities.data_classes.sns_event import SNSEventRecord

    sns = SNSEventRecord(dict(record)).sns
    message_id = sns.message_id
    if not message_id:
        msg = "SNS record without a MessageId"
        raise AlarmMessageError(msg)
    published_at = parse_time(sns.timestamp or "")
    text = sns.message or ""
    document: object = None
    if text.lstrip().startswith("{"):
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            document = None
    if isinstance(document, Mapping) and "AlarmName" in document:
        return parse_alarm(document, message_id, published_at)
    return PlainNotification(
        message_id=message_id,
        subject=sns.subject or "",
        text=text,
        topic_arn=sns.topic_arn or "",
        published_at=published_at,
    )


def sns_records(event: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The SNS records of a Lambda event (SNS delivers one per invocation; more are handled alike)."""
    records = event.get("Records")
    if not isinstance(records, list):
        msg = "not an SNS event: no Records list"
        raise AlarmMessageError(msg)
    for record in records:
        if not isinstance(record, Mapping) or not isinstance(record.get("Sns"), Mapping):
            msg = "not an SNS event: a record without Sns"
            raise AlarmMessageError(msg)
        yield record
