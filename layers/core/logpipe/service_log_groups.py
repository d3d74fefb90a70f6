"""Create-or-adopt a service log group: the provider behind the template's ``Custom::ServiceLogGroup``.

The per-service groups ``/aws/ecs/<svc>/application|errors|llm`` have fixed names, and in a real
account the ECS services already write to them: an ``AWS::Logs::LogGroup`` of that name fails the
first deploy ("already exists"). This provider creates a group that is absent, and adopts one that
exists; either way the group ends with the template's retention, the logs KMS key and the tags.

Who owns what is written on the group itself, as tags, so it survives anything but the group:
``logpipe:created-by-stack`` (the stack id) on a group this provider created, or
``logpipe:adopted-by-stack`` plus the retention and key it had before, on one it adopted.

CloudFormation only sends Delete when the operation that created the resource rolls back (the
template gives these resources ``DeletionPolicy: RetainExceptOnCreate``, so deleting the stack or
dropping a service keeps every group and its data). Then a group this stack created is deleted, so
a failed first deploy leaves nothing in the way of the retry; a group it adopted gets its previous
retention and key back and stays; any other group is never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

CREATED_BY_TAG = "logpipe:created-by-stack"
ADOPTED_BY_TAG = "logpipe:adopted-by-stack"
PREVIOUS_RETENTION_TAG = "logpipe:adopted-retention-days"
PREVIOUS_KMS_TAG = "logpipe:adopted-kms-key"
_MARKER_TAGS = frozenset({CREATED_BY_TAG, ADOPTED_BY_TAG, PREVIOUS_RETENTION_TAG, PREVIOUS_KMS_TAG})
_NEVER = "never"  # no retention policy: kept forever
_NONE = "none"  # no KMS key
# Values CloudWatch Logs accepts for PutRetentionPolicy.
RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
SERVICE_GROUP_PREFIX = "/aws/ecs/"


class LogGroupSpecError(ValueError):
    """The custom resource's properties do not describe a service log group this provider may manage."""


@dataclass(frozen=True, slots=True)
class LogGroupSpec:
    """What the template wants of one group: its name, retention, logs key and tags."""

    name: str
    retention_days: int
    kms_key_arn: str
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> LogGroupSpec:
        """Validate the resource properties (CloudFormation passes every value as a string)."""
        name = str(properties.get("LogGroupName", ""))
        if not name.startswith(SERVICE_GROUP_PREFIX) or len(name) > 512:
            msg = f"LogGroupName must be a service group under {SERVICE_GROUP_PREFIX}, got {name!r}"
            raise LogGroupSpecError(msg)
        raw_days = str(properties.get("RetentionInDays", ""))
        if not raw_days.isdigit() or int(raw_days) not in RETENTION_DAYS:
            msg = f"RetentionInDays must be one of {sorted(RETENTION_DAYS)}, got {raw_days!r}"
            raise LogGroupSpecError(msg)
        kms_key_arn = str(properties.get("KmsKeyId", ""))
        if not kms_key_arn.startswith("arn:") or ":kms:" not in kms_key_arn:
            msg = f"KmsKeyId must be a KMS key ARN, got {kms_key_arn!r}"
            raise LogGroupSpecError(msg)
        tags = properties.get("Tags", [])
        if not isinstance(tags, Sequence) or not all(
            isinstance(tag, Mapping) and "Key" in tag and "Value" in tag for tag in tags
        ):
            msg = "Tags must be a list of {Key, Value}"
            raise LogGroupSpecError(msg)
        by_key = {str(tag["Key"]): str(tag["Value"]) for tag in tags}
        reserved = sorted(set(by_key) & _MARKER_TAGS)
        if reserved:
            msg = f"Tags must not set the provider's own tags {reserved}"
            raise LogGroupSpecError(msg)
        return cls(name, int(raw_days), kms_key_arn, by_key)


@dataclass(frozen=True, slots=True)
class ExistingGroup:
    """A group as CloudWatch Logs describes it."""

    name: str
    arn: str
    retention_days: int | None
    kms_key_arn: str | None


@dataclass(frozen=True, slots=True)
class Provisioned:
    """The outcome of a Create or Update: the physical id (the group's name) and whether it was adopted."""

    name: str
    arn: str
    adopted: bool

    def data(self) -> dict[str, str]:
        """The custom resource's attributes (``!GetAtt <Group>.Arn`` and so on)."""
        return {"LogGroupName": self.name, "Arn": self.arn, "Adopted": "true" if self.adopted else "false"}


class ServiceLogGroups:
    """Creates, adopts, updates and rolls back service log groups through one CloudWatch Logs client."""

    def __init__(self, logs: CloudWatchLogsClient | None = None) -> None:
        """The client is created on first use."""
        self._client = logs

    def _logs(self) -> CloudWatchLogsClient:
        if self._client is None:
            import boto3

            # A session of its own: the credentials and endpoint of this environment, nothing cached elsewhere.
            self._client = boto3.session.Session().client("logs")
        return self._client

    def describe(self, name: str) -> ExistingGroup | None:
        """The group of exactly this name, or None."""
        paginator = self._logs().get_paginator("describe_log_groups")
        for page in paginator.paginate(logGroupNamePrefix=name):
            for group in page.get("logGroups", []):
                if group.get("logGroupName") == name:
                    arn = group.get("logGroupArn") or str(group.get("arn", "")).removesuffix(":*")
                    return ExistingGroup(name, arn, group.get("retentionInDays"), group.get("kmsKeyId"))
        return None

    def create_or_adopt(self, spec: LogGroupSpec, stack_id: str) -> Provisioned:
        """Create the group, or adopt it when it exists; either way apply retention, key and tags."""
        existing = self.describe(spec.name)
        if existing is None:
            logs = self._logs()
            try:
                logs.create_log_group(
                    logGroupName=spec.name, kmsKeyId=spec.kms_key_arn, tags={**spec.tags, CREATED_BY_TAG: stack_id}
                )
            except logs.exceptions.ResourceAlreadyExistsException:
                pass  # created meanwhile (the service's first log line): adopt it below
            else:
                logs.put_retention_policy(logGroupName=spec.name, retentionInDays=spec.retention_days)
                created = self.describe(spec.name)
                return Provisioned(spec.name, created.arn if created else "", adopted=False)
            existing = self.describe(spec.name)
            if existing is None:
                msg = f"{spec.name} was reported to exist and then could not be found"
                raise LogGroupSpecError(msg)
        tags = self._tags(existing.arn)
        if tags.get(CREATED_BY_TAG) == stack_id:
            # An earlier attempt of this very request created it (a retried invocation): still ours.
            self._logs().tag_resource(resourceArn=existing.arn, tags=spec.tags)
            self._apply(existing, spec)
            return Provisioned(spec.name, existing.arn, adopted=False)
        self._adopt(existing, tags, spec, stack_id)
        return Provisioned(spec.name, existing.arn, adopted=True)

    def _adopt(self, existing: ExistingGroup, tags: Mapping[str, str], spec: LogGroupSpec, stack_id: str) -> None:
        logs = self._logs()
        markers: dict[str, str] = {}
        if tags.get(ADOPTED_BY_TAG) != stack_id:
            # What to give back if this stack's creation rolls back (a re-adoption keeps the first record).
            markers = {
                ADOPTED_BY_TAG: stack_id,
                PREVIOUS_RETENTION_TAG: str(existing.retention_days) if existing.retention_days else _NEVER,
                PREVIOUS_KMS_TAG: existing.kms_key_arn or _NONE,
            }
        logs.tag_resource(resourceArn=existing.arn, tags={**spec.tags, **markers})
        stale = tags.get(CREATED_BY_TAG)
        if stale is not None and stale != stack_id:
            # Created by an earlier stack (deleted since, the group retained): this stack did not create it.
            logs.untag_resource(resourceArn=existing.arn, tagKeys=[CREATED_BY_TAG])
        self._apply(existing, spec)

    def update(self, spec: LogGroupSpec, previous: LogGroupSpec | None, stack_id: str) -> Provisioned:
        """Apply changed retention, key and tags (tags the template dropped are removed; others' stay)."""
        existing = self.describe(spec.name)
        if previous is None or previous.name != spec.name or existing is None:
            return self.create_or_adopt(spec, stack_id)
        logs = self._logs()
        logs.tag_resource(resourceArn=existing.arn, tags=spec.tags)
        dropped = sorted(set(previous.tags) - set(spec.tags))
        if dropped:
            logs.untag_resource(resourceArn=existing.arn, tagKeys=dropped)
        self._apply(existing, spec)
        tags = self._tags(existing.arn)
        return Provisioned(spec.name, existing.arn, adopted=tags.get(CREATED_BY_TAG) != stack_id)

    def _apply(self, existing: ExistingGroup, spec: LogGroupSpec) -> None:
        logs = self._logs()
        if existing.retention_days != spec.retention_days:
            logs.put_retention_policy(logGroupName=spec.name, retentionInDays=spec.retention_days)
        if existing.kms_key_arn != spec.kms_key_arn:
            logs.associate_kms_key(logGroupName=spec.name, kmsKeyId=spec.kms_key_arn)

    def roll_back(self, name: str, stack_id: str) -> str:
        """Undo this stack's creation of the resource: delete what it created, give back what it adopted."""
        existing = self.describe(name)
        if existing is None:
            return "absent"
        tags = self._tags(existing.arn)
        logs = self._logs()
        if tags.get(CREATED_BY_TAG) == stack_id:
            logs.delete_log_group(logGroupName=name)
            return "deleted"
        if tags.get(ADOPTED_BY_TAG) != stack_id:
            return "not ours"  # never touch a group this stack neither created nor adopted
        previous_days = tags.get(PREVIOUS_RETENTION_TAG, _NEVER)
        if previous_days.isdigit():
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(previous_days))
        elif existing.retention_days is not None:
            logs.delete_retention_policy(logGroupName=name)
        previous_key = tags.get(PREVIOUS_KMS_TAG, _NONE)
        if previous_key == _NONE and existing.kms_key_arn:
            logs.disassociate_kms_key(logGroupName=name)
        elif previous_key not in {_NONE, existing.kms_key_arn}:
            logs.associate_kms_key(logGroupName=name, kmsKeyId=previous_key)
        logs.untag_resource(resourceArn=existing.arn, tagKeys=sorted(_MARKER_TAGS & set(tags)))
        return "given back"

    def _tags(self, arn: str) -> dict[str, str]:
        return dict(self._logs().list_tags_for_resource(resourceArn=arn).get("tags", {}))


@dataclass(frozen=True, slots=True)
class CustomResourceResponse:
    """What the provider tells CloudFormation about one request."""

    success: bool
    physical_id: str
    reason: str = ""
    data: dict[str, str] = field(default_factory=dict)

    def document(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The response object CloudFormation reads from the request's pre-signed URL (at most 4096 bytes)."""
        return {
            "Status": "SUCCESS" if self.success else "FAILED",
            "Reason": self.reason[:1000] or "ok",
            "PhysicalResourceId": self.physical_id,
            "StackId": event.get("StackId", ""),
            "RequestId": event.get("RequestId", ""),
            "LogicalResourceId": event.get("LogicalResourceId", ""),
            "Data": self.data,
        }


def answer(event: Mapping[str, Any], groups: ServiceLogGroups) -> CustomResourceResponse:
    """Carry out one CloudFormation request for a ``Custom::ServiceLogGroup``; never raises."""
    from aws_lambda_powertools.utilities.data_classes import CloudFormationCustomResourceEvent
    from botocore.exceptions import BotoCoreError, ClientError

    request = CloudFormationCustomResourceEvent(dict(event))
    stack_id = request.stack_id
    # A Create that fails before naming a group answers with a placeholder: its rollback Delete is a no-op.
    physical_id = request.get("PhysicalResourceId") or f"invalid-{request.logical_resource_id}"
    try:
        if request.request_type == "Delete":
            if not physical_id.startswith(SERVICE_GROUP_PREFIX):
                return CustomResourceResponse(success=True, physical_id=physical_id, reason="nothing was created")
            outcome = groups.roll_back(physical_id, stack_id)
            return CustomResourceResponse(success=True, physical_id=physical_id, reason=f"{physical_id}: {outcome}")
        spec = LogGroupSpec.from_properties(request.resource_properties)
        physical_id = spec.name
        if request.request_type == "Create":
            provisioned = groups.create_or_adopt(spec, stack_id)
        else:
            try:
                previous: LogGroupSpec | None = LogGroupSpec.from_properties(request.old_resource_properties)
            except LogGroupSpecError:
                previous = None
            provisioned = groups.update(spec, previous, stack_id)
    except (LogGroupSpecError, ClientError, BotoCoreError) as error:
        return CustomResourceResponse(success=False, physical_id=physical_id, reason=f"{type(error).__name__}: {error}")
    except Exception as error:  # noqa: BLE001 - CloudFormation must get an answer, or it waits for the timeout
        return CustomResourceResponse(
            success=False, physical_id=physical_id, reason=f"unexpected {type(error).__name__}"
        )
    verb = "adopted" if provisioned.adopted else "created" if request.request_type == "Create" else "updated"
    return CustomResourceResponse(
        success=True, physical_id=provisioned.name, reason=f"{provisioned.name}: {verb}", data=provisioned.data()
    )


def send_response(event: Mapping[str, Any], response: CustomResourceResponse, *, attempts: int = 3) -> int:
    """PUT the response to the request's pre-signed S3 URL; return the HTTP status."""
    import orjson
    import urllib3

    body = orjson.dumps(response.document(event))
    # The pre-signed URL was signed without a content type: send an empty one.
    reply = urllib3.PoolManager().request(
        "PUT",
        str(event["ResponseURL"]),
        body=body,
        headers={"Content-Type": "", "Content-Length": str(len(body))},
        retries=urllib3.Retry(total=attempts, backoff_factor=1.0, status_forcelist=(500, 502, 503, 504)),
        timeout=urllib3.Timeout(connect=5.0, read=15.0),
    )
    return int(reply.status)
