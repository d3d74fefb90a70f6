"""Validated settings, read once from the environment (``LOGPIPE_*``; the template sets them in AWS)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_ENVIRONMENTS = frozenset({"dev", "stg", "prod", "local", "test"})


class SettingsError(ValueError):
    """A setting is missing or has an invalid value."""


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


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the ingest pipeline needs to know about its deployment."""

    environment: str = "dev"
    region: str = "ap-northeast-2"
    parking_queue_url: str | None = None
    metric_rules_path: str | None = None
    scrub_rules_path: str | None = None
    scrub_enabled: bool = True
    metrics_enabled: bool = True
    in_lambda: bool = False
    dead_letter_queue_url: str | None = None
    sentry_dsn: str | None = None
    sentry_secret_id: str | None = None
    sentry_max_per_fingerprint: int = 10

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
        return cls(
            environment=environment,
            region=source.get("AWS_REGION") or source.get("AWS_DEFAULT_REGION") or "ap-northeast-2",
            parking_queue_url=parking_queue_url,
            metric_rules_path=_optional(source, "LOGPIPE_METRIC_RULES"),
            scrub_rules_path=_optional(source, "LOGPIPE_SCRUB_RULES"),
            scrub_enabled=_flag(source, "LOGPIPE_SCRUB_ENABLED", default=True),
            metrics_enabled=_flag(source, "LOGPIPE_METRICS_ENABLED", default=True),
            in_lambda=in_lambda,
            dead_letter_queue_url=_optional(source, "LOGPIPE_DEAD_LETTER_QUEUE_URL"),
            sentry_dsn=_optional(source, "LOGPIPE_SENTRY_DSN"),
            sentry_secret_id=_optional(source, "LOGPIPE_SENTRY_SECRET"),
            sentry_max_per_fingerprint=_positive_int(source, "LOGPIPE_SENTRY_MAX_PER_FINGERPRINT", default=10),
        )
