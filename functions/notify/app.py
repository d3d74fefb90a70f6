"""Notifier: CloudWatch alarm notifications from the pacs-alerts topic (SNS) to Slack and Microsoft Teams."""

from __future__ import annotations

from typing import Any

from logpipe.notify.notifier import Notifier, build_notifier
from logpipe.settings import NotifySettings

_notifier: Notifier | None = None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # LambdaContext
    """Post each SNS record once per routed channel; raise so Lambda retries when a channel must be retried."""
    global _notifier  # noqa: PLW0603 - clients, secrets cache and rules live for the container's lifetime
    if _notifier is None:
        _notifier = build_notifier(NotifySettings.from_env())
    return _notifier.handle(event, context).to_dict()
