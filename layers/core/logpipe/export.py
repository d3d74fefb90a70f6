"""Scheduled export of aged log data to S3: a resumable, checkpointed state machine.

Each run is one step. CloudWatch Logs allows one active (PENDING/RUNNING) export task per
account, so a run first settles the task it started last time (COMPLETED advances the group's
checkpoint; FAILED/CANCELLED is counted and retried on a later run; PENDING/RUNNING means "come
back later"), then starts at most one new task: the oldest whole UTC day, over all selected log
groups, that is older than the configured minimum age.

Checkpoints live in SSM Parameter Store, one parameter per log group. Before a task is created its
deterministic name and window are written to the checkpoint (an intent), and its id right after;
a run that died in between finds the task again by name instead of exporting the window twice.

Objects land under ``<prefix>/<log group without leading slash>/<yyyy>/<mm>/<dd>/<task id>/...``,
so Athena can partition on the date path.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_logs.type_defs import ExportTaskTypeDef
    from mypy_boto3_ssm import SSMClient

    from logpipe.settings import ExportSettings

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Data can take up to 12 h to become exportable (CreateExportTask docs); settings enforce this floor too.
MIN_AGE_FLOOR_HOURS = 12
EXPORT_TAG = "ExportEnabled"
ACTIVE_STATUSES = frozenset({"PENDING", "RUNNING", "PENDING_CANCEL"})
FAILED_STATUSES = frozenset({"FAILED", "CANCELLED"})
DEFAULT_NAMESPACE = "LogPipe"
_SSM_SAFE = re.compile(r"^[A-Za-z0-9_.\-/]+$")
_SSM_MAX_LEVELS = 15


def _error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (modelled exceptions subclass it), else ''."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def floor_day(ms: int) -> int:
    """Start of the UTC day holding ``ms``."""
    return ms - ms % DAY_MS


def iso(ms: int | None) -> str | None:
    """Epoch ms as an ISO-8601 UTC string (for summaries and the CLI)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Window:
    """One whole UTC day of one log group: ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int

    @property
    def to_ms(self) -> int:
        """CreateExportTask's ``to``: events later than it are not exported, so stop 1 ms before the next day."""
        return self.end_ms - 1

    @property
    def day(self) -> str:
        """The window's UTC date as ``yyyy/mm/dd`` (the S3 partition path)."""
        return datetime.fromtimestamp(self.start_ms / 1000, tz=UTC).strftime("%Y/%m/%d")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"from": iso(self.start_ms), "to": iso(self.end_ms), "day": self.day}


def day_windows(start_ms: int, due_before_ms: int) -> list[Window]:
    """Every whole UTC day from the one holding ``start_ms`` that ends at or before ``due_before_ms``."""
    windows: list[Window] = []
    day = floor_day(start_ms)
    while day + DAY_MS <= due_before_ms:
        windows.append(Window(day, day + DAY_MS))
        day += DAY_MS
    return windows


def destination_prefix(prefix: str, log_group: str, window: Window) -> str:
    """``<prefix>/<log group without leading slash>/<yyyy>/<mm>/<dd>``."""
    return f"{prefix.strip('/')}/{log_group.lstrip('/')}/{window.day}"


def task_name_for(log_group: str, window: Window) -> str:
    """A deterministic task name, so an interrupted run can find the task it created."""
    digest = hashlib.sha256(log_group.encode()).hexdigest()[:12]
    return f"logpipe-{digest}-{window.start_ms}-{window.end_ms}"


@dataclass(slots=True)
class Checkpoint:
    """Per-group state: exported up to (exclusive), the in-flight task if any, consecutive failures."""

    exported_to_ms: int | None = None
    task_name: str | None = None
    task_id: str | None = None
    window_start_ms: int | None = None
    window_end_ms: int | None = None
    failures: int = 0

    @property
    def window(self) -> Window | None:
        """The in-flight window, if a task was started (or was about to be)."""
        if self.window_start_ms is None or self.window_end_ms is None:
            return None
        return Window(self.window_start_ms, self.window_end_ms)

    def begin(self, name: str, window: Window) -> None:
        """Record the intent to start a task for ``window``."""
        self.task_name, self.task_id = name, None
        self.window_start_ms, self.window_end_ms = window.start_ms, window.end_ms

    def clear_task(self) -> None:
        """Forget the in-flight task."""
        self.task_name = self.task_id = None
        self.window_start_ms = self.window_end_ms = None

    def to_json(self) -> str:
        """The stored form."""
        return orjson.dumps(
            {
                "version": 1,
                "exported_to_ms": self.exported_to_ms,
                "task_name": self.task_name,
                "task_id": self.task_id,
                "window_start_ms": self.window_start_ms,
                "window_end_ms": self.window_end_ms,
                "failures": self.failures,
            },
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """Parse the stored form."""
        data = orjson.loads(text)
        return cls(
            exported_to_ms=data.get("exported_to_ms"),
            task_name=data.get("task_name"),
            task_id=data.get("task_id"),
            window_start_ms=data.get("window_start_ms"),
            window_end_ms=data.get("window_end_ms"),
            failures=int(data.get("failures", 0)),
        )


class CheckpointStore(Protocol):
    """Where checkpoints are kept."""

    def load(self, log_group: str) -> Checkpoint:
        """The group's checkpoint, or an empty one."""
        ...

    def save(self, log_group: str, checkpoint: Checkpoint) -> None:
        """Store the group's checkpoint."""
        ...


class MemoryCheckpointStore:
    """Checkpoints in a dict, for unit tests."""

    def __init__(self) -> None:
        """Start empty."""
        self.data: dict[str, str] = {}

    def load(self, log_group: str) -> Checkpoint:
        """The group's checkpoint, or an empty one."""
        text = self.data.get(log_group)
        return Checkpoint() if text is None else Checkpoint.from_json(text)

    def save(self, log_group: str, checkpoint: Checkpoint) -> None:
        """Store the group's checkpoint."""
        self.data[log_group] = checkpoint.to_json()


def parameter_name(prefix: str, log_group: str) -> str:
    """The SSM parameter for a group: ``<prefix>/<group path>``, or a hash when the path is not a valid name."""
    path = log_group.strip("/")
    name = f"{prefix.rstrip('/')}/{path}"
    # SSM names allow fewer characters than log group names (no '#') and at most 15 levels.
    if not path or not _SSM_SAFE.match(path) or name.count("/") > _SSM_MAX_LEVELS or len(name) > 1000:
        name = f"{prefix.rstrip('/')}/sha256-{hashlib.sha256(log_group.encode()).hexdigest()}"
    return name


class SsmCheckpointStore:
    """One String parameter per log group under a prefix; the client is created on first use."""

    def __init__(self, prefix: str, client: SSMClient | None = None) -> None:
        """Remember the prefix; no AWS call happens here."""
        self.prefix = prefix
        self._client = client

    def _ssm(self) -> SSMClient:
        if self._client is None:
            import boto3

            self._client = boto3.client("ssm")
        return self._client

    def load(self, log_group: str) -> Checkpoint:
        """The group's checkpoint, or an empty one if the parameter does not exist yet."""
        client = self._ssm()
        try:
            response = client.get_parameter(Name=parameter_name(self.prefix, log_group))
        except client.exceptions.ParameterNotFound:
            return Checkpoint()
        return Checkpoint.from_json(response["Parameter"].get("Value", "{}"))

    def save(self, log_group: str, checkpoint: Checkpoint) -> None:
        """Overwrite the group's parameter."""
        self._ssm().put_parameter(
            Name=parameter_name(self.prefix, log_group),
            Value=checkpoint.to_json(),
            Type="String",
            Overwrite=True,
            Description=f"logpipe export checkpoint for {log_group}"[:1024],
        )


@dataclass(frozen=True, slots=True)
class LogGroup:
    """A log group selected for export."""

    name: str
    retention_days: int | None = None


@dataclass(slots=True)
class TaskView:
    """An export task as the exporter sees it."""

    task_id: str
    name: str
    log_group: str
    status: str
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "task_id": self.task_id,
            "name": self.name,
            "log_group": self.log_group,
            "status": self.status,
            "message": self.message,
        }


def _task_view(task: ExportTaskTypeDef) -> TaskView:
    status = task.get("status", {})
    return TaskView(
        task_id=task.get("taskId", ""),
        name=task.get("taskName", ""),
        log_group=task.get("logGroupName", ""),
        status=str(status.get("code", "")),
        message=status.get("message", ""),
    )


@dataclass(slots=True)
class GroupPlan:
    """What ``plan`` reports for one group (a dry run: nothing is written or started)."""

    log_group: str
    checkpoint_ms: int | None
    pending: list[Window]
    task: TaskView | None
    failures: int
    retention_days: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "log_group": self.log_group,
            "checkpoint": iso(self.checkpoint_ms),
            "pending_windows": [window.to_dict() for window in self.pending],
            "task": None if self.task is None else self.task.to_dict(),
            "consecutive_failures": self.failures,
            "retention_days": self.retention_days,
        }


@dataclass(slots=True)
class ExportSummary:
    """The outcome of one run."""

    action: str = "idle"  # idle | waiting | busy | started | limit_exceeded | start_failed
    groups: int = 0
    started: dict[str, Any] | None = None
    waiting_on: dict[str, Any] | None = None
    completed: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped_expired_days: int = 0
    lag_hours: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (the Lambda's return value)."""
        return {
            "action": self.action,
            "groups": self.groups,
            "started": self.started,
            "waiting_on": self.waiting_on,
            "completed": self.completed,
            "failed": self.failed,
            "skipped_expired_days": self.skipped_expired_days,
            "lag_hours": self.lag_hours,
        }


def _stdout_line(text: str) -> None:
    sys.stdout.write(text + "\n")


class Exporter:
    """Selects log groups, settles the in-flight task, and starts the next due day window."""

    def __init__(  # noqa: PLR0913 - explicit dependencies and knobs, all keyword-only
        self,
        logs: CloudWatchLogsClient,
        store: CheckpointStore,
        *,
        bucket: str,
        prefix: str = "exports",
        min_age_hours: int = 24,
        log_groups: Sequence[str] = (),
        environment: str = "dev",
        clock: Callable[[], float] = time.time,
        emit: Callable[[str], None] = _stdout_line,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        """Wire the clients and options; no AWS call happens here."""
        if min_age_hours < MIN_AGE_FLOOR_HOURS:
            msg = f"min_age_hours must be at least {MIN_AGE_FLOOR_HOURS} (data takes up to 12 h to be exportable)"
            raise ValueError(msg)
        self._logs = logs
        self._store = store
        self.bucket = bucket
        self.prefix = prefix
        self.min_age_ms = min_age_hours * HOUR_MS
        self.log_groups = tuple(log_groups)
        self.environment = environment
        self._clock = clock
        self._emit = emit
        self.namespace = namespace

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- reading CloudWatch Logs -------------------------------------------------------------

    def selected_groups(self) -> list[LogGroup]:
        """Groups tagged ``ExportEnabled=true`` plus those listed in settings, sorted by name."""
        listed = set(self.log_groups)
        selected: dict[str, LogGroup] = {}
        for page in self._logs.get_paginator("describe_log_groups").paginate():
            for group in page.get("logGroups", []):
                name = group.get("logGroupName", "")
                if not name:
                    continue
                retention = group.get("retentionInDays")
                if name in listed or self._tagged(group.get("logGroupArn") or group.get("arn", "").removesuffix(":*")):
                    selected[name] = LogGroup(name, retention)
        return [selected[name] for name in sorted(selected)]

    def _tagged(self, arn: str) -> bool:
        if not arn:
            return False
        tags = self._logs.list_tags_for_resource(resourceArn=arn).get("tags", {})
        return tags.get(EXPORT_TAG, "").strip().lower() == "true"

    def oldest_event_ms(self, group: LogGroup, now_ms: int) -> int | None:
        """The oldest retained event: the earliest stream's first event, but never before the retention cut."""
        oldest: int | None = None
        paginator = self._logs.get_paginator("describe_log_streams")
        for page in paginator.paginate(logGroupName=group.name):
            for stream in page.get("logStreams", []):
                first = stream.get("firstEventTimestamp")
                if first is not None and (oldest is None or first < oldest):
                    oldest = first
        if oldest is None:
            return None
        # firstEventTimestamp is not updated when retention deletes events, so clamp to the retention cut.
        if group.retention_days:
            oldest = max(oldest, now_ms - group.retention_days * DAY_MS)
        return oldest

    def _describe(self, task_id: str) -> TaskView | None:
        try:
            tasks = self._logs.describe_export_tasks(taskId=task_id).get("exportTasks", [])
        except Exception as error:
            if _error_code(error) == "ResourceNotFoundException":
                return None
            raise
        return _task_view(tasks[0]) if tasks else None

    def _all_tasks(self, status: str | None = None) -> Iterable[TaskView]:
        kwargs: dict[str, Any] = {} if status is None else {"statusCode": status}
        while True:
            response = self._logs.describe_export_tasks(**kwargs)
            for task in response.get("exportTasks", []):
                view = _task_view(task)
                # Filter here as well: the status filter is advisory for our purposes (moto ignores it).
                if status is None or view.status == status:
                    yield view
            token = response.get("nextToken")
            if not token:
                return
            kwargs["nextToken"] = token

    def active_tasks(self) -> list[TaskView]:
        """Every PENDING or RUNNING task in the account (ours or anyone's)."""
        return [task for status in ("PENDING", "RUNNING") for task in self._all_tasks(status)]

    # --- the state machine ---------------------------------------------------------------------

    def _settle(self, group: LogGroup, checkpoint: Checkpoint, summary: ExportSummary) -> TaskView | None:
        """Advance, fail or keep the group's in-flight task; return it if it is still active."""
        window = checkpoint.window
        if checkpoint.task_name is None or window is None:
            return None
        if checkpoint.task_id is None:
            # The last run recorded its intent but may have died before or after CreateExportTask.
            found = next((task for task in self._all_tasks() if task.name == checkpoint.task_name), None)
            if found is None:
                checkpoint.clear_task()
                self._store.save(group.name, checkpoint)
                return None
            checkpoint.task_id = found.task_id
            self._store.save(group.name, checkpoint)
        task = self._describe(checkpoint.task_id)
        status = "LOST" if task is None else task.status
        if status in ACTIVE_STATUSES and task is not None:
            return task
        record = {"log_group": group.name, "task_id": checkpoint.task_id, **window.to_dict()}
        if status == "COMPLETED":
            checkpoint.exported_to_ms = max(checkpoint.exported_to_ms or 0, window.end_ms)
            checkpoint.failures = 0
            summary.completed.append(record)
        else:
            # FAILED, CANCELLED or vanished: the window stays pending and is retried on a later run.
            checkpoint.failures += 1
            summary.failed.append({**record, "status": status, "message": "" if task is None else task.message})
        checkpoint.clear_task()
        self._store.save(group.name, checkpoint)
        return None

    def _next_start(self, group: LogGroup, checkpoint: Checkpoint, now_ms: int) -> tuple[int | None, int]:
        """Where the group's next window starts, and how many expired days were skipped to get there."""
        start = checkpoint.exported_to_ms
        if start is None:
            start = self.oldest_event_ms(group, now_ms)
            if start is None:
                return None, 0
            return floor_day(start), 0
        if group.retention_days:
            # Days wholly past retention hold nothing any more; exporting them would only waste tasks.
            retained = floor_day(now_ms - group.retention_days * DAY_MS)
            if start < retained:
                return retained, (retained - start) // DAY_MS
        return start, 0

    def run(self) -> ExportSummary:
        """One step: settle the in-flight task, then start at most one task for the oldest due window."""
        now_ms = self._now_ms()
        summary = ExportSummary()
        groups = self.selected_groups()
        summary.groups = len(groups)
        checkpoints = {group.name: self._store.load(group.name) for group in groups}
        waiting: TaskView | None = None
        for group in groups:
            active = self._settle(group, checkpoints[group.name], summary)
            waiting = waiting or active
        starts: dict[str, int | None] = {}
        for group in groups:
            start, skipped = self._next_start(group, checkpoints[group.name], now_ms)
            starts[group.name] = start
            summary.skipped_expired_days += skipped
        self._publish(groups, checkpoints, starts, summary, now_ms)
        if waiting is not None:
            summary.action, summary.waiting_on = "waiting", waiting.to_dict()
            return summary
        foreign = self.active_tasks()
        if foreign:
            # Someone else's task holds the account's single slot; starting ours would only be refused.
            summary.action, summary.waiting_on = "busy", foreign[0].to_dict()
            return summary
        failed_now = {record["log_group"] for record in summary.failed}
        due_before = now_ms - self.min_age_ms
        candidates = sorted(
            (start, group.name)
            for group in groups
            if (start := starts[group.name]) is not None
            and group.name not in failed_now
            and floor_day(start) + DAY_MS <= due_before
        )
        if not candidates:
            summary.action = "idle"
            return summary
        start, name = candidates[0]
        self._start(name, Window(floor_day(start), floor_day(start) + DAY_MS), checkpoints[name], summary)
        return summary

    def _start(self, log_group: str, window: Window, checkpoint: Checkpoint, summary: ExportSummary) -> None:
        name = task_name_for(log_group, window)
        checkpoint.begin(name, window)
        self._store.save(log_group, checkpoint)
        destination = destination_prefix(self.prefix, log_group, window)
        try:
            response = self._logs.create_export_task(
                taskName=name,
                logGroupName=log_group,
                fromTime=window.start_ms,
                to=window.to_ms,
                destination=self.bucket,
                destinationPrefix=destination,
            )
        except Exception as error:  # botocore raises modelled and unmodelled errors; both leave no task
            code = _error_code(error)
            if not code:
                raise
            checkpoint.clear_task()
            record = {"log_group": log_group, "error": code, **window.to_dict()}
            if code == "LimitExceededException":
                # Another task took the account's slot between our check and our call: try next run.
                summary.action, summary.waiting_on = "limit_exceeded", record
            else:
                checkpoint.failures += 1
                summary.action = "start_failed"
                summary.failed.append({**record, "status": "START_FAILED", "message": str(error)})
            self._store.save(log_group, checkpoint)
            return
        checkpoint.task_id = response["taskId"]
        self._store.save(log_group, checkpoint)
        summary.action = "started"
        summary.started = {
            "log_group": log_group,
            "task_id": response["taskId"],
            "task_name": name,
            "destination": f"s3://{self.bucket}/{destination}/",
            **window.to_dict(),
        }

    def plan(self) -> list[GroupPlan]:
        """Per group: checkpoint, pending windows and the in-flight task. Reads only; writes nothing."""
        now_ms = self._now_ms()
        plans: list[GroupPlan] = []
        for group in self.selected_groups():
            checkpoint = self._store.load(group.name)
            task = self._describe(checkpoint.task_id) if checkpoint.task_id else None
            start, _ = self._next_start(group, checkpoint, now_ms)
            pending = [] if start is None else day_windows(start, now_ms - self.min_age_ms)
            if checkpoint.window is not None and task is not None and task.status in ACTIVE_STATUSES:
                pending = [window for window in pending if window != checkpoint.window]
            plans.append(
                GroupPlan(
                    group.name, checkpoint.exported_to_ms, pending, task, checkpoint.failures, group.retention_days
                )
            )
        return plans

    # --- self-metrics --------------------------------------------------------------------------

    def _publish(
        self,
        groups: Sequence[LogGroup],
        checkpoints: dict[str, Checkpoint],
        starts: dict[str, int | None],
        summary: ExportSummary,
        now_ms: int,
    ) -> None:
        """One EMF document per group (lag, retention headroom, failures) and one for the run's counters."""
        for group in groups:
            checkpoint = checkpoints[group.name]
            # Never exported: lag counts from the oldest retained event, i.e. what retention will delete first.
            reference = checkpoint.exported_to_ms if checkpoint.exported_to_ms is not None else starts[group.name]
            if reference is None:
                continue
            lag = round((now_ms - reference) / HOUR_MS, 2)
            summary.lag_hours[group.name] = lag
            values: dict[str, float] = {"ExportLagHours": lag, "ExportConsecutiveFailures": checkpoint.failures}
            if group.retention_days:
                values["ExportRetentionHeadroomHours"] = round(group.retention_days * 24 - lag, 2)
            self._emit_emf({"Environment": self.environment, "LogGroup": group.name}, values, now_ms)
        counters: dict[str, float] = {
            "ExportTasksCompleted": len(summary.completed),
            "ExportTasksFailed": len(summary.failed),
            "ExportExpiredDaysSkipped": summary.skipped_expired_days,
        }
        self._emit_emf({"Environment": self.environment}, counters, now_ms)

    def _emit_emf(self, dimensions: dict[str, str], values: dict[str, float], now_ms: int) -> None:
        from logpipe.health import powertools_document

        self._emit(orjson.dumps(powertools_document(self.namespace, dimensions, values, timestamp_ms=now_ms)).decode())


def build_exporter(
    settings: ExportSettings,
    *,
    logs: CloudWatchLogsClient | None = None,
    ssm: SSMClient | None = None,
    clock: Callable[[], float] = time.time,
    emit: Callable[[str], None] = _stdout_line,
) -> Exporter:
    """Settings -> clients (created here, lazily imported) -> exporter."""
    if not settings.bucket:
        from logpipe.settings import SettingsError

        msg = "LOGPIPE_EXPORT_BUCKET is required for the exporter"
        raise SettingsError(msg)
    if logs is None:
        import boto3

        logs = boto3.client("logs", region_name=settings.region)
    if ssm is None:
        import boto3

        ssm = boto3.client("ssm", region_name=settings.region)
    return Exporter(
        logs,
        SsmCheckpointStore(settings.checkpoint_parameter_prefix, ssm),
        bucket=settings.bucket,
        prefix=settings.prefix,
        min_age_hours=settings.min_age_hours,
        log_groups=settings.log_groups,
        environment=settings.environment,
        clock=clock,
        emit=emit,
    )
