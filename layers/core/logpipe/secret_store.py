"""A sink's JSON secret in Secrets Manager: read through Powertools Parameters, every way it can be unusable told apart.

The stack creates the Sentry and Langfuse secrets empty, so on day one a secret is routinely
*not configured*: missing (no such secret), empty (no value yet), malformed (not JSON, or not the
shape the sink expects) or access-denied (IAM or the secret's KMS key). That is a state to count and
alarm on, not a crash: ``SecretNotConfiguredError``. A throttled or unreachable Secrets Manager is
transient: ``SecretUnavailableError``, and the caller parks what it could not send.

Values are cached for ``max_age`` seconds (a rotated secret is picked up without a redeploy); a
failure is remembered for ``failure_ttl`` seconds, so a batch of a thousand error records costs one
``GetSecretValue`` call, not a thousand. Only the secret's *name* ever appears in an error or a log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from logpipe.deadline import DeadlineExceededError, aws_config, call_within

DEFAULT_MAX_AGE_SECONDS = 300
DEFAULT_FAILURE_TTL_SECONDS = 60.0


class SecretState(StrEnum):
    """Why a secret cannot configure its sink."""

    MISSING = "missing"
    EMPTY = "empty"
    MALFORMED = "malformed"
    ACCESS_DENIED = "access_denied"


class SecretNotConfiguredError(ValueError):
    """The sink has no usable configuration: its records are counted as not configured, not sent."""

    def __init__(self, source: str, state: SecretState, detail: str) -> None:
        """``source`` names the secret (never its value); ``detail`` says what to fix."""
        super().__init__(f"{source}: {state.value}: {detail}")
        self.source = source
        self.state = state
        self.detail = detail


class SecretUnavailableError(RuntimeError):
    """Secrets Manager could not be asked right now (throttling, network): try again later."""


# Secrets Manager error codes that mean "this secret cannot configure anything until a person acts".
_ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "DecryptionFailure", "KMSAccessDenied"})
_HTTP_FORBIDDEN = 403
_EMPTY_MARKER = "secret value"  # "can't find the specified secret value for staging label: AWSCURRENT"


def _error_code(error: BaseException | None) -> tuple[str, str, int]:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return "", "", 0
    details = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(details.get("Code", "")), str(details.get("Message", "")), int(status or 0)


def classify_read_failure(
    source: str, error: BaseException | None
) -> SecretNotConfiguredError | SecretUnavailableError:
    """Map the error behind a failed ``GetSecretValue`` to not-configured (with its state) or unavailable."""
    code, message, status = _error_code(error)
    if code == "ResourceNotFoundException":
        if _EMPTY_MARKER in message:
            return SecretNotConfiguredError(source, SecretState.EMPTY, "the secret has no value yet: put one")
        return SecretNotConfiguredError(source, SecretState.MISSING, "no such secret: check the secret's ARN")
    if code == "InvalidRequestException":
        # Scheduled for deletion (or otherwise not readable as asked): a person must restore or replace it.
        return SecretNotConfiguredError(source, SecretState.MISSING, f"not readable: {code}")
    if code in _ACCESS_DENIED_CODES or status == _HTTP_FORBIDDEN:
        return SecretNotConfiguredError(
            source,
            SecretState.ACCESS_DENIED,
            f"access denied ({code}): grant the function secretsmanager:GetSecretValue (and kms:Decrypt on its key)",
        )
    reason = code or (type(error).__name__ if error is not None else "unknown error")
    return SecretUnavailableError(f"{source}: Secrets Manager unavailable: {reason}")


class JsonSecret:
    """One JSON secret, read on demand through a private Powertools ``SecretsProvider`` (created on first use)."""

    def __init__(
        self,
        secret_id: str,
        *,
        max_age: int = DEFAULT_MAX_AGE_SECONDS,
        failure_ttl: float = DEFAULT_FAILURE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        provider: Any = None,
    ) -> None:
        """Remember the secret's id; nothing is read until ``value`` (``provider``: a ``SecretsProvider``)."""
        self.secret_id = secret_id
        self.source = f"secret {secret_id}"
        self.max_age = max_age
        self.failure_ttl = failure_ttl
        self._clock = clock
        self._provider: Any = provider
        self._failure: SecretNotConfiguredError | SecretUnavailableError | None = None
        self._failure_until = 0.0

    def value(self) -> object:
        """The parsed JSON value; raise ``SecretNotConfiguredError`` or ``SecretUnavailableError``."""
        now = self._clock()
        if self._failure is not None and now < self._failure_until:
            raise _fresh(self._failure)
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

        failure: SecretNotConfiguredError | SecretUnavailableError
        secrets = self._secrets()
        try:
            # Bounded by the invocation's deadline: a Secrets Manager that never answers is "unavailable".
            value: object = call_within(
                lambda: secrets.get(self.secret_id, max_age=self.max_age, transform="json"),
                transient=lambda _error: False,
            )
        except DeadlineExceededError:
            failure = SecretUnavailableError(f"{self.source}: Secrets Manager did not answer in time")
        except TransformParameterError:
            failure = SecretNotConfiguredError(self.source, SecretState.MALFORMED, "not valid JSON")
        except GetParameterError as error:
            # Powertools wraps the botocore error (raised inside its except block): the code is on __context__.
            failure = classify_read_failure(self.source, error.__context__)
        else:
            self._failure = None
            return value
        self._failure, self._failure_until = failure, now + self.failure_ttl
        raise _fresh(failure)

    def _secrets(self) -> Any:
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider

            self._provider = SecretsProvider(boto_config=aws_config())
        return self._provider


def _fresh(failure: SecretNotConfiguredError | SecretUnavailableError) -> Exception:
    """A new exception equal to a remembered one (re-raising one instance would keep growing its traceback)."""
    if isinstance(failure, SecretNotConfiguredError):
        return SecretNotConfiguredError(failure.source, failure.state, failure.detail)
    return SecretUnavailableError(str(failure))
