"""The one delivery policy every HTTP destination shares: status -> outcome, the server's wait, inline retries."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from logpipe.delivery import (
    DEFAULT_RETRY_SECONDS,
    HttpOutcome,
    RetryPolicy,
    classify_status,
    header,
    request_may_have_arrived,
    retry_after_seconds,
)

pytestmark = pytest.mark.unit

NOW = 1_795_309_200.0


@pytest.mark.parametrize(
    ("status", "headers", "outcome", "retry_after"),
    [
        (200, {}, HttpOutcome.ACCEPTED, None),
        (202, {"Retry-After": "9"}, HttpOutcome.ACCEPTED, None),
        (429, {"Retry-After": "17"}, HttpOutcome.RATE_LIMITED, 17.0),
        (429, {"retry-after": "0"}, HttpOutcome.RATE_LIMITED, 0.0),
        (429, {}, HttpOutcome.RATE_LIMITED, DEFAULT_RETRY_SECONDS),
        (500, {}, HttpOutcome.RETRYABLE, None),
        (503, {"Retry-After": "3"}, HttpOutcome.RETRYABLE, 3.0),
        (408, {}, HttpOutcome.RETRYABLE, None),
        (400, {"Retry-After": "3"}, HttpOutcome.REJECTED, None),
        (401, {}, HttpOutcome.REJECTED, None),
        (404, {}, HttpOutcome.REJECTED, None),
        (413, {}, HttpOutcome.REJECTED, None),
    ],
)
def test_every_status_has_one_outcome(
    status: int, headers: dict[str, str], outcome: HttpOutcome, retry_after: float | None
) -> None:
    verdict = classify_status(status, headers, b"")
    assert (verdict.outcome, verdict.retry_after) == (outcome, retry_after)


def test_reasons_carry_the_status_and_one_line_of_the_body() -> None:
    assert classify_status(400, {}, b"invalid event\npayload").reason == "HTTP 400: invalid event payload"
    assert classify_status(502, {}, b"").reason == "HTTP 502"
    assert classify_status(429, {"Retry-After": "5"}, b"slow down").reason == "HTTP 429: rate limited for 5s"
    assert len(classify_status(500, {}, b"x" * 1000, detail_chars=200).reason) == len("HTTP 500: ") + 200


def test_sentry_rate_limits_win_for_our_categories_only() -> None:
    both = {"X-Sentry-Rate-Limits": "60:error;default:project, 5:transaction:project", "Retry-After": "7"}
    assert retry_after_seconds(both) == 60.0
    # A limit on other categories says nothing about error events: Retry-After decides, else nothing.
    assert retry_after_seconds({"X-Sentry-Rate-Limits": "300:transaction:org", "Retry-After": "7"}) == 7.0
    assert retry_after_seconds({"X-Sentry-Rate-Limits": "300:transaction:org"}) is None
    assert retry_after_seconds({"X-Sentry-Rate-Limits": "30::org"}) == 30.0  # no categories: all of them
    assert retry_after_seconds({"x-sentry-rate-limits": "abc:error:org, 12:default:org"}) == 12.0


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=90), usegmt=True)
    earlier = format_datetime(datetime.fromtimestamp(NOW, UTC) - timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds({"Retry-After": later}, now=lambda: NOW) == 90.0
    assert retry_after_seconds({"Retry-After": earlier}, now=lambda: NOW) == 0.0
    assert retry_after_seconds({"Retry-After": "soon, please"}) == DEFAULT_RETRY_SECONDS
    assert retry_after_seconds({"Retry-After": "-5"}) == 0.0
    assert retry_after_seconds({}) is None


def test_header_lookup_ignores_case() -> None:
    assert header({"content-type": "application/json"}, "Content-Type") == "application/json"
    assert header({"Content-Type": "x"}, "content-type") == "x"
    assert header({}, "Retry-After") is None


@dataclass(frozen=True)
class Answer:
    outcome: HttpOutcome
    uncertain: bool = False


class Server:
    """Answers with the given outcomes in order, and records the timeouts it was called with."""

    def __init__(self, *outcomes: HttpOutcome) -> None:
        self.outcomes = list(outcomes)
        self.timeouts: list[float] = []

    def __call__(self, timeout: float) -> Answer:
        self.timeouts.append(timeout)
        return Answer(self.outcomes.pop(0))


def test_transient_failures_are_retried_with_backoff_then_given_up() -> None:
    pauses: list[float] = []
    server = Server(HttpOutcome.RETRYABLE, HttpOutcome.NETWORK_ERROR, HttpOutcome.RETRYABLE, HttpOutcome.ACCEPTED)
    result, attempts = RetryPolicy(retries=2, backoff=0.5).run(server, 5.0, time.monotonic() + 60, pauses.append)
    assert (result, attempts) == (Answer(HttpOutcome.RETRYABLE), 3)  # 1 + 2 retries, the 4th answer never asked
    assert pauses == [0.5, 1.0]


@pytest.mark.parametrize("final", [HttpOutcome.ACCEPTED, HttpOutcome.REJECTED, HttpOutcome.RATE_LIMITED])
def test_final_answers_and_rate_limits_are_not_retried_inline(final: HttpOutcome) -> None:
    server = Server(final, HttpOutcome.ACCEPTED)
    result, attempts = RetryPolicy().run(server, 5.0, time.monotonic() + 60, lambda _: None)
    assert (result, attempts) == (Answer(final), 1)


def test_the_deadline_bounds_attempts_timeouts_and_pauses() -> None:
    server = Server(HttpOutcome.RETRYABLE, HttpOutcome.ACCEPTED)
    deadline = time.monotonic() + 0.2
    result, attempts = RetryPolicy(backoff=1.0).run(server, 10.0, deadline, lambda _: pytest.fail("slept"))
    assert (result, attempts) == (Answer(HttpOutcome.RETRYABLE), 1)  # a 1 s pause would pass the deadline
    assert server.timeouts[0] <= 0.2  # each attempt gets at most the time left
    assert RetryPolicy().run(Server(), 10.0, time.monotonic() - 1, lambda _: None) == (None, 0)


class UncertainServer(Server):
    """A server whose first answer leaves open whether the request was stored (a 504, a read timeout)."""

    def __call__(self, timeout: float) -> Answer:
        self.timeouts.append(timeout)
        return Answer(self.outcomes.pop(0), uncertain=len(self.timeouts) == 1)


def test_an_uncertain_attempt_is_not_retried_inline() -> None:
    # The request may be stored already; the caller parks it and the replay looks before resending.
    server = UncertainServer(HttpOutcome.RETRYABLE, HttpOutcome.ACCEPTED)
    result, attempts = RetryPolicy(retries=2).run(server, 5.0, time.monotonic() + 60, lambda _: None)
    assert (result, attempts) == (Answer(HttpOutcome.RETRYABLE, uncertain=True), 1)
    assert classify_status(504, {}, b"").uncertain  # a gateway gave up waiting: the origin may have it
    assert not classify_status(503, {}, b"").uncertain


def test_only_failures_after_the_request_was_written_may_have_arrived() -> None:
    from urllib3.exceptions import ConnectTimeoutError, ProtocolError, SSLError

    assert not request_may_have_arrived(ConnectTimeoutError("connect timed out"))
    assert not request_may_have_arrived(SSLError("handshake failed"))
    assert request_may_have_arrived(ProtocolError("Connection aborted."))  # dropped mid-response
    assert request_may_have_arrived(TimeoutError("read timed out"))
