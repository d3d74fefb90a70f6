"""The S3 exporter against a real moto server: selection, day windows, checkpoints in SSM, objects in S3.

moto runs CreateExportTask synchronously (every task is COMPLETED at once, objects already written)
and does not enforce the one-active-task-per-account limit. So the normal path runs against moto
unchanged, and only the cases moto cannot produce (a task still RUNNING, LimitExceededException, a
FAILED task, somebody else's active task) go through ``ScriptedLogs``: a thin wrapper that forwards
every call to the real moto client and overrides just those outcomes.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, cast

import boto3
import pytest
from botocore.exceptions import ClientError

from logpipe.export import DAY_MS, HOUR_MS, Checkpoint, Exporter, SsmCheckpointStore, parameter_name
from moto_accounts import fresh_account

pytestmark = pytest.mark.integration

REGION: Final = "ap-northeast-2"

APP = "/aws/ecs/pacs-backend/application"
ERRORS = "/aws/ecs/pacs-backend/errors"
RDS = "/aws/rds/pacs-db/error"
ALB = "/aws/alb/pacs-alb/access-logs"
EMPTY = "/aws/lambda/pacs-thumbnailer"


class Clock:
    """A clock the test moves forward to simulate days passing."""

    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, days: float) -> None:
        self.now_s += days * 86_400


@dataclass
class Env:
    """Clients for one test, in a moto account of its own."""

    endpoint: str
    region: str
    credentials: tuple[str, str, str]
    bucket: str
    prefix: str
    logs: Any
    ssm: Any
    s3: Any
    today_ms: int
    clock: Clock
    emitted: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[tuple[str, int], set[str]] = field(default_factory=dict)

    def exporter(self, logs: Any = None, log_groups: tuple[str, ...] = ()) -> Exporter:
        return Exporter(
            cast("Any", logs or self.logs),
            SsmCheckpointStore(self.prefix, self.ssm),
            bucket=self.bucket,
            min_age_hours=24,
            log_groups=log_groups,
            environment="test",
            clock=self.clock,
            emit=lambda line: self.emitted.append(json.loads(line)),
        )

    def group(
        self, name: str, days_back: range, *, tags: dict[str, str] | None = None, retention: int | None = None
    ) -> None:
        """Create a group with two streams and events on each of the given days (days before today, UTC)."""
        self.logs.create_log_group(logGroupName=name, **({"tags": tags} if tags else {}))
        if retention:
            self.logs.put_retention_policy(logGroupName=name, retentionInDays=retention)
        for stream in ("web-1", "web-2"):
            self.logs.create_log_stream(logGroupName=name, logStreamName=stream)
            events = []
            for back in sorted(days_back, reverse=True):
                day = self.today_ms - back * DAY_MS
                # The first and last millisecond of the day: the windows must neither drop nor share them.
                for offset in (0, 6 * HOUR_MS, DAY_MS - 1):
                    message = f"{name} {stream} day-{back} +{offset}"
                    events.append({"timestamp": day + offset, "message": message})
                    self.messages.setdefault((name, day), set()).add(message)
            self.logs.put_log_events(logGroupName=name, logStreamName=stream, logEvents=events)

    def checkpoint(self, name: str) -> Checkpoint:
        return SsmCheckpointStore(self.prefix, self.ssm).load(name)

    def task_count(self) -> int:
        return len(self.logs.describe_export_tasks()["exportTasks"])

    def exported(self, name: str, day_ms: int) -> set[str]:
        """Every message in the objects under the group's day prefix."""
        day = time.strftime("%Y/%m/%d", time.gmtime(day_ms / 1000))
        prefix = f"exports/{name.lstrip('/')}/{day}/"
        found: list[str] = []
        for obj in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", []):
            body = gzip.decompress(self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()).decode()
            # moto writes "<timestamp> <message>" lines, like the real export.
            found.extend(line.split(" ", 1)[1] for line in body.splitlines() if line)
        assert len(found) == len(set(found)), f"duplicated events under {prefix}"
        return set(found)


@pytest.fixture
def env(moto_endpoint: str) -> Env:
    """A fresh moto account (via STS AssumeRole), so tests sharing the session's server never see each other's groups."""
    account = fresh_account(moto_endpoint, REGION, "export-test")
    session = account.session
    now_s = time.time()
    bucket = f"logpipe-export-{uuid.uuid4().hex[:12]}"
    s3 = session.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    return Env(
        endpoint=moto_endpoint,
        region=REGION,
        credentials=(account.access_key_id, account.secret_access_key, account.session_token),
        bucket=bucket,
        prefix=f"/logpipe-test/{uuid.uuid4().hex[:8]}",
        logs=session.client("logs", endpoint_url=moto_endpoint),
        ssm=session.client("ssm", endpoint_url=moto_endpoint),
        s3=s3,
        today_ms=int(now_s * 1000) // DAY_MS * DAY_MS,
        clock=Clock(now_s),
    )


def run_until_idle(exporter: Exporter, env: Env, limit: int = 60) -> list[dict[str, Any]]:
    """Run the exporter until it reports idle; check that no run starts more than one task."""
    summaries: list[dict[str, Any]] = []
    for _ in range(limit):
        before = env.task_count()
        summary = exporter.run().to_dict()
        assert env.task_count() - before <= 1
        summaries.append(summary)
        if summary["action"] == "idle":
            return summaries
    pytest.fail(f"exporter not idle after {limit} runs: {summaries[-1]}")


def started(summaries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(s["started"]["log_group"], s["started"]["from"]) for s in summaries if s["started"]]


def iso_day(ms: int) -> str:
    return time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(ms / 1000))


def test_exports_every_due_day_in_order_once_and_resumes_as_days_pass(env: Env) -> None:
    d = env.today_ms
    env.group(APP, range(1, 6), tags={"ExportEnabled": "true"})  # days D-5 .. D-1
    env.group(ERRORS, range(1, 4), tags={"ExportEnabled": "True"}, retention=90)  # D-3 .. D-1
    env.group(RDS, range(1, 6), retention=3)  # untagged but listed; retention cuts D-5 and D-4
    env.group(ALB, range(1, 6), tags={"ExportEnabled": "false"})
    env.logs.create_log_group(logGroupName=EMPTY, tags={"ExportEnabled": "true"})
    exporter = env.exporter(log_groups=(RDS,))

    summaries = run_until_idle(exporter, env)

    # D-1 is not yet 24 h old; D-2 is. The RDS group starts at its retention cut, not its oldest stream event.
    expected = {APP: [5, 4, 3, 2], ERRORS: [3, 2], RDS: [3, 2]}
    order = started(summaries)
    assert sorted(order) == sorted((g, iso_day(d - k * DAY_MS)) for g, ks in expected.items() for k in ks)
    assert [when for _, when in order] == sorted(when for _, when in order)  # oldest window first, across groups
    for group, ks in expected.items():
        assert [when for g, when in order if g == group] == [iso_day(d - k * DAY_MS) for k in ks]
        assert env.checkpoint(group).exported_to_ms == d - DAY_MS
        assert env.checkpoint(group).task_id is None
        for k in ks:
            assert env.exported(group, d - k * DAY_MS) == env.messages[(group, d - k * DAY_MS)]
        assert env.exported(group, d - DAY_MS) == set()
    assert env.exported(RDS, d - 4 * DAY_MS) == set()
    # Each run settles the previous task before starting the next; the final run settles the last one and idles.
    assert all(len(s["completed"]) == 1 for s in summaries[1:])
    assert summaries[0]["completed"] == []
    with pytest.raises(ClientError):
        env.ssm.get_parameter(Name=parameter_name(env.prefix, ALB))
    keys = [o["Key"] for o in env.s3.list_objects_v2(Bucket=env.bucket).get("Contents", [])]
    assert all(
        k.startswith(("exports/aws/ecs/pacs-backend/", "exports/aws/rds/pacs-db/error/"))
        for k in keys
        if k != "aws-logs-write-test"
    )

    # A second pass exports nothing.
    tasks = env.task_count()
    again = exporter.run().to_dict()
    assert again["action"] == "idle"
    assert again["started"] is None
    assert env.task_count() == tasks

    # A day later, D-1 is due for every group, once each.
    env.clock.advance(1)
    later = run_until_idle(exporter, env)
    assert sorted(started(later)) == sorted((g, iso_day(d - DAY_MS)) for g in expected)
    for group in expected:
        assert env.checkpoint(group).exported_to_ms == d
        assert env.exported(group, d - DAY_MS) == env.messages[(group, d - DAY_MS)]


def value(document: dict[str, Any], name: str) -> float:
    """The one value of a metric in an EMF document (Powertools writes every metric as a value array)."""
    values = document[name]
    if isinstance(values, list):
        (single,) = values
        return float(single)
    return float(values)


def test_publishes_export_lag_per_group(env: Env) -> None:
    env.group(APP, range(1, 4), tags={"ExportEnabled": "true"}, retention=14)
    exporter = env.exporter()

    exporter.run()  # first run: no checkpoint yet, lag counts from the oldest retained event (D-3)
    first = [doc for doc in env.emitted if doc.get("LogGroup") == APP][-1]
    now_ms = int(env.clock() * 1000)
    assert value(first, "ExportLagHours") == pytest.approx((now_ms - (env.today_ms - 3 * DAY_MS)) / HOUR_MS, abs=0.01)
    assert value(first, "ExportRetentionHeadroomHours") == pytest.approx(
        14 * 24 - value(first, "ExportLagHours"), abs=0.01
    )
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "LogPipe"
    assert directive["Dimensions"] == [["Environment", "LogGroup"]]
    assert {m["Name"] for m in directive["Metrics"]} == {
        "ExportLagHours",
        "ExportRetentionHeadroomHours",
        "ExportConsecutiveFailures",
    }

    run_until_idle(exporter, env)
    last = [doc for doc in env.emitted if doc.get("LogGroup") == APP][-1]
    assert value(last, "ExportLagHours") == pytest.approx((now_ms - (env.today_ms - DAY_MS)) / HOUR_MS, abs=0.01)
    counters = [doc for doc in env.emitted if "ExportTasksCompleted" in doc]
    assert sum(value(doc, "ExportTasksCompleted") for doc in counters) == 2


class ScriptedLogs:
    """The real moto logs client with export-task outcomes moto cannot produce scripted on top (see module doc)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.hold: str | None = None  # status reported for tasks created while set (e.g. RUNNING, FAILED)
        self.statuses: dict[str, str] = {}
        self.limit_exceeded = 0  # how many next create calls are refused
        self.foreign: list[dict[str, Any]] = []  # other tools' tasks in the account
        self.created: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def create_export_task(self, **kwargs: Any) -> Any:
        if self.limit_exceeded:
            self.limit_exceeded -= 1
            error = {"Error": {"Code": "LimitExceededException", "Message": "Resource limit exceeded."}}
            raise ClientError(cast("Any", error), "CreateExportTask")
        response = self.real.create_export_task(**kwargs)
        self.created.append(kwargs)
        if self.hold:
            self.statuses[response["taskId"]] = self.hold
        return response

    def describe_export_tasks(self, **kwargs: Any) -> Any:
        response = self.real.describe_export_tasks(**kwargs)
        for task in response["exportTasks"]:
            if task["taskId"] in self.statuses:
                task["status"] = {"code": self.statuses[task["taskId"]], "message": "scripted"}
        if "taskId" not in kwargs:
            response["exportTasks"].extend(self.foreign)
        return response


def test_running_task_is_checked_and_nothing_else_starts(env: Env) -> None:
    env.group(APP, range(1, 4), tags={"ExportEnabled": "true"})
    env.group(ERRORS, range(1, 4), tags={"ExportEnabled": "true"})
    logs = ScriptedLogs(env.logs)
    logs.hold = "RUNNING"
    exporter = env.exporter(logs)

    first = exporter.run().to_dict()
    assert first["action"] == "started"
    task_id = first["started"]["task_id"]
    for _ in range(3):
        summary = exporter.run().to_dict()
        assert summary["action"] == "waiting"
        assert summary["waiting_on"]["task_id"] == task_id
        assert summary["completed"] == []
    assert len(logs.created) == 1
    assert env.checkpoint(APP).exported_to_ms is None
    assert env.checkpoint(APP).task_id == task_id
    plans = {p.log_group: p for p in exporter.plan()}
    task = plans[APP].task
    assert task is not None
    assert task.status == "RUNNING"
    assert len(plans[APP].pending) == 1  # D-3 is in flight; D-2 still pending

    logs.hold = None
    del logs.statuses[task_id]  # moto's own state: COMPLETED
    settled = exporter.run().to_dict()
    assert [c["task_id"] for c in settled["completed"]] == [task_id]
    assert settled["action"] == "started"
    assert env.checkpoint(APP).exported_to_ms == env.today_ms - 2 * DAY_MS


def test_limit_exceeded_leaves_no_trace_and_the_window_starts_next_run(env: Env) -> None:
    env.group(APP, range(1, 3), tags={"ExportEnabled": "true"})
    logs = ScriptedLogs(env.logs)
    logs.limit_exceeded = 1
    exporter = env.exporter(logs)

    refused = exporter.run().to_dict()
    assert refused["action"] == "limit_exceeded"
    assert refused["waiting_on"]["error"] == "LimitExceededException"
    checkpoint = env.checkpoint(APP)
    assert (checkpoint.task_name, checkpoint.task_id, checkpoint.exported_to_ms, checkpoint.failures) == (
        None,
        None,
        None,
        0,
    )
    assert env.task_count() == 0

    retried = exporter.run().to_dict()
    assert retried["action"] == "started"
    assert retried["started"]["from"] == refused["waiting_on"]["from"]


def test_failed_task_is_counted_retried_later_and_then_completes(env: Env) -> None:
    env.group(APP, range(1, 3), tags={"ExportEnabled": "true"})  # only D-2 is due
    logs = ScriptedLogs(env.logs)
    logs.hold = "FAILED"
    exporter = env.exporter(logs)

    first = exporter.run().to_dict()
    failed = exporter.run().to_dict()
    assert [f["task_id"] for f in failed["failed"]] == [first["started"]["task_id"]]
    assert failed["failed"][0]["status"] == "FAILED"
    assert failed["action"] == "idle"  # not retried in the run that saw the failure
    assert env.checkpoint(APP).failures == 1
    assert env.checkpoint(APP).exported_to_ms is None
    counters = [doc for doc in env.emitted if "ExportTasksFailed" in doc]
    assert value(counters[-1], "ExportTasksFailed") == 1
    group_docs = [doc for doc in env.emitted if doc.get("LogGroup") == APP]
    assert value(group_docs[-1], "ExportConsecutiveFailures") == 1

    logs.hold = None
    retried = exporter.run().to_dict()
    assert retried["started"]["from"] == first["started"]["from"]
    done = exporter.run().to_dict()
    assert done["completed"]
    assert env.checkpoint(APP).failures == 0
    assert env.checkpoint(APP).exported_to_ms == env.today_ms - DAY_MS


def test_someone_elses_active_task_blocks_starting(env: Env) -> None:
    env.group(APP, range(1, 3), tags={"ExportEnabled": "true"})
    logs = ScriptedLogs(env.logs)
    logs.foreign = [{"taskId": "other-tool", "taskName": "manual", "logGroupName": "/x", "status": {"code": "PENDING"}}]
    exporter = env.exporter(logs)

    busy = exporter.run().to_dict()
    assert busy["action"] == "busy"
    assert busy["waiting_on"]["task_id"] == "other-tool"
    assert logs.created == []
    logs.foreign = []
    assert exporter.run().to_dict()["action"] == "started"


def test_interrupted_run_finds_its_task_by_name_instead_of_exporting_twice(env: Env) -> None:
    env.group(APP, range(1, 3), tags={"ExportEnabled": "true"})
    exporter = env.exporter()
    first = exporter.run().to_dict()
    # Simulate a crash between CreateExportTask and saving its id: only the intent is stored.
    store = SsmCheckpointStore(env.prefix, env.ssm)
    checkpoint = store.load(APP)
    checkpoint.task_id = None
    store.save(APP, checkpoint)

    tasks = env.task_count()
    resumed = exporter.run().to_dict()
    assert [c["task_id"] for c in resumed["completed"]] == [first["started"]["task_id"]]
    assert resumed["action"] == "idle"
    assert env.task_count() == tasks


def test_intent_without_a_task_is_dropped_and_the_window_started(env: Env) -> None:
    env.group(APP, range(1, 3), tags={"ExportEnabled": "true"})
    exporter = env.exporter()
    store = SsmCheckpointStore(env.prefix, env.ssm)
    # The run died after recording its intent but before CreateExportTask.
    ghost = Checkpoint(
        task_name="logpipe-never-created",
        window_start_ms=env.today_ms - 2 * DAY_MS,
        window_end_ms=env.today_ms - DAY_MS,
    )
    store.save(APP, ghost)

    summary = exporter.run().to_dict()
    assert summary["completed"] == []
    assert summary["failed"] == []
    assert summary["action"] == "started"
    assert summary["started"]["from"] == iso_day(env.today_ms - 2 * DAY_MS)


@pytest.fixture
def cli_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    """The environment the CLI and the Lambda handler read: moto endpoint, the test's account, bucket and prefix."""
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # boto3's default session caches the credentials it resolved first; start a fresh one for this account.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setenv("AWS_DEFAULT_REGION", env.region)
    for key, value in zip(
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"), env.credentials, strict=True
    ):
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", env.endpoint)
    monkeypatch.setenv("LOGPIPE_ENVIRONMENT", "test")
    monkeypatch.setenv("LOGPIPE_EXPORT_BUCKET", env.bucket)
    monkeypatch.setenv("LOGPIPE_EXPORT_CHECKPOINT_PARAMETER_PREFIX", env.prefix)
    return env


def test_cli_plan_is_a_dry_run_and_run_advances_one_step(cli_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    from logpipe_cli.main import main

    cli_env.group(APP, range(1, 4), tags={"ExportEnabled": "true"})
    assert main(["export", "plan", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [p["log_group"] for p in plan] == [APP]
    assert plan[0]["checkpoint"] is None
    assert [w["day"] for w in plan[0]["pending_windows"]] == [
        time.strftime("%Y/%m/%d", time.gmtime((cli_env.today_ms - k * DAY_MS) / 1000)) for k in (3, 2)
    ]
    assert plan[0]["task"] is None
    assert cli_env.task_count() == 0  # plan started nothing

    assert main(["export", "run"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["action"] == "started"
    assert summary["started"]["destination"].startswith(
        f"s3://{cli_env.bucket}/exports/aws/ecs/pacs-backend/application/"
    )

    assert main(["export", "run"]) == 0
    capsys.readouterr()
    assert main(["export", "plan"]) == 0
    table = capsys.readouterr().out
    assert APP in table
    assert "pending:     1 day(s)" in table
    assert cli_env.checkpoint(APP).exported_to_ms == cli_env.today_ms - 2 * DAY_MS


def test_cli_without_a_bucket_exits_2(
    cli_env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from logpipe_cli.main import main

    monkeypatch.delenv("LOGPIPE_EXPORT_BUCKET")
    assert main(["export", "run"]) == 2
    assert "LOGPIPE_EXPORT_BUCKET" in capsys.readouterr().err


def test_lambda_handler_runs_one_step_with_the_schedule_event(
    cli_env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    from logpipe_cli.invoke import load_handler
    from logpipe_cli.template_env import function_spec

    handler = load_handler(function_spec(Path(__file__).resolve().parents[2] / "template.yaml", "exporter"), cold=True)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "logpipe-exporter")
    cli_env.group(ERRORS, range(1, 3), tags={"ExportEnabled": "true"})
    # What the ScheduleV2 target's Input will carry (events/schedule.json); the handler reads nothing from it.
    event = {"source": "logpipe.scheduler", "detail-type": "Export step", "detail": {"timezone": "Asia/Seoul"}}

    result = handler(event, None)
    assert result["action"] == "started"
    assert result["started"]["log_group"] == ERRORS
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(doc.get("LogGroup") == ERRORS and "ExportLagHours" in doc for doc in emf)
    assert handler(event, None)["completed"][0]["log_group"] == ERRORS
