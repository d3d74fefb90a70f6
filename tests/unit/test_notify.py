"""The notifier's parts one by one: alarm parsing, rendering, links, routing, log context, outcomes, settings.

In-memory fakes only (a scripted Logs client, fixed clocks); the HTTP and AWS paths are in
tests/integration/test_notify_webhooks.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from logpipe.boundary import Boundary
from logpipe.delivery import HttpOutcome
from logpipe.notify.alarm import AlarmMessageError, AlarmNotification, AlarmState, PlainNotification, parse_record
from logpipe.notify.channels import WebhookConfigError, WebhookUrlSource, checked_url
from logpipe.notify.context import LogContextReader, error_message
from logpipe.notify.guard import DeliveryGuard
from logpipe.notify.links import alarm_url, insights_url, insights_value
from logpipe.notify.notifier import NotificationDeliveryError, Notifier
from logpipe.notify.queries import InsightsQuery, load_alarm_queries
from logpipe.notify.render import build_view, slack_message, teams_message
from logpipe.notify.routing import Channel, RoutingRulesError, load_routing_rules, parse_routing_rules
from logpipe.notify.webhook import WebhookResult, classify_webhook_response
from logpipe.settings import NotifySettings, SettingsError
from logpipe_cli.alarms import TemplateAlarm, alarm_sns_event, evaluate, sns_event
from logpipe_cli.chat_payloads import adaptive_card_problems, slack_problems, teams_problems

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
CHANGED_AT = datetime(2026, 11, 22, 1, 10, tzinfo=UTC)


def sample_record(name: str = "sns-alarm.json") -> dict[str, Any]:
    record: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))["Records"][0]
    return record


def sample_alarm(name: str = "sns-alarm.json") -> AlarmNotification:
    notification = parse_record(sample_record(name))
    assert isinstance(notification, AlarmNotification)
    return notification


ERROR_RATE = TemplateAlarm(
    logical_id="PacsBackendErrorRateAlarm",
    name="pacs-logpipe-pacs-backend-error-rate",
    description="errors",
    namespace="PACS/Application",
    metric_name="PACSBackendErrors",
    statistic="Sum",
    period_seconds=300,
    evaluation_periods=2,
    datapoints_to_alarm=2,
    threshold=10.0,
    comparison_operator="GreaterThanThreshold",
)


# ---------------------------------------------------------------------------
# What arrives on the topic
# ---------------------------------------------------------------------------
def test_an_alarm_notification_is_read_with_its_trigger_and_window() -> None:
    alarm = sample_alarm()
    assert (alarm.alarm_name, alarm.new_state, alarm.old_state) == (
        "pacs-logpipe-pacs-backend-error-rate",
        AlarmState.ALARM,
        "OK",
    )
    assert (alarm.region, alarm.region_name, alarm.account_id) == (
        "ap-northeast-2",
        "Asia Pacific (Seoul)",
        "123456789012",
    )
    trigger = alarm.trigger
    assert (trigger.namespace, trigger.metric_name, trigger.statistic) == (
        "PACS/Application",
        "PACSBackendErrors",
        "Sum",
    )
    assert (trigger.period_seconds, trigger.evaluation_periods, trigger.condition) == (300, 2, "> 10")
    assert alarm.changed_at == CHANGED_AT
    assert alarm.window() == (datetime(2026, 11, 22, 1, 0, tzinfo=UTC), CHANGED_AT)


def test_a_metric_math_alarm_takes_the_returned_series() -> None:
    document = {
        "AlarmName": "pacs-logpipe-export-lag",
        "NewStateValue": "ALARM",
        "OldStateValue": "OK",
        "StateChangeTime": "2026-11-22T03:00:00.000+0000",
        "AlarmArn": "arn:aws:cloudwatch:ap-northeast-2:123456789012:alarm:pacs-logpipe-export-lag",
        "Trigger": {
            "EvaluationPeriods": 2,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 72.0,
            "Metrics": [
                {
                    "Id": "lag",
                    "Expression": 'SELECT MAX(ExportLagHours) FROM SCHEMA("LogPipe", Environment, LogGroup)',
                    "Period": 900,
                    "ReturnData": True,
                }
            ],
        },
    }
    record = sns_event(document, message_id="m-math", subject="ALARM", published_at=CHANGED_AT)["Records"][0]
    alarm = parse_record(record)
    assert isinstance(alarm, AlarmNotification)
    assert alarm.trigger.metric.startswith("SELECT MAX(ExportLagHours)")
    assert (alarm.trigger.period_seconds, alarm.trigger.window_seconds) == (900, 1800)
    # Not a PACS metric: its Logs Insights link is the pipeline's own logs.
    query = load_alarm_queries().for_trigger(alarm.trigger, ("/aws/lambda/pacs-logpipe-exporter",))
    assert query.log_groups == ("/aws/lambda/pacs-logpipe-exporter",)
    assert query.saved_query is None


def test_anything_else_on_the_topic_is_a_plain_notification() -> None:
    record = sns_event("hello", message_id="m-plain", subject="test", published_at=CHANGED_AT)["Records"][0]
    notification = parse_record(record)
    assert notification == PlainNotification(
        "m-plain", "test", "hello", "arn:aws:sns:ap-northeast-2:123456789012:pacs-alerts", CHANGED_AT
    )
    # JSON that claims to be an alarm but lacks the state is refused rather than misread.
    broken = sns_event(
        {"AlarmName": "x", "NewStateValue": "PANIC"}, message_id="m", subject="", published_at=CHANGED_AT
    )
    with pytest.raises(AlarmMessageError, match="NewStateValue"):
        parse_record(broken["Records"][0])


# ---------------------------------------------------------------------------
# Links
# ---------------------------------------------------------------------------
def test_console_links_quote_names_and_encode_the_insights_state() -> None:
    assert alarm_url("ap-northeast-2", "a b/c").endswith("#alarmsV2:alarm/a%20b%2Fc")
    assert insights_value("fields @timestamp | limit 5") == "fields*20*40timestamp*20*7C*20limit*205"
    assert insights_value("é") == "*C3*A9"
    url = insights_url(
        "ap-northeast-2",
        "fields @message",
        ["/aws/ecs/a/application", "/aws/ecs/a/errors"],
        datetime(2026, 11, 22, 1, 0, tzinfo=UTC),
        CHANGED_AT,
    )
    assert url == (
        "https://ap-northeast-2.console.aws.amazon.com/cloudwatch/home?region=ap-northeast-2"
        "#logsV2:logs-insights$3FqueryDetail$3D~(end~'2026-11-22T01*3A10*3A00.000Z"
        "~start~'2026-11-22T01*3A00*3A00.000Z~timeType~'ABSOLUTE~tz~'UTC~editorString~'fields*20*40message"
        "~source~(~'*2Faws*2Fecs*2Fa*2Fapplication~'*2Faws*2Fecs*2Fa*2Ferrors))"
    )
    # Nothing in it that would end a Slack <url|label> link early.
    assert not set(url) & set("<>| ")


# ---------------------------------------------------------------------------
# Rendering, checked against the platforms' rules
# ---------------------------------------------------------------------------
def _view(notification: AlarmNotification, **kwargs: Any) -> Any:
    return build_view(notification, environment="prod", severity="critical", dashboard_name="d", **kwargs)


@pytest.mark.parametrize(
    ("state", "mark", "style"),
    [("ALARM", "🔴", "attention"), ("OK", "✅", "good"), ("INSUFFICIENT_DATA", "🟡", "warning")],
)
def test_each_state_has_its_colour_in_both_chats(state: str, mark: str, style: str) -> None:
    alarm = replace(sample_alarm(), new_state=AlarmState(state))
    view = _view(alarm)
    slack, teams = slack_message(view), teams_message(view)
    assert slack_problems(slack) == teams_problems(teams) == []
    assert slack["blocks"][0]["text"]["text"].startswith(f"{mark} {state}: ")
    assert teams["attachments"][0]["content"]["body"][0]["style"] == style


def test_long_and_hostile_text_stays_within_slack_limits_and_is_escaped() -> None:
    alarm = replace(
        sample_alarm(),
        alarm_name="n" * 400,
        reason="<!channel> & <https://evil.example|click> " + "r" * 5000,
        description="d" * 3000,
    )
    slack = slack_message(_view(alarm))
    assert slack_problems(slack) == []
    assert len(slack["blocks"][0]["text"]["text"]) == 150
    text = json.dumps(slack)
    assert "<!channel>" not in text  # escaped: no @channel ping, no injected link
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert len(slack["text"]) <= 3000


def test_top_errors_and_an_unavailable_context_are_shown() -> None:
    from logpipe.notify.context import LogContext, TopError

    query = load_alarm_queries().by_metric["PACS/Application", "PACSBackendErrors"]
    found = LogContext(errors=(TopError(4, "Failed to store <instance>"),), rows=9)
    view = _view(sample_alarm(), query=query, context=found)
    slack, teams = slack_message(view), teams_message(view)
    assert slack_problems(slack) == teams_problems(teams) == []
    assert "• 4\N{MULTIPLICATION SIGN} Failed to store &lt;instance&gt;" in json.dumps(slack, ensure_ascii=False)
    assert view.context_title == "Top errors in the alarm window (scrubbed; 9 rows of PACS Error Analysis)"
    missing = _view(sample_alarm(), query=query, context=LogContext(unavailable="query ended Failed"))
    assert missing.context_note == "Log context unavailable (query ended Failed); open the query below."


def test_the_payload_checks_catch_what_slack_and_teams_refuse() -> None:
    good_slack = slack_message(_view(sample_alarm()))
    assert slack_problems(good_slack) == []
    assert slack_problems({"blocks": good_slack["blocks"]}) == [
        "text is required with blocks: it is the notification fallback"
    ]
    header = {"type": "header", "text": {"type": "mrkdwn", "text": "h"}}
    assert slack_problems({"text": "t", "blocks": [header]}) == ["blocks[0].text.type must be plain_text, got 'mrkdwn'"]
    fields = {"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}
    assert slack_problems({"text": "t", "blocks": [fields]}) == ["blocks[0].fields must hold 1 to 10 text objects"]
    assert slack_problems({"text": "t", "blocks": [{"type": "section"}]}) == [
        "blocks[0]: a section needs text or fields"
    ]
    good_teams = teams_message(_view(sample_alarm()))
    card = good_teams["attachments"][0]["content"]
    assert teams_problems(good_teams) == []
    assert teams_problems({**good_teams, "type": "card"}) == ["type must be 'message'"]
    wrong_type = {**good_teams, "attachments": [{**good_teams["attachments"][0], "contentType": "application/json"}]}
    assert teams_problems(wrong_type) == ["attachments[0].contentType must be application/vnd.microsoft.card.adaptive"]
    assert adaptive_card_problems({**card, "version": "1.6"}) == ["card.version 1.6 is newer than Teams renders (1.5)"]
    assert adaptive_card_problems({k: v for k, v in card.items() if k != "version"}) == [
        "card.version is required on a top-level card (e.g. '1.4')"
    ]
    no_value = {**card, "body": [{"type": "FactSet", "facts": [{"title": "t"}]}]}
    assert adaptive_card_problems(no_value) == ["card.body[0].facts[0] needs title and value strings"]
    newer = {**card, "version": "1.1", "body": [{"type": "ActionSet", "actions": []}]}
    assert adaptive_card_problems(newer) == ["card.body[0]: ActionSet needs card version 1.2"]
    no_url = {**card, "actions": [{"type": "Action.OpenUrl", "title": "x"}]}
    assert adaptive_card_problems(no_url) == [
        "card.actions[0] (Action.OpenUrl) needs url",
        "card.actions[0].url must be an absolute http(s) URL",
    ]


# ---------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------
def test_the_default_rules_send_every_alarm_to_every_channel() -> None:
    rules = load_routing_rules()
    alarm = sample_alarm()
    route = rules.route(alarm, "prod")
    assert route is not None
    assert route.channels == (Channel.SLACK, Channel.TEAMS)
    assert rules.severity_of(alarm) == "critical"
    assert rules.severity_of(replace(alarm, trigger=replace(alarm.trigger, namespace="AWS/SQS"))) == "warning"


def test_routes_by_environment_severity_and_state_first_match_wins(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    path.write_text(
        json.dumps(
            {
                "severities": [{"severity": "critical", "namespaces": ["PACS/Application"]}],
                "routes": [
                    {"name": "quiet dev", "environments": ["dev"], "channels": ["slack"]},
                    {"name": "no warnings in teams", "severities": ["warning"], "channels": ["slack"]},
                    {"name": "resolutions", "states": ["OK"], "channels": ["teams"]},
                    {"name": "rest", "channels": ["slack", "teams"]},
                ],
            }
        )
    )
    rules = load_routing_rules(str(path))
    alarm = sample_alarm()
    pipeline = replace(alarm, trigger=replace(alarm.trigger, namespace="LogPipe"))

    def route_name(notification: AlarmNotification, environment: str) -> str | None:
        route = rules.route(notification, environment)
        return None if route is None else route.name

    assert route_name(alarm, "dev") == "quiet dev"
    assert route_name(pipeline, "prod") == "no warnings in teams"
    assert route_name(replace(alarm, new_state=AlarmState.OK), "prod") == "resolutions"
    assert route_name(alarm, "prod") == "rest"


def test_bad_routing_rules_name_the_file_entry_and_problem() -> None:
    with pytest.raises(RoutingRulesError, match=r"x\.json: routes\[0\]: unknown channels \['email'\]"):
        parse_routing_rules({"routes": [{"channels": ["email"]}]}, "x.json")
    with pytest.raises(RoutingRulesError, match=r"routes\[0\]: unknown keys \['channel'\]"):
        parse_routing_rules({"routes": [{"channel": ["slack"]}]}, "x.json")
    with pytest.raises(RoutingRulesError, match=r"states: unknown states \['FIRING'\]"):
        parse_routing_rules({"routes": [{"states": ["FIRING"], "channels": []}]}, "x.json")
    with pytest.raises(RoutingRulesError, match="routes must be a non-empty list"):
        parse_routing_rules({"routes": []}, "x.json")


# ---------------------------------------------------------------------------
# Log context: bounded, scrubbed, never fatal
# ---------------------------------------------------------------------------
class ScriptedLogs:
    """A Logs client whose GetQueryResults answers come from a script (the last one repeats)."""

    def __init__(self, answers: list[dict[str, Any]], *, start_error: Exception | None = None) -> None:
        self.answers = answers
        self.start_error = start_error
        self.started: list[dict[str, Any]] = []
        self.stopped: list[str] = []
        self.polls = 0

    def start_query(self, **kwargs: Any) -> dict[str, str]:
        if self.start_error is not None:
            raise self.start_error
        self.started.append(kwargs)
        return {"queryId": "q-1"}

    def get_query_results(self, queryId: str) -> dict[str, Any]:  # noqa: N803 - the API's name
        self.polls += 1
        return self.answers[min(self.polls - 1, len(self.answers) - 1)]

    def stop_query(self, queryId: str) -> dict[str, bool]:  # noqa: N803 - the API's name
        self.stopped.append(queryId)
        return {"success": True}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _reader(logs: ScriptedLogs, clock: FakeClock, **kwargs: Any) -> LogContextReader:
    return LogContextReader(logs, boundary=Boundary.default(), clock=clock, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


QUERY = InsightsQuery("PACS Error Analysis", "fields @message", ("/aws/ecs/pacs-backend/application",), True, "x")
WINDOW = (datetime(2026, 11, 22, 1, 0, tzinfo=UTC), CHANGED_AT)


def _row(message: str) -> list[dict[str, str]]:
    return [{"field": "@timestamp", "value": "2026-11-22 01:05:00.000"}, {"field": "@message", "value": message}]


def test_context_groups_scrubbed_error_messages_and_keeps_the_top_ones() -> None:
    rows = [_row(json.dumps({"level": "ERROR", "message": "Failed to store instance"})) for _ in range(3)]
    rows += [
        _row(f"2026-11-22 01:05:0{i},000 ERROR [pacs.api] request_id=r{i} Lookup failed for a{i}@example.com")
        for i in range(2)
    ]
    rows += [_row(json.dumps({"level": "INFO", "message": "Request completed"}))]
    rows += [_row("x" * 10 + " ERROR " + "y" * 400)]
    logs = ScriptedLogs(
        [
            {"status": "Running", "results": []},
            {"status": "Complete", "results": rows, "statistics": {"bytesScanned": 1e6}},
        ]
    )
    clock = FakeClock()
    found = _reader(logs, clock).read(QUERY, *WINDOW)
    assert found.unavailable is None
    assert found.rows == 7
    assert (found.errors[0].count, found.errors[0].message) == (3, "Failed to store instance")
    # The two lookups differ only in the address: scrubbed, they are one message (whatever the mask looks like).
    assert found.errors[1].count == 2
    assert found.errors[1].message.startswith("Lookup failed for ")
    assert "example.com" not in found.errors[1].message
    assert len(found.errors[2].message) == 200
    assert found.errors[2].message.endswith("…")
    (started,) = logs.started
    assert started["logGroupNames"] == ["/aws/ecs/pacs-backend/application"]
    assert (started["startTime"], started["endTime"]) == (int(WINDOW[0].timestamp()), int(CHANGED_AT.timestamp()) + 1)
    assert logs.stopped == []


def test_a_slow_query_is_stopped_and_the_message_goes_without_context() -> None:
    logs = ScriptedLogs([{"status": "Running", "results": [], "statistics": {"bytesScanned": 10.0}}])
    clock = FakeClock()
    found = _reader(logs, clock, timeout_seconds=3.0, poll_seconds=0.5).read(QUERY, *WINDOW)
    assert found.unavailable == "query still Running after 3 s (stopped)"
    assert logs.stopped == ["q-1"]
    assert clock.now <= 3.0


def test_a_query_scanning_too_much_is_stopped() -> None:
    logs = ScriptedLogs([{"status": "Running", "results": [], "statistics": {"bytesScanned": 300 * 1024 * 1024}}])
    found = _reader(logs, FakeClock(), max_bytes_scanned=100 * 1024 * 1024).read(QUERY, *WINDOW)
    assert found.unavailable == "scan passed 100 MB (stopped)"
    assert logs.stopped == ["q-1"]


@pytest.mark.parametrize(
    ("logs", "reason"),
    [
        (ScriptedLogs([{"status": "Failed"}]), "query ended Failed"),
        (
            ScriptedLogs([], start_error=TimeoutError("read timeout on https://logs...")),
            "StartQuery failed: TimeoutError",
        ),
    ],
)
def test_a_failed_query_is_reported_not_raised(logs: ScriptedLogs, reason: str) -> None:
    assert _reader(logs, FakeClock()).read(QUERY, *WINDOW).unavailable == reason


def test_error_message_keeps_only_error_lines_own_words() -> None:
    assert error_message('{"level":"ERROR","message":"Failed  to\\nstore","request_id":"r1"}') == "Failed to"
    assert error_message('{"level":"INFO","message":"ok"}') is None
    assert error_message("plain text without a level") is None
    assert error_message("something ERROR happened") == "something ERROR happened"


# ---------------------------------------------------------------------------
# Outcomes and URLs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, HttpOutcome.ACCEPTED),
        (202, HttpOutcome.ACCEPTED),
        (429, HttpOutcome.RATE_LIMITED),
        (408, HttpOutcome.RETRYABLE),
        (500, HttpOutcome.RETRYABLE),
        (503, HttpOutcome.RETRYABLE),
        (400, HttpOutcome.REJECTED),
        (404, HttpOutcome.REJECTED),
        (410, HttpOutcome.REJECTED),
    ],
)
def test_webhook_answers_are_classified(status: int, outcome: HttpOutcome) -> None:
    result = classify_webhook_response(status, b"channel_is_archived\n")
    assert result.outcome is outcome
    assert result.outcome.should_retry is (outcome in {HttpOutcome.RATE_LIMITED, HttpOutcome.RETRYABLE})


def test_webhook_urls_must_be_https_except_to_this_machine() -> None:
    assert checked_url(" https://hooks.slack.com/services/T/B/x ", "v") == "https://hooks.slack.com/services/T/B/x"
    assert checked_url("http://127.0.0.1:8080/slack", "v") == "http://127.0.0.1:8080/slack"
    for bad in ("http://hooks.slack.com/services/T/B/secret", "ftp://x/secret", "not a url secret"):
        with pytest.raises(WebhookConfigError) as raised:
            checked_url(bad, "LOGPIPE_SLACK_WEBHOOK_URL")
        assert "secret" not in str(raised.value)  # the value is never echoed
        assert raised.value.retryable is False
    assert WebhookUrlSource.fixed("", "v").load() is None


def test_settings_require_the_ledger_in_lambda_and_keep_urls_out_of_repr() -> None:
    with pytest.raises(SettingsError, match="LOGPIPE_IDEMPOTENCY_TABLE is required"):
        NotifySettings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "f"})
    settings = NotifySettings.from_env(
        {
            "LOGPIPE_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/very-secret",
            "LOGPIPE_NOTIFY_LOG_CONTEXT": "true",
            "LOGPIPE_NOTIFY_CONTEXT_SECONDS": "2.5",
            "LOGPIPE_PIPELINE_LOG_GROUPS": "/aws/lambda/a, /aws/lambda/b",
        }
    )
    assert "very-secret" not in repr(settings)
    assert (settings.log_context, settings.context_seconds) == (True, 2.5)
    assert settings.pipeline_log_groups == ("/aws/lambda/a", "/aws/lambda/b")
    with pytest.raises(SettingsError, match="LOGPIPE_NOTIFY_CONTEXT_SECONDS must be a positive number"):
        NotifySettings.from_env({"LOGPIPE_NOTIFY_CONTEXT_SECONDS": "-1"})


# ---------------------------------------------------------------------------
# The notifier's decisions, with in-memory parts
# ---------------------------------------------------------------------------
class RecordingPoster:
    def __init__(self, answers: dict[str, list[WebhookResult]]) -> None:
        self.answers = answers
        self.posts: list[tuple[str, dict[str, Any]]] = []

    def post(self, url: str, message: dict[str, Any], timeout_seconds: float | None = None) -> WebhookResult:
        channel = url.rsplit("/", 1)[-1]
        self.posts.append((channel, message))
        queue = self.answers.get(channel, [])
        return queue.pop(0) if queue else WebhookResult(HttpOutcome.ACCEPTED, 200, "accepted")


def _notifier(poster: RecordingPoster, guard: DeliveryGuard, **sources: Callable[[], str | None]) -> Notifier:
    return Notifier(
        environment="prod",
        sources={Channel(name): WebhookUrlSource(load, name) for name, load in sources.items()},
        poster=poster,  # type: ignore[arg-type]
        guard=guard,
        rules=load_routing_rules(),
        queries=load_alarm_queries(),
    )


def test_the_retry_posts_only_where_it_failed_and_a_settled_message_posts_nothing() -> None:
    event = {"Records": [sample_record()]}
    poster = RecordingPoster({"teams": [WebhookResult(HttpOutcome.RETRYABLE, 503, "HTTP 503")]})
    guard = DeliveryGuard.in_memory()
    notifier = _notifier(poster, guard, slack=lambda: "https://x/slack", teams=lambda: "https://x/teams")
    with pytest.raises(NotificationDeliveryError, match="teams: HTTP 503"):
        notifier.handle(event)
    assert [channel for channel, _ in poster.posts] == ["slack", "teams"]
    summary = notifier.handle(event)
    assert [channel for channel, _ in poster.posts] == ["slack", "teams", "teams"]
    assert summary.counters["duplicates"] == 1
    assert summary.counters["delivered"] == 1
    settled = notifier.handle(event)
    assert len(poster.posts) == 3
    assert settled.counters["duplicates"] == 2


def test_an_unreadable_secret_is_retried_and_a_missing_url_is_skipped() -> None:
    def unreadable() -> str | None:
        raise WebhookConfigError("secret s: cannot be read (AccessDeniedException)", retryable=True)

    poster = RecordingPoster({})
    notifier = _notifier(poster, DeliveryGuard.in_memory(), slack=unreadable, teams=lambda: None)
    with pytest.raises(NotificationDeliveryError, match=r"slack: secret s: cannot be read \(AccessDeniedException\)"):
        notifier.handle({"Records": [sample_record()]})
    assert poster.posts == []


def test_an_event_that_is_not_from_sns_is_counted_and_raised() -> None:
    notifier = _notifier(RecordingPoster({}), DeliveryGuard.in_memory())
    with pytest.raises(AlarmMessageError, match="not an SNS event"):
        notifier.handle({"awslogs": {"data": "..."}})


# ---------------------------------------------------------------------------
# Local alarm evaluation (the demo's), as CloudWatch evaluates
# ---------------------------------------------------------------------------
MINUTE = 60_000
T0 = 1_795_309_200_000  # 2026-11-22T01:00:00Z, a 5-minute boundary


def test_an_alarm_fires_when_its_last_periods_all_breach() -> None:
    samples = {T0: [1.0] * 6, T0 + MINUTE: [1.0] * 6, T0 + 5 * MINUTE: [1.0] * 11, T0 + 10 * MINUTE: [1.0] * 3}
    evaluation = evaluate(ERROR_RATE, samples)
    assert [p.value for p in evaluation.periods] == [12.0, 11.0, 3.0]
    assert [p.breaching for p in evaluation.periods] == [True, True, False]
    assert evaluation.fired_at_ms == T0 + 10 * MINUTE
    assert "2 out of the last 2 datapoints [11.0 (22/11/26 01:05:00), 12.0 (22/11/26 01:00:00)]" in evaluation.reason


def test_a_gap_or_one_breaching_period_does_not_fire() -> None:
    assert not evaluate(ERROR_RATE, {T0: [1.0] * 20, T0 + 10 * MINUTE: [1.0] * 20}).fired  # missing = not breaching
    assert not evaluate(ERROR_RATE, {T0: [1.0] * 20, T0 + 5 * MINUTE: [1.0] * 10}).fired  # 10 is not > 10
    average = replace(ERROR_RATE, statistic="Average", threshold=5000.0)
    assert evaluate(average, {T0: [9000.0, 2000.0], T0 + 5 * MINUTE: [6000.0]}).fired  # 5500 and 6000
    assert not evaluate(average, {T0: [9000.0, 200.0], T0 + 5 * MINUTE: [6000.0]}).fired  # 4600


def test_the_sample_events_are_what_the_template_alarm_would_publish() -> None:
    event = alarm_sns_event(
        ERROR_RATE, new_state="ALARM", old_state="OK", reason="r", changed_at=CHANGED_AT, message_id="m-1"
    )
    alarm = parse_record(event["Records"][0])
    assert isinstance(alarm, AlarmNotification)
    assert alarm.trigger.condition == "> 10"
    assert (
        event["Records"][0]["Sns"]["Subject"] == 'ALARM: "pacs-logpipe-pacs-backend-error-rate" in Asia Pacific (Seoul)'
    )
