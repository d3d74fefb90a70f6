"""`logpipe invoke` and `logpipe demo`: the Docker-free local runs, against embedded AWS (moto server)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from logpipe.metrics import summarize
from logpipe_cli.demo import run_demo
from logpipe_cli.embedded_aws import EmbeddedAws, LocalStack
from logpipe_cli.invoke import function_environment, invoke
from logpipe_cli.template_env import TemplateError, function_names, function_spec, load_template
from logpipe_cli.workload import expected_counts, synthesize_workload
from payloads import restamp

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
EXPECTED = json.loads((EVENTS / "decoded" / "_expected_counts.json").read_text())
# PACS metric -> generator category, per sample
METRIC_CATEGORIES = {
    "PACSBackendErrors": "backend_errors",
    "PACSBackendResponseTime": "request_completed",
    "DICOMProcessed": "dicom_processed",
    "AuthenticationFailures": "auth_failures",
}
PACS_BACKEND_SAMPLES = [
    "cwl-pacs-backend-application.json",
    "cwl-pacs-backend-errors.json",
    "cwl-pacs-backend-space-delimited.json",
    "kinesis-pacs-backend.json",
]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with EmbeddedAws() as local:
        yield local
    if saved is not None:
        os.environ["AWS_ENDPOINT_URL"] = saved


def _emf(output: str, *, pacs_only: bool = True) -> list[dict[str, Any]]:
    documents = [
        json.loads(line) for line in output.splitlines() if line.startswith("{") and '"CloudWatchMetrics"' in line
    ]
    if pacs_only:
        documents = [d for d in documents if d["_aws"]["CloudWatchMetrics"][0]["Namespace"].startswith("PACS/")]
    return documents


@pytest.mark.parametrize("sample", sorted(name for name in EXPECTED if name != "cwl-control-message.json"))
def test_invoke_each_sample_prints_the_expected_pacs_metrics(stack: LocalStack, sample: str) -> None:
    spec = function_spec(ROOT / "template.yaml", "ingest", stack.template_resources())
    event = restamp(json.loads((EVENTS / sample).read_text()))
    invocation = invoke(spec, event, echo=None, environment=function_environment(spec), cold=True)
    _assert_the_samples_metrics(sample, invocation.result, invocation.output)


def _assert_the_samples_metrics(sample: str, result: dict[str, Any], output: str) -> None:
    """The sample's PACS metrics (from the generator's own counts) are in the EMF, and nothing was out of window."""
    expected = EXPECTED[sample]
    assert result["events_in"] == expected["events"]
    assert result["malformed"]["payloads"] == 0
    totals = summarize(_emf(output))
    for metric, category in METRIC_CATEGORIES.items():
        wanted = expected.get(category, 0)
        if metric == "AuthenticationFailures" and "keycloak" not in sample:
            wanted = 0
        if metric != "AuthenticationFailures" and sample not in PACS_BACKEND_SAMPLES:
            wanted = 0
        observed = totals.get(metric, {"sum": 0.0, "values": 0})
        count = observed["values"] if metric == "PACSBackendResponseTime" else observed["sum"]
        assert count == wanted, f"{sample}: {metric}"
    assert result["emf_documents"] == len(_emf(output))
    if "llm_calls" in expected:
        assert result["records"]["llm"] == expected["llm_calls"]


def test_invoke_control_message_is_skipped(stack: LocalStack) -> None:
    spec = function_spec(ROOT / "template.yaml", "ingest", stack.template_resources())
    event = json.loads((EVENTS / "cwl-control-message.json").read_text())
    result = invoke(spec, event, echo=None, environment=function_environment(spec), cold=True).result
    assert result["control_messages"] == 1
    assert result["events_in"] == result["accounting"]["control_events"] == 1
    assert result["records"] == {"error": 0, "llm": 0, "other": 0}


@pytest.mark.parametrize("sample", sorted(p.name for p in EVENTS.glob("malformed-*.json")))
def test_invoke_malformed_samples_are_parked_not_raised(stack: LocalStack, sample: str) -> None:
    spec = function_spec(ROOT / "template.yaml", "ingest", stack.template_resources())
    event = json.loads((EVENTS / sample).read_text())
    result = invoke(spec, event, echo=None, environment=function_environment(spec), cold=True).result
    kind = sample.removeprefix("malformed-").removesuffix(".json").replace("-", "_")
    assert result["malformed"]["by_kind"] == {kind: 1}
    assert result["parked"] == 1


def _invoke_cli(function: str, event: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``logpipe invoke <function> --event <event>`` in a fresh process; it must exit 0."""
    return subprocess.run(
        [sys.executable, "-m", "logpipe_cli.main", "invoke", function, "--event", str(event)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=True,
    )


def test_cli_invoke_contract_stdout_is_the_summary_stderr_is_the_log() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    completed = _invoke_cli("ingest", EVENTS / "cwl-keycloak.json", env)
    summary = json.loads(completed.stdout)
    assert summary["events_in"] == EXPECTED["cwl-keycloak.json"]["events"]
    health = [
        d
        for d in _emf(completed.stderr, pacs_only=False)
        if d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "LogPipe"
    ]
    assert len(health) == 1
    assert health[0]["EventsIn"] in (summary["events_in"], [summary["events_in"]])  # Powertools writes arrays
    assert len(_emf(completed.stderr)) == summary["emf_documents"]


def test_cli_rejects_unknown_function_and_missing_event(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no function 'nope'"):
        function_spec(ROOT / "template.yaml", "nope")
    completed = subprocess.run(
        [sys.executable, "-m", "logpipe_cli.main", "invoke", "ingest", "--event", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "cannot read event" in completed.stderr


def test_function_environment_comes_from_the_template_and_the_process_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "ingest" in function_names(load_template(ROOT / "template.yaml"))
    spec = function_spec(ROOT / "template.yaml", "ingest", {"ParkingQueue": "http://queue"})
    assert spec.environment["LOGPIPE_PARKING_QUEUE_URL"] == "http://queue"
    assert spec.environment["POWERTOOLS_SERVICE_NAME"] == "logpipe-ingest"
    assert spec.environment["LOGPIPE_ENVIRONMENT"] == "dev"
    monkeypatch.setenv("LOGPIPE_ENVIRONMENT", "stg")
    assert function_environment(spec)["LOGPIPE_ENVIRONMENT"] == "stg"


def test_demo_metrics_match_what_the_generator_wrote() -> None:
    out, err = io.StringIO(), io.StringIO()
    saved = os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        report = run_demo(ROOT / "template.yaml", 3000, out, err)
    finally:
        if saved is not None:
            os.environ["AWS_ENDPOINT_URL"] = saved
    assert report.events == 3000
    for metric, expected in report.expected.items():
        values = report.metric_values[metric]
        observed = len(values) if metric == "PACSBackendResponseTime" else int(sum(values))
        assert observed == expected, metric
    assert report.malformed_payloads == 1
    assert report.parked_in_queue == 1
    assert report.control_messages == 1
    # Every event received: the 3000 log events and the control message's health-check event.
    assert report.health["EventsIn"] == 3000 + report.control_messages
    # The template's PACS alarms were evaluated on that EMF (too short a window here for two periods).
    assert {e.alarm.metric_name for e in report.alerts.evaluations} == {"PACSBackendErrors", "PACSBackendResponseTime"}
    assert "Alarms (the template's PACS alarms on the EMF above" in out.getvalue()
    assert "MISMATCH" not in out.getvalue()
    # Two rates, each saying what it measures: end to end (local Sentry and Langfuse included) and the core path.
    assert report.core_seconds > 0
    assert "events/s end to end" in out.getvalue()
    assert "events/s core path" in out.getvalue()
    assert "inside the handler" not in out.getvalue()
    assert "ingest [" in err.getvalue()
    # The aged logs were exported day by day under the documented, Athena-friendly prefix.
    assert report.export_days == 4  # two groups x two days
    assert report.export_objects
    assert all(
        key.startswith(("exports/aws/ecs/pacs-backend/application/", "exports/aws/ecs/keycloak/application/"))
        for key, _ in report.export_objects
    )
    # LLM calls, read back from the OTLP protobuf the local receiver accepted.
    assert report.langfuse == {"delivered": report.records["llm"]}
    assert sum(int(t["calls"]) for t in report.llm_by_model.values()) == report.records["llm"]
    streams = synthesize_workload(3000, seed=7)
    generated = expected_counts(streams)
    tokens = sum(int(t["tokens"]) for t in report.llm_by_model.values())
    assert tokens == generated["llm_input_tokens"] + generated["llm_output_tokens"]
    if report.sentry_url is not None:  # Bugsink installed (always in CI): errors went to a real Sentry server
        assert report.sentry == {"delivered": report.records["error"]}
        assert report.sentry_stored == report.records["error"]
        assert 0 < report.sentry_issues < report.sentry_stored
        assert report.sentry_url in out.getvalue()


def test_cli_invoke_notify_posts_the_alarm_sample_to_a_local_slack_and_teams_stand_in() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"AWS_ENDPOINT_URL", "LOGPIPE_SLACK_WEBHOOK_URL", "LOGPIPE_TEAMS_WEBHOOK_URL"}
    }
    completed = _invoke_cli("notify", EVENTS / "sns-alarm.json", env)
    summary = json.loads(completed.stdout)
    (notification,) = summary["notifications"]
    assert notification["name"] == "pacs-logpipe-pacs-backend-error-rate"
    assert {c["outcome"] for c in notification["channels"].values()} == {"delivered"}
    # What each would show, after the function's log: valid payloads (the stand-in answered 200 / 202).
    assert "posting to a local Slack/Teams stand-in" in completed.stderr
    assert "--- Slack (Block Kit), HTTP 200 ---" in completed.stderr
    assert "--- Microsoft Teams (Adaptive Card), HTTP 202 ---" in completed.stderr
    assert completed.stderr.count("| 🔴 ALARM: pacs-logpipe-pacs-backend-error-rate") == 2
    assert "problem:" not in completed.stderr
    assert '"NotifierDelivered"' in completed.stderr  # its metrics went to the function log
    resolved = json.loads(_invoke_cli("notify", EVENTS / "sns-alarm-ok.json", env).stdout)
    assert resolved["notifications"][0]["state"] == "OK"


def test_demo_evaluates_the_pacs_alarms_and_shows_the_notifications_of_those_that_fired() -> None:
    out, err = io.StringIO(), io.StringIO()
    saved = os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        # 20,000 events span about 8 minutes: long enough for two 5-minute periods.
        report = run_demo(ROOT / "template.yaml", 20_000, out, err, sentry=False)
    finally:
        if saved is not None:
            os.environ["AWS_ENDPOINT_URL"] = saved
    by_metric = {e.alarm.metric_name: e for e in report.alerts.evaluations}
    assert set(by_metric) == {"PACSBackendErrors", "PACSBackendResponseTime"}
    errors, latency = by_metric["PACSBackendErrors"], by_metric["PACSBackendResponseTime"]
    # The evaluation sees what the EMF carried: its periods add up to the errors the generator wrote.
    assert sum(p.value or 0 for p in errors.periods) == report.expected["PACSBackendErrors"]
    assert errors.fired
    assert all(p.value is not None and p.value > 10 for p in errors.breaching_periods)
    assert not latency.fired
    assert all(p.value is None or p.value <= 5000 for p in latency.periods)
    # One notification per fired alarm, to each chat, valid, and shown in the summary.
    assert [(p.channel, p.status, p.problems) for p in report.alerts.posts] == [("slack", 200, ()), ("teams", 202, ())]
    summary = out.getvalue()
    assert f"{errors.alarm.name}: FIRED at " in summary
    assert f"{latency.alarm.name}: did not fire" in summary
    assert "Slack accepted 1, Teams accepted 1, payloads failing the Block Kit / Adaptive Card checks: 0" in summary
    assert summary.count(f"| 🔴 ALARM: {errors.alarm.name}") == 2
    assert "Top errors in the alarm window (scrubbed;" in summary


def test_cli_invoke_exporter_with_the_schedule_sample() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"AWS_ENDPOINT_URL", "LOGPIPE_EXPORT_BUCKET"}}
    completed = _invoke_cli("exporter", EVENTS / "schedule.json", env)
    summary = json.loads(completed.stdout)
    assert summary["action"] == "idle"  # nothing tagged for export on a fresh embedded stack
    assert '"ExportTasksFailed"' in completed.stderr  # its run metrics went to the function log


# Every sample but the other functions' (the exporter's schedule, the notifier's SNS alarms).
INGEST_SAMPLES = sorted(
    path.name for path in EVENTS.glob("*.json") if path.name != "schedule.json" and not path.name.startswith("sns-")
)


def test_the_ingest_samples_are_all_covered_below() -> None:
    assert set(INGEST_SAMPLES) == set(EXPECTED) | {p.name for p in EVENTS.glob("malformed-*.json")}


@pytest.mark.parametrize("days_ahead", [0, 30])
@pytest.mark.parametrize("sample", INGEST_SAMPLES)
def test_each_committed_sample_gets_its_emf_any_day(
    sample: str, days_ahead: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`logpipe invoke ingest --event events/<sample>` as committed, today and with the clock 30 days ahead."""
    import time_machine

    from logpipe_cli.main import main

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with time_machine.travel(datetime.now(UTC) + timedelta(days=days_ahead), tick=True):
        assert main(["invoke", "ingest", "--event", str(EVENTS / sample)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    (health,) = [
        d for d in _emf(captured.err, pacs_only=False) if d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "LogPipe"
    ]
    assert health["MetricPointsOutOfWindow"] in (0, [0], [0.0]), f"{sample}: EMF points refused as too old"
    if sample.startswith("malformed-"):
        assert result["malformed"]["payloads"] == health["MalformedPayloads"][0] == 1
    elif sample == "cwl-control-message.json":
        assert result["control_messages"] == health["ControlMessagesSkipped"][0] == 1
    else:
        _assert_the_samples_metrics(sample, result, captured.err)
        assert "re-stamped to now" in captured.err


def test_keep_timestamps_keeps_the_samples_times(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time_machine

    from logpipe_cli.main import main

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with time_machine.travel(datetime(2027, 1, 1, tzinfo=UTC), tick=True):
        assert main(["invoke", "ingest", "--keep-timestamps", "--event", str(EVENTS / "cwl-keycloak.json")]) == 0
    captured = capsys.readouterr()
    assert _emf(captured.err) == []  # 2026-11-22 is more than 14 days before 2027-01-01: CloudWatch would refuse it
    assert '"MetricPointsOutOfWindow":[1.0]' in captured.err
    assert "re-stamped" not in captured.err
