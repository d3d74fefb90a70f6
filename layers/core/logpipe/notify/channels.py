"""Where each channel's webhook URL comes from: one Secrets Manager secret per channel in AWS, a variable locally.

A webhook URL is a credential (anyone holding it can post to the channel), so it lives in Secrets
Manager (read through Powertools Parameters' cache) and only the secret's name is ever logged. The
secret holds the URL itself, or a JSON object with a ``url`` key. A secret that exists but has no
value yet (the stack creates them empty) means the channel is not configured: it is skipped, not an
error. Locally ``LOGPIPE_SLACK_WEBHOOK_URL`` / ``LOGPIPE_TEAMS_WEBHOOK_URL`` hold the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

SECRET_MAX_AGE_SECONDS = 300
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class WebhookConfigError(RuntimeError):
    """The channel's URL could not be read (``retryable``: try again later) or is not a usable URL."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        """Say whether a later attempt may succeed."""
        super().__init__(message)
        self.retryable = retryable


def checked_url(value: str, source: str) -> str:
    """The URL if it is https (or http to this machine, for local receivers); never echoes the value."""
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or not parts.hostname:
        msg = f"{source}: not a URL"
        raise WebhookConfigError(msg, retryable=False)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return url
    msg = f"{source}: the webhook URL must use https"
    raise WebhookConfigError(msg, retryable=False)


class SecretsReader:
    """One Powertools SecretsProvider (its own client and cache) for the notifier's secrets, made on first use."""

    def __init__(self, max_age_seconds: int = SECRET_MAX_AGE_SECONDS) -> None:
        """Nothing is created until a secret is read (no AWS client at import or build time)."""
        self.max_age_seconds = max_age_seconds
        self._provider: SecretsProvider | None = None

    def get(self, secret_id: str) -> object:
        """The secret's value, cached for ``max_age_seconds``; Powertools' GetParameterError when unreadable."""
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider

            self._provider = SecretsProvider()
        return self._provider.get(secret_id, max_age=self.max_age_seconds)


@dataclass(frozen=True, slots=True)
class WebhookUrlSource:
    """Loads a channel's URL each time (a secret is cached for a few minutes); None means not configured."""

    load: Callable[[], str | None]
    source: str

    @classmethod
    def fixed(cls, url: str | None, variable: str) -> WebhookUrlSource:
        """From an environment variable (local runs); absent or empty means not configured, checked at each load."""

        def load() -> str | None:
            return checked_url(url, variable) if url and url.strip() else None

        return cls(load=load, source=variable)

    @classmethod
    def from_secret(cls, secret_id: str, secrets: SecretsReader) -> WebhookUrlSource:
        """From a Secrets Manager secret holding the URL (or ``{"url": ...}``)."""
        source = f"secret {secret_id}"

        def load() -> str | None:
            from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

            try:
                value = secrets.get(secret_id)
            except GetParameterError as error:
                if _has_no_value(error):
                    return None
                # Access denied, throttling, network: the cause's code or type only, never its text.
                cause = _cause(error)
                reason = _error_code(error) or (type(cause).__name__ if cause else "GetParameterError")
                msg = f"{source}: cannot be read ({reason})"
                raise WebhookConfigError(msg, retryable=True) from None
            text = str(value or "")
            return _url_from_secret(text, source)

        return cls(load=load, source=source)


def _cause(error: BaseException) -> BaseException | None:
    # Powertools raises GetParameterError inside its except block: the SDK error is the implicit context.
    return error.__cause__ or error.__context__


def _error_code(error: BaseException) -> str | None:
    cause = _cause(error)
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def _has_no_value(error: BaseException) -> bool:
    # A secret created without a value has no AWSCURRENT version: GetSecretValue says ResourceNotFound.
    return _error_code(error) == "ResourceNotFoundException"


def _url_from_secret(text: str, source: str) -> str | None:
    stripped = text.strip()
    if not stripped:
        return None
    if stripped.startswith("{"):
        try:
            document = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            msg = f"{source}: looks like JSON but is not valid JSON"
            raise WebhookConfigError(msg, retryable=False) from None
        url = document.get("url") if isinstance(document, dict) else None
        if not isinstance(url, str) or not url.strip():
            msg = f"{source}: a JSON secret needs a non-empty url"
            raise WebhookConfigError(msg, retryable=False)
        return checked_url(url, source)
    return checked_url(stripped, source)
