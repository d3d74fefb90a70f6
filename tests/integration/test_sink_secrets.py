"""Day one: the Sentry and Langfuse secrets are missing, empty, malformed or not readable (moto Secrets Manager).

The stack creates both secrets empty. Until someone fills them in, every batch holding an error or
LLM record must still be processed: its PACS EMF printed, its records counted as not configured
(``SentryNotConfigured`` / ``LangfuseNotConfigured``, which the template alarms on), nothing raised.
Each case runs the real ingest handler in-process (``logpipe invoke``'s machinery) against a real
Secrets Manager API: moto as a server on 127.0.0.1.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3

from logpipe_cli.embedded_aws import EmbeddedAws, LocalStack
from logpipe_cli.invoke import function_environment, invoke
from logpipe_cli.template_env import function_spec
from payloads import restamp

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
REGION = "ap-northeast-2"
ERROR_SAMPLE = "cwl-pacs-backend-errors.json"  # 7 error records, PACSBackendErrors +7
LLM_SAMPLE = "cwl-pacs-backend-llm.json"  # 6 LLM calls
# A syntactically valid ARN of a secret that does not exist in the account.
MISSING_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:pacs-logpipe/nowhere-AbCdEf"


@pytest.fixture(scope="module")
def stack(moto_endpoint: str) -> Iterator[LocalStack]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        with EmbeddedAws() as local:
            yield local


def _secret(moto_endpoint: str, value: str | None) -> str:
    """A new secret (no value at all when ``value`` is None, as the stack creates it); its ARN."""
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name=REGION)
    name = f"pacs-logpipe/test-{uuid.uuid4().hex[:8]}"
    if value is None:
        return client.create_secret(Name=name)["ARN"]
    return client.create_secret(Name=name, SecretString=value)["ARN"]


def _run(stack: LocalStack, sample: str, overrides: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    spec = function_spec(ROOT / "template.yaml", "ingest", stack.template_resources())
    environment = function_environment(spec) | {"AWS_ENDPOINT_URL": stack.endpoint_url} | overrides
    event = restamp(json.loads((EVENTS / sample).read_text()))
    invocation = invoke(spec, event, echo=None, environment=environment, cold=True)
    documents = [json.loads(line) for line in invocation.output.splitlines() if '"CloudWatchMetrics"' in line]
    return invocation.result, documents


def _namespace(documents: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == namespace]


def _health(documents: list[dict[str, Any]], metric: str) -> float:
    (health,) = _namespace(documents, "LogPipe")
    value = health[metric]
    return float(sum(value) if isinstance(value, list) else value)


SECRET_CASES: dict[str, Callable[[str], str]] = {
    "missing": lambda _endpoint: MISSING_SECRET_ARN,
    "empty": lambda endpoint: _secret(endpoint, None),
    "not-json": lambda endpoint: _secret(endpoint, "https://key@sentry.example.com/1"),
    "not-an-object": lambda endpoint: _secret(endpoint, '["https://key@sentry.example.com/1"]'),
    "empty-object": lambda endpoint: _secret(endpoint, "{}"),
}
SENTRY_ONLY_CASES: dict[str, Callable[[str], str]] = {
    "not-a-dsn": lambda endpoint: _secret(endpoint, '{"default": "sentry.example.com/1"}'),
}
LANGFUSE_ONLY_CASES: dict[str, Callable[[str], str]] = {
    "no-keys": lambda endpoint: _secret(endpoint, '{"host": "https://cloud.langfuse.com"}'),
}


@pytest.mark.parametrize("case", sorted(SECRET_CASES | SENTRY_ONLY_CASES))
def test_sentry_secret_not_configured_is_counted_and_the_emf_still_printed(
    moto_endpoint: str, stack: LocalStack, case: str
) -> None:
    secret = (SECRET_CASES | SENTRY_ONLY_CASES)[case](moto_endpoint)
    result, documents = _run(stack, ERROR_SAMPLE, {"LOGPIPE_SENTRY_SECRET": secret})
    assert result["records"]["error"] == 7
    assert result["deliveries"] == {"sentry.not_configured": 7}
    assert result["parked"] == 0  # nothing to replay: the records stay in their log group
    pacs = _namespace(documents, "PACS/Application")
    assert sum(d["PACSBackendErrors"] for d in pacs) == 7
    assert _health(documents, "SentryNotConfigured") == 7
    assert _health(documents, "MetricPointsOutOfWindow") == 0


@pytest.mark.parametrize("case", sorted(SECRET_CASES | LANGFUSE_ONLY_CASES))
def test_langfuse_secret_not_configured_is_counted_and_the_emf_still_printed(
    moto_endpoint: str, stack: LocalStack, case: str
) -> None:
    secret = (SECRET_CASES | LANGFUSE_ONLY_CASES)[case](moto_endpoint)
    result, documents = _run(stack, LLM_SAMPLE, {"LOGPIPE_LANGFUSE_SECRET": secret})
    assert result["records"]["llm"] == 6
    assert result["deliveries"] == {"langfuse.not_configured": 6}
    assert result["parked"] == 0
    assert _health(documents, "LangfuseNotConfigured") == 6
    assert _health(documents, "EmfDocuments") == result["emf_documents"]


def _user_without_secret_access(moto_endpoint: str) -> dict[str, str]:
    """An IAM user whose policy allows the queues and logs but not secretsmanager:GetSecretValue."""
    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name=REGION)
    name = f"ingest-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sqs:*", "logs:*", "dynamodb:*"], "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName="no-secrets", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


ACCESS_DENIED_CASES = {
    "sentry": ("LOGPIPE_SENTRY_SECRET", ERROR_SAMPLE, "sentry.not_configured", "SentryNotConfigured", 7),
    "langfuse": ("LOGPIPE_LANGFUSE_SECRET", LLM_SAMPLE, "langfuse.not_configured", "LangfuseNotConfigured", 6),
}


@pytest.mark.parametrize("sink", sorted(ACCESS_DENIED_CASES))
def test_access_denied_secret_is_not_configured(moto_endpoint: str, stack: LocalStack, sink: str) -> None:
    variable, sample, counter, metric, records = ACCESS_DENIED_CASES[sink]
    secret = _secret(moto_endpoint, '{"default": "https://key@sentry.example.com/1"}')
    credentials = _user_without_secret_access(moto_endpoint)
    http = urllib3.PoolManager()
    # moto checks IAM policies while its /moto-api/reset-auth count is 0 (back to never after the run).
    http.request("POST", f"{moto_endpoint}/moto-api/reset-auth", body=b"0")
    try:
        result, documents = _run(stack, sample, {variable: secret, **credentials})
    finally:
        http.request("POST", f"{moto_endpoint}/moto-api/reset-auth", body=b"inf")
    assert result["deliveries"] == {counter: records}
    assert _health(documents, metric) == records
