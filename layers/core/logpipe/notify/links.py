"""Console links in a notification: the alarm, the pipeline dashboard, and a Logs Insights query for the alarm's window.

The Logs Insights console keeps its state in the URL fragment: ``queryDetail`` is a ``~``-separated
list (``~(end~'<iso>~start~'<iso>~timeType~'ABSOLUTE~tz~'UTC~editorString~'<query>~source~(~'<group>...))``)
whose string values escape every character outside ``[A-Za-z0-9_.-]`` as ``*XX`` (its UTF-8 bytes in
hex), and the fragment writes the ``?`` and ``=`` around it as ``$3F`` and ``$3D``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote

_INSIGHTS_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def console_home(region: str) -> str:
    """The CloudWatch console of ``region``."""
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"


def alarm_url(region: str, alarm_name: str) -> str:
    """The alarm's page in the CloudWatch console."""
    return f"{console_home(region)}#alarmsV2:alarm/{quote(alarm_name, safe='')}"


def dashboard_url(region: str, dashboard_name: str) -> str:
    """A CloudWatch dashboard in the console."""
    return f"{console_home(region)}#dashboards:name={quote(dashboard_name, safe='')}"


def insights_value(text: str) -> str:
    """One string value of the Logs Insights ``queryDetail`` (``*XX`` for every unsafe UTF-8 byte)."""
    out: list[str] = []
    for char in text:
        if char in _INSIGHTS_SAFE:
            out.append(char)
        else:
            out.extend(f"*{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def insights_url(region: str, query: str, log_groups: Sequence[str], start: datetime, end: datetime) -> str:
    """Logs Insights with ``query`` over ``log_groups``, for the absolute time range ``start``..``end`` (UTC)."""
    sources = "".join(f"~'{insights_value(group)}" for group in log_groups)
    detail = (
        f"~(end~'{insights_value(_iso(end))}~start~'{insights_value(_iso(start))}~timeType~'ABSOLUTE~tz~'UTC"
        f"~editorString~'{insights_value(query)}~source~({sources}))"
    )
    return f"{console_home(region)}#logsV2:logs-insights$3FqueryDetail$3D{detail}"
