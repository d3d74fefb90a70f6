"""What a notification says, and how Slack and Microsoft Teams are told.

``build_view`` decides the content once (title, state transition, reason, facts, links, log
context); ``slack_message`` renders it as a Slack incoming-webhook message (Block Kit ``blocks`` with
a plain ``text`` fallback, which is all mobile notifications show) and ``teams_message`` as a Teams
Workflows webhook message (``{"type": "message", "attachments": [<Adaptive Card>]}``).

Block Kit has no colour, so the state is an emoji in the header (red circle for ALARM, green check
for a resolved OK, yellow circle for INSUFFICIENT_DATA); the card uses a container style and text
colour (attention, good, warning). Limits kept here: Slack header 150 characters, section text 3000,
section fields 10 of at most 2000 each, 50 blocks; Teams cards at schema version 1.4 (Teams renders
up to 1.5) using only TextBlock, FactSet, Container and Action.OpenUrl.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from logpipe.notify.alarm import AlarmNotification, AlarmState, Notification, PlainNotification
from logpipe.notify.context import LogContext
from logpipe.notify.links import alarm_url, dashboard_url, insights_url
from logpipe.notify.queries import InsightsQuery

ADAPTIVE_CARD_VERSION = "1.4"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_FIELDS_MAX = 10
PLAIN_TEXT_MAX = 2500
REASON_MAX = 1800
DESCRIPTION_MAX = 600


class Tone(StrEnum):
    """How a notification should look."""

    ALARM = "alarm"
    RESOLVED = "resolved"
    INSUFFICIENT = "insufficient"
    INFO = "info"


_MARK = {Tone.ALARM: "🔴", Tone.RESOLVED: "✅", Tone.INSUFFICIENT: "🟡", Tone.INFO: "ℹ️"}  # noqa: RUF001 - the info sign is meant
_CARD_STYLE = {Tone.ALARM: "attention", Tone.RESOLVED: "good", Tone.INSUFFICIENT: "warning", Tone.INFO: "emphasis"}
_CARD_COLOR = {Tone.ALARM: "Attention", Tone.RESOLVED: "Good", Tone.INSUFFICIENT: "Warning", Tone.INFO: "Default"}


@dataclass(frozen=True, slots=True)
class Link:
    """A labelled console link."""

    label: str
    url: str


@dataclass(frozen=True, slots=True)
class NotificationView:
    """The content of one notification, independent of the chat it goes to."""

    tone: Tone
    title: str
    headline: str
    summary: str
    facts: tuple[tuple[str, str], ...]
    links: tuple[Link, ...]
    context_title: str | None
    context_lines: tuple[str, ...]
    context_note: str | None
    footer: str

    @property
    def mark(self) -> str:
        """The state's emoji."""
        return _MARK[self.tone]

    @property
    def fallback(self) -> str:
        """One plain line for notifications and clients that show no blocks or cards."""
        return _clip(f"{self.mark} {self.title} - {self.headline}. {self.summary}".strip(), SLACK_TEXT_MAX)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def period_text(seconds: int) -> str:
    """``300`` -> ``5 min``, ``3600`` -> ``1 h``, ``86400`` -> ``1 day``."""
    if seconds <= 0:
        return "-"
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" if days == 1 else f"{days} days"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _time_text(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _tone(state: AlarmState) -> Tone:
    return {AlarmState.ALARM: Tone.ALARM, AlarmState.OK: Tone.RESOLVED}.get(state, Tone.INSUFFICIENT)


def _headline(notification: AlarmNotification, environment: str) -> str:
    transition = f"{notification.old_state or '?'} → {notification.new_state.value}"
    if notification.new_state is AlarmState.OK:
        return f"Resolved ({transition}) in {environment}"
    if notification.new_state is AlarmState.INSUFFICIENT_DATA:
        return f"Insufficient data ({transition}) in {environment}"
    return f"{transition} in {environment}"


def _context_parts(
    context: LogContext | None, query: InsightsQuery | None
) -> tuple[str | None, tuple[str, ...], str | None]:
    if context is None or query is None:
        return None, (), None
    source = query.saved_query or query.title
    if context.unavailable:
        return None, (), f"Log context unavailable ({context.unavailable}); open the query below."
    if not context.errors:
        return None, (), f"No error lines in the alarm window ({context.rows} rows of {source} read)."
    title = f"Top errors in the alarm window (scrubbed; {context.rows} rows of {source})"
    return title, tuple(f"{error.count}× {error.message}" for error in context.errors), None  # noqa: RUF001


def _alarm_view(  # noqa: PLR0913 - the view's inputs
    notification: AlarmNotification,
    *,
    environment: str,
    severity: str,
    dashboard_name: str | None,
    query: InsightsQuery | None,
    context: LogContext | None,
) -> NotificationView:
    trigger = notification.trigger
    region = notification.region
    metric = trigger.metric
    if trigger.dimensions:
        metric += " (" + ", ".join(f"{name}={value}" for name, value in trigger.dimensions) + ")"
    periods = trigger.datapoints_to_alarm or trigger.evaluation_periods
    facts = (
        ("Metric", metric),
        ("Statistic", trigger.statistic or "-"),
        ("Threshold", f"{trigger.condition} ({periods} of {trigger.evaluation_periods} periods)"),
        ("Period", period_text(trigger.period_seconds)),
        ("Environment", environment),
        ("Severity", severity),
        ("Account", notification.account_id or "-"),
        ("Region", f"{region} ({notification.region_name})" if notification.region_name else region or "-"),
        ("Changed at", _time_text(notification.changed_at)),
    )
    links: list[Link] = []
    if region:
        links.append(Link("Alarm in the console", alarm_url(region, notification.alarm_name)))
        if dashboard_name:
            links.append(Link("Pipeline dashboard", dashboard_url(region, dashboard_name)))
        if query is not None:
            start, end = notification.window()
            label = f"Logs Insights: {query.title} (alarm window)"
            links.append(Link(label, insights_url(region, query.query, query.log_groups, start, end)))
    # The reason first (what happened), the description after it; each bounded so neither crowds out the other.
    summary = _clip(notification.reason or "-", REASON_MAX)
    if notification.description:
        summary = f"{summary}\n{_clip(notification.description, DESCRIPTION_MAX)}"
    context_title, context_lines, context_note = _context_parts(context, query)
    return NotificationView(
        tone=_tone(notification.new_state),
        title=f"{notification.new_state.value}: {notification.alarm_name}",
        headline=_headline(notification, environment),
        summary=summary,
        facts=facts,
        links=tuple(links),
        context_title=context_title,
        context_lines=context_lines,
        context_note=context_note,
        footer=f"pacs-alerts · SNS message {notification.message_id} · logpipe notifier",
    )


def _plain_view(
    notification: PlainNotification,
    environment: str,
    severity: str,
    scrub: Callable[[str], str],
    dashboard: Link | None,
) -> NotificationView:
    text = _clip(scrub(notification.text).strip() or "(empty message)", PLAIN_TEXT_MAX)
    return NotificationView(
        tone=Tone.INFO,
        title=_clip(scrub(notification.subject).strip() or "Message on the alert topic", SLACK_HEADER_MAX - 4),
        headline=f"published to the alert topic in {environment}",
        summary=text,
        facts=(
            ("Environment", environment),
            ("Severity", severity),
            ("Topic", notification.topic_arn or "-"),
            ("Published at", _time_text(notification.published_at)),
        ),
        links=(dashboard,) if dashboard else (),
        context_title=None,
        context_lines=(),
        context_note=None,
        footer=f"pacs-alerts · SNS message {notification.message_id} · logpipe notifier",
    )


def build_view(  # noqa: PLR0913 - everything a message shows
    notification: Notification,
    *,
    environment: str,
    severity: str,
    dashboard_name: str | None = None,
    query: InsightsQuery | None = None,
    context: LogContext | None = None,
    scrub: Callable[[str], str] | None = None,
) -> NotificationView:
    """The content of the message for ``notification``; plain messages are scrubbed with ``scrub``."""
    if isinstance(notification, AlarmNotification):
        return _alarm_view(
            notification,
            environment=environment,
            severity=severity,
            dashboard_name=dashboard_name,
            query=query,
            context=context,
        )
    if scrub is None:
        from logpipe.boundary import Boundary

        scrub = Boundary.default().scrub_text
    region = notification.topic_arn.split(":")[3] if notification.topic_arn.count(":") >= 5 else ""
    dashboard = Link("Pipeline dashboard", dashboard_url(region, dashboard_name)) if region and dashboard_name else None
    return _plain_view(notification, environment, severity, scrub, dashboard)


# ------------------------------------------------------------------------------------------------
# Slack
# ------------------------------------------------------------------------------------------------
def slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _clip(text, SLACK_TEXT_MAX)}


def _slack_links(links: tuple[Link, ...]) -> list[dict[str, Any]]:
    rendered = [f"<{link.url}|{slack_escape(link.label)}>" for link in links]
    joined = "  ·  ".join(rendered)
    if len(joined) <= SLACK_TEXT_MAX:
        return [{"type": "section", "text": _mrkdwn(joined)}]
    return [{"type": "section", "text": _mrkdwn(item)} for item in rendered if len(item) <= SLACK_TEXT_MAX]


def slack_message(view: NotificationView) -> dict[str, Any]:
    """A Slack incoming-webhook message: Block Kit blocks and the plain ``text`` fallback."""
    quoted = "\n".join(f"> {slack_escape(line)}" for line in view.summary.splitlines() or ["-"])
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(f"{view.mark} {view.title}", SLACK_HEADER_MAX), "emoji": True},
        },
        {"type": "section", "text": _mrkdwn(f"*{slack_escape(view.headline)}*\n{quoted}")},
        {
            "type": "section",
            "fields": [
                _mrkdwn(_clip(f"*{slack_escape(name)}*\n{slack_escape(value)}", SLACK_FIELD_MAX))
                for name, value in view.facts[:SLACK_FIELDS_MAX]
            ],
        },
    ]
    if view.context_title:
        lines = "\n".join(f"• {slack_escape(line)}" for line in view.context_lines)
        blocks.append({"type": "section", "text": _mrkdwn(f"*{slack_escape(view.context_title)}*\n{lines}")})
    if view.context_note:
        blocks.append({"type": "context", "elements": [_mrkdwn(slack_escape(view.context_note))]})
    if view.links:
        blocks.extend(_slack_links(view.links))
    blocks.append({"type": "context", "elements": [_mrkdwn(slack_escape(view.footer))]})
    # The fallback is mrkdwn too (a bare <!channel> in it would page everyone).
    return {"text": slack_escape(view.fallback), "blocks": blocks}


# ------------------------------------------------------------------------------------------------
# Microsoft Teams (Workflows webhook, Adaptive Card)
# ------------------------------------------------------------------------------------------------
def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def adaptive_card(view: NotificationView) -> dict[str, Any]:
    """The Adaptive Card of ``view``."""
    body: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": _CARD_STYLE[view.tone],
            "bleed": True,
            "items": [
                _text_block(f"{view.mark} {view.title}", size="Large", weight="Bolder", color=_CARD_COLOR[view.tone]),
                _text_block(view.headline, spacing="None", weight="Bolder"),
            ],
        },
        _text_block(view.summary),
        {"type": "FactSet", "facts": [{"title": name, "value": value} for name, value in view.facts]},
    ]
    if view.context_title:
        body.append(_text_block(view.context_title, weight="Bolder", separator=True))
        body.append(_text_block("\n".join(f"- {line}" for line in view.context_lines)))
    if view.context_note:
        body.append(_text_block(view.context_note, isSubtle=True, separator=True))
    body.append(_text_block(view.footer, isSubtle=True, size="Small"))
    card: dict[str, Any] = {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "fallbackText": view.fallback,
        "msteams": {"width": "Full"},
        "body": body,
    }
    if view.links:
        card["actions"] = [{"type": "Action.OpenUrl", "title": link.label, "url": link.url} for link in view.links]
    return card


def teams_message(view: NotificationView) -> dict[str, Any]:
    """A Teams Workflows webhook message carrying the card as its one attachment."""
    return {
        "type": "message",
        "attachments": [
            {"contentType": ADAPTIVE_CARD_CONTENT_TYPE, "contentUrl": None, "content": adaptive_card(view)}
        ],
    }
