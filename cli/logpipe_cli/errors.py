"""Every CLI failure as one line on stderr: what went wrong, and what to do about it.

``describe`` turns the errors a command can meet (no credentials, an endpoint that is not a URL or
does not answer, a bucket that does not exist, a setting or template problem) into that line; the
command exits non-zero. Anything else is a bug: one line too, and ``LOGPIPE_DEBUG=1`` shows the
traceback.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"
_CONNECT_TIMEOUT_SECONDS = 3.0
_EMBEDDED_HINT = "unset AWS_ENDPOINT_URL to use embedded AWS"


class CliError(Exception):
    """A failure whose message already says the cause and the fix."""


@dataclass(frozen=True, slots=True)
class AwsWorld:
    """Which AWS a command talks to: embedded (moto on 127.0.0.1), an endpoint (AWS_ENDPOINT_URL), or the account."""

    embedded: bool
    endpoint: str | None

    @classmethod
    def for_command(cls, *, account: bool) -> AwsWorld:
        """What a command will use: the account with ``--aws``, else AWS_ENDPOINT_URL if set, else embedded."""
        endpoint = os.environ.get(ENDPOINT_VARIABLE) or None
        return cls(embedded=not account and endpoint is None, endpoint=endpoint)

    def fallback(self) -> str:
        """How to get out of this world: back to embedded AWS."""
        if self.endpoint:
            return _EMBEDDED_HINT
        if not self.embedded:
            return "drop --aws to use embedded AWS"
        return "embedded AWS needs no credentials: is AWS_ENDPOINT_URL set elsewhere?"

    def where(self) -> str:
        """``in embedded AWS``, ``at http://…`` or ``in your AWS account``, for messages."""
        if self.embedded:
            return "in embedded AWS (pass --aws for your AWS account)"
        if self.endpoint:
            return f"at {self.endpoint}"
        return "in your AWS account"


def check_endpoint_url() -> None:
    """Fail fast, in one line, when AWS_ENDPOINT_URL is set but is not a URL or nothing answers there."""
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    if not endpoint:
        return
    parts = urlsplit(endpoint)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in {"http", "https"} or not parts.hostname or port == -1:
        msg = f"{ENDPOINT_VARIABLE} is not a URL ({endpoint!r}): set it to http://host:port, or {_EMBEDDED_HINT}"
        raise CliError(msg)
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=_CONNECT_TIMEOUT_SECONDS):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        msg = f"nothing answers at {ENDPOINT_VARIABLE}={endpoint} ({reason}): start it, or {_EMBEDDED_HINT}"
        raise CliError(msg) from error


def _client_error(error: Exception, world: AwsWorld) -> str:
    response = getattr(error, "response", {}) or {}
    details = response.get("Error", {})
    code = str(details.get("Code", "")) or "error"
    message = str(details.get("Message", "")).strip()
    operation = getattr(error, "operation_name", "an AWS call")
    if code == "NoSuchBucket":
        bucket = details.get("BucketName") or "the bucket"
        return f"bucket {bucket} does not exist {world.where()}: check the s3:// URL and the region"
    if code in {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}:
        return "your AWS credentials have expired: refresh them (e.g. aws sso login) and run again"
    if code in {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"}:
        return f"AWS does not accept these credentials ({code}): check AWS_PROFILE or the AWS_* keys"
    if code in {"AccessDenied", "AccessDeniedException", "403"}:
        return f"access denied for {operation} {world.where()}: use credentials that are allowed to call it"
    if code in {"ResourceNotFoundException", "ParameterNotFound", "QueueDoesNotExist", "NotFound", "404"}:
        return f"{operation} found nothing {world.where()} ({message or code}): check the names and the region"
    return f"AWS refused {operation} {world.where()}: {code}: {message or 'no message'}"


def describe(error: BaseException, world: AwsWorld) -> str | None:  # noqa: PLR0911 - one answer per kind of failure
    """The one-line cause and fix for a known failure; None for anything else (a bug)."""
    from botocore import exceptions as boto

    from logpipe.settings import SettingsError
    from logpipe_cli.template_env import TemplateError

    if isinstance(error, CliError | SettingsError | TemplateError):
        return str(error)
    if isinstance(error, boto.NoCredentialsError | boto.PartialCredentialsError):
        return f"no AWS credentials: set AWS_PROFILE (or the AWS_* keys), or {world.fallback()}"
    if isinstance(error, boto.ProfileNotFound):
        return f"{error}: check AWS_PROFILE against ~/.aws/config"
    if isinstance(error, boto.NoRegionError):
        return "no AWS region: set AWS_REGION (for example ap-northeast-2)"
    if isinstance(error, boto.EndpointConnectionError | boto.ConnectTimeoutError | boto.ReadTimeoutError):
        fix = world.fallback() if world.endpoint else "check the network and AWS_REGION"
        return f"cannot reach AWS {world.where()} ({type(error).__name__}): {fix}"
    if isinstance(error, boto.ClientError):
        return _client_error(error, world)
    if isinstance(error, boto.BotoCoreError):
        return f"AWS SDK error {world.where()}: {error}"
    if isinstance(error, ValueError) and "endpoint" in str(error).lower():
        return f"{ENDPOINT_VARIABLE} is not usable ({error}): set it to http://host:port, or {_EMBEDDED_HINT}"
    return None
