"""Every EMF document the project writes follows the EMF specification (``tests/emf_spec.py``).

Three writers exist: the PACS metrics (``logpipe.metrics``: our one EMF writer, for what Powertools
cannot express), and through Powertools the pipeline's health metrics (ingest, replay, notify) and
the exporter's metrics. Each is driven the way production drives it, including the cases that
need splitting (more than 100 metrics, more than 100 values in a minute), and every line it
writes is checked against the specification at the time it was written.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import orjson
import pytest

from emf_spec import MAX_DOCUMENT_BYTES, emf_problems
from logpipe.boundary import Boundary
from logpipe.export import DAY_MS, Checkpoint, Exporter, ExportSummary, LogGroup, MemoryCheckpointStore
from logpipe.health import HEALTH_METRICS, REPLAY_METRICS, HealthMetrics
from logpipe.metrics import MetricAggregator, build_rule_set, load_metric_rules
from logpipe.notify.notifier import NOTIFY_METRICS
from logpipe.parking import MemoryParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.settings import Settings
from logpipe_cli.workload import kinesis_event, synthesize_workload
from payloads import parsed_records

pytestmark = pytest.mark.functional

NOW_MS = int(time.time() * 1000)
MINUTE_MS = 60_000


def valid(line: bytes | str, now_ms: int = NOW_MS) -> dict[str, Any]:
    problems = emf_problems(line, now_ms)
    assert problems == [], problems
    document: dict[str, Any] = orjson.loads(line)
    return document


def _document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "_aws": {
            "Timestamp": NOW_MS,
            "CloudWatchMetrics": [
                {
                    "Namespace": "PACS/Application",
                    "Dimensions": [["Service"], []],
                    "Metrics": [{"Name": "M", "Unit": "Count"}],
                }
            ],
        },
        "Service": "pacs-backend",
        "M": [1.0, 2.0],
    }
    document.update(changes)
    return document


def _directive(document: dict[str, Any]) -> dict[str, Any]:
    directive: dict[str, Any] = document["_aws"]["CloudWatchMetrics"][0]
    return directive


def test_the_checker_accepts_a_valid_document_and_names_each_broken_rule() -> None:
    valid(orjson.dumps(_document()))
    cases: dict[str, dict[str, Any]] = {
        "_aws is required": {"_aws": None},
        "Timestamp must be integer": {"_aws": {**_document()["_aws"], "Timestamp": "now"}},
        "outside 14 days back": {"_aws": {**_document()["_aws"], "Timestamp": NOW_MS - 15 * DAY_MS}},
        "2 hours ahead": {"_aws": {**_document()["_aws"], "Timestamp": NOW_MS + 3 * 3600 * 1000}},
        "CloudWatchMetrics must be a non-empty array": {"_aws": {"Timestamp": NOW_MS, "CloudWatchMetrics": []}},
        "must hold numbers": {"M": ["1"]},
        "holding a number or an array": {"M": None},
        "holds 101 values": {"M": [1.0] * 101},
        "holding a string": {"Service": 7},
    }
    for expected, changes in cases.items():
        problems = emf_problems(orjson.dumps(_document(**changes)), NOW_MS)
        assert any(expected in problem for problem in problems), (expected, problems)

    too_many_metrics = _document(**{f"M{i}": 1 for i in range(101)})
    _directive(too_many_metrics)["Metrics"] = [{"Name": f"M{i}"} for i in range(101)]
    too_many_dimensions = _document(**{f"D{i}": "x" for i in range(31)})
    _directive(too_many_dimensions)["Dimensions"] = [[f"D{i}" for i in range(31)]]
    bad_unit = _document()
    _directive(bad_unit)["Metrics"] = [{"Name": "M", "Unit": "Requests"}]
    no_namespace = _document()
    del _directive(no_namespace)["Namespace"]
    no_dimension_sets = _document()
    _directive(no_dimension_sets)["Dimensions"] = []
    for expected, document in {
        "101 definitions": too_many_metrics,
        "31 keys": too_many_dimensions,
        "not a CloudWatch unit": bad_unit,
        "lacks Namespace": no_namespace,
        "non-empty array of dimension sets": no_dimension_sets,
    }.items():
        problems = emf_problems(orjson.dumps(document), NOW_MS)
        assert any(expected in problem for problem in problems), (expected, problems)
    huge = orjson.dumps(_document(note="x" * MAX_DOCUMENT_BYTES))
    assert emf_problems(huge, NOW_MS) == [f"document is {len(huge)} bytes (at most 256 KB)"]
    assert emf_problems(b"[]", NOW_MS) == ["the root must be a JSON object"]


def test_pacs_metrics_of_a_realistic_batch_follow_the_spec() -> None:
    lines: list[bytes] = []
    streams = synthesize_workload(5000, seed=11, start_ms=NOW_MS - 20 * MINUTE_MS)
    pipeline = IngestPipeline(
        Settings(environment="prod"),
        rules=load_metric_rules(),
        parking=MemoryParkingLot(),
        boundary=Boundary.disabled(),
        emf_writer=lines.append,
        clock=lambda: NOW_MS / 1000,
    )
    summary = pipeline.run(kinesis_event(streams)).to_dict()
    assert summary["emf_documents"] == len(lines) > 0
    documents = [valid(line) for line in lines]
    # What only this writer can express is really used: [] as a dimension set, log-time minutes, value arrays.
    assert all([] in _directive(d)["Dimensions"] for d in documents)
    assert len({d["_aws"]["Timestamp"] for d in documents}) > 1
    assert all(d["_aws"]["Timestamp"] % MINUTE_MS == 0 for d in documents)
    assert any(isinstance(d.get("PACSBackendResponseTime"), list) for d in documents)


def values_of(document: dict[str, Any], name: str) -> list[float]:
    value = document.get(name, [])
    return [float(item) for item in value] if isinstance(value, list) else [float(value)]


def _rules(count_metrics: int) -> Any:
    metrics: list[dict[str, Any]] = [
        {
            "name": f"Tick{i:03d}",
            "namespace": "PACS/Load",
            "unit": "Count",
            "services": ["pacs-backend"],
            "when": [{"message": "tick"}],
            "value": 1,
        }
        for i in range(count_metrics)
    ]
    metrics.append(
        {
            "name": "TickDuration",
            "namespace": "PACS/Load",
            "unit": "Milliseconds",
            "services": ["pacs-backend"],
            "when": [{"message": "tick", "has_fields": ["duration"]}],
            "value": "$duration",
        }
    )
    return build_rule_set({"version": 1, "dimensions": ["Service", "Environment"], "metrics": metrics})


@pytest.mark.parametrize(("count_metrics", "samples"), [(150, 250), (99, 100), (1, 101)])
def test_pacs_metrics_split_at_every_limit_and_lose_nothing(count_metrics: int, samples: int) -> None:
    minute = NOW_MS - NOW_MS % MINUTE_MS - 13 * 24 * 60 * MINUTE_MS  # 13 days back: old, still accepted
    lines = [json.dumps({"level": "INFO", "message": "tick", "duration": i}) for i in range(samples)]
    aggregator = MetricAggregator(_rules(count_metrics))
    for record in parsed_records("/aws/ecs/pacs-backend/application", lines, start_ms=minute):
        aggregator.observe(record)
    written: list[bytes] = []
    aggregator.write(NOW_MS, written.append)
    documents = [valid(line) for line in written]
    durations = [value for d in documents for value in values_of(d, "TickDuration")]
    assert sorted(durations) == [float(i) for i in range(samples)]
    ticks = dict.fromkeys((f"Tick{i:03d}" for i in range(count_metrics)), 0.0)
    for document in documents:
        for definition in _directive(document)["Metrics"]:
            if definition["Name"] in ticks:
                ticks[definition["Name"]] += sum(values_of(document, definition["Name"]))
    assert set(ticks.values()) == {float(samples)}


def test_health_metrics_of_every_function_follow_the_spec(capsys: pytest.CaptureFixture[str]) -> None:
    for service, names in (
        ("logpipe-ingest", HEALTH_METRICS),
        ("logpipe-replay", REPLAY_METRICS),
        ("logpipe-notify", NOTIFY_METRICS),
    ):
        counters = Counter({key: index for index, key in enumerate(names)})
        HealthMetrics("prod", namespace="LogPipe", service=service, metrics=names).publish(counters)
    lines = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(lines) == 3
    published = {name for line in lines for name in valid(line) if name not in {"_aws", "Environment", "service"}}
    assert published == {*HEALTH_METRICS.values(), *REPLAY_METRICS.values(), *NOTIFY_METRICS.values()}


def test_exporter_metrics_follow_the_spec() -> None:
    lines: list[str] = []
    exporter = Exporter(
        None,  # type: ignore[arg-type]  # publishing calls no AWS API
        MemoryCheckpointStore(),
        bucket="b",
        environment="prod",
        clock=lambda: NOW_MS / 1000,
        emit=lines.append,
    )
    groups = [LogGroup(f"/aws/ecs/svc-{i}/errors", 90) for i in range(3)] + [LogGroup("/aws/ecs/x/application", None)]
    checkpoints = {g.name: Checkpoint(exported_to_ms=NOW_MS - 2 * DAY_MS, failures=i) for i, g in enumerate(groups)}
    summary = ExportSummary(failed=[{"log_group": groups[0].name}])
    exporter._publish(groups, checkpoints, {g.name: None for g in groups}, summary, NOW_MS)
    documents = [valid(line) for line in lines]
    assert len(documents) == len(groups) + 1
    assert [_directive(d)["Dimensions"] for d in documents] == [[["Environment", "LogGroup"]]] * len(groups) + [
        [["Environment"]]
    ]
