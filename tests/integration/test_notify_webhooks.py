"""The notify function end to end: SNS alarm events -> the real handler -> a loopback Slack/Teams webhook server.

Real parts only: the handler is loaded from functions/notify with its template environment (as
`logpipe invoke` runs it), the idempotency ledger and the webhook secrets live on the moto server
(a fresh account per test), and every post goes over HTTP to a receiver that checks it as Slack
(Block Kit) and Teams (Workflows message with an Adaptive Card) would, answering 400 when not.
"""

from __future__ import annotations

import html
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from logpipe.notify.notifier import NOTIFY_METRICS, NotificationDeliveryError
from logpipe_cli.alarms import template_alarms
from logpipe_cli.chat_payloads import payload_links, slack_problems, teams_problems
from logpipe_cli.embedded_aws import create_idempotency_table
from logpipe_cli.invoke import Invocation, function_environment, invoke
from logpipe_cli.template_env import FunctionSpec, function_spec
from logpipe_cli.webhook_receiver import WebhookAnswer, WebhookReceiver, webhook_receiver
from moto_accounts import MotoAccount, fresh_account

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
REGION = "ap-northeast-2"
TABLE = "notify-idempotency"


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event


def alarm_document(event: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(event["Records"][0]["Sns"]["Message"])
    return document


@dataclass
class NotifyStack:
    """A fresh moto account with the idempotency table, the webhook receiver and the notify function spec."""

    account: MotoAccount
    endpoint: str
    receiver: WebhookReceiver
    spec: FunctionSpec
    secret_path: str  # the secret part of this test's webhook URLs: it must never show up in any output

    def url(self, channel: str) -> str:
        return self.receiver.url(channel, self.secret_path)

    def environment(self, **overrides: str) -> dict[str, str]:
        base = {
            **self.account.environment(),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "LOGPIPE_ENVIRONMENT": "prod",
            "LOGPIPE_IDEMPOTENCY_TABLE": TABLE,
            "LOGPIPE_DASHBOARD_NAME": "pacs-logpipe-pacs",
            "LOGPIPE_SLACK_WEBHOOK_URL": self.url("slack"),
            "LOGPIPE_TEAMS_WEBHOOK_URL": self.url("teams"),
            "LOGPIPE_NOTIFY_WEBHOOK_TIMEOUT_SECONDS": "2",
        }
        return function_environment(self.spec, base | overrides)

    def invoke(self, event: dict[str, Any], *, cold: bool = True, **overrides: str) -> tuple[Invocation, str]:
        echo = io.StringIO()
        invocation = invoke(self.spec, event, echo=echo, environment=self.environment(**overrides), cold=cold)
        return invocation, echo.getvalue()

    def failing_invoke(self, event: dict[str, Any], *, cold: bool = True, **overrides: str) -> tuple[str, str]:
        """Invoke expecting the invocation to fail; return the error text and everything it printed."""
        echo = io.StringIO()
        with pytest.raises(NotificationDeliveryError) as raised:
            invoke(self.spec, event, echo=echo, environment=self.environment(**overrides), cold=cold)
        return str(raised.value), echo.getvalue()


@pytest.fixture
def stack(moto_endpoint: str) -> Iterator[NotifyStack]:
    account = fresh_account(moto_endpoint, REGION, "notify")
    create_idempotency_table(account.session.client("dynamodb", endpoint_url=moto_endpoint), TABLE)
    spec = function_spec(ROOT / "template.yaml", "notify")
    with webhook_receiver() as receiver:
        yield NotifyStack(account, moto_endpoint, receiver, spec, f"T0/B0/{uuid.uuid4().hex}")


def published(output: str) -> dict[str, float]:
    """The notifier's EMF counters (Powertools writes each value as a list)."""
    for line in output.splitlines():
        if line.startswith("{") and '"NotificationsReceived"' in line:
            document = json.loads(line)
            return {name: sum(document[name]) for name in NOTIFY_METRICS.values()}
    pytest.fail("the notifier printed no EMF")


def slack_fields(payload: dict[str, Any]) -> dict[str, str]:
    """The section fields, ``*Name*\nvalue`` each, as shown (mrkdwn entities decoded)."""
    fields = next(block["fields"] for block in payload["blocks"] if "fields" in block)
    pairs = (field["text"].removeprefix("*").split("*\n", 1) for field in fields)
    return {name: html.unescape(value) for name, value in pairs}


def card(payload: dict[str, Any]) -> dict[str, Any]:
    attachment = payload["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    content: dict[str, Any] = attachment["content"]
    return content


def card_facts(content: dict[str, Any]) -> dict[str, str]:
    return {fact["title"]: fact["value"] for e in content["body"] if e["type"] == "FactSet" for fact in e["facts"]}


def test_alarm_posts_a_valid_block_kit_message_and_adaptive_card_with_the_alarm_facts_and_links(
    stack: NotifyStack,
) -> None:
    event = sample("sns-alarm.json")
    alarm = alarm_document(event)
    invocation, output = stack.invoke(event)
    assert invocation.result["counts"] == {"delivered": 2, "notifications": 1}
    slack_post, teams_post = stack.receiver.posts("slack"), stack.receiver.posts("teams")
    assert [p.status for p in slack_post] == [200]
    assert [p.status for p in teams_post] == [202]
    slack, teams = slack_post[0].payload, teams_post[0].payload
    # Valid by the platforms' rules (the receiver would have answered 400 otherwise) and checked here too.
    assert slack_problems(slack) == teams_problems(teams) == []
    # Slack: a red header naming the alarm, the transition and reason, and the facts as section fields.
    header = slack["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert header["text"]["text"] == f"🔴 ALARM: {alarm['AlarmName']}"
    assert slack["text"].startswith(f"🔴 ALARM: {alarm['AlarmName']}")  # the notification fallback
    assert "OK → ALARM in prod" in slack["blocks"][1]["text"]["text"]
    assert "Threshold Crossed: 2 out of the last 2 datapoints" in slack["blocks"][1]["text"]["text"]
    facts = slack_fields(slack)
    assert facts == card_facts(card(teams))
    assert facts["Metric"] == "PACS/Application PACSBackendErrors"
    assert facts["Statistic"] == "Sum"
    assert facts["Threshold"] == "> 10 (2 of 2 periods)"
    fields = next(block["fields"] for block in slack["blocks"] if "fields" in block)
    assert {"type": "mrkdwn", "text": "*Threshold*\n&gt; 10 (2 of 2 periods)"} in fields  # mrkdwn escapes >
    assert facts["Period"] == "5 min"
    assert (facts["Environment"], facts["Account"]) == ("prod", alarm["AWSAccountId"])
    assert facts["Region"] == "ap-northeast-2 (Asia Pacific (Seoul))"
    assert facts["Changed at"] == "2026-11-22 01:10:00 UTC"
    # Teams: an Adaptive Card of a version Teams renders, red (attention) header container.
    content = card(teams)
    assert teams["type"] == "message"
    assert (content["type"], content["version"]) == ("AdaptiveCard", "1.4")
    assert content["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    header_container = content["body"][0]
    assert header_container["style"] == "attention"
    assert header_container["items"][0]["color"] == "Attention"
    # Links: the alarm, the dashboard, and the saved error query over the alarm's window, in both.
    for payload in (slack, teams):
        links = dict(payload_links(payload))
        assert links["Alarm in the console"].endswith("#alarmsV2:alarm/pacs-logpipe-pacs-backend-error-rate")
        assert links["Pipeline dashboard"].endswith("#dashboards:name=pacs-logpipe-pacs")
        insights = links["Logs Insights: PACS Error Analysis (alarm window)"]
        assert "#logsV2:logs-insights$3FqueryDetail$3D~(end~'2026-11-22T01*3A10*3A00.000Z" in insights
        assert "~start~'2026-11-22T01*3A00*3A00.000Z" in insights  # 2 periods x 5 min before the change
        assert "filter*20*40message*20like*20*2FERROR*2F" in insights  # the saved query's own text
        assert "~source~(~'*2Faws*2Fecs*2Fpacs-backend*2Fapplication" in insights
    counters = published(output)
    assert counters["NotifierDelivered"] == 2
    assert counters["NotifierFailures"] == counters["NotifierRetries"] == 0
    assert stack.secret_path not in output


def test_ok_is_green_and_says_resolved(stack: NotifyStack) -> None:
    invocation, _ = stack.invoke(sample("sns-alarm-ok.json"))
    assert invocation.result["counts"]["delivered"] == 2
    (slack_post,) = stack.receiver.posts("slack")
    (teams_post,) = stack.receiver.posts("teams")
    assert slack_problems(slack_post.payload) == teams_problems(teams_post.payload) == []
    header = slack_post.payload["blocks"][0]["text"]["text"]
    assert header == "✅ OK: pacs-logpipe-pacs-backend-error-rate"
    assert "Resolved (ALARM → OK) in prod" in slack_post.payload["blocks"][1]["text"]["text"]
    content = card(teams_post.payload)
    assert content["body"][0]["style"] == "good"
    assert content["body"][0]["items"][0]["color"] == "Good"
    assert content["body"][0]["items"][1]["text"] == "Resolved (ALARM → OK) in prod"


def test_a_5xx_fails_the_invocation_and_the_retry_delivers_it(stack: NotifyStack) -> None:
    event = sample("sns-alarm.json")
    stack.receiver.script("slack", WebhookAnswer(503, b"rollup_error"))
    error, output = stack.failing_invoke(event)
    assert "slack: HTTP 503: rollup_error" in error
    assert published(output)["NotifierRetries"] == 1
    assert published(output)["NotifierFailures"] == 0
    assert [p.status for p in stack.receiver.posts("slack")] == [503]
    # Lambda's async retry: a new container, the same event.
    invocation, _ = stack.invoke(event)
    assert invocation.result["notifications"][0]["channels"]["slack"]["outcome"] == "delivered"
    assert [p.status for p in stack.receiver.posts("slack")] == [503, 200]
    assert stack.secret_path not in error + output


def test_retry_after_a_partial_success_posts_only_to_the_channel_that_failed(stack: NotifyStack) -> None:
    event = sample("sns-alarm.json")
    stack.receiver.script("teams", WebhookAnswer(502))
    error, _ = stack.failing_invoke(event)
    assert "teams: HTTP 502" in error
    assert "slack" not in error
    assert [p.status for p in stack.receiver.posts("slack")] == [200]
    assert [p.status for p in stack.receiver.posts("teams")] == [502]
    # The retry runs in a fresh container: only the DynamoDB ledger (Powertools Idempotency) knows Slack has it.
    invocation, output = stack.invoke(event, cold=True)
    channels = invocation.result["notifications"][0]["channels"]
    assert channels["slack"]["outcome"] == "duplicate"
    assert channels["teams"]["outcome"] == "delivered"
    assert [p.status for p in stack.receiver.posts("slack")] == [200], "Slack must not get it twice"
    assert [p.status for p in stack.receiver.posts("teams")] == [502, 202]
    assert published(output)["NotifierDuplicates"] == 1
    # A third delivery of the same SNS message (SNS and Lambda are at-least-once) posts nothing at all.
    again, _ = stack.invoke(event, cold=True)
    assert {c["outcome"] for c in again.result["notifications"][0]["channels"].values()} == {"duplicate"}
    assert len(stack.receiver.received) == 3


def test_429_a_timeout_and_a_hang_up_fail_the_invocation(stack: NotifyStack) -> None:
    event = sample("sns-alarm.json")
    stack.receiver.script("slack", WebhookAnswer(429, b"rate_limited"))
    stack.receiver.script("teams", WebhookAnswer(202, delay=3.0))  # past the 2 s webhook timeout
    error, _ = stack.failing_invoke(event)
    assert "slack: HTTP 429" in error
    assert "teams: ReadTimeoutError" in error
    # A timed-out post is ambiguous (this receiver did take it, late): it is retried, as at-least-once.
    stack.receiver.script("slack", WebhookAnswer(200, hang_up=True))
    error, _ = stack.failing_invoke(event)
    assert error.startswith("1 channel post(s) must be retried")
    assert "slack: ProtocolError" in error  # the connection closed without an answer
    assert "teams" not in error  # delivered on this attempt
    final, _ = stack.invoke(event)
    channels = final.result["notifications"][0]["channels"]
    assert (channels["slack"]["outcome"], channels["teams"]["outcome"]) == ("delivered", "duplicate")
    assert [p.status for p in stack.receiver.posts("slack")] == [429, None, 200]


def test_a_4xx_is_counted_and_alarmed_not_retried(stack: NotifyStack) -> None:
    event = sample("sns-alarm.json")
    stack.receiver.script("slack", WebhookAnswer(404, b"channel_not_found"))
    invocation, output = stack.invoke(event)  # returns: nothing a retry could fix
    channels = invocation.result["notifications"][0]["channels"]
    assert channels["slack"] == {"outcome": "rejected", "status": 404, "reason": "HTTP 404: channel_not_found"}
    assert channels["teams"]["outcome"] == "delivered"
    counters = published(output)
    assert counters["NotifierFailures"] == 1  # the metric NotifierFailuresAlarm watches
    assert counters["NotifierRetries"] == 0
    # A redelivery of the same message does not post to the channel that refused it again.
    again, _ = stack.invoke(event)
    assert again.result["notifications"][0]["channels"]["slack"]["outcome"] == "duplicate"
    assert len(stack.receiver.posts("slack")) == 1


def test_an_invalid_payload_would_be_refused_like_slack_refuses_it(stack: NotifyStack) -> None:
    """The receiver's checks bite: a message breaking Block Kit's rules gets Slack's 400 and is counted."""
    import urllib3

    bad = {"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x" * 151}}]}
    response = urllib3.request("POST", stack.url("slack"), json=bad)
    assert response.status == 400
    (post,) = stack.receiver.posts("slack")
    assert "text is required with blocks: it is the notification fallback" in post.problems
    assert any("at most 150" in problem for problem in post.problems)


def test_webhook_urls_come_from_secrets_and_an_empty_secret_skips_its_channel(stack: NotifyStack) -> None:
    secrets = stack.account.session.client("secretsmanager", endpoint_url=stack.endpoint)
    suffix = uuid.uuid4().hex[:8]
    slack_secret = secrets.create_secret(Name=f"pacs-logpipe/slack-webhook-{suffix}", SecretString=stack.url("slack"))
    teams_secret = secrets.create_secret(
        Name=f"pacs-logpipe/teams-webhook-{suffix}"
    )  # created empty, as the stack does
    invocation, output = stack.invoke(
        sample("sns-alarm.json"),
        LOGPIPE_SLACK_WEBHOOK_URL="",
        LOGPIPE_TEAMS_WEBHOOK_URL="",
        LOGPIPE_SLACK_WEBHOOK_SECRET=slack_secret["ARN"],
        LOGPIPE_TEAMS_WEBHOOK_SECRET=teams_secret["ARN"],
    )
    channels = invocation.result["notifications"][0]["channels"]
    assert channels["slack"]["outcome"] == "delivered"
    assert channels["teams"]["outcome"] == "not_configured"
    assert [p.channel for p in stack.receiver.received] == ["slack"]
    assert published(output)["NotifierChannelsNotConfigured"] == 1
    assert stack.secret_path not in output  # only the secret's name is ever logged


def test_a_secret_holding_no_https_url_is_a_counted_failure(stack: NotifyStack) -> None:
    secrets = stack.account.session.client("secretsmanager", endpoint_url=stack.endpoint)
    name = f"pacs-logpipe/slack-webhook-{uuid.uuid4().hex[:8]}"
    arn = secrets.create_secret(Name=name, SecretString="http://hooks.example.com/services/T0/B0/secret-part")["ARN"]
    invocation, output = stack.invoke(
        sample("sns-alarm.json"), LOGPIPE_SLACK_WEBHOOK_URL="", LOGPIPE_SLACK_WEBHOOK_SECRET=arn
    )
    slack = invocation.result["notifications"][0]["channels"]["slack"]
    assert slack["outcome"] == "rejected"
    assert "must use https" in slack["reason"]
    assert published(output)["NotifierFailures"] == 1
    assert "secret-part" not in output


def _error_lines(start: datetime) -> list[tuple[int, str]]:
    stamp = int(start.timestamp() * 1000)
    lines = [
        (stamp + 1000 * i, json.dumps({"level": "ERROR", "message": "Failed to store instance", "request_id": f"r{i}"}))
        for i in range(4)
    ]
    lines += [
        (
            stamp + 9000 + i,
            json.dumps({"level": "ERROR", "message": f"Lookup failed for jane.doe{i}@example.com PatientID=P{i}77"}),
        )
        for i in range(2)
    ]
    lines.append((stamp + 20_000, json.dumps({"level": "INFO", "message": "Request completed", "duration": 120})))
    return sorted(lines)


def recent_alarm_event(changed_at: datetime) -> dict[str, Any]:
    """The error-rate alarm firing at ``changed_at`` (CloudWatch Logs refuses events older than 14 days)."""
    from logpipe_cli.alarms import alarm_sns_event

    (alarm,) = [
        a for a in template_alarms(ROOT / "template.yaml", "pacs-logpipe") if a.metric_name == "PACSBackendErrors"
    ]
    return alarm_sns_event(
        alarm,
        new_state="ALARM",
        old_state="OK",
        reason="Threshold Crossed: 2 out of the last 2 datapoints were greater than the threshold (10.0).",
        changed_at=changed_at,
        message_id=str(uuid.uuid4()),
    )


def test_log_context_adds_the_top_errors_scrubbed(stack: NotifyStack) -> None:
    changed_at = datetime.now(UTC).replace(second=0, microsecond=0)
    event = recent_alarm_event(changed_at)
    logs = stack.account.session.client("logs", endpoint_url=stack.endpoint)
    for group in ("/aws/ecs/pacs-backend/application", "/aws/ecs/pacs-backend/errors"):
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName="/aws/ecs/pacs-backend/application", logStreamName="ecs/pacs-backend/1")
    logs.put_log_events(
        logGroupName="/aws/ecs/pacs-backend/application",
        logStreamName="ecs/pacs-backend/1",
        logEvents=[{"timestamp": t, "message": m} for t, m in _error_lines(changed_at - timedelta(minutes=6))],
    )
    invocation, output = stack.invoke(event, LOGPIPE_NOTIFY_LOG_CONTEXT="true")
    assert invocation.result["notifications"][0]["context"] == "2 top errors from 7 rows"
    (slack_post,) = stack.receiver.posts("slack")
    (teams_post,) = stack.receiver.posts("teams")
    assert slack_problems(slack_post.payload) == teams_problems(teams_post.payload) == []
    context = next(
        b["text"]["text"] for b in slack_post.payload["blocks"] if "Top errors" in b.get("text", {}).get("text", "")
    )
    lines = context.splitlines()[1:]
    assert lines[0] == "• 4\N{MULTIPLICATION SIGN} Failed to store instance"
    # Two messages that differ only in PII count as one once scrubbed; none of the PII leaves.
    assert lines[1].startswith("• 2\N{MULTIPLICATION SIGN} Lookup failed for ")
    text = json.dumps(slack_post.payload) + json.dumps(teams_post.payload) + output
    assert "jane.doe" not in text
    assert "P077" not in text
    assert "P177" not in text
    body = card(teams_post.payload)["body"]
    assert any(e.get("text", "").startswith("- 4\N{MULTIPLICATION SIGN} Failed to store instance") for e in body)


def test_without_its_log_groups_the_message_goes_out_without_context(stack: NotifyStack) -> None:
    invocation, output = stack.invoke(sample("sns-alarm.json"), LOGPIPE_NOTIFY_LOG_CONTEXT="true")
    report = invocation.result["notifications"][0]
    assert report["context"] == "StartQuery failed: ResourceNotFoundException"
    assert {c["outcome"] for c in report["channels"].values()} == {"delivered"}
    (slack_post,) = stack.receiver.posts("slack")
    notes = [e["text"] for b in slack_post.payload["blocks"] if b["type"] == "context" for e in b["elements"]]
    assert any(note.startswith("Log context unavailable (StartQuery failed") for note in notes)
    assert published(output)["NotifierContextUnavailable"] == 1


def test_a_message_that_is_not_an_alarm_is_still_delivered_scrubbed(stack: NotifyStack) -> None:
    from logpipe_cli.alarms import sns_event

    event = sns_event(
        "Smoke test from logpipe smoke; contact ops@example.com",
        message_id=str(uuid.uuid4()),
        subject="logpipe smoke check",
        published_at=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
    )
    invocation, _ = stack.invoke(event)
    assert invocation.result["notifications"][0]["kind"] == "message"
    (slack_post,) = stack.receiver.posts("slack")
    assert slack_problems(slack_post.payload) == []
    assert slack_post.payload["blocks"][0]["text"]["text"] == "ℹ️ logpipe smoke check"  # noqa: RUF001 - the info sign
    assert "ops@example.com" not in json.dumps(slack_post.payload)


def test_every_pacs_alarm_of_the_template_renders_within_the_platform_limits(stack: NotifyStack) -> None:
    from logpipe_cli.alarms import alarm_sns_event

    for index, alarm in enumerate(template_alarms(ROOT / "template.yaml", "pacs-logpipe-" + "x" * 120)):
        event = alarm_sns_event(
            alarm,
            new_state="INSUFFICIENT_DATA",
            old_state="OK",
            reason="Insufficient Data: 2 datapoints were unknown.",
            changed_at=datetime(2026, 11, 22, 3, index, tzinfo=UTC),
            message_id=f"insufficient-{index}",
        )
        stack.invoke(event)
    posts = stack.receiver.received
    assert len(posts) == 4
    assert all(p.accepted and not p.problems for p in posts)
    header = posts[0].payload["blocks"][0]["text"]["text"]
    assert header.startswith("🟡 INSUFFICIENT_DATA: pacs-logpipe-xxx")
    assert len(header) == 150
    assert header.endswith("…")
