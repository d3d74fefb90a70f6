"""One POST of a JSON message to a chat webhook, its outcome classified; the URL never appears anywhere.

2xx is accepted (Slack answers 200 ``ok``, a Teams Workflows trigger 202). 429 is rate limited, 408
and 5xx are retryable (``logpipe.delivery``'s status policy, shared with Sentry and Langfuse), and
so are timeouts and connection errors: the caller fails the invocation and Lambda's asynchronous
retry sends it again. Any other 4xx is rejected (Slack's
``invalid_payload``, ``channel_not_found``, ``channel_is_archived``, ``action_prohibited``; a
deleted workflow): retrying cannot help, a person must look. Error reasons carry the status and the
start of the response body, or the exception's type name, never the URL (webhook URLs are
credentials) and never the exception's text (urllib3 puts the URL in it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from logpipe.delivery import HttpOutcome, NetworkFailure, classify_status, post_once

if TYPE_CHECKING:
    import urllib3

_USER_AGENT = "logpipe-notifier/0.1"


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """How one POST ended."""

    outcome: HttpOutcome
    status: int | None
    reason: str


def classify_webhook_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> WebhookResult:
    """Turn a webhook's HTTP answer into a ``WebhookResult``."""
    verdict = classify_status(status, headers or {}, body, detail_chars=200)
    return WebhookResult(verdict.outcome, status, verdict.reason)


class WebhookPoster:
    """POSTs JSON messages over one reused connection pool, with a bounded timeout."""

    def __init__(self, *, timeout_seconds: float = 10.0, pool: urllib3.PoolManager | None = None) -> None:
        """Remember the timeout; the pool is created on first use."""
        self.timeout_seconds = timeout_seconds
        self._pool = pool

    def _http(self) -> urllib3.PoolManager:
        if self._pool is None:
            import urllib3

            self._pool = urllib3.PoolManager(num_pools=4, maxsize=2)
        return self._pool

    def post(self, url: str, message: Mapping[str, Any], timeout_seconds: float | None = None) -> WebhookResult:
        """Send ``message`` once; never raises for HTTP or network trouble."""
        timeout = max(
            0.5, self.timeout_seconds if timeout_seconds is None else min(timeout_seconds, self.timeout_seconds)
        )
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": _USER_AGENT}
        # No redirects: a webhook URL is a credential, and it must not lead the message anywhere else.
        answer = post_once(self._http(), url, orjson.dumps(message), headers, timeout, redirect=False)
        if isinstance(answer, NetworkFailure):
            return WebhookResult(HttpOutcome.NETWORK_ERROR, None, answer.reason)
        return classify_webhook_response(answer.status, answer.body, answer.headers)

    def close(self) -> None:
        """Release the connection pool."""
        if self._pool is not None:
            self._pool.clear()
