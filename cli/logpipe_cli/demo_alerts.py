"""The demo's alert step: the template's PACS alarms on the EMF the handler printed, and their notifications.

Each PACS alarm of template.yaml is evaluated as CloudWatch would (``alarms.evaluate``) over the
dimensionless series the ingest handler published. Every alarm that fires becomes the SNS event
CloudWatch would publish, handed to the real notify handler (in-process, like ``logpipe invoke``)
with its webhooks pointed at a loopback receiver that checks each payload as Slack and Teams would.
The pacs-backend logs of the workload are written to the embedded CloudWatch Logs first, so the
notifier's Logs Insights context has something to read.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logpipe_cli.alarms import AlarmEvaluation, alarm_sns_event, dimensionless_samples, evaluate, template_alarms
from logpipe_cli.embedded_aws import STACK_NAME, LocalStack
from logpipe_cli.invoke import function_environment, invoke
from logpipe_cli.template_env import function_spec
from logpipe_cli.webhook_receiver import ReceivedPost, post_lines, webhook_receiver
from logpipe_cli.workload import SyntheticStream

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_logs.type_defs import InputLogEventTypeDef

CONTEXT_GROUPS = ("/aws/ecs/pacs-backend/application", "/aws/ecs/pacs-backend/errors")
_PUT_CHUNK = 1000


@dataclass(slots=True)
class AlertReport:
    """What the alert step saw: every PACS alarm's evaluation, the notify results and what chat received."""

    evaluations: list[AlarmEvaluation] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    posts: list[ReceivedPost] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def fired(self) -> list[AlarmEvaluation]:
        """The alarms that went to ALARM."""
        return [evaluation for evaluation in self.evaluations if evaluation.fired]


def _write_context_logs(logs: CloudWatchLogsClient, streams: Iterable[SyntheticStream]) -> int:
    existing = {
        g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/aws/ecs/pacs-backend/")["logGroups"]
    }
    written = 0
    created: set[tuple[str, str]] = set()
    for stream in streams:
        if stream.log_group not in CONTEXT_GROUPS:
            continue
        if stream.log_group not in existing:
            logs.create_log_group(logGroupName=stream.log_group)
            existing.add(stream.log_group)
        name = f"demo/{stream.log_stream}"
        if (stream.log_group, name) not in created:
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):  # a reused endpoint
                logs.create_log_stream(logGroupName=stream.log_group, logStreamName=name)
            created.add((stream.log_group, name))
        events: list[InputLogEventTypeDef] = sorted(
            ({"timestamp": int(str(e["timestamp"])), "message": str(e["message"])} for e in stream.events),
            key=lambda event: event["timestamp"],
        )
        for start in range(0, len(events), _PUT_CHUNK):
            logs.put_log_events(
                logGroupName=stream.log_group, logStreamName=name, logEvents=events[start : start + _PUT_CHUNK]
            )
        written += len(events)
    return written


def run_alert_step(  # noqa: PLR0913 - the demo run's inputs
    template: Path,
    *,
    stack: LocalStack,
    pacs_documents: Sequence[Mapping[str, Any]],
    streams: Sequence[SyntheticStream],
    environment: str,
    logs: CloudWatchLogsClient,
) -> AlertReport:
    """Evaluate the PACS alarms and deliver the notifications of those that fired to a loopback receiver."""
    report = AlertReport()
    for alarm in template_alarms(template, STACK_NAME):
        samples = dimensionless_samples(pacs_documents, alarm.namespace, alarm.metric_name)
        report.evaluations.append(evaluate(alarm, samples))
    if not report.fired:
        return report
    _write_context_logs(logs, streams)
    spec = function_spec(template, "notify", stack.template_resources())
    with webhook_receiver() as receiver:
        overrides = {
            "LOGPIPE_ENVIRONMENT": environment,
            "LOGPIPE_SLACK_WEBHOOK_URL": receiver.url("slack"),
            "LOGPIPE_TEAMS_WEBHOOK_URL": receiver.url("teams"),
            "LOGPIPE_NOTIFY_LOG_CONTEXT": "true",
        }
        env = function_environment(spec, overrides)
        for index, evaluation in enumerate(report.fired):
            assert evaluation.fired_at_ms is not None  # noqa: S101 - fired() guarantees it
            event = alarm_sns_event(
                evaluation.alarm,
                new_state="ALARM",
                old_state="OK",
                reason=evaluation.reason,
                changed_at=datetime.fromtimestamp(evaluation.fired_at_ms / 1000, UTC),
                # Each demo run publishes anew (SNS gives every publish its own MessageId).
                message_id=str(uuid.uuid4()),
            )
            try:
                report.results.append(invoke(spec, event, echo=None, environment=env, cold=index == 0).result)
            except Exception as error:  # noqa: BLE001 - the demo reports it instead of stopping
                report.errors.append(f"{evaluation.alarm.name}: {type(error).__name__}: {error}")
        report.posts = list(receiver.received)
    return report


def _period_line(evaluation: AlarmEvaluation) -> str:
    shown = []
    for period in evaluation.periods[-6:]:
        stamp = datetime.fromtimestamp(period.start_ms / 1000, UTC).strftime("%H:%M")
        value = "no data" if period.value is None else f"{period.value:,.1f}"
        shown.append(f"{stamp} {value}{' (breaching)' if period.breaching else ''}")
    return "; ".join(shown) or "no data"


def alert_lines(report: AlertReport) -> list[str]:
    """The alert part of the demo summary."""
    lines = ["Alarms (the template's PACS alarms on the EMF above, evaluated as CloudWatch would):"]
    for evaluation in report.evaluations:
        alarm = evaluation.alarm
        rule = (
            f"{alarm.statistic}({alarm.metric_name}) {alarm.comparison_operator.replace('Threshold', '')} "
            f"{alarm.threshold:g} per {alarm.period_seconds // 60} min, {alarm.datapoints_to_alarm} of "
            f"{alarm.evaluation_periods} periods"
        )
        if evaluation.fired_at_ms is not None:
            at = datetime.fromtimestamp(evaluation.fired_at_ms / 1000, UTC).strftime("%H:%M:%SZ")
            verdict = f"FIRED at {at}"
        else:
            verdict = "did not fire"
        lines.append(f"  {alarm.name}: {verdict}  [{rule}]")
        lines.append(f"      5-min values: {_period_line(evaluation)}")
    if not report.fired:
        lines.append("  no alarm fired, so nothing was posted to Slack or Teams")
        return lines
    accepted = {
        channel: sum(1 for p in report.posts if p.channel == channel and p.accepted) for channel in ("slack", "teams")
    }
    invalid = sum(1 for p in report.posts if p.problems)
    lines.append("")
    lines.append(
        f"Notifications (notify function -> local webhook receiver): Slack accepted {accepted['slack']}, "
        f"Teams accepted {accepted['teams']}, payloads failing the Block Kit / Adaptive Card checks: {invalid}"
    )
    lines.extend(f"  ERROR {error}" for error in report.errors)
    for post in report.posts:
        lines.extend(f"  {line}" for line in post_lines(post))
    lines.append(
        "  (embedded CloudWatch Logs runs Logs Insights queries without their filter command, so the context here "
        "comes from the window's newest lines of any level; in AWS the saved query's filter selects error lines)"
    )
    return lines
