"""Custom::ServiceLogGroup against moto: a first deploy where the service groups exist, and where they do not.

The provider function (functions/loggroups) runs in-process with its environment from template.yaml,
the way `logpipe invoke` runs it, and answers CloudFormation on a pre-signed URL: here a loopback
HTTP server that records the PUT. CloudWatch Logs is moto, as a server on 127.0.0.1, in an account
of the test's own. moto implements every CloudWatch Logs call the provider makes except
AssociateKmsKey and DisassociateKmsKey; the ``kms_association`` fixture adds those two to the
in-process moto server (they set or clear the group's ``kmsKeyId``, which DescribeLogGroups reports).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from logpipe.service_log_groups import ADOPTED_BY_TAG, CREATED_BY_TAG, PREVIOUS_KMS_TAG, PREVIOUS_RETENTION_TAG
from logpipe_cli.invoke import function_environment, invoke
from logpipe_cli.template_env import function_spec
from moto_accounts import MotoAccount, fresh_account
from unit.test_template import (
    DEPLOY_PARAMETERS,
    PSEUDO_PARAMETERS,
    TWO_SERVICES,
    expand_language_extensions,
    load_cfn_yaml,
    resolve,
    resources_of_type,
    sam_transform,
)

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REGION = "ap-northeast-2"
MARKERS = {CREATED_BY_TAG, ADOPTED_BY_TAG, PREVIOUS_RETENTION_TAG, PREVIOUS_KMS_TAG}


@pytest.fixture(scope="module")
def kms_association() -> Iterator[None]:
    """AssociateKmsKey / DisassociateKmsKey on the in-process moto server (moto 5 has neither)."""
    from moto.logs.responses import LogsResponse

    def associate_kms_key(self: Any) -> str:
        self.logs_backend.groups[self._get_param("logGroupName")].kms_key_id = self._get_param("kmsKeyId")
        return ""

    def disassociate_kms_key(self: Any) -> str:
        self.logs_backend.groups[self._get_param("logGroupName")].kms_key_id = None
        return ""

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LogsResponse, "associate_kms_key", associate_kms_key, raising=False)
        patch.setattr(LogsResponse, "disassociate_kms_key", disassociate_kms_key, raising=False)
        yield


class CloudFormationInbox:
    """Stands in for the pre-signed S3 URLs: records every response PUT to it, by request id."""

    def __init__(self) -> None:
        self.responses: dict[str, dict[str, Any]] = {}
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                inbox.responses[self.path.strip("/")] = json.loads(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, request_id: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{request_id}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def inbox() -> Iterator[CloudFormationInbox]:
    inbox = CloudFormationInbox()
    yield inbox
    inbox.close()


@pytest.fixture
def account(moto_endpoint: str, kms_association: None) -> MotoAccount:
    return fresh_account(moto_endpoint, REGION, "log-groups")


@pytest.fixture
def logs(account: MotoAccount, moto_endpoint: str) -> CloudWatchLogsClient:
    return account.session.client("logs", endpoint_url=moto_endpoint)


@pytest.fixture
def logs_key(account: MotoAccount, moto_endpoint: str) -> str:
    return account.session.client("kms", endpoint_url=moto_endpoint).create_key()["KeyMetadata"]["Arn"]


Provider = Callable[..., dict[str, Any]]


@pytest.fixture
def provider(account: MotoAccount, moto_endpoint: str, inbox: CloudFormationInbox) -> Provider:
    """Send one CloudFormation request to the provider function; return the response it PUT."""
    spec = function_spec(ROOT / "template.yaml", "ServiceLogGroupsFunction")
    environment = (
        function_environment(spec)
        | account.environment()
        | {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
    )

    def send(request_type: str, stack_id: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        event = {
            "RequestType": request_type,
            "RequestId": request_id,
            "ResponseURL": inbox.url(request_id),
            "ResourceType": "Custom::ServiceLogGroup",
            "LogicalResourceId": extra.pop("logical_id", "ApplicationLogGrouppacsbackend"),
            "StackId": stack_id,
            "ServiceToken": "arn:aws:lambda:ap-northeast-2:123456789012:function:pacs-logpipe-log-groups",
            "ResourceProperties": properties,
            **extra,
        }
        invocation = invoke(spec, event, echo=None, environment=environment, cold=True)
        assert invocation.result["ResponseHttpStatus"] == 200
        response = inbox.responses.pop(request_id)
        assert (response["RequestId"], response["StackId"]) == (request_id, stack_id)
        return response

    return send


def _stack_id() -> str:
    return f"arn:aws:cloudformation:{REGION}:123456789012:stack/pacs-logpipe/{uuid.uuid4()}"


def _properties(name: str, days: int, key: str, **tags: str) -> dict[str, Any]:
    """As CloudFormation sends them: every value a string."""
    tags = {"Project": "pacs-logpipe", "LogType": "application", "RetentionDays": str(days)} | tags
    return {
        "ServiceToken": "arn:aws:lambda:ap-northeast-2:123456789012:function:pacs-logpipe-log-groups",
        "ServiceTimeout": "300",
        "LogGroupName": name,
        "RetentionInDays": str(days),
        "KmsKeyId": key,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }


def _group(logs: CloudWatchLogsClient, name: str) -> dict[str, Any] | None:
    groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    found = [dict(group) for group in groups if group["logGroupName"] == name]
    return found[0] if found else None


def _tags(logs: CloudWatchLogsClient, name: str) -> dict[str, str]:
    group = _group(logs, name)
    assert group is not None
    return dict(logs.list_tags_for_resource(resourceArn=group["logGroupArn"])["tags"])


def _service_group(logs: CloudWatchLogsClient, name: str, *, days: int | None, tags: dict[str, str]) -> None:
    """What an ECS service's awslogs driver (or a person) made before the stack existed, with a log line in it."""
    logs.create_log_group(logGroupName=name, tags=tags)
    if days is not None:
        logs.put_retention_policy(logGroupName=name, retentionInDays=days)
    logs.create_log_stream(logGroupName=name, logStreamName="ecs/svc/task")
    logs.put_log_events(
        logGroupName=name,
        logStreamName="ecs/svc/task",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "Request completed duration=12"}],
    )


def _events(logs: CloudWatchLogsClient, name: str) -> list[str]:
    return [e["message"] for e in logs.get_log_events(logGroupName=name, logStreamName="ecs/svc/task")["events"]]


def test_an_absent_group_is_created_and_removed_again_by_a_rollback(
    provider: Provider, logs: CloudWatchLogsClient, logs_key: str
) -> None:
    name, stack = "/aws/ecs/pacs-backend/application", _stack_id()
    response = provider("Create", stack, _properties(name, 14, logs_key))
    assert response["Status"] == "SUCCESS", response
    assert response["PhysicalResourceId"] == name
    assert response["Data"]["Adopted"] == "false"
    group = _group(logs, name)
    assert group is not None
    assert (group["retentionInDays"], group["kmsKeyId"]) == (14, logs_key)
    assert _tags(logs, name) == {
        "Project": "pacs-logpipe",
        "LogType": "application",
        "RetentionDays": "14",
        CREATED_BY_TAG: stack,
    }
    # The deploy fails later on and rolls back: CloudFormation deletes what this operation created.
    rollback = provider("Delete", stack, _properties(name, 14, logs_key), PhysicalResourceId=name)
    assert rollback["Status"] == "SUCCESS"
    assert rollback["Reason"] == f"{name}: deleted"
    assert _group(logs, name) is None


def test_an_existing_group_is_adopted_and_given_back_by_a_rollback(
    provider: Provider, logs: CloudWatchLogsClient, logs_key: str
) -> None:
    name, stack = "/aws/ecs/keycloak/errors", _stack_id()
    _service_group(logs, name, days=3, tags={"Team": "identity"})
    response = provider("Create", stack, _properties(name, 90, logs_key, LogType="errors"))
    assert response["Status"] == "SUCCESS", response
    assert (response["PhysicalResourceId"], response["Data"]["Adopted"]) == (name, "true")
    group = _group(logs, name)
    assert group is not None
    assert (group["retentionInDays"], group["kmsKeyId"]) == (90, logs_key)
    tags = _tags(logs, name)
    assert tags["Team"] == "identity"  # the service's own tags stay
    assert (tags["LogType"], tags["RetentionDays"]) == ("errors", "90")
    assert (tags[ADOPTED_BY_TAG], tags[PREVIOUS_RETENTION_TAG], tags[PREVIOUS_KMS_TAG]) == (stack, "3", "none")
    assert CREATED_BY_TAG not in tags
    assert _events(logs, name) == ["Request completed duration=12"]

    rollback = provider("Delete", stack, _properties(name, 90, logs_key), PhysicalResourceId=name)
    assert (rollback["Status"], rollback["Reason"]) == ("SUCCESS", f"{name}: given back")
    group = _group(logs, name)
    assert group is not None, "a rollback never deletes a group the stack did not create"
    assert group["retentionInDays"] == 3
    assert "kmsKeyId" not in group
    assert not MARKERS & set(_tags(logs, name))
    assert _events(logs, name) == ["Request completed duration=12"]


def test_a_group_without_retention_or_with_another_key_gets_exactly_that_back(
    provider: Provider, logs: CloudWatchLogsClient, logs_key: str, account: MotoAccount, moto_endpoint: str
) -> None:
    name, stack = "/aws/ecs/api/llm", _stack_id()
    their_key = account.session.client("kms", endpoint_url=moto_endpoint).create_key()["KeyMetadata"]["Arn"]
    logs.create_log_group(logGroupName=name, kmsKeyId=their_key)
    assert provider("Create", stack, _properties(name, 60, logs_key))["Data"]["Adopted"] == "true"
    assert _tags(logs, name)[PREVIOUS_RETENTION_TAG] == "never"
    provider("Delete", stack, _properties(name, 60, logs_key), PhysicalResourceId=name)
    group = _group(logs, name)
    assert group is not None
    assert "retentionInDays" not in group
    assert group["kmsKeyId"] == their_key


def test_a_group_this_stack_neither_created_nor_adopted_is_never_touched(
    provider: Provider, logs: CloudWatchLogsClient, logs_key: str
) -> None:
    name = "/aws/ecs/atlantis/application"
    provider("Create", _stack_id(), _properties(name, 14, logs_key))  # another stack created it
    before = (_group(logs, name), _tags(logs, name))
    response = provider("Delete", _stack_id(), _properties(name, 14, logs_key), PhysicalResourceId=name)
    assert (response["Status"], response["Reason"]) == ("SUCCESS", f"{name}: not ours")
    assert (_group(logs, name), _tags(logs, name)) == before


def test_an_update_applies_retention_and_tags_and_keeps_the_services_own(
    provider: Provider, logs: CloudWatchLogsClient, logs_key: str
) -> None:
    name, stack = "/aws/ecs/pacs-backend/llm", _stack_id()
    _service_group(logs, name, days=30, tags={"Team": "ai"})
    old = _properties(name, 60, logs_key, LlmSync="enabled")
    provider("Create", stack, old)
    new = _properties(name, 90, logs_key)
    response = provider("Update", stack, new, PhysicalResourceId=name, OldResourceProperties=old)
    assert (response["Status"], response["PhysicalResourceId"], response["Data"]["Adopted"]) == (
        "SUCCESS",
        name,
        "true",
    )
    group = _group(logs, name)
    assert group is not None
    assert group["retentionInDays"] == 90
    tags = _tags(logs, name)
    assert tags["RetentionDays"] == "90"
    assert "LlmSync" not in tags  # dropped from the template
    assert tags["Team"] == "ai"
    assert tags[PREVIOUS_RETENTION_TAG] == "30"  # still what the service had before this stack


def test_bad_properties_fail_the_request_and_change_nothing(
    provider: Provider, logs: CloudWatchLogsClient, logs_key: str
) -> None:
    name, stack = "/aws/ecs/pacs-backend/errors", _stack_id()
    response = provider("Create", stack, _properties(name, 13, logs_key))
    assert response["Status"] == "FAILED"
    assert "RetentionInDays must be one of" in response["Reason"]
    assert _group(logs, name) is None
    outside = provider("Create", stack, _properties("/aws/lambda/someone-else", 14, logs_key))
    assert outside["Status"] == "FAILED"
    assert "service group under /aws/ecs/" in outside["Reason"]
    # CloudFormation rolls the failed resource back with the id it was given: nothing to undo.
    rollback = provider("Delete", stack, {}, PhysicalResourceId=response["PhysicalResourceId"])
    assert rollback["Status"] == "SUCCESS"


# ---------------------------------------------------------------------------
# The whole first deploy, driven by template.yaml's own resources
# ---------------------------------------------------------------------------
def _deployed_service_groups() -> dict[str, dict[str, Any]]:
    template = load_cfn_yaml((ROOT / "template.yaml").read_text(encoding="utf-8"))
    deployed = sam_transform(expand_language_extensions(template, DEPLOY_PARAMETERS), DEPLOY_PARAMETERS)
    groups = resources_of_type(deployed, "Custom::ServiceLogGroup")
    assert len(groups) == 3 * len(TWO_SERVICES)
    values = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    return {"groups": groups, "values": values | DEPLOY_PARAMETERS | PSEUDO_PARAMETERS}


def _as_cloudformation_sends(node: Any, values: dict[str, Any], logs_key: str) -> Any:
    """Resolve the properties the way CloudFormation hands them to the provider (every scalar a string)."""
    if isinstance(node, dict):
        if node == {"Fn::GetAtt": ["LogsKey", "Arn"]}:
            return logs_key
        if set(node) == {"Fn::GetAtt"}:
            return f"arn:aws:lambda:{REGION}:123456789012:function:{node['Fn::GetAtt'][0]}"
        if set(node) in ({"Ref"}, {"Fn::Sub"}):
            resolved = resolve(node, values)
            assert resolved is not node, f"unresolved {node}"
            return str(resolved)
        return {key: _as_cloudformation_sends(value, values, logs_key) for key, value in node.items()}
    if isinstance(node, list):
        return [_as_cloudformation_sends(item, values, logs_key) for item in node]
    return str(node)


def test_first_deploy_where_some_service_groups_exist_and_a_rollback_then_a_retry(
    provider: Provider, logs: CloudWatchLogsClient, logs_key: str
) -> None:
    template = _deployed_service_groups()
    requests = {
        logical_id: _as_cloudformation_sends(resource["Properties"], template["values"], logs_key)
        for logical_id, resource in template["groups"].items()
    }
    names = {logical_id: properties["LogGroupName"] for logical_id, properties in requests.items()}
    existing = {f"/aws/ecs/{TWO_SERVICES[0]}/application", f"/aws/ecs/{TWO_SERVICES[0]}/errors"}
    assert existing < set(names.values())
    for name in existing:  # pacs-backend already logs there
        _service_group(logs, name, days=7, tags={"Team": "pacs"})

    stack = _stack_id()
    for logical_id, properties in requests.items():
        response = provider("Create", stack, properties, logical_id=logical_id)
        assert response["Status"] == "SUCCESS", response
        assert response["Data"]["Adopted"] == ("true" if names[logical_id] in existing else "false")
    for logical_id, properties in requests.items():
        group = _group(logs, names[logical_id])
        assert group is not None
        assert group["retentionInDays"] == int(properties["RetentionInDays"]), logical_id
        assert group["kmsKeyId"] == logs_key, logical_id
        tags = _tags(logs, names[logical_id])
        for tag in properties["Tags"]:
            assert tags[tag["Key"]] == tag["Value"], (logical_id, tag)

    # A later resource fails: CloudFormation rolls the first deploy back.
    for logical_id, properties in requests.items():
        provider("Delete", stack, properties, logical_id=logical_id, PhysicalResourceId=names[logical_id])
    remaining = {name for name in names.values() if _group(logs, name) is not None}
    assert remaining == existing
    for name in existing:
        group = _group(logs, name)
        assert group is not None
        assert (group["retentionInDays"], "kmsKeyId" in group) == (7, False)
        assert _events(logs, name) == ["Request completed duration=12"]

    # Nothing is left in the way: the retry (a new stack id) goes through.
    retry = _stack_id()
    for logical_id, properties in requests.items():
        assert provider("Create", retry, properties, logical_id=logical_id)["Status"] == "SUCCESS"
    assert all(_group(logs, name) is not None for name in names.values())
