"""`logpipe demo`: a realistic PACS workload through the real ingest handler, on embedded AWS.

Every batch is a real subscription payload (gzip + base64) handed to the handler exactly as Lambda
would; the metrics shown are read back from the EMF the handler printed, and the parked count from
the embedded SQS queue, not from the pipeline's own bookkeeping. The template's PACS alarms are then
evaluated on that EMF, and the notifications of those that fired go through the real notify handler
to a local webhook receiver standing in for Slack and Teams (``demo_alerts``).
"""

from __future__ import annotations

import contextlib
import secrets
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import orjson

from logpipe.boundary import Boundary
from logpipe.classify import RecordKind
from logpipe.metrics import load_metric_rules
from logpipe.parking import MemoryParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.records import LogRecord
from logpipe.scrub_rules import load_scrub_config
from logpipe.settings import Settings
from logpipe.sinks import Delivery, DeliveryOutcome, SendContext
from logpipe_cli.bugsink import ADMIN_USER, BugsinkProject, BugsinkServer, is_installed, start_bugsink
from logpipe_cli.demo_alerts import AlertReport, alert_lines, run_alert_step
from logpipe_cli.embedded_aws import LOCAL_REGION, EmbeddedAws
from logpipe_cli.invoke import function_environment, invoke
from logpipe_cli.otlp_receiver import OtlpReceiver, otlp_receiver, span_attributes
from logpipe_cli.progress import Progress
from logpipe_cli.template_env import function_spec
from logpipe_cli.workload import control_message_event, expected_counts, subscription_event, synthesize_workload

if TYPE_CHECKING:
    from mypy_boto3_logs.type_defs import InputLogEventTypeDef

HEALTH_NAMESPACE = "LogPipe"
# PACS metric -> (the generator's own count of what it wrote, restricted to the service the seed's
# metric filter watches): the demo checks the pipeline against the generator, not against itself.
EXPECTED_FROM_GENERATOR = {
    "PACSBackendErrors": ("backend_errors", "/pacs-backend"),
    "PACSBackendResponseTime": ("request_completed", "/pacs-backend"),
    "DICOMProcessed": ("dicom_processed", "/pacs-backend"),
    "AuthenticationFailures": ("auth_failures", "/keycloak"),
}


@dataclass(slots=True)
class DemoReport:
    """What the demo observed."""

    events: int = 0
    batches: int = 0
    seconds: float = 0.0
    handler_seconds: float = 0.0
    core_seconds: float = 0.0  # the same batches through the core path alone (no network)
    records: Counter[str] = field(default_factory=Counter)
    malformed_payloads: int = 0
    control_messages: int = 0
    parked_in_queue: int = 0
    emf_documents: int = 0
    metric_values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    metric_namespaces: dict[str, str] = field(default_factory=dict)
    health: Counter[str] = field(default_factory=Counter)
    expected: dict[str, int] = field(default_factory=dict)  # PACS metric name -> expected count
    sentry: Counter[str] = field(default_factory=Counter)  # delivery outcome -> count
    sentry_url: str | None = None
    sentry_login: str | None = None
    sentry_stored: int = 0
    sentry_issues: int = 0
    sentry_note: str | None = None
    langfuse: Counter[str] = field(default_factory=Counter)  # delivery outcome -> count
    llm_by_model: dict[str, dict[str, float]] = field(default_factory=dict)  # read back from the receiver
    llm_requests: int = 0
    export_runs: int = 0
    export_days: int = 0
    export_objects: list[tuple[str, int]] = field(default_factory=list)  # (key, size) listed from S3
    export_bucket: str = ""
    pacs_documents: list[dict[str, Any]] = field(default_factory=list)  # the PACS EMF, for the alarm evaluation
    alerts: AlertReport = field(default_factory=AlertReport)


def _emf_documents(output: str) -> list[dict[str, Any]]:
    documents = []
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = orjson.loads(line)
        if isinstance(document, dict) and "CloudWatchMetrics" in document.get("_aws", {}):
            documents.append(document)
    return documents


def _absorb(report: DemoReport, output: str) -> None:
    for document in _emf_documents(output):
        directives = document["_aws"]["CloudWatchMetrics"]
        if all(directive["Namespace"] != HEALTH_NAMESPACE for directive in directives):
            report.emf_documents += 1
            report.pacs_documents.append(document)
        for directive in directives:
            namespace = directive["Namespace"]
            for definition in directive["Metrics"]:
                name = definition["Name"]
                value = document[name]
                values = value if isinstance(value, list) else [value]
                if namespace == HEALTH_NAMESPACE:
                    report.health[name] += int(sum(values))
                    continue
                report.metric_namespaces[name] = namespace
                report.metric_values[name].extend(float(v) for v in values)


def _count_queue(queue_url: str) -> int:
    import boto3

    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _malformed_event() -> dict[str, Any]:
    # Valid base64 of bytes that are not gzip: what a misconfigured producer would send.
    return {"awslogs": {"data": "bm90IGd6aXAgYXQgYWxs"}}


def _start_sentry(report: DemoReport, err: TextIO) -> tuple[BugsinkServer | None, BugsinkProject | None]:
    if not is_installed():
        report.sentry_note = "Bugsink is not installed (./scripts/bugsink install): errors were not sent to Sentry"
        return None, None
    err.write("logpipe demo: starting a local Sentry (Bugsink on 127.0.0.1)...\n")
    server = start_bugsink()
    project = server.create_project("pacs-demo")
    report.sentry_url = server.issue_url(project)
    report.sentry_login = f"{ADMIN_USER} / {server.admin_password}"
    return server, project


def run_demo(  # noqa: PLR0913 - the demo's knobs
    template: Path,
    total_events: int,
    out: TextIO,
    err: TextIO,
    seed: int = 7,
    *,
    sentry: bool = True,
    keep_open: bool = False,
) -> DemoReport:
    """Run the demo and print its summary to ``out``; progress goes to ``err``."""
    report = DemoReport()
    started = time.perf_counter()
    err.write("logpipe demo: starting embedded AWS (moto on 127.0.0.1)...\n")
    server, project = _start_sentry(report, err) if sentry else (None, None)
    try:
        with otlp_receiver() as receiver:
            err.write(f"logpipe demo: Langfuse stand-in (OTLP receiver) at {receiver.host}\n")
            _run_workload(template, total_events, seed, report, err, project, receiver.host)
            _absorb_llm(report, receiver)
        if server is not None and project is not None:
            report.sentry_stored = server.event_count(project)
            report.sentry_issues = len(server.issues(project))
        report.seconds = time.perf_counter() - started
        _print_report(report, out)
        if server is not None and keep_open:
            out.write("\nBugsink keeps running so you can look at the issues; press Ctrl-C to stop it.\n")
            out.flush()
            _wait_for_interrupt()
    finally:
        if server is not None:
            server.close()
    return report


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _run_workload(  # noqa: PLR0913, PLR0917 - one demo run's inputs and its report
    template: Path,
    total_events: int,
    seed: int,
    report: DemoReport,
    err: TextIO,
    project: BugsinkProject | None,
    langfuse_host: str | None = None,
) -> None:
    with EmbeddedAws() as stack:
        spec = function_spec(template, "ingest", stack.template_resources())
        # Count what this run parks, even if the queue already held messages (a reused endpoint).
        parked_before = _count_queue(stack.parking_queue_url)
        overrides = {"LOGPIPE_ENVIRONMENT": "prod", "LOGPIPE_DEAD_LETTER_QUEUE_URL": stack.parking_dlq_url}
        if project is not None:
            overrides["LOGPIPE_SENTRY_DSN"] = project.dsn
        if langfuse_host is not None:
            # Throwaway keys for the local stand-in, made per run; real keys live in Secrets Manager.
            overrides |= {
                "LOGPIPE_LANGFUSE_HOST": langfuse_host,
                "LOGPIPE_LANGFUSE_PUBLIC_KEY": "pk-lf-demo",
                "LOGPIPE_LANGFUSE_SECRET_KEY": f"sk-lf-demo-{secrets.token_hex(8)}",
            }
        environment = function_environment(spec, overrides)
        err.write(f"logpipe demo: synthesizing {total_events:,} PACS log events...\n")
        streams = synthesize_workload(total_events, seed=seed)
        for metric, (category, group_part) in EXPECTED_FROM_GENERATOR.items():
            watched = [stream for stream in streams if group_part in stream.log_group]
            report.expected[metric] = expected_counts(watched).get(category, 0)
        events: list[dict[str, Any]] = [subscription_event(stream) for stream in streams]
        events += [control_message_event(), _malformed_event()]
        progress = Progress(sum(len(s.events) for s in streams), "ingest", err)
        for index, event in enumerate(events):
            invocation = invoke(spec, event, echo=None, environment=environment, cold=index == 0)
            report.handler_seconds += invocation.seconds
            report.batches += 1
            summary = invocation.result
            # Log events; a control message's health-check event is counted under control messages.
            report.events += summary["events_in"] - summary["accounting"]["control_events"]
            for kind, count in summary["records"].items():
                report.records[kind] += count
            report.malformed_payloads += summary["malformed"]["payloads"]
            report.control_messages += summary["control_messages"]
            for key, count in summary["deliveries"].items():
                if key.startswith("sentry."):
                    report.sentry[key.removeprefix("sentry.")] += count
                elif key.startswith("langfuse."):
                    report.langfuse[key.removeprefix("langfuse.")] += count
            _absorb(report, invocation.output)
            if index < len(streams):
                progress.advance(len(streams[index].events), f"batches {report.batches}")
        progress.finish(f"batches {report.batches}")
        report.core_seconds = _core_path_seconds(events)
        report.parked_in_queue = _count_queue(stack.parking_queue_url) - parked_before
        _export_aged_logs(report, err, seed)
        import boto3

        err.write(
            "logpipe demo: evaluating the template's PACS alarms on the EMF; notifying Slack/Teams stand-ins...\n"
        )
        report.alerts = run_alert_step(
            template,
            stack=stack,
            pacs_documents=report.pacs_documents,
            streams=streams,
            environment=overrides["LOGPIPE_ENVIRONMENT"],
            logs=boto3.client("logs"),
        )


class _AcceptingSink:
    """Takes its records and sends nothing: the core path still scrubs everything a sink would get."""

    def __init__(self, kind: RecordKind) -> None:
        self.name = f"accepting-{kind.value}"
        self.kind = kind

    def send(self, records: Sequence[LogRecord], context: SendContext) -> list[Delivery]:
        # What would leave passes the PHI boundary, as in the real sinks; only the network is left out.
        for record in records:
            context.boundary.scrub_value(
                {"message": record.message, "exception": record.exception, "fields": record.fields}
            )
        return [Delivery(record.event_id, DeliveryOutcome.DELIVERED) for record in records]

    def flush(self) -> None:
        """Nothing is buffered."""


def _core_path_seconds(events: Sequence[dict[str, Any]]) -> float:
    """Time the same batches through decode, parse, classify, metric rules and scrubbing, without the network."""
    pipeline = IngestPipeline(
        Settings(environment="prod"),
        rules=load_metric_rules(),
        parking=MemoryParkingLot(),
        boundary=Boundary(load_scrub_config()),
        sinks=[_AcceptingSink(RecordKind.ERROR), _AcceptingSink(RecordKind.LLM)],
        emf_writer=lambda _line: None,
    )
    started = time.perf_counter()
    for event in events:
        pipeline.run(event)
    return time.perf_counter() - started


EXPORT_BUCKET = "pacs-logpipe-demo-exports"
EXPORTED_GROUPS = ("/aws/ecs/pacs-backend/application", "/aws/ecs/keycloak/application")


def _export_aged_logs(report: DemoReport, err: TextIO, seed: int) -> None:
    """Write two days of aged logs to the embedded CloudWatch Logs and export them to S3 step by step."""
    import boto3

    from logpipe.export import build_exporter
    from logpipe.settings import ExportSettings

    logs, s3 = boto3.client("logs"), boto3.client("s3")
    # A reused endpoint (AWS_ENDPOINT_URL, or a second run in one process) may hold them already.
    if EXPORT_BUCKET not in {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}:
        # The embedded stack's region (LOCAL_REGION), spelled as the literal the S3 stubs require.
        s3.create_bucket(Bucket=EXPORT_BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-2"})
    day_ms = 24 * 3600 * 1000
    today = int(time.time() * 1000) // day_ms * day_ms
    existing = {
        group["logGroupName"] for group in logs.describe_log_groups(logGroupNamePrefix="/aws/ecs/")["logGroups"]
    }
    for group in EXPORTED_GROUPS:
        if group not in existing:
            logs.create_log_group(logGroupName=group, tags={"ExportEnabled": "true", "LogType": "application"})
    written = 0
    created: set[tuple[str, str]] = set()
    for days_ago in (3, 2):
        for stream in synthesize_workload(
            1500, seed=seed + days_ago, start_ms=today - days_ago * day_ms + 9 * 3600_000
        ):
            if stream.log_group not in EXPORTED_GROUPS:
                continue
            name = f"{stream.log_stream}-{days_ago}"
            if (stream.log_group, name) not in created:  # one stream may come in several batches
                with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):  # a reused endpoint
                    logs.create_log_stream(logGroupName=stream.log_group, logStreamName=name)
                created.add((stream.log_group, name))
            events: list[InputLogEventTypeDef] = [
                {"timestamp": cast("int", e["timestamp"]), "message": str(e["message"])} for e in stream.events
            ]
            logs.put_log_events(logGroupName=stream.log_group, logStreamName=name, logEvents=events)
            written += len(events)
    err.write(f"logpipe demo: exporting {written:,} aged log events to s3://{EXPORT_BUCKET}/exports/ ...\n")
    exporter = build_exporter(
        ExportSettings(environment="prod", region=LOCAL_REGION, bucket=EXPORT_BUCKET), logs=logs, emit=lambda _: None
    )
    for _ in range(20):  # one step per scheduled run: start a task, then see it complete and start the next
        summary = exporter.run()
        report.export_runs += 1
        report.export_days += len(summary.completed)
        err.write(f"  export run {report.export_runs}: {summary.action}\n")
        if summary.action == "idle":
            break
    listing = s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix="exports/")
    report.export_bucket = EXPORT_BUCKET
    report.export_objects = [(item["Key"], item["Size"]) for item in listing.get("Contents", [])]


def _absorb_llm(report: DemoReport, receiver: OtlpReceiver) -> None:
    """Per-model calls, tokens and cost, decoded from the OTLP protobuf the receiver accepted."""
    report.llm_requests = len(receiver.received)
    for span in receiver.accepted_spans():
        attributes = span_attributes(span)
        model = str(attributes.get("langfuse.observation.model.name", "unknown"))
        usage = orjson.loads(str(attributes.get("langfuse.observation.usage_details", "{}")))
        cost = orjson.loads(str(attributes.get("langfuse.observation.cost_details", "{}")))
        totals = report.llm_by_model.setdefault(model, {"calls": 0, "tokens": 0, "cost": 0.0})
        totals["calls"] += 1
        totals["tokens"] += usage.get("total") or usage.get("input", 0) + usage.get("output", 0)
        totals["cost"] += cost.get("total", 0.0)


def _print_report(report: DemoReport, out: TextIO) -> None:
    rate = report.events / report.handler_seconds if report.handler_seconds else 0.0
    core_rate = report.events / report.core_seconds if report.core_seconds else 0.0
    lines = [
        "",
        "== logpipe demo summary ==",
        f"events in        {report.events:>10,}  in {report.batches} invocations",
        (
            f"records          error {report.records['error']:,} | llm {report.records['llm']:,} | "
            f"other {report.records['other']:,}"
        ),
        f"control messages {report.control_messages:>10,}  (skipped)",
        f"malformed        {report.malformed_payloads:>10,}  payloads (parked)",
        f"parked in SQS    {report.parked_in_queue:>10,}  messages on the embedded parking queue",
        (
            f"throughput       {rate:>10,.0f}  events/s end to end: the handler with its confirmed deliveries to the "
            f"local Sentry and Langfuse ({report.handler_seconds:.2f} s)"
        ),
        (
            f"                 {core_rate:>10,.0f}  events/s core path: decode, parse, metrics, scrubbing, "
            f"no network ({report.core_seconds:.2f} s)"
        ),
        "",
        "PACS metrics (read back from the EMF the handler printed):",
    ]
    for name in sorted(report.metric_values):
        values = report.metric_values[name]
        namespace = report.metric_namespaces[name]
        if name.endswith("Time"):
            ordered = sorted(values)
            p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
            detail = (
                f"samples {len(values):,}  avg {statistics.fmean(values):,.1f} ms  p95 {p95:,.0f} ms  "
                f"max {ordered[-1]:,.0f} ms  over 5000 ms: {sum(1 for v in values if v > 5000):,}"
            )
            observed = len(values)
        else:
            detail = f"sum {sum(values):,.0f}"
            observed = int(sum(values))
        if name in report.expected:
            expected = report.expected[name]
            detail += f"  [generator wrote {expected:,}: {'ok' if expected == observed else 'MISMATCH'}]"
        lines.append(f"  {namespace:<18} {name:<26} {detail}")
    lines.append(f"EMF documents    {report.emf_documents:>10,}")
    lines.append("")
    lines.append("Pipeline health (LogPipe namespace, Powertools Metrics):")
    lines.extend(f"  {name:<26} {value:,}" for name, value in sorted(report.health.items()) if value)
    lines.append("")
    if report.sentry_url is not None:
        outcomes = ", ".join(f"{name} {count:,}" for name, count in sorted(report.sentry.items())) or "none"
        stored = f"stored {report.sentry_stored:,} events in {report.sentry_issues:,} issues"
        lines.append(f"Sentry (local Bugsink): {outcomes}; {stored}")
        lines.append(f"  open {report.sentry_url}  (log in as {report.sentry_login})")
    elif report.sentry_note:
        lines.append(f"Sentry: {report.sentry_note}")
    outcomes = ", ".join(f"{name} {count:,}" for name, count in sorted(report.langfuse.items())) or "none"
    lines.append(f"Langfuse (local OTLP receiver): {outcomes}; {report.llm_requests} OTLP requests")
    for model, totals in sorted(report.llm_by_model.items()):
        lines.append(
            f"  {model:<28} calls {int(totals['calls']):>5,}  tokens {int(totals['tokens']):>10,}"
            f"  cost ${totals['cost']:,.4f}"
        )
    lines.append("")
    total = sum(size for _, size in report.export_objects)
    lines.append(
        f"Export to S3: {report.export_days} day windows in {report.export_runs} scheduled runs; "
        f"{len(report.export_objects)} objects ({total:,} bytes) in s3://{report.export_bucket}/exports/"
    )
    per_day: Counter[str] = Counter()
    for key, size in report.export_objects:
        # exports/<group path>/<yyyy>/<mm>/<dd>/<task id>/<stream>/<part>.gz
        per_day["/".join(key.split("/")[:-3])] += size
    lines.extend(f"  {prefix}/  {size:,} bytes" for prefix, size in sorted(per_day.items()))
    lines.append("")
    lines.extend(alert_lines(report.alerts))
    lines.append(f"\ndone in {report.seconds:.1f} s")
    out.write("\n".join(lines) + "\n")


def main_demo(template: Path, total_events: int, *, sentry: bool = True, keep_open: bool | None = None) -> int:
    """Entry point for `logpipe demo`; keeps Bugsink open for a person at a terminal."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    run_demo(
        template,
        total_events,
        sys.stdout,
        sys.stderr,
        sentry=sentry,
        keep_open=interactive if keep_open is None else keep_open,
    )
    return 0
