"""Confirmed delivery to Sentry: an SDK Transport that sends inline and records each HTTP outcome.

The SDK's default transport queues envelopes on a background worker and drops them silently on
queue overflow or local rate limiting; ``flush()`` reports nothing. This transport instead posts
each envelope synchronously (the caller runs many in parallel) and keeps the outcome per event id,
so the sink knows whether every event was accepted, rate-limited, retryable or rejected. What a
status means, the server's wait and the inline retries are ``logpipe.delivery``'s policy, the same
as Langfuse's.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import orjson

from logpipe.delivery import HttpOutcome, NetworkFailure, RetryPolicy, classify_status, post_once

if TYPE_CHECKING:
    from collections.abc import Mapping

    import urllib3
    from sentry_sdk._types import Event
    from sentry_sdk.envelope import Envelope

_USER_AGENT = "logpipe/0.1"


# One outcome vocabulary for every sink; the local name reads better at the call sites.
SendOutcome = HttpOutcome


@dataclass(frozen=True, slots=True)
class SendResult:
    """The HTTP outcome of sending one event."""

    event_id: str
    outcome: SendOutcome
    status: int | None
    retry_after: float | None
    reason: str
    # The request may have reached Sentry although no answer confirmed it (read timeout, cut response).
    uncertain: bool = False


def classify_response(event_id: str, status: int, headers: Mapping[str, str], body: bytes) -> SendResult:
    """Turn an HTTP response into a ``SendResult``."""
    verdict = classify_status(status, headers, body)
    return SendResult(event_id, verdict.outcome, status, verdict.retry_after, verdict.reason, verdict.uncertain)


def _make_transport_class() -> type[Any]:
    from sentry_sdk.transport import Transport  # the SDK loads only on the Sentry path

    class ConfirmingTransport(Transport):
        """Posts each envelope inline and records the outcome under its event id."""

        def __init__(self, options: dict[str, Any], pool: urllib3.PoolManager, timeout: float) -> None:
            super().__init__(options)
            self._pool = pool
            self._timeout = timeout
            self._lock = threading.Lock()
            self.results: dict[str, SendResult] = {}

        def capture_envelope(self, envelope: Envelope) -> None:
            event_id = str(envelope.headers.get("event_id", ""))
            result = self._post(event_id, envelope.serialize())
            with self._lock:
                self.results[event_id] = result

        def _post(self, event_id: str, body: bytes) -> SendResult:
            dsn = self.parsed_dsn
            if dsn is None:
                return SendResult(event_id, SendOutcome.REJECTED, None, None, "no DSN")
            auth = dsn.to_auth(_USER_AGENT)
            headers = {
                "Content-Type": "application/x-sentry-envelope",
                "X-Sentry-Auth": auth.to_header(),
                "User-Agent": _USER_AGENT,
            }
            answer = post_once(self._pool, auth.get_api_url(), body, headers, self._timeout)
            if isinstance(answer, NetworkFailure):
                return SendResult(
                    event_id, SendOutcome.NETWORK_ERROR, None, None, answer.reason, answer.may_have_arrived
                )
            return classify_response(event_id, answer.status, answer.headers, answer.body)

        def flush(self, timeout: float, callback: Any = None) -> None:  # SDK signature
            """Nothing is queued: every envelope was sent inline."""

        def kill(self) -> None:
            """Nothing runs in the background."""

    return ConfirmingTransport


_transport_class: type[Any] | None = None


def confirming_transport_class() -> type[Any]:
    """The Transport subclass, built on first use so importing this module does not load the SDK."""
    global _transport_class  # noqa: PLW0603 - built once per process
    if _transport_class is None:
        _transport_class = _make_transport_class()
    return _transport_class


class SentryClient:
    """One ``sentry_sdk.Client`` for one DSN: no global init, no default integrations, inline sends."""

    def __init__(
        self, dsn: str, environment: str | None = None, timeout: float = 5.0, policy: RetryPolicy | None = None
    ) -> None:
        """Create the SDK client and its confirming transport (no network yet)."""
        import sentry_sdk
        import urllib3

        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=16)
        options = {"dsn": dsn}
        self.transport = confirming_transport_class()(options, self._pool, timeout)
        self.client = sentry_sdk.Client(
            dsn=dsn,
            transport=self.transport,
            default_integrations=False,
            auto_enabling_integrations=False,
            environment=environment,
            max_breadcrumbs=100,
            # The events are built from logs: no local variables or request bodies to attach.
            include_local_variables=False,
            max_value_length=16_384,
        )
        # The SDK fills a missing release and server name from the sending process (git HEAD of the
        # working directory, the host name): that describes the Lambda or an operator replaying
        # exports, not the service that wrote the log, and would make a replayed event differ from
        # the live one. Events carry both only when the log has them (``event.release_of``/``server_name_of``).
        self.client.options["release"] = None
        self.client.options["server_name"] = None
        # Scrubbing is ours (logpipe.boundary), done before the event gets here. The SDK's own
        # EventScrubber edits the event in place and leaves AnnotatedValue objects in it, which made
        # parking the event after a 429/5xx fail; it must never run.
        self.client.options["event_scrubber"] = None

    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        """Send one prepared event, retrying transient failures until ``deadline``; return the confirmed outcome.

        Without a deadline (``time.monotonic()``) the client's timeout bounds the whole send.
        """
        event_id = str(event["event_id"])
        until = time.monotonic() + self.timeout if deadline is None else deadline
        # A retried event keeps its event_id: Sentry stores it once even if a lost answer hid an acceptance.
        result, _ = self.policy.run(lambda _timeout: self._send_once(event), self.timeout, until)
        if result is None:
            return SendResult(event_id, SendOutcome.RETRYABLE, None, 0.0, "deadline reached")
        return result

    def _send_once(self, event: dict[str, Any]) -> SendResult:
        event_id = str(event["event_id"])
        started = time.monotonic()
        # The SDK fills in and rewrites the event it is given; it gets a copy, so what is parked on a
        # failure is exactly the event that was built and scrubbed.
        copy = orjson.loads(orjson.dumps(event))
        accepted_id = self.client.capture_event(cast("Event", copy), scope=None)
        if accepted_id is None:
            return SendResult(event_id, SendOutcome.REJECTED, None, None, "dropped by the SDK before sending")
        result: SendResult | None = self.transport.results.pop(event_id, None)
        if result is None:
            elapsed = time.monotonic() - started
            return SendResult(event_id, SendOutcome.NETWORK_ERROR, None, None, f"no outcome after {elapsed:.1f}s")
        return result

    def close(self) -> None:
        """Release the connection pool."""
        self._pool.clear()
