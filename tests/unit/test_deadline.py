"""Bounded calls (issue 12, item 6): timeouts, a retry budget from the time left, and never past the deadline."""

from __future__ import annotations

import threading
import time

import pytest

from logpipe.deadline import (
    MAX_ATTEMPTS,
    RETURN_MARGIN_SECONDS,
    WRAP_UP_SECONDS,
    Deadline,
    DeadlineExceededError,
    aws_config,
    call_within,
    is_transient,
    run_until,
)

pytestmark = pytest.mark.unit


class ThrottledError(Exception):
    response = {"Error": {"Code": "ThrottlingException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}  # noqa: RUF012


class DeniedError(Exception):
    response = {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}  # noqa: RUF012


def test_an_invocation_deadline_leaves_the_return_margin() -> None:
    now = [100.0]
    deadline = Deadline(clock=lambda: now[0])
    assert deadline.remaining() == pytest.approx(60.0)  # outside an invocation: a call's own budget
    end = deadline.start(10.0)
    assert end == pytest.approx(100.0 + 10.0 - RETURN_MARGIN_SECONDS - WRAP_UP_SECONDS)
    now[0] = end + 1
    assert deadline.remaining() == 0.0
    deadline.clear()
    assert deadline.remaining() == pytest.approx(60.0)


def test_transient_failures_are_retried_within_the_attempt_budget() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ThrottledError
        return "ok"

    assert call_within(flaky) == "ok"
    assert len(calls) == 3

    def always() -> str:
        calls.append(1)
        raise ThrottledError

    calls.clear()
    with pytest.raises(ThrottledError):
        call_within(always)
    assert len(calls) == MAX_ATTEMPTS


def test_other_errors_are_raised_at_once() -> None:
    calls: list[int] = []

    def denied() -> None:
        calls.append(1)
        raise DeniedError

    with pytest.raises(DeniedError):
        call_within(denied)
    assert calls == [1]
    assert is_transient(ThrottledError())
    assert not is_transient(DeniedError())
    assert is_transient(ConnectionRefusedError())


def test_a_call_that_never_answers_is_given_up_at_the_deadline() -> None:
    deadline = Deadline()
    deadline.start(0.6 + RETURN_MARGIN_SECONDS + WRAP_UP_SECONDS)
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        call_within(lambda: release.wait(30), deadline=deadline)
    assert time.monotonic() - started < 1.5
    release.set()
    with pytest.raises(DeadlineExceededError):
        run_until(lambda: time.sleep(5), time.monotonic() + 0.2)


def test_no_attempt_starts_without_time_for_it() -> None:
    deadline = Deadline()
    deadline.start(0.0)
    with pytest.raises(DeadlineExceededError):
        call_within(lambda: "never", deadline=deadline)


def test_aws_clients_get_bounded_timeouts_and_no_retries_of_their_own() -> None:
    config = vars(aws_config())  # botocore's Config sets its options as instance attributes
    assert config["connect_timeout"] == 2.0
    assert config["read_timeout"] == 5.0
    assert config["retries"] == {"total_max_attempts": 1, "mode": "standard"}
