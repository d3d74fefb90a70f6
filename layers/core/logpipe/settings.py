"""Validated settings, read once from the environment (``LOGPIPE_*``; the template sets them in AWS)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from logpipe.scrub import IP_ADDRESS_POLICIES, IpAddressPolicy

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_ENVIRONMENTS = frozenset({"dev", "stg", "prod", "local", "test"})
# Parked items the replay could not deliver for this long go to the DLQ. SQS keeps a message at most
# 14 days (336 h) and the replay postpones by at most 12 h, so the horizon must leave that much room.
DEFAULT_REPLAY_HORIZON_HOURS = 72
MAX_REPLAY_HORIZON_HOURS = 312
# A service is named by its log group (/aws/ecs/<service>/...): the characters a log group name allows.
_SERVICE_NAME = re.compile(r"[A-Za-z0-9._#/-]+")


class SettingsError(ValueError):
    """A setting is missing or has an invalid value."""


def _ip_policy(env: Mapping[str, str], name: str) -> IpAddressPolicy:
    raw = env.get(name, "").strip().lower() or "public"
    for policy in IP_ADDRESS_POLICIES:
        if raw == policy:
            return policy
    msg = f"{name} must be one of {', '.join(IP_ADDRESS_POLICIES)}, got {raw!r}"
    raise SettingsError(msg)


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    msg = f"{name} must be one of true/false/1/0/yes/no, got {raw!r}"
    raise SettingsError(msg)


def _positive_int(env: Mapping[str, str], name: str, *, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        msg = f"{name} must be a positive integer, got {raw!r}"
        raise SettingsError(msg)
    return int(raw)


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _services(env: Mapping[str, str], name: str) -> frozenset[str]:
    raw = env.get(name, "")
    if not raw.strip():
        return frozenset()
    services = [part.strip() for part in raw.split(",")]
    # Strict on purpose: a typo here silently sends one service's prompts unscrubbed, or keeps another's scrubbed.
    bad = [service for service in services if not _SERVICE_NAME.fullmatch(service)]
    if bad:
        msg = (
            f"{name} must be a comma-separated list of service names as they appear in the log group "
            f"(e.g. pacs-backend,api), got {raw!r}"
        )
        raise SettingsError(msg)
    return frozenset(services)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the ingest pipeline needs to know about its deployment."""

    environment: str = "dev"
    region: str = "ap-northeast-2"
    parking_queue_url: str | None = None
    metric_rules_path: str | None = None
    scrub_rules_path: str | None = None
    scrub_enabled: bool = True
    # Which IP addresses leave masked: public ones (private ranges stay for debugging), all, or none.
    scrub_ip_addresses: IpAddressPolicy = "public"
    metrics_enabled: bool = True
    in_lambda: bool = False
    dead_letter_queue_url: str | None = None
    sentry_dsn: str | None = None
    sentry_secret_id: str | None = None
    sentry_max_per_fingerprint: int = 10
    langfuse_host: str | None = None
    langfuse_public_key: str | None = None
    langfuse_secret_key: str | None = None
    langfuse_secret_id: str | None = None
    # Powertools Idempotency's table: Langfuse chunks and replays are sent once (in memory without it).
    idempotency_table: str | None = None
    # Services whose LLM calls go to Langfuse with prompt and response as logged (the rest stays scrubbed).
    langfuse_unscrubbed_prompt_services: frozenset[str] = frozenset()
    replay_horizon_hours: int = DEFAULT_REPLAY_HORIZON_HOURS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate settings from environment variables."""
        source = os.environ if env is None else env
        environment = source.get("LOGPIPE_ENVIRONMENT", "dev").strip() or "dev"
        if environment not in _ENVIRONMENTS:
            msg = f"LOGPIPE_ENVIRONMENT must be one of {sorted(_ENVIRONMENTS)}, got {environment!r}"
            raise SettingsError(msg)
        in_lambda = bool(source.get("AWS_LAMBDA_FUNCTION_NAME"))
        parking_queue_url = _optional(source, "LOGPIPE_PARKING_QUEUE_URL")
        if in_lambda and parking_queue_url is None:
            # Without a parking queue, bad input would have nowhere to go but the floor.
            msg = "LOGPIPE_PARKING_QUEUE_URL is required when running in Lambda"
            raise SettingsError(msg)
        horizon = _positive_int(source, "LOGPIPE_REPLAY_HORIZON_HOURS", default=DEFAULT_REPLAY_HORIZON_HOURS)
        if horizon > MAX_REPLAY_HORIZON_HOURS:
            msg = (
                f"LOGPIPE_REPLAY_HORIZON_HOURS must be at most {MAX_REPLAY_HORIZON_HOURS} "
                f"(SQS keeps a message 14 days), got {horizon}"
            )
            raise SettingsError(msg)
        return cls(
            environment=environment,
            region=source.get("AWS_REGION") or source.get("AWS_DEFAULT_REGION") or "ap-northeast-2",
            parking_queue_url=parking_queue_url,
            metric_rules_path=_optional(source, "LOGPIPE_METRIC_RULES"),
            scrub_rules_path=_optional(source, "LOGPIPE_SCRUB_RULES"),
            scrub_enabled=_flag(source, "LOGPIPE_SCRUB_ENABLED", default=True),
            scrub_ip_addresses=_ip_policy(source, "LOGPIPE_SCRUB_IP_ADDRESSES"),
            metrics_enabled=_flag(source, "LOGPIPE_METRICS_ENABLED", default=True),
            in_lambda=in_lambda,
            dead_letter_queue_url=_optional(source, "LOGPIPE_DEAD_LETTER_QUEUE_URL"),
            sentry_dsn=_optional(source, "LOGPIPE_SENTRY_DSN"),
            sentry_secret_id=_optional(source, "LOGPIPE_SENTRY_SECRET"),
            sentry_max_per_fingerprint=_positive_int(source, "LOGPIPE_SENTRY_MAX_PER_FINGERPRINT", default=10),
            langfuse_host=_optional(source, "LOGPIPE_LANGFUSE_HOST"),
            langfuse_public_key=_optional(source, "LOGPIPE_LANGFUSE_PUBLIC_KEY"),
            langfuse_secret_key=_optional(source, "LOGPIPE_LANGFUSE_SECRET_KEY"),
            langfuse_secret_id=_optional(source, "LOGPIPE_LANGFUSE_SECRET"),
            idempotency_table=_optional(source, "LOGPIPE_IDEMPOTENCY_TABLE"),
            langfuse_unscrubbed_prompt_services=_services(source, "LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES"),
            replay_horizon_hours=horizon,
        )


DEFAULT_EXPORT_CHECKPOINT_PREFIX = "/logpipe/export/checkpoints"


@dataclass(frozen=True, slots=True)
class ExportSettings:
    """The S3 exporter's settings, kept apart so it needs no ingest-only variables (parking queue).

    ``LOGPIPE_EXPORT_BUCKET`` (required in Lambda), ``LOGPIPE_EXPORT_PREFIX`` (default ``exports``),
    ``LOGPIPE_EXPORT_MIN_AGE_HOURS`` (default 24, at least 12), ``LOGPIPE_EXPORT_LOG_GROUPS`` (comma list,
    exported in addition to groups tagged ``ExportEnabled=true``) and
    ``LOGPIPE_EXPORT_CHECKPOINT_PARAMETER_PREFIX`` (SSM path, default ``/logpipe/export/checkpoints``).
    """

    environment: str = "dev"
    region: str = "ap-northeast-2"
    bucket: str | None = None
    prefix: str = "exports"
    min_age_hours: int = 24
    log_groups: tuple[str, ...] = ()
    checkpoint_parameter_prefix: str = DEFAULT_EXPORT_CHECKPOINT_PREFIX
    in_lambda: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExportSettings:
        """Read and validate the exporter's settings from environment variables."""
        source = os.environ if env is None else env
        # Reuse the shared validation; the ingest-only rule (parking queue in Lambda) does not apply here.
        base = Settings.from_env({key: value for key, value in source.items() if key != "AWS_LAMBDA_FUNCTION_NAME"})
        in_lambda = bool(source.get("AWS_LAMBDA_FUNCTION_NAME"))
        bucket = _optional(source, "LOGPIPE_EXPORT_BUCKET")
        if in_lambda and bucket is None:
            msg = "LOGPIPE_EXPORT_BUCKET is required when running in Lambda"
            raise SettingsError(msg)
        # CloudWatch Logs data can take up to 12 h to become exportable; an earlier window could miss events.
        min_age_hours = _positive_int(source, "LOGPIPE_EXPORT_MIN_AGE_HOURS", default=24)
        if min_age_hours < 12:
            msg = f"LOGPIPE_EXPORT_MIN_AGE_HOURS must be at least 12, got {min_age_hours}"
            raise SettingsError(msg)
        prefix = (source.get("LOGPIPE_EXPORT_PREFIX", "").strip() or "exports").strip("/")
        if not prefix:
            msg = "LOGPIPE_EXPORT_PREFIX must not be only slashes"
            raise SettingsError(msg)
        parameter_prefix = (
            _optional(source, "LOGPIPE_EXPORT_CHECKPOINT_PARAMETER_PREFIX") or DEFAULT_EXPORT_CHECKPOINT_PREFIX
        )
        if not parameter_prefix.startswith("/"):
            msg = f"LOGPIPE_EXPORT_CHECKPOINT_PARAMETER_PREFIX must start with '/', got {parameter_prefix!r}"
            raise SettingsError(msg)
        groups = tuple(part.strip() for part in source.get("LOGPIPE_EXPORT_LOG_GROUPS", "").split(",") if part.strip())
        return cls(
            environment=base.environment,
            region=base.region,
            bucket=bucket,
            prefix=prefix,
            min_age_hours=min_age_hours,
            log_groups=groups,
            checkpoint_parameter_prefix=parameter_prefix.rstrip("/"),
            in_lambda=in_lambda,
        )


def _positive_number(env: Mapping[str, str], name: str, *, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        msg = f"{name} must be a positive number, got {raw!r}"
        raise SettingsError(msg)
    return value


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """The alert notifier's settings (``functions/notify``), apart from the ingest-only ones.

    Webhook URLs come from ``LOGPIPE_SLACK_WEBHOOK_SECRET`` / ``LOGPIPE_TEAMS_WEBHOOK_SECRET`` (Secrets
    Manager secret ids, in AWS) or ``LOGPIPE_SLACK_WEBHOOK_URL`` / ``LOGPIPE_TEAMS_WEBHOOK_URL`` (local);
    either channel may be absent. ``LOGPIPE_IDEMPOTENCY_TABLE`` (required in Lambda) keeps each post to one
    per channel. ``LOGPIPE_NOTIFY_LOG_CONTEXT`` turns on the top errors from Logs Insights, bounded by
    ``LOGPIPE_NOTIFY_CONTEXT_SECONDS`` (default 5) and ``LOGPIPE_NOTIFY_CONTEXT_MAX_MB`` scanned (default 100).
    ``LOGPIPE_DASHBOARD_NAME`` and ``LOGPIPE_PIPELINE_LOG_GROUPS`` feed the links; ``LOGPIPE_NOTIFY_RULES``
    points at your own routing rules; ``LOGPIPE_NOTIFY_WEBHOOK_TIMEOUT_SECONDS`` bounds each post (default 10).
    """

    environment: str = "dev"
    region: str = "ap-northeast-2"
    # The URLs are credentials: kept out of repr (and so out of any log of the settings).
    slack_webhook_url: str | None = field(default=None, repr=False)
    teams_webhook_url: str | None = field(default=None, repr=False)
    slack_webhook_secret: str | None = None
    teams_webhook_secret: str | None = None
    idempotency_table: str | None = None
    log_context: bool = False
    context_seconds: float = 5.0
    context_max_mb: float = 100.0
    dashboard_name: str | None = None
    pipeline_log_groups: tuple[str, ...] = ()
    rules_path: str | None = None
    webhook_timeout_seconds: float = 10.0
    in_lambda: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifySettings:
        """Read and validate the notifier's settings from environment variables."""
        source = os.environ if env is None else env
        # Reuse the shared validation; the ingest-only rule (parking queue in Lambda) does not apply here.
        base = Settings.from_env({key: value for key, value in source.items() if key != "AWS_LAMBDA_FUNCTION_NAME"})
        in_lambda = bool(source.get("AWS_LAMBDA_FUNCTION_NAME"))
        table = base.idempotency_table
        if in_lambda and table is None:
            # Without the ledger a retried invocation would post again to channels that already have it.
            msg = "LOGPIPE_IDEMPOTENCY_TABLE is required when running in Lambda"
            raise SettingsError(msg)
        groups = tuple(
            part.strip() for part in source.get("LOGPIPE_PIPELINE_LOG_GROUPS", "").split(",") if part.strip()
        )
        return cls(
            environment=base.environment,
            region=base.region,
            slack_webhook_url=_optional(source, "LOGPIPE_SLACK_WEBHOOK_URL"),
            teams_webhook_url=_optional(source, "LOGPIPE_TEAMS_WEBHOOK_URL"),
            slack_webhook_secret=_optional(source, "LOGPIPE_SLACK_WEBHOOK_SECRET"),
            teams_webhook_secret=_optional(source, "LOGPIPE_TEAMS_WEBHOOK_SECRET"),
            idempotency_table=table,
            log_context=_flag(source, "LOGPIPE_NOTIFY_LOG_CONTEXT", default=False),
            context_seconds=_positive_number(source, "LOGPIPE_NOTIFY_CONTEXT_SECONDS", default=5.0),
            context_max_mb=_positive_number(source, "LOGPIPE_NOTIFY_CONTEXT_MAX_MB", default=100.0),
            dashboard_name=_optional(source, "LOGPIPE_DASHBOARD_NAME"),
            pipeline_log_groups=groups,
            rules_path=_optional(source, "LOGPIPE_NOTIFY_RULES"),
            webhook_timeout_seconds=_positive_number(source, "LOGPIPE_NOTIFY_WEBHOOK_TIMEOUT_SECONDS", default=10.0),
            in_lambda=in_lambda,
        )
