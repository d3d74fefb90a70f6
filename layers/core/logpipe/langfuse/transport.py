"""Confirmed delivery to Langfuse's OTLP endpoint: one POST per chunk, its HTTP outcome classified.

2xx is accepted, unless its body is an OTLP ``ExportTraceServiceResponse`` whose ``partial_success``
says spans were rejected (protobuf, or JSON when the response says so; Langfuse answers JSON); 429 is
rate-limited (with the server's Retry-After); 408, 5xx and network errors are retried a few times
inline, within the deadline, then reported retryable; any other 4xx is rejected (the status policy
and the retry schedule are ``logpipe.delivery``'s, shared with Sentry and the chat webhooks). An
attempt whose request may have reached Langfuse without an answer confirming it (a read timeout, a
connection cut mid-response, a truncated 200, a 504, the deadline passing while it was in flight) is
*uncertain*: it is never re-sent inline, because Langfuse does not reliably dedupe a re-sent span id
(see ``observation_exists``); the sink parks it marked uncertain, and the replay looks the
observation up before sending it again. Every attempt is bounded by the deadline as a whole, not only
per socket read, so a server that trickles its answer cannot hold the invocation. Credentials come
from the environment locally or from a Secrets Manager JSON secret
(``host``, ``public_key``, ``secret_key``) in AWS, through Powertools Parameters' cache.
Only the secret's name is ever logged or put in an error, never its value.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

import orjson

from logpipe.deadline import DeadlineExceededError, run_until
from logpipe.delivery import HttpOutcome, NetworkFailure, RetryPolicy, classify_status, header, post_once
from logpipe.secret_store import JsonSecret, SecretNotConfiguredError, SecretState, SecretUnavailableError

if TYPE_CHECKING:
    import urllib3

OTLP_TRACES_PATH = "/api/public/otel/v1/traces"
INGESTION_VERSION = "4"
_USER_AGENT = "logpipe/0.1"


class CredentialsError(SecretNotConfiguredError):
    """The Langfuse credentials are missing or malformed."""


# One outcome vocabulary for every sink; the local name reads better at the call sites.
PostOutcome = HttpOutcome


@dataclass(frozen=True, slots=True)
class PostResult:
    """The confirmed outcome of one OTLP request."""

    outcome: PostOutcome
    status: int | None
    retry_after: float | None
    reason: str
    attempts: int = 1
    # Spans a 2xx response's partial_success reported rejected (the response never says which ones).
    rejected_spans: int = 0
    # The request may have been stored although no answer confirmed it: never re-sent blindly.
    uncertain: bool = False


@dataclass(frozen=True, slots=True)
class LangfuseCredentials:
    """Host and key pair; the secret key never appears in ``repr``."""

    host: str
    public_key: str
    secret_key: str = field(repr=False)

    @property
    def endpoint(self) -> str:
        """The OTLP traces URL on this host."""
        return self.host.rstrip("/") + OTLP_TRACES_PATH

    def headers(self) -> dict[str, str]:
        """Basic auth ``public_key:secret_key``, protobuf content type and the v4 ingestion header."""
        token = base64.b64encode(f"{self.public_key}:{self.secret_key}".encode()).decode()
        return {
            "Authorization": f"Basic {token}",
            "Content-Type": "application/x-protobuf",
            "x-langfuse-ingestion-version": INGESTION_VERSION,
            "User-Agent": _USER_AGENT,
        }

    @classmethod
    def validated(cls, values: Mapping[str, object], source: str) -> LangfuseCredentials:
        """Check host and keys (without echoing any value) and build the credentials."""
        if not values:
            raise CredentialsError(source, SecretState.EMPTY, "put host, public_key and secret_key")
        checked: dict[str, str] = {}
        for name in ("host", "public_key", "secret_key"):
            value = values.get(name)
            if not isinstance(value, str) or not value.strip():
                raise CredentialsError(source, SecretState.MALFORMED, f"{name} is missing or not a string")
            checked[name] = value.strip()
        if not checked["host"].startswith(("http://", "https://")):
            raise CredentialsError(source, SecretState.MALFORMED, "host must be an http(s) URL")
        return cls(checked["host"], checked["public_key"], checked["secret_key"])


@dataclass(frozen=True, slots=True)
class CredentialsSource:
    """Loads the credentials each time (the secret's loader caches them for ``max_age``)."""

    load: Callable[[], LangfuseCredentials]
    source: str

    @classmethod
    def fixed(cls, host: str, public_key: str, secret_key: str) -> CredentialsSource:
        """From ``LOGPIPE_LANGFUSE_HOST`` / ``_PUBLIC_KEY`` / ``_SECRET_KEY`` (local runs)."""
        credentials = LangfuseCredentials.validated(
            {"host": host, "public_key": public_key, "secret_key": secret_key}, "LOGPIPE_LANGFUSE_*"
        )
        return cls(load=lambda: credentials, source="LOGPIPE_LANGFUSE_*")

    @classmethod
    def from_secret(cls, secret_id: str, secret: JsonSecret | None = None) -> CredentialsSource:
        """From a Secrets Manager JSON secret, through Powertools Parameters' cache."""
        store = secret if secret is not None else JsonSecret(secret_id)

        def load() -> LangfuseCredentials:
            value = store.value()
            if not isinstance(value, Mapping):
                raise CredentialsError(
                    store.source, SecretState.MALFORMED, "expected a JSON object with host, public_key, secret_key"
                )
            return LangfuseCredentials.validated(value, store.source)

        return cls(load=load, source=store.source)


def _count(value: object) -> int:
    # int64 fields are JSON strings in the protobuf JSON mapping ("3"), numbers in hand-written JSON.
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def _json_partial_success(body: bytes) -> tuple[int, str]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0, ""
    partial = document.get("partialSuccess", document.get("partial_success")) if isinstance(document, dict) else None
    if not isinstance(partial, dict):
        return 0, ""  # not an ExportTraceServiceResponse (Langfuse answers with its own JSON): a full success
    rejected = _count(partial.get("rejectedSpans", partial.get("rejected_spans")))
    return rejected, str(partial.get("errorMessage", partial.get("error_message")) or "")[:300]


def _protobuf_partial_success(body: bytes) -> tuple[int, str]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    response = ExportTraceServiceResponse()
    try:
        response.ParseFromString(body)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError (no type stubs here): the 2xx status stands
        return 0, ""
    if not response.HasField("partial_success"):
        return 0, ""
    partial = response.partial_success
    return max(int(partial.rejected_spans), 0), str(partial.error_message)[:300]


def partial_success(headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
    """``(rejected spans, error message)`` of a 2xx OTLP response body; ``(0, "")`` when absent or unreadable."""
    if not body:
        return 0, ""
    # The body is decoded by what the response says it is: the spec wants the request's content type
    # back, but Langfuse answers protobuf requests with JSON.
    content_type = (header(headers, "content-type") or "").lower()
    if "json" in content_type:
        return _json_partial_success(body)
    if "protobuf" in content_type:
        return _protobuf_partial_success(body)
    return 0, ""


def classify_response(status: int, headers: Mapping[str, str], body: bytes) -> PostResult:
    """Turn one HTTP response into a ``PostResult``."""
    if 200 <= status < 300:  # HTTP success range
        rejected, message = partial_success(headers, body)
        if rejected:
            # The OTLP spec forbids retrying a partial success, and it never says which spans were
            # rejected: the caller must treat the whole request as rejected (dead-lettered, reason kept).
            reason = f"partial success: {rejected} spans rejected: {message or 'no error message'}"
            return PostResult(PostOutcome.REJECTED, status, None, reason, rejected_spans=rejected)
        if message:
            # partial_success with nothing rejected carries a warning; the request was fully accepted.
            return PostResult(PostOutcome.ACCEPTED, status, None, f"accepted with warning: {message}")
        return PostResult(PostOutcome.ACCEPTED, status, None, "accepted")
    verdict = classify_status(status, headers, body)
    return PostResult(verdict.outcome, status, verdict.retry_after, verdict.reason, uncertain=verdict.uncertain)


class OtlpTransport:
    """POSTs OTLP protobuf bodies to Langfuse and confirms each outcome; reuses one connection pool."""

    def __init__(  # noqa: PLR0913 - explicit knobs, all with defaults
        self,
        credentials: CredentialsSource,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        pool: urllib3.PoolManager | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Remember the settings; the pool is created on first use."""
        self.credentials = credentials
        self.timeout = timeout
        self.policy = RetryPolicy(retries=retries, backoff=backoff)
        self._pool = pool
        self._sleep = sleep

    def _http(self) -> urllib3.PoolManager:
        if self._pool is None:
            import urllib3

            self._pool = urllib3.PoolManager(num_pools=2, maxsize=4)
        return self._pool

    def post(self, body: bytes, deadline: float) -> PostResult:
        """Send one request; retry transient failures while time is left; return the final outcome."""
        try:
            credentials = self.credentials.load()
        except (SecretNotConfiguredError, SecretUnavailableError) as error:
            return PostResult(PostOutcome.RETRYABLE, None, None, f"credentials: {error}")
        result, attempts = self.policy.run(
            lambda _timeout: self._bounded_post(credentials, body, deadline), self.timeout, deadline, self._sleep
        )
        if result is None:
            return PostResult(PostOutcome.RETRYABLE, None, None, "deadline reached", attempts)
        return dataclasses.replace(result, attempts=attempts)

    def _bounded_post(self, credentials: LangfuseCredentials, body: bytes, deadline: float) -> PostResult:
        """One attempt, given up at the deadline even while the server is still (slowly) answering."""
        timeout = min(self.timeout, max(deadline - time.monotonic(), 0.001))
        try:
            return run_until(lambda: self._post_once(credentials, body, timeout), deadline)
        except DeadlineExceededError:
            return PostResult(
                PostOutcome.NETWORK_ERROR, None, None, "no complete answer before the deadline", uncertain=True
            )

    def _post_once(self, credentials: LangfuseCredentials, body: bytes, timeout: float) -> PostResult:
        answer = post_once(self._http(), credentials.endpoint, body, credentials.headers(), timeout)
        if isinstance(answer, NetworkFailure):
            return PostResult(PostOutcome.NETWORK_ERROR, None, None, answer.reason, uncertain=answer.may_have_arrived)
        return classify_response(answer.status, answer.headers, answer.body)

    def observation_exists(self, observation_id: str, trace_id: str, deadline: float) -> bool | None:
        """Whether Langfuse already stored this observation: True, False, or None when it cannot tell.

        Checked before an *uncertain* parked generation is sent again. Langfuse does not reliably
        dedupe a re-sent span id (server code, langfuse/langfuse at 62751446, 2026-08):
        ``observations`` is a ClickHouse ``ReplacingMergeTree(event_ts, is_deleted)`` that only
        collapses rows of one id when parts merge, at no set time
        (packages/shared/clickhouse/migrations/*/0002_observations.up.sql), and the readers skip their
        ``LIMIT 1 BY id`` step for projects that ingest over OTel when
        ``LANGFUSE_SKIP_FINAL_FOR_OTEL_PROJECTS`` is on ("OTel projects use immutable spans - no need
        for deduplication", packages/shared/src/server/repositories/observations.ts;
        server/queries/clickhouse-sql/query-options.ts). So a second copy of a span shows twice and
        its tokens and cost count twice until a merge. ``GET /api/public/observations/{id}`` answers
        404 "not found" for an absent id; a v4 ``events_only`` deployment answers 404 for the whole
        route, and then ``GET /api/public/v2/observations?traceId=...`` is asked instead.
        """
        try:
            credentials = self.credentials.load()
        except (SecretNotConfiguredError, SecretUnavailableError):
            return None
        host = credentials.host.rstrip("/")
        headers = {"Authorization": credentials.headers()["Authorization"], "User-Agent": _USER_AGENT}
        status, body = self._get(f"{host}/api/public/observations/{quote(observation_id, safe='')}", headers, deadline)
        if status == 200:
            return True
        if status != 404 or b"events_only" not in body:
            return False if status == 404 else None
        url = f"{host}/api/public/v2/observations?traceId={quote(trace_id, safe='')}&limit=1000&fields=core"
        status, body = self._get(url, headers, deadline)
        if status != 200:
            return None
        try:
            listed = orjson.loads(body).get("data", [])
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return any(isinstance(item, dict) and item.get("id") == observation_id for item in listed)

    def _get(self, url: str, headers: dict[str, str], deadline: float) -> tuple[int | None, bytes]:
        import urllib3

        timeout = min(self.timeout, max(deadline - time.monotonic(), 0.001))

        def get() -> tuple[int | None, bytes]:
            try:
                response = self._http().request(
                    "GET",
                    url,
                    headers=headers,
                    timeout=urllib3.Timeout(connect=min(timeout, 3.0), read=timeout),
                    retries=False,
                    preload_content=True,
                )
            except urllib3.exceptions.HTTPError:
                return None, b""
            return response.status, response.data

        try:
            return run_until(get, deadline)
        except DeadlineExceededError:
            return None, b""

    def close(self) -> None:
        """Release the connection pool."""
        if self._pool is not None:
            self._pool.clear()
