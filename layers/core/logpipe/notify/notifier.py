"""The notifier: each SNS record of the alert topic to the chat channels its route names, once per channel.

Per notification: route it (severity, environment, state), and for each routed channel read the
webhook URL, then post inside the delivery guard. The message (and the Logs Insights context, when
on) is built only when some channel actually posts, so a retry that finds every channel settled
costs no query. Outcomes per channel:

- delivered / duplicate (settled by an earlier attempt): done;
- rejected (4xx, or an unusable URL): counted in ``NotifierFailures`` (alarmed), not retried;
- retry (5xx, 429, timeout, network, secret unreadable, ledger unavailable): after every channel
  was tried, the invocation fails with ``NotificationDeliveryError`` so Lambda retries it; the
  channels that accepted are not posted again;
- not configured (no URL or an empty secret) / routed away: skipped and counted.

The counters are published as EMF (namespace ``LogPipe``, service ``logpipe-notify``) before the
invocation returns or fails. Nothing logged names a webhook URL.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from logpipe.delivery import HttpOutcome
from logpipe.notify.alarm import AlarmMessageError, AlarmNotification, Notification, parse_record, sns_records
from logpipe.notify.channels import SecretsReader, WebhookConfigError, WebhookUrlSource
from logpipe.notify.context import LogContext, LogContextReader
from logpipe.notify.guard import DeliveryGuard
from logpipe.notify.queries import AlarmQueries, InsightsQuery, load_alarm_queries
from logpipe.notify.render import NotificationView, build_view, slack_message, teams_message
from logpipe.notify.routing import Channel, RoutingRules, load_routing_rules
from logpipe.notify.webhook import WebhookPoster, WebhookResult

if TYPE_CHECKING:
    from logpipe.health import HealthMetrics
    from logpipe.settings import NotifySettings

NOTIFY_SERVICE = "logpipe-notify"
# Summary counter -> published metric (namespace LogPipe, dimensions Environment and service).
NOTIFY_METRICS: dict[str, str] = {
    "notifications": "NotificationsReceived",
    "not_alarms": "NotificationsNotAlarm",
    "delivered": "NotifierDelivered",
    "duplicates": "NotifierDuplicates",
    "rejected": "NotifierFailures",
    "retries": "NotifierRetries",
    "not_configured": "NotifierChannelsNotConfigured",
    "routed_away": "NotifierChannelsRoutedAway",
    "context_unavailable": "NotifierContextUnavailable",
    "malformed": "NotifierMalformedEvents",
}
_RENDERERS: dict[Channel, Callable[[NotificationView], dict[str, Any]]] = {
    Channel.SLACK: slack_message,
    Channel.TEAMS: teams_message,
}
# Leave this much of the invocation for publishing metrics and failing cleanly.
_RESERVE_SECONDS = 2.0


class NotificationDeliveryError(RuntimeError):
    """Some channel must be retried; Lambda's asynchronous retry will run the invocation again."""


@dataclass(frozen=True, slots=True)
class ChannelDelivery:
    """What happened for one channel of one notification."""

    channel: str
    outcome: str
    status: int | None = None
    reason: str = ""


@dataclass(slots=True)
class NotificationReport:
    """One notification and its channels."""

    message_id: str
    kind: str
    name: str
    state: str
    severity: str
    route: str | None
    channels: list[ChannelDelivery] = field(default_factory=list)
    context: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the handler's return value)."""
        return {
            "message_id": self.message_id,
            "kind": self.kind,
            "name": self.name,
            "state": self.state,
            "severity": self.severity,
            "route": self.route,
            "context": self.context,
            "channels": {
                d.channel: {"outcome": d.outcome, "status": d.status, "reason": d.reason} for d in self.channels
            },
        }


@dataclass(slots=True)
class NotifySummary:
    """One invocation's notifications and counters."""

    notifications: list[NotificationReport] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)

    def retries(self) -> list[tuple[str, ChannelDelivery]]:
        """(message id, channel) pairs that must be retried."""
        return [(n.message_id, d) for n in self.notifications for d in n.channels if d.outcome == "retry"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "notifications": [n.to_dict() for n in self.notifications],
            "counts": dict(sorted(self.counters.items())),
        }


class _Deadline:
    def __init__(self, context: Any) -> None:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        seconds = remaining() / 1000 if callable(remaining) else 60.0
        self._end = time.monotonic() + seconds - _RESERVE_SECONDS

    def left(self) -> float:
        return self._end - time.monotonic()


class Notifier:
    """Routes, renders and posts the alert topic's notifications."""

    def __init__(  # noqa: PLR0913 - the notifier's collaborators, all injected
        self,
        *,
        environment: str,
        sources: Mapping[Channel, WebhookUrlSource],
        poster: WebhookPoster,
        guard: DeliveryGuard,
        rules: RoutingRules,
        queries: AlarmQueries,
        context_reader: LogContextReader | None = None,
        dashboard_name: str | None = None,
        pipeline_log_groups: tuple[str, ...] = (),
        metrics: HealthMetrics | None = None,
        logger: Any = None,
    ) -> None:
        """Keep the collaborators; nothing touches the network here."""
        self.environment = environment
        self.sources = dict(sources)
        self.poster = poster
        self.guard = guard
        self.rules = rules
        self.queries = queries
        self.context_reader = context_reader
        self.dashboard_name = dashboard_name
        self.pipeline_log_groups = pipeline_log_groups
        self.metrics = metrics
        self.logger = logger

    def handle(self, event: Mapping[str, Any], context: Any = None) -> NotifySummary:
        """Deliver every record of an SNS event; raise ``NotificationDeliveryError`` if a channel needs a retry."""
        self.guard.register_invocation(context)
        summary = NotifySummary()
        deadline = _Deadline(context)
        try:
            for record in sns_records(event):
                summary.counters["notifications"] += 1
                notification = parse_record(record)
                summary.notifications.append(self._deliver(notification, summary.counters, deadline))
        except AlarmMessageError:
            summary.counters["malformed"] += 1
            self._log("error", "not an SNS event of the alert topic; it goes to the failure queue after retries")
            raise
        finally:
            if self.metrics is not None:
                self.metrics.publish(summary.counters)
        retries = summary.retries()
        if retries:
            detail = "; ".join(f"{message_id} {d.channel}: {d.reason}" for message_id, d in retries)
            msg = f"{len(retries)} channel post(s) must be retried: {detail}"
            raise NotificationDeliveryError(msg)
        return summary

    def _log(self, level: str, message: str, **fields: Any) -> None:
        if self.logger is not None:
            getattr(self.logger, level)(message, extra=fields)

    def _query_for(self, notification: Notification) -> InsightsQuery | None:
        if isinstance(notification, AlarmNotification):
            return self.queries.for_trigger(notification.trigger, self.pipeline_log_groups)
        return None

    def _context(
        self, notification: Notification, query: InsightsQuery | None, counters: Counter[str]
    ) -> LogContext | None:
        if self.context_reader is None or query is None or not query.error_context:
            return None
        if not isinstance(notification, AlarmNotification):
            return None
        start, end = notification.window()
        found = self.context_reader.read(query, start, end)
        if found.unavailable:
            counters["context_unavailable"] += 1
            self._log(
                "warning", "log context unavailable", message_id=notification.message_id, reason=found.unavailable
            )
        return found

    def _deliver(self, notification: Notification, counters: Counter[str], deadline: _Deadline) -> NotificationReport:
        is_alarm = isinstance(notification, AlarmNotification)
        if not is_alarm:
            counters["not_alarms"] += 1
        severity = self.rules.severity_of(notification)
        route = self.rules.route(notification, self.environment)
        report = NotificationReport(
            message_id=notification.message_id,
            kind="alarm" if is_alarm else "message",
            name=notification.alarm_name if isinstance(notification, AlarmNotification) else notification.subject,
            state=notification.new_state.value if isinstance(notification, AlarmNotification) else "MESSAGE",
            severity=severity,
            route=route.name if route else None,
        )
        routed = route.channels if route else ()
        view: list[NotificationView] = []  # built on the first post that is not already settled

        def render(channel: Channel) -> dict[str, Any]:
            if not view:
                query = self._query_for(notification)
                found = self._context(notification, query, counters)
                if found is not None:
                    report.context = found.unavailable or f"{len(found.errors)} top errors from {found.rows} rows"
                view.append(
                    build_view(
                        notification,
                        environment=self.environment,
                        severity=severity,
                        dashboard_name=self.dashboard_name,
                        query=query,
                        context=found,
                    )
                )
            return _RENDERERS[channel](view[0])

        for channel in Channel:
            if channel not in routed:
                counters["routed_away"] += 1
                report.channels.append(ChannelDelivery(channel.value, "routed_away"))
                continue
            report.channels.append(self._post(notification.message_id, channel, render, counters, deadline))
        return report

    def _post(
        self,
        message_id: str,
        channel: Channel,
        render: Callable[[Channel], dict[str, Any]],
        counters: Counter[str],
        deadline: _Deadline,
    ) -> ChannelDelivery:
        source = self.sources.get(channel)
        try:
            url = source.load() if source is not None else None
        except WebhookConfigError as error:
            outcome = "retry" if error.retryable else "rejected"
            counters["retries" if error.retryable else "rejected"] += 1
            self._log("error", "webhook URL unusable", channel=channel.value, message_id=message_id, reason=str(error))
            return ChannelDelivery(channel.value, outcome, None, str(error))
        if url is None:
            counters["not_configured"] += 1
            return ChannelDelivery(channel.value, "not_configured", None, "no webhook URL configured")

        def send() -> WebhookResult:
            message = render(channel)
            left = deadline.left()
            if left <= 0:
                return WebhookResult(HttpOutcome.RETRYABLE, None, "no time left in this invocation")
            return self.poster.post(url, message, timeout_seconds=left)

        result, duplicate = self.guard.once(message_id, channel.value, send)
        if duplicate:
            counters["duplicates"] += 1
            outcome = "duplicate"
        elif result.outcome is HttpOutcome.ACCEPTED:
            counters["delivered"] += 1
            outcome = "delivered"
        elif result.outcome.should_retry:
            counters["retries"] += 1
            outcome = "retry"
        else:
            counters["rejected"] += 1
            outcome = "rejected"
        level = "info" if outcome in {"delivered", "duplicate"} else "error"
        self._log(
            level,
            f"notification {outcome}",
            channel=channel.value,
            message_id=message_id,
            status=result.status,
            reason=result.reason,
        )
        return ChannelDelivery(channel.value, outcome, result.status, result.reason)


def _source(secret: str | None, url: str | None, variable: str, secrets: SecretsReader) -> WebhookUrlSource | None:
    if secret:
        return WebhookUrlSource.from_secret(secret, secrets)
    if url:
        return WebhookUrlSource.fixed(url, variable)
    return None


def build_notifier(settings: NotifySettings, logger: Any = None) -> Notifier:
    """Settings -> the notifier (no network at build time)."""
    from logpipe.health import HealthMetrics
    from logpipe.runtime import build_logger

    logger = logger if logger is not None else build_logger(NOTIFY_SERVICE)
    sources: dict[Channel, WebhookUrlSource] = {}
    secrets = SecretsReader()
    for channel, secret, url, variable in (
        (Channel.SLACK, settings.slack_webhook_secret, settings.slack_webhook_url, "LOGPIPE_SLACK_WEBHOOK_URL"),
        (Channel.TEAMS, settings.teams_webhook_secret, settings.teams_webhook_url, "LOGPIPE_TEAMS_WEBHOOK_URL"),
    ):
        found = _source(secret, url, variable, secrets)
        if found is not None:
            sources[channel] = found
    if settings.idempotency_table:
        guard = DeliveryGuard.for_table(settings.idempotency_table)
    else:
        logger.warning("LOGPIPE_IDEMPOTENCY_TABLE is not set: posts are deduplicated in memory only (local run)")
        guard = DeliveryGuard.in_memory()
    reader = (
        LogContextReader(
            timeout_seconds=settings.context_seconds, max_bytes_scanned=settings.context_max_mb * 1024 * 1024
        )
        if settings.log_context
        else None
    )
    return Notifier(
        environment=settings.environment,
        sources=sources,
        poster=WebhookPoster(timeout_seconds=settings.webhook_timeout_seconds),
        guard=guard,
        rules=load_routing_rules(settings.rules_path),
        queries=load_alarm_queries(),
        context_reader=reader,
        dashboard_name=settings.dashboard_name,
        pipeline_log_groups=settings.pipeline_log_groups,
        metrics=HealthMetrics(settings.environment, service=NOTIFY_SERVICE, metrics=NOTIFY_METRICS),
        logger=logger,
    )
