from __future__ import annotations

import pytest

from logpipe.settings import Settings, SettingsError

pytestmark = pytest.mark.unit


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.environment == "dev"
    assert settings.scrub_enabled
    assert settings.metrics_enabled
    assert settings.parking_queue_url is None
    assert not settings.in_lambda


def test_reads_every_variable() -> None:
    settings = Settings.from_env(
        {
            "LOGPIPE_ENVIRONMENT": "prod",
            "AWS_REGION": "us-west-2",
            "LOGPIPE_PARKING_QUEUE_URL": "https://sqs/q",
            "LOGPIPE_METRIC_RULES": "/opt/rules.json",
            "LOGPIPE_SCRUB_RULES": "/opt/scrub.json",
            "LOGPIPE_SCRUB_ENABLED": "no",
            "LOGPIPE_METRICS_ENABLED": "0",
        },
    )
    assert settings == Settings(
        environment="prod",
        region="us-west-2",
        parking_queue_url="https://sqs/q",
        metric_rules_path="/opt/rules.json",
        scrub_rules_path="/opt/scrub.json",
        scrub_enabled=False,
        metrics_enabled=False,
        in_lambda=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOGPIPE_ENVIRONMENT": "production"}, "LOGPIPE_ENVIRONMENT must be one of"),
        ({"LOGPIPE_SCRUB_ENABLED": "maybe"}, "LOGPIPE_SCRUB_ENABLED must be one of"),
        ({"AWS_LAMBDA_FUNCTION_NAME": "ingest"}, "LOGPIPE_PARKING_QUEUE_URL is required"),
    ],
)
def test_invalid_settings_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.environment = "prod"  # type: ignore[misc]


def test_sentry_settings() -> None:
    settings = Settings.from_env(
        {
            "LOGPIPE_SENTRY_DSN": "https://k@s.example.com/1",
            "LOGPIPE_SENTRY_MAX_PER_FINGERPRINT": "3",
            "LOGPIPE_DEAD_LETTER_QUEUE_URL": "https://sqs/dlq",
        },
    )
    assert settings.sentry_dsn == "https://k@s.example.com/1"
    assert settings.sentry_max_per_fingerprint == 3
    assert settings.dead_letter_queue_url == "https://sqs/dlq"
    with pytest.raises(SettingsError, match="LOGPIPE_SENTRY_MAX_PER_FINGERPRINT must be a positive integer"):
        Settings.from_env({"LOGPIPE_SENTRY_MAX_PER_FINGERPRINT": "0"})


def test_langfuse_prompts_are_scrubbed_for_every_service_by_default() -> None:
    assert Settings.from_env({}).langfuse_unscrubbed_prompt_services == frozenset()
    blank = Settings.from_env({"LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES": "  "})
    assert blank.langfuse_unscrubbed_prompt_services == frozenset()


def test_langfuse_unscrubbed_prompt_services_are_read_as_a_set() -> None:
    settings = Settings.from_env({"LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES": "pacs-backend, api,pacs-backend"})
    assert settings.langfuse_unscrubbed_prompt_services == frozenset({"pacs-backend", "api"})


@pytest.mark.parametrize("value", ["*", "pacs-backend,,api", "pacs-backend;api", "pacs backend", "api,"])
def test_langfuse_unscrubbed_prompt_services_reject_what_is_not_a_service_list(value: str) -> None:
    with pytest.raises(
        SettingsError, match="LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES must be a comma-separated list"
    ):
        Settings.from_env({"LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES": value})


@pytest.mark.parametrize(("raw", "policy"), [("", "public"), ("public", "public"), ("ALL", "all"), (" none ", "none")])
def test_ip_address_policy(raw: str, policy: str) -> None:
    assert Settings.from_env({"LOGPIPE_SCRUB_IP_ADDRESSES": raw}).scrub_ip_addresses == policy


def test_unknown_ip_address_policy_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="LOGPIPE_SCRUB_IP_ADDRESSES must be one of public, all, none"):
        Settings.from_env({"LOGPIPE_SCRUB_IP_ADDRESSES": "private"})
