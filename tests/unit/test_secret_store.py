"""Reading a sink's secret: not configured (missing, empty, malformed, denied) vs unavailable, and the failure cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from botocore.exceptions import ClientError, EndpointConnectionError

from logpipe.boundary import Boundary
from logpipe.classify import RecordKind
from logpipe.parking import MemoryParkingLot
from logpipe.records import LogRecord
from logpipe.secret_store import (
    JsonSecret,
    SecretNotConfiguredError,
    SecretState,
    SecretUnavailableError,
    classify_read_failure,
)
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import SentrySink
from logpipe.sentry.transport import SendResult
from logpipe.sinks import DeliveryOutcome, SendContext
from payloads import parsed_records

pytestmark = pytest.mark.unit

SECRET = "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:pacs-logpipe/sentry-AbCdEf"


def _client_error(code: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "RequestId": "r",
                "HostId": "h",
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        "GetSecretValue",
    )


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (
            _client_error(
                "ResourceNotFoundException",
                "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
            ),
            SecretState.EMPTY,
        ),
        (
            _client_error("ResourceNotFoundException", "Secrets Manager can't find the specified secret."),
            SecretState.MISSING,
        ),
        (_client_error("InvalidRequestException", "marked for deletion"), SecretState.MISSING),
        (_client_error("AccessDeniedException", "not authorized", 400), SecretState.ACCESS_DENIED),
        (_client_error("DecryptionFailure", "cannot decrypt with the KMS key"), SecretState.ACCESS_DENIED),
        (_client_error("403", "<ErrorResponse>AccessDenied</ErrorResponse>", 403), SecretState.ACCESS_DENIED),
    ],
)
def test_read_failures_that_need_a_person_are_not_configured(error: ClientError, state: SecretState) -> None:
    failure = classify_read_failure(f"secret {SECRET}", error)
    assert isinstance(failure, SecretNotConfiguredError)
    assert failure.state is state
    assert str(failure).startswith(f"secret {SECRET}: {state.value}: ")


@pytest.mark.parametrize(
    "error",
    [
        _client_error("ThrottlingException", "Rate exceeded", 400),
        _client_error("InternalServiceError", "", 500),
        EndpointConnectionError(endpoint_url="https://secretsmanager.ap-northeast-2.amazonaws.com"),
        None,
    ],
)
def test_transient_read_failures_are_unavailable(error: BaseException | None) -> None:
    assert isinstance(classify_read_failure("secret s", error), SecretUnavailableError)


class CountingProvider:
    """A Powertools SecretsProvider stand-in: raises like Powertools does (the botocore error on __context__)."""

    def __init__(self, outcomes: Sequence[object]) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def get(self, name: str, max_age: int, transform: str) -> object:
        assert (name, transform) == (SECRET, "json")
        self.calls += 1
        outcome = self.outcomes[min(self.calls, len(self.outcomes)) - 1]
        if isinstance(outcome, ClientError):
            try:
                raise outcome
            except ClientError as error:
                raise GetParameterError(str(error))  # noqa: B904 - exactly how Powertools wraps it
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_is_remembered_so_a_batch_costs_one_call_then_the_filled_secret_is_read() -> None:
    empty = _client_error("ResourceNotFoundException", "can't find the specified secret value for staging label")
    provider = CountingProvider([empty, {"default": "https://k@sentry.example.com/1"}])
    clock = FakeClock()
    secret = JsonSecret(SECRET, provider=provider, clock=clock, failure_ttl=60)
    for _ in range(500):
        with pytest.raises(SecretNotConfiguredError) as caught:
            secret.value()
        assert caught.value.state is SecretState.EMPTY
    assert provider.calls == 1
    clock.now += 61  # someone put the value meanwhile
    assert secret.value() == {"default": "https://k@sentry.example.com/1"}
    assert provider.calls == 2


def test_not_json_is_malformed_and_never_echoes_the_value() -> None:
    provider = CountingProvider([TransformParameterError("Expecting value: line 1 column 1 (char 0)")])
    with pytest.raises(SecretNotConfiguredError) as caught:
        JsonSecret(SECRET, provider=provider).value()
    assert caught.value.state is SecretState.MALFORMED
    assert caught.value.source == f"secret {SECRET}"


def _records() -> list[LogRecord]:
    return parsed_records(
        "/aws/ecs/pacs-backend/errors",
        ['{"level": "ERROR", "message": "boom one"}', '{"level": "ERROR", "message": "boom two"}'],
        start_ms=1_795_300_000_000,
    )


class NeverCalledSender:
    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        raise AssertionError("nothing may be sent without a DSN")


def _context(parking: MemoryParkingLot) -> SendContext:
    return SendContext(batch_records=[], boundary=Boundary.disabled(), parking=parking, deadline=1e18)


def test_sentry_sink_counts_not_configured_and_parks_nothing() -> None:
    def load() -> dict[str, str]:
        raise SecretNotConfiguredError(f"secret {SECRET}", SecretState.EMPTY, "put one")

    parking = MemoryParkingLot()
    sink = SentrySink(DsnRouter(load=load, source="t"), sender_factory=lambda dsn: NeverCalledSender())
    deliveries = sink.send(_records(), _context(parking))
    assert [d.outcome for d in deliveries] == [DeliveryOutcome.NOT_CONFIGURED] * 2
    assert parking.items == []
    assert sink.kind is RecordKind.ERROR


def test_sentry_sink_parks_for_retry_when_secrets_manager_is_unavailable() -> None:
    def load() -> dict[str, str]:
        raise SecretUnavailableError(f"secret {SECRET}: Secrets Manager unavailable: ThrottlingException")

    parking = MemoryParkingLot()
    sink = SentrySink(DsnRouter(load=load, source="t"), sender_factory=lambda dsn: NeverCalledSender())
    deliveries = sink.send(_records(), _context(parking))
    assert [d.outcome for d in deliveries] == [DeliveryOutcome.PARKED] * 2
    assert [item.reason.value for item in parking.items] == ["sink_retry"] * 2
    assert all("ThrottlingException" in item.detail for item in parking.items)
    assert all(item.not_before is not None for item in parking.items)
