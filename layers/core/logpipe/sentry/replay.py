"""Sentry's replay route: re-send a parked event (same event id, so Sentry stores it at most once)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from logpipe.delivery import ResendOutcome, ResendResult, resend_result
from logpipe.secret_store import SecretNotConfiguredError, SecretUnavailableError
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import EventSender
from logpipe.sentry.transport import SentryClient


class SentryResender:
    """Re-sends parked Sentry events through one cached client per DSN."""

    def __init__(self, router: DsnRouter | None, sender_factory: Callable[[str], EventSender] | None = None) -> None:
        """Wire the route; clients are created on first use of each DSN."""
        self.router = router
        self._sender_factory: Callable[[str], EventSender] = sender_factory or SentryClient
        self._senders: dict[str, EventSender] = {}

    def resend(self, message: Mapping[str, Any], deadline: float) -> ResendResult:
        """Send the parked event to its service's DSN and classify the outcome."""
        attributes: Mapping[str, str] = message.get("attributes") or {}
        try:
            dsn = self.router.dsn_for(attributes.get("service", "")) if self.router is not None else None
        except (SecretNotConfiguredError, SecretUnavailableError) as error:
            # Someone is filling in (or fixing access to) the secret: wait, within the replay horizon.
            return ResendResult(ResendOutcome.RETRY_LATER, str(error))
        if dsn is None:
            return ResendResult(ResendOutcome.REJECTED, "no Sentry DSN configured for this service")
        sender = self._senders.get(dsn)
        if sender is None:
            sender = self._senders[dsn] = self._sender_factory(dsn)
        result = sender.send(orjson.loads(message["body"]), deadline)
        return resend_result(result.outcome, result.reason, result.retry_after)
