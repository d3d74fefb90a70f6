"""Settings -> the Langfuse sink and resender (credentials, transport, ledger); no network at build time."""

from __future__ import annotations

from logpipe.idempotency import DeliveryLedger
from logpipe.langfuse.replay import LangfuseResender
from logpipe.langfuse.sink import LangfuseSink
from logpipe.langfuse.transport import CredentialsSource, OtlpTransport
from logpipe.settings import Settings


def credentials_source(settings: Settings) -> CredentialsSource | None:
    """The secret in AWS, ``LOGPIPE_LANGFUSE_HOST``/``_PUBLIC_KEY``/``_SECRET_KEY`` locally, else none."""
    if settings.langfuse_secret_id:
        return CredentialsSource.from_secret(settings.langfuse_secret_id)
    if settings.langfuse_host and settings.langfuse_public_key and settings.langfuse_secret_key:
        return CredentialsSource.fixed(
            settings.langfuse_host, settings.langfuse_public_key, settings.langfuse_secret_key
        )
    return None


# One key prefix for the ingest and the replay function: the replay reads the ingest's chunk records.
KEY_PREFIX = "logpipe-langfuse"
# Long after CloudWatch Logs stops redelivering a batch (hours) and SQS a parked message (the replay horizon).
RECORD_SECONDS = 14 * 24 * 3600


def delivery_ledger(settings: Settings) -> DeliveryLedger:
    """Powertools Idempotency on ``LOGPIPE_IDEMPOTENCY_TABLE``; without it, per-container memory (local runs)."""
    if settings.idempotency_table:
        return DeliveryLedger.on_table(
            settings.idempotency_table, key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS
        )
    return DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS)


def build_langfuse_sink(settings: Settings) -> LangfuseSink | None:
    """The sink when Langfuse is configured, else None."""
    credentials = credentials_source(settings)
    if credentials is None:
        return None
    return LangfuseSink(OtlpTransport(credentials), delivery_ledger(settings), credentials=credentials)


def build_langfuse_resender(settings: Settings) -> LangfuseResender | None:
    """The replay side of the same configuration, else None."""
    credentials = credentials_source(settings)
    if credentials is None:
        return None
    transport = OtlpTransport(credentials)
    return LangfuseResender(transport, delivery_ledger(settings), lookup=transport)
