from __future__ import annotations

import pytest

from logpipe.sentry.routing import DsnRouter, DsnRoutingError
from logpipe.sentry.transport import SendOutcome, SentryClient, classify_response

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("status", "headers", "outcome", "retry_after"),
    [
        (200, {}, SendOutcome.ACCEPTED, None),
        (202, {}, SendOutcome.ACCEPTED, None),
        (429, {"Retry-After": "17"}, SendOutcome.RATE_LIMITED, 17.0),
        (
            429,
            {"X-Sentry-Rate-Limits": "60:error;default:project, 5:transaction:project"},
            SendOutcome.RATE_LIMITED,
            60.0,
        ),
        (429, {}, SendOutcome.RATE_LIMITED, 60.0),
        (500, {}, SendOutcome.RETRYABLE, None),
        (503, {"Retry-After": "3"}, SendOutcome.RETRYABLE, 3.0),
        (408, {}, SendOutcome.RETRYABLE, None),
        (400, {}, SendOutcome.REJECTED, None),
        (401, {}, SendOutcome.REJECTED, None),
        (413, {}, SendOutcome.REJECTED, None),
    ],
)
def test_every_http_status_has_a_known_outcome(
    status: int, headers: dict[str, str], outcome: SendOutcome, retry_after: float | None
) -> None:
    result = classify_response("e" * 32, status, headers, b'{"detail":"nope"}')
    assert result.outcome is outcome
    assert result.retry_after == retry_after
    assert result.status == status


def test_rejection_reason_carries_the_server_detail() -> None:
    assert "invalid event" in classify_response("e", 400, {}, b"invalid event payload").reason


def test_should_retry() -> None:
    assert SendOutcome.RATE_LIMITED.should_retry
    assert SendOutcome.NETWORK_ERROR.should_retry
    assert not SendOutcome.REJECTED.should_retry
    assert not SendOutcome.ACCEPTED.should_retry


def test_unreachable_server_is_a_network_error_not_silence() -> None:
    client = SentryClient("http://public@127.0.0.1:9/1", timeout=1.0)
    result = client.send({"event_id": "a" * 32, "message": "hello", "level": "error"})
    assert result.outcome is SendOutcome.NETWORK_ERROR
    assert result.event_id == "a" * 32


def test_single_dsn_router() -> None:
    router = DsnRouter.single("https://key@sentry.example.com/3")
    assert router.dsn_for("anything") == "https://key@sentry.example.com/3"


def test_router_prefers_the_service_dsn_then_default() -> None:
    dsns = {"default": "https://a@s.example.com/1", "keycloak": "https://b@s.example.com/2"}
    router = DsnRouter(load=lambda: dsns, source="test")
    assert router.dsn_for("keycloak") == "https://b@s.example.com/2"
    assert router.dsn_for("pacs-backend") == "https://a@s.example.com/1"
    assert DsnRouter(load=lambda: {"api": "https://c@s.example.com/3"}, source="t").dsn_for("other") is None


def test_invalid_dsn_is_a_clear_error_without_the_value() -> None:
    with pytest.raises(
        DsnRoutingError, match="LOGPIPE_SENTRY_DSN: malformed: the value for 'default' is not a Sentry DSN"
    ) as caught:
        DsnRouter.single("not-a-dsn-secret-value")
    assert "not-a-dsn-secret-value" not in str(caught.value)


def test_the_sdk_never_edits_the_event_it_is_given() -> None:
    # The SDK's EventScrubber used to replace values under keys like "password" with AnnotatedValue
    # objects in the caller's dict; parking that event after a failed send then raised TypeError.
    import copy

    from logpipe.sentry.transport import SentryClient

    client = SentryClient("http://key@127.0.0.1:9/1", timeout=0.5)  # nothing listens on port 9
    assert client.client.options["event_scrubber"] is None
    event = {
        "event_id": "b" * 32,
        "timestamp": "2026-11-22T01:00:03.613Z",
        "message": {"formatted": "upload failed"},
        "breadcrumbs": {"values": [{"message": "login", "data": {"password": "[REDACTED:secret]", "session": "s"}}]},
        "exception": {"values": [{"type": "E", "value": "v", "stacktrace": {"frames": [{"filename": "a.py"}]}}]},
    }
    before = copy.deepcopy(event)
    result = client.send(event)
    assert result.outcome.value == "network_error"
    assert event == before
