"""Replay from S3 re-creates the live path's Sentry and Langfuse payloads (issue 6, must-show).

One workload of error records (JSON with a chained traceback, a text traceback the awslogs driver
split into one event per line, a multi-line message, Powertools, a fingerprint spike) and LLM-call
records (flat/OpenAI, Anthropic, OTel GenAI, a failed call) is written to CloudWatch Logs on moto,
in an account of its own. The live side hands those events, with CloudWatch's ids, to the real
ingest handler (``functions/ingest/app.py``) as subscription payloads, as if in Lambda. The backfill
side exports the days with the real exporter and replays them with ``logpipe replay s3://...`` from
an operator's machine. Each side has its own Bugsink project (real Sentry sink) and loopback OTLP
receiver (real Langfuse sink). The events as Bugsink stored them and the decoded spans must be equal
after masking only the fields in ``SENTRY_ID_FIELDS`` and ``SPAN_ID_FIELDS``.

Moto's export differs from CloudWatch's in ways the workload respects: it writes timestamps to the
second (``.000Z``), so events are stamped on whole seconds, and it writes stream ``ecs/app/1`` under
``ecs-app-1/``, which replay maps back to the real name (``s3replay.CloudWatchStreamNames``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
import pytest

from logpipe.export import DAY_MS, HOUR_MS, Exporter, MemoryCheckpointStore
from logpipe.langfuse.mapping import create_observation_id, create_trace_id
from logpipe.s3replay import ID_DIGITS
from logpipe.sentry.event import sentry_event_id
from logpipe_cli.bugsink import BugsinkProject, BugsinkServer
from logpipe_cli.embedded_aws import create_idempotency_table
from logpipe_cli.invoke import load_handler
from logpipe_cli.otlp_receiver import OtlpReceiver, otlp_receiver, span_attributes
from logpipe_cli.replay_s3 import main_replay
from logpipe_cli.template_env import function_spec
from moto_accounts import fresh_account
from payloads import subscription_event

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_logs.type_defs import FilteredLogEventTypeDef, InputLogEventTypeDef

pytestmark = pytest.mark.integration

ROOT: Final = Path(__file__).resolve().parents[2]
REGION: Final = "ap-northeast-2"
ENVIRONMENT: Final = "prod"
APPLICATION: Final = "/aws/ecs/pacs-backend/application"
LLM: Final = "/aws/ecs/pacs-backend/llm"
# ECS stream names hold slashes (ecs/<container>/<task id>); "web-2" has none, but a '-'.
STREAMS: Final = {
    APPLICATION: ("ecs/pacs-backend/3f9c2a71d4e84b6f", "web-2"),
    LLM: ("ecs/pacs-llm/5b7e0c9d1a2f4e83",),
}
DAYS_BACK: Final = (3, 2)  # whole UTC days, old enough for the exporter's default 24 h minimum age
PUBLIC_KEY: Final = "pk-lf-replay"
SECRET_KEY: Final = "sk-lf-" + uuid.uuid4().hex[:12]
# Strings of the workload that must never reach Sentry or Langfuse.
PII: Final = ("hong.gildong@example.com", "HONG^GILDONG", "010-1234-5678", "Bearer eyJ", "s3cr3t-pw")

# The only fields that may differ between a live and a replayed payload, and why.
SENTRY_ID_FIELDS: Final = (
    # uuid5(log group, CloudWatch event id). Exports do not keep CloudWatch's event ids, so replay
    # derives its own (s3replay.event_id); each side's value is checked to be that uuid5 first.
    "event_id",
    # The CloudWatch event id itself, for the same reason.
    "contexts.cloudwatch.event_id",
    # The console deep link ends in refEventId=<CloudWatch event id>; only that tail is masked.
    "contexts.cloudwatch.console_url",
)
SPAN_ID_FIELDS: Final = (
    # The observation id is sha256(CloudWatch event id)[:8] (checked), see event_id above.
    "span_id",
    # Masked only where no application trace id was logged and the trace is seeded by the event id
    # (checked); a logged trace id must be equal.
    "trace_id",
    # The CloudWatch event id, kept as metadata.
    "langfuse.observation.metadata.cloudwatch_event_id",
)
_REF_EVENT_ID = re.compile(r"(\$26refEventId\$3D)[^$&]+$")


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


CHAINED_TRACEBACK: Final = (
    "Traceback (most recent call last):\n"
    '  File "/app/pacs/api/views.py", line 88, in get\n'
    "    return self.load(uid)\n"
    '  File "/app/pacs/store.py", line 42, in load\n'
    "    raise KeyError(uid)\n"
    "KeyError: '1.2.840.99'\n\n"
    "During handling of the above exception, another exception occurred:\n\n"
    "Traceback (most recent call last):\n"
    '  File "/app/pacs/api/views.py", line 90, in get\n'
    "    raise StudyUnavailable(uid)\n"
    "pacs.errors.StudyUnavailable: study 1.2.840.99 is unavailable"
)


def application_writes(back: int, stream: str) -> list[list[str]]:
    """The writes of one stream and day, in order; each write is one or more events of the same second."""
    request = f"req-{back}-{stream[-4:]}"
    writes: list[list[str]] = [
        [_json({"level": "INFO", "message": "Request started", "request_id": request, "path": "/studies/1.2.840.99"})],
        [
            _json(
                {
                    "level": "INFO",
                    "message": "DICOM processed",
                    "request_id": request,
                    "study_uid": "1.2.840.99",
                    "PatientName": "HONG^GILDONG",
                },
            ),
        ],
        [
            _json(
                {
                    "level": "ERROR",
                    "message": f"Study load failed for hong.gildong@example.com day-{back}",
                    "request_id": request,
                    "logger": "pacs.api.views",
                    "hostname": "ip-10-0-1-23",
                    "version": "2.4.1",
                    "exc_info": CHAINED_TRACEBACK,
                },
            ),
        ],
        # One exception that the awslogs driver split into one event per line.
        [
            f"2026-01-01 00:00:00,000 ERROR [pacs.api] request_id=q{back} Unhandled exception, phone 010-1234-5678",
            "Traceback (most recent call last):",
            '  File "/app/pacs/api/views.py", line 120, in get_study',
            "    study = store.load(uid)",
            '  File "/app/pacs/store.py", line 42, in load',
            "    raise ValueError(f'study {uid} not found')",
            f"ValueError: study {back} not found",
        ],
        # One event whose message spans several lines: the export writes continuation lines.
        [
            f"ERROR Thumbnail failed for day {back}, token Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl\n"
            "Traceback (most recent call last):\n"
            '  File "/app/pacs/thumbs.py", line 7, in render\n'
            "    raise OSError('disk full')\n"
            "OSError: disk full",
        ],
        [
            _json(
                {
                    "level": "ERROR",
                    "location": "handler:42",
                    "message": "Upload rejected",
                    "service": "pacs-backend",
                    "function_request_id": f"fn-{back}",
                    "exception": 'Traceback (most recent call last):\n  File "/var/task/app.py", line 42, in handler\n'
                    "    check(event)\nPermissionError: password=s3cr3t-pw refused",
                    "exception_name": "PermissionError",
                },
            ),
        ],
    ]
    # A spike: one bug logged 12 times in a batch; Sentry gets 10, the 10th saying 2 were held back.
    writes.extend(
        [_json({"level": "ERROR", "message": f"Study 1.2.840.{1000 + n} not found", "request_id": f"s-{back}-{n}"})]
        for n in range(12)
    )
    writes.append([_json({"level": "INFO", "message": "Request completed", "duration": 120 + back})])
    return writes


def llm_writes(back: int, stream: str) -> list[list[str]]:
    """LLM calls of one stream and day, one event each."""
    return [
        [
            _json(
                {
                    "level": "INFO",
                    "message": "llm call",
                    "model": "gpt-4o-mini",
                    "prompt": "Summarize the CT report of hong.gildong@example.com",
                    "completion": f"No acute findings (day {back}).",
                    "prompt_tokens": 812,
                    "completion_tokens": 164,
                    "total_tokens": 976,
                    "total_cost": 0.00022,
                    "latency_ms": 1840,
                    "trace_id": f"report-{back}-{stream[-4:]}",
                    "user_id": "radiologist-17",
                    "session_id": "sess-44f0",
                    "metadata": {"study_uid": "1.2.840.99", "PatientName": "HONG^GILDONG"},
                },
            ),
        ],
        [
            _json(
                {
                    "level": "INFO",
                    "message": "anthropic call",
                    "model": "claude-3-5-haiku",
                    "messages": [{"role": "user", "content": f"Draft a follow-up note for day {back}"}],
                    "output": "Follow up in 6 months.",
                    "usage": {"input_tokens": 210, "output_tokens": 58, "cache_read_input_tokens": 1024},
                    "cost": {"input": 0.0002, "output": 0.0003},
                    "start_time": "2026-01-01T00:00:00.250+00:00",
                    "end_time": "2026-01-01T00:00:01.750+00:00",
                },
            ),
        ],
        [
            _json(
                {
                    "level": "WARNING",
                    "message": "genai call",
                    "gen_ai.request.model": "gpt-4.1",
                    "gen_ai.operation.name": "classify-modality",
                    "gen_ai.usage.input_tokens": 33,
                    "gen_ai.usage.output_tokens": 4,
                    "gen_ai.prompt": "Which modality? MR",
                    "gen_ai.completion": "MR",
                    "duration_ms": 250,
                },
            ),
        ],
        [
            _json(
                {
                    "level": "ERROR",
                    "message": "llm call failed",
                    "model": "gpt-4o-mini",
                    "prompt": "Summarize",
                    "error": "rate limited by provider",
                    "prompt_tokens": 5,
                    "completion_tokens": 0,
                    "latency_ms": 90,
                },
            ),
        ],
    ]


WORKLOAD: Final[dict[str, Callable[[int, str], list[list[str]]]]] = {APPLICATION: application_writes, LLM: llm_writes}


# ---------------------------------------------------------------------------------------------------------------------
# AWS (moto), the two sides, and the runs


@dataclass
class Account:
    """A fresh moto account: credentials, export bucket, and the events as CloudWatch Logs returns them."""

    endpoint: str
    account_id: str
    credentials: dict[str, str]
    session: boto3.Session
    bucket: str
    now_s: float
    # (group, stream, day_ms) -> filter_log_events results, with CloudWatch's event ids
    written: dict[tuple[str, str, int], list[FilteredLogEventTypeDef]] = field(default_factory=dict)

    def logs(self) -> CloudWatchLogsClient:
        return self.session.client("logs", endpoint_url=self.endpoint)

    def dynamodb(self) -> DynamoDBClient:
        return self.session.client("dynamodb", endpoint_url=self.endpoint)

    @property
    def today_ms(self) -> int:
        return int(self.now_s * 1000) // DAY_MS * DAY_MS

    def day_ms(self, back: int) -> int:
        return self.today_ms - back * DAY_MS

    def day(self, back: int) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(self.day_ms(back) / 1000))


def new_account(endpoint: str) -> Account:
    """A moto account of its own (STS AssumeRole), so the exporter selects only this module's groups."""
    account = fresh_account(endpoint, REGION, "replay-payloads")
    session = account.session
    bucket = f"logpipe-replay-{uuid.uuid4().hex[:12]}"
    session.client("s3", endpoint_url=endpoint).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return Account(endpoint, account.account_id, account.environment(), session, bucket, time.time())


def write_workload(account: Account) -> None:
    """PutLogEvents per stream and day (whole seconds: moto exports seconds only), read back with ids."""
    logs = account.logs()
    for group, streams in STREAMS.items():
        logs.create_log_group(logGroupName=group, tags={"ExportEnabled": "true"})
        for stream in streams:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            for back in DAYS_BACK:
                day = account.day_ms(back)
                events: list[InputLogEventTypeDef] = [
                    {"timestamp": day + HOUR_MS + second * 1000, "message": line}
                    for second, write in enumerate(WORKLOAD[group](back, stream))
                    for line in write
                ]
                logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
                found = logs.filter_log_events(
                    logGroupName=group, logStreamNames=[stream], startTime=day, endTime=day + DAY_MS - 1
                )["events"]
                assert [e["message"] for e in found] == [e["message"] for e in events]
                account.written[(group, stream, day)] = found


def cloudwatch_payload(
    account: Account, group: str, stream: str, found: Sequence[FilteredLogEventTypeDef]
) -> dict[str, Any]:
    """The DATA_MESSAGE a subscription filter delivers for these events (CloudWatch ids are 56 digits)."""
    return {
        "messageType": "DATA_MESSAGE",
        "owner": account.account_id,
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": ["logpipe-ingest"],
        "logEvents": [
            {"id": str(e["eventId"]).zfill(ID_DIGITS), "timestamp": e["timestamp"], "message": e["message"]}
            for e in found
        ],
    }


def export_all(account: Account, mp: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Run the scheduled exporter one step at a time until idle; the (group, day) windows it started."""
    # moto formats export timestamps in local time (datetime.fromtimestamp); CloudWatch writes UTC.
    mp.setenv("TZ", "UTC")
    time.tzset()
    exporter = Exporter(
        account.logs(),
        MemoryCheckpointStore(),
        bucket=account.bucket,
        min_age_hours=24,
        environment=ENVIRONMENT,
        clock=lambda: account.now_s,  # the workload's "now", even if midnight passes during the test
        emit=lambda _line: None,
    )
    started: list[tuple[str, str]] = []
    for _ in range(20):
        summary = exporter.run().to_dict()
        if summary["started"]:
            started.append((summary["started"]["log_group"], summary["started"]["from"][:10]))
        if summary["action"] == "idle":
            return started
    pytest.fail("the exporter did not become idle")


def create_ledger(account: Account) -> str:
    """An idempotency table (the template's layout) for the Langfuse delivery ledger, on moto DynamoDB."""
    table = f"idempotency-{uuid.uuid4().hex[:8]}"
    create_idempotency_table(account.dynamodb(), table)
    return table


@dataclass
class Side:
    """Where one side's payloads go: a Bugsink project, an OTLP receiver, and the Langfuse ledger."""

    project: BugsinkProject
    receiver: OtlpReceiver
    ledger_table: str | None = None


def use(mp: pytest.MonkeyPatch, account: Account, side: Side, *, host: str, cwd: Path) -> None:
    """Point the process at ``side`` as the handler and the CLI read it: environment, host name, directory."""
    for name in list(os.environ):
        if name.startswith(("LOGPIPE_", "SENTRY_")):
            mp.delenv(name)
    for name, value in account.credentials.items():
        mp.setenv(name, value)
    mp.setenv("AWS_ENDPOINT_URL", account.endpoint)
    mp.setenv("AWS_DEFAULT_REGION", REGION)
    mp.setenv("AWS_REGION", REGION)
    mp.setenv("LOGPIPE_ENVIRONMENT", ENVIRONMENT)
    mp.setenv("LOGPIPE_SENTRY_DSN", side.project.dsn)
    mp.setenv("LOGPIPE_LANGFUSE_HOST", side.receiver.host)
    mp.setenv("LOGPIPE_LANGFUSE_PUBLIC_KEY", PUBLIC_KEY)
    mp.setenv("LOGPIPE_LANGFUSE_SECRET_KEY", SECRET_KEY)
    if side.ledger_table is not None:
        mp.setenv("LOGPIPE_IDEMPOTENCY_TABLE", side.ledger_table)
    mp.setattr(boto3, "DEFAULT_SESSION", None)  # the credentials changed: no cached session
    # Live runs in Lambda, replay on an operator's machine: nothing of the host may leak into a payload.
    mp.setattr(socket, "gethostname", lambda: host)
    mp.chdir(cwd)


def run_live(account: Account, side: Side, mp: pytest.MonkeyPatch, lambda_task_dir: Path) -> Counter[str]:
    """Each (group, stream, day) as one subscription payload through a freshly imported ingest handler."""
    use(mp, account, side, host="169.254.76.1", cwd=lambda_task_dir)
    handler = load_handler(function_spec(ROOT / "template.yaml", "ingest"), cold=True)
    counts: Counter[str] = Counter()
    # Breadcrumbs and the spike limit work per batch and CloudWatch's own batching is arbitrary, so
    # the live side gets the batches an export forms: one per stream and day.
    for (group, stream, _day), found in sorted(account.written.items()):
        counts.update(flat_counts(handler(subscription_event(cloudwatch_payload(account, group, stream, found)), None)))
    return counts


def run_replay(account: Account, side: Side, mp: pytest.MonkeyPatch) -> tuple[Counter[str], list[dict[str, Any]]]:
    """``logpipe replay s3://<bucket>/exports/<group>/<first>..<last>`` per group; counts and the summaries."""
    use(mp, account, side, host="ops-laptop", cwd=ROOT)
    counts: Counter[str] = Counter()
    summaries: list[dict[str, Any]] = []
    for group in STREAMS:
        out, err = io.StringIO(), io.StringIO()
        url = f"s3://{account.bucket}/exports/{group.lstrip('/')}/{account.day(DAYS_BACK[0])}..{account.day(DAYS_BACK[-1])}"
        assert main_replay(url, out=out, err=err) == 0, err.getvalue()
        assert "warning" not in err.getvalue()
        summaries.append(json.loads(out.getvalue()))
        counts.update(flat_counts(summaries[-1]))
    return counts, summaries


def flat_counts(summary: dict[str, Any]) -> Counter[str]:
    """Records per kind and deliveries per sink and outcome, from a handler or a replay summary."""
    counts: Counter[str] = Counter()
    for kind, value in summary["records"].items():
        counts[f"records.{kind}"] += int(value)
    for key, value in summary["deliveries"].items():
        # The handler reports {"sentry.delivered": n}, the replay CLI {"sentry": {"delivered": n}}.
        pairs = value.items() if isinstance(value, dict) else [(None, value)]
        for outcome, count in pairs:
            counts[f"delivery.{key}" + (f".{outcome}" if outcome else "")] += int(count)
    return +counts


@dataclass
class Scenario:
    """The workload run once through both paths."""

    account: Account
    bugsink: BugsinkServer
    live: Side
    replay: Side
    live_counts: Counter[str]
    replay_counts: Counter[str]
    replay_summaries: list[dict[str, Any]]
    exported: list[tuple[str, str]]
    new_side: Callable[[str, str | None], Side]
    new_receiver: Callable[[], OtlpReceiver]


@pytest.fixture(scope="module")
def scenario(
    moto_endpoint: str, bugsink: BugsinkServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    with contextlib.ExitStack() as stack:

        def new_receiver() -> OtlpReceiver:
            return stack.enter_context(otlp_receiver())

        def new_side(name: str, ledger_table: str | None) -> Side:
            return Side(bugsink.create_project(f"{name}-{uuid.uuid4().hex[:8]}"), new_receiver(), ledger_table)

        account = new_account(moto_endpoint)
        with pytest.MonkeyPatch.context() as mp:
            write_workload(account)
            live = new_side("live", None)
            live_counts = run_live(account, live, mp, tmp_path_factory.mktemp("var-task"))
            exported = export_all(account, mp)
            replay = new_side("replay", create_ledger(account))
            replay_counts, summaries = run_replay(account, replay, mp)
        time.tzset()  # TZ is restored: apply it again
        yield Scenario(
            account, bugsink, live, replay, live_counts, replay_counts, summaries, exported, new_side, new_receiver
        )


# ---------------------------------------------------------------------------------------------------------------------
# Masking: only the fields named in SENTRY_ID_FIELDS and SPAN_ID_FIELDS


def sentry_view(event: dict[str, Any]) -> dict[str, Any]:
    """A stored event with its id fields masked, after checking they are the ids the pipeline derives."""
    view = copy.deepcopy(event)
    cloudwatch = view["contexts"]["cloudwatch"]
    cloudwatch_id = cloudwatch["event_id"]
    assert view["event_id"].replace("-", "") == sentry_event_id(cloudwatch["log_group"], cloudwatch_id)
    assert cloudwatch["console_url"].endswith(f"$26refEventId$3D{cloudwatch_id}")
    view["event_id"] = "<event id>"
    cloudwatch["event_id"] = "<cloudwatch event id>"
    cloudwatch["console_url"] = _REF_EVENT_ID.sub(r"\1<cloudwatch event id>", cloudwatch["console_url"])
    return view


def span_view(span: Any) -> dict[str, Any]:
    """A decoded OTLP span as a dict with its id fields masked, after checking how they were derived."""
    attributes = span_attributes(span)
    cloudwatch_id = str(attributes["langfuse.observation.metadata.cloudwatch_event_id"])
    assert span.span_id.hex() == create_observation_id(cloudwatch_id)
    seeded_by_event = span.trace_id.hex() == create_trace_id(cloudwatch_id)
    attributes["langfuse.observation.metadata.cloudwatch_event_id"] = "<cloudwatch event id>"
    return {
        "trace_id": "<seeded by the event id>" if seeded_by_event else span.trace_id.hex(),
        "span_id": "<observation id>",
        "parent_span_id": span.parent_span_id.hex(),
        "name": span.name,
        "kind": span.kind,
        "start": span.start_time_unix_nano,
        "end": span.end_time_unix_nano,
        "status": [span.status.code, span.status.message],
        "flags": span.flags,
        "attributes": attributes,
    }


def resources(receiver: OtlpReceiver) -> set[str]:
    """The resource attributes and instrumentation scopes of every request."""
    return {
        _json([[(a.key, str(a.value)) for a in rs.resource.attributes], ss.scope.name, ss.scope.version])
        for item in receiver.received
        for rs in item.request.resource_spans
        for ss in rs.scope_spans
    }


def canonical(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def _leaves(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}")
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value, f"{path}[]")
    else:
        yield path, node


def differing_fields(replayed: Sequence[dict[str, Any]], live: Sequence[dict[str, Any]]) -> dict[str, str]:
    """For a readable failure: each field path whose values differ, with one replayed and one live value."""
    found: dict[str, str] = {}
    replayed_values: dict[str, set[str]] = {}
    live_values: dict[str, set[str]] = {}
    for items, values in ((replayed, replayed_values), (live, live_values)):
        for item in items:
            for path, value in _leaves(item):
                values.setdefault(path, set()).add(json.dumps(value))
    for path in sorted(set(replayed_values) | set(live_values)):
        ours, theirs = replayed_values.get(path, set()), live_values.get(path, set())
        if ours != theirs:
            found[path] = f"replayed {sorted(ours - theirs)[:2]} live {sorted(theirs - ours)[:2]}"
    return found


def ids(events: Sequence[dict[str, Any]]) -> set[str]:
    return {e["event_id"].replace("-", "") for e in events}


def span_ids(receiver: OtlpReceiver) -> set[tuple[str, str]]:
    return {(s.trace_id.hex(), s.span_id.hex()) for s in receiver.accepted_spans()}


# ---------------------------------------------------------------------------------------------------------------------
# Tests


def test_the_workload_is_exported_and_replayed_whole(scenario: Scenario) -> None:
    account = scenario.account
    expected = {(group, account.day(back)) for group in STREAMS for back in DAYS_BACK}
    assert sorted(scenario.exported) == sorted(expected)  # one task per group and day, each once
    assert scenario.replay_counts == scenario.live_counts  # same records, same delivery outcomes
    counts = scenario.live_counts
    assert counts["records.error"] == 16 * len(STREAMS[APPLICATION]) * len(DAYS_BACK)  # 16 per stream and day
    assert counts["delivery.sentry.skipped"] == 2 * 2 * len(DAYS_BACK)  # the spike, per app stream and day
    assert counts["records.llm"] == counts["delivery.langfuse.delivered"] == 4 * len(DAYS_BACK)
    assert sum(summary["unparsed_lines"] for summary in scenario.replay_summaries) == 0
    # moto wrote "ecs/pacs-backend/<id>" as "ecs-pacs-backend-<id>/": every such object got its name back.
    with_slashes = sum("/" in stream for streams in STREAMS.values() for stream in streams)
    assert sum(summary["streams_renamed"] for summary in scenario.replay_summaries) == with_slashes * len(DAYS_BACK)


def test_replayed_sentry_events_equal_the_live_ones_but_for_ids(scenario: Scenario) -> None:
    live = scenario.bugsink.events(scenario.live.project)
    replayed = scenario.bugsink.events(scenario.replay.project)
    assert len(live) == scenario.live_counts["delivery.sentry.delivered"]
    replayed_views, live_views = (
        canonical([sentry_view(e) for e in replayed]),
        canonical([sentry_view(e) for e in live]),
    )
    assert replayed_views == live_views, differing_fields(replayed_views, live_views)
    assert not ids(live) & ids(replayed)  # the masked ids really differ: replay derives its own

    # What was compared is the real thing: frames, chained and split traces, breadcrumbs, spikes, scrubbing.
    by_message = {e["message"]["formatted"]: e for e in live}
    chained = by_message[f"Study load failed for [REDACTED:email] day-{DAYS_BACK[0]}"]
    assert [v["type"] for v in chained["exception"]["values"]] == ["KeyError", "StudyUnavailable"]
    assert [c["message"] for c in chained["breadcrumbs"]["values"]] == ["Request started", "DICOM processed"]
    assert chained["tags"]["log_stream"] in STREAMS[APPLICATION]
    split = [e for e in live if any(v["type"] == "ValueError" for v in e.get("exception", {}).get("values", []))]
    assert split
    assert all(e["contexts"]["cloudwatch"]["line_count"] == 7 for e in split)
    assert [f["function"] for f in split[0]["exception"]["values"][-1]["stacktrace"]["frames"]] == ["get_study", "load"]
    multi_line = [e for e in live if e["message"]["formatted"].startswith("ERROR Thumbnail failed")]
    assert multi_line
    assert all(e["exception"]["values"][-1]["type"] == "OSError" for e in multi_line)
    assert sum(e.get("extra", {}).get("suppressed_similar_events", 0) for e in live) == 2 * 2 * len(DAYS_BACK)
    # Nothing of the sending host: neither Lambda's nor the operator's.
    assert {e.get("server_name") for e in live} == {None, "ip-10-0-1-23"}
    text = json.dumps(replayed)
    for secret in PII:
        assert secret not in text


def test_replayed_langfuse_spans_equal_the_live_ones_but_for_ids(scenario: Scenario) -> None:
    live = scenario.live.receiver.accepted_spans()
    replayed = scenario.replay.receiver.accepted_spans()
    assert len(live) == scenario.live_counts["delivery.langfuse.delivered"]
    replayed_views, live_views = canonical([span_view(s) for s in replayed]), canonical([span_view(s) for s in live])
    assert replayed_views == live_views, differing_fields(replayed_views, live_views)
    assert resources(scenario.replay.receiver) == resources(scenario.live.receiver)
    assert not {s for _, s in span_ids(scenario.live.receiver)} & {s for _, s in span_ids(scenario.replay.receiver)}

    views = [span_view(s) for s in live]
    models = {v["attributes"]["langfuse.observation.model.name"] for v in views}
    assert models == {"gpt-4o-mini", "claude-3-5-haiku", "gpt-4.1"}
    # A logged trace id is kept as is (not masked); the others are seeded by the (masked) event id.
    assert {v["trace_id"] == "<seeded by the event id>" for v in views} == {True, False}
    assert any(
        json.loads(str(v["attributes"].get("langfuse.observation.usage_details", "{}"))).get("input") == 812
        for v in views
    )
    assert any(v["end"] - v["start"] == 1_500_000_000 for v in views)  # the Anthropic call's own times
    text = json.dumps(views)
    for secret in PII:
        assert secret not in text


def test_replay_ids_are_stable_and_a_second_replay_adds_nothing(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    account, bugsink, first = scenario.account, scenario.bugsink, scenario.replay
    stored = bugsink.events(first.project)

    # Again into the same project with the same ledger: Sentry dedupes the ids, the ledger skips every span.
    again = Side(first.project, scenario.new_receiver(), first.ledger_table)
    counts, _ = run_replay(account, again, monkeypatch)
    assert counts["records.error"] == scenario.replay_counts["records.error"]
    assert bugsink.event_count(first.project) == len(stored)
    assert ids(bugsink.events(first.project)) == ids(stored)
    assert again.receiver.received == []
    assert counts["delivery.langfuse.skipped"] == scenario.replay_counts["delivery.langfuse.delivered"]

    # Into a fresh project, receiver and ledger: exactly the same ids as the first replay.
    fresh = scenario.new_side("replay-fresh", create_ledger(account))
    run_replay(account, fresh, monkeypatch)
    assert ids(bugsink.events(fresh.project)) == ids(stored)
    assert span_ids(fresh.receiver) == span_ids(first.receiver)
    assert len(span_ids(first.receiver)) == scenario.replay_counts["delivery.langfuse.delivered"]
