"""PACS metric rules: the seed's four metrics from every log form, aggregated and rendered as EMF."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from logpipe.formats import parse_line
from logpipe.metrics import (
    MAX_VALUES_PER_METRIC,
    MetricAggregator,
    MetricRulesError,
    build_rule_set,
    load_metric_rules,
    summarize,
)
from logpipe.records import Level, LogRecord, StreamContext

pytestmark = pytest.mark.unit

NOW_MS = 1_795_300_000_000
MINUTE = 60_000


def _record(service: str, line: str, timestamp_ms: int = NOW_MS, environment: str = "prod") -> LogRecord:
    context = StreamContext(
        f"/aws/ecs/{service}/application", "s", "1", "ap-northeast-2", "ecs", service, "application", environment
    )
    parsed = parse_line(line)
    return LogRecord(
        timestamp_ms,
        parsed.level or Level.INFO,
        parsed.message,
        service,
        parsed.environment or environment,
        parsed.request_id,
        parsed.fields,
        parsed.exception,
        "1",
        context,
        parsed.format,
        parsed.logger,
        line,
    )


def _aggregate(records: list[LogRecord]) -> tuple[MetricAggregator, list[dict[str, Any]]]:
    aggregator = MetricAggregator(load_metric_rules())
    for record in records:
        aggregator.observe(record)
    return aggregator, list(aggregator.documents(NOW_MS))


RESPONSE_TIME_LINES = [
    '{"level":"INFO","message":"Request completed","duration":120,"request_id":"a"}',
    '2026-11-22T01:02:03.456Z r1 INFO "Request completed" 250',
    "2026-11-22 01:02:03,456 INFO [pacs.api] request_id=r2 Request completed duration=5300 status=200",
    'time=2026-11-22T01:02:03.456Z level=info msg="Request completed" duration=80 request_id=r3',
]
DICOM_LINES = [
    '{"level":"INFO","message":"DICOM processed","study_uid":"1.2.840.1","request_id":"a"}',
    '2026-11-22T01:02:03.456Z r1 INFO "DICOM processed" 1.2.840.113619.2.55.3.604688119.969.1268071029.320',
    "2026-11-22 01:02:03,456 INFO [pacs.dicom] request_id=r2 DICOM processed study_uid=1.2.840.113619.2.55.3.6046 modality=MR",
]
ERROR_LINES = [
    '{"level":"ERROR","message":"Failed to store instance","request_id":"a"}',
    '2026-11-22T01:02:03.456Z r1 ERROR "Database connection failed" timeout',
    "2026-11-22 01:02:03,456 ERROR [pacs.api] request_id=r2 Unhandled exception",
    '{"levelname":"CRITICAL","message":"Out of disk"}',
]
AUTH_FAILURE_LINES = [
    '2026-11-22T01:02:03.456Z WARN "Authentication failed" jdoe 10.0.1.5',
    "2026-11-22 01:02:03,456 WARN  [org.keycloak.events] (executor-thread-12) type=LOGIN_ERROR, realmId=pacs, error=invalid_user_credentials",
    '2026-11-22 01:02:03,456 WARN  [org.keycloak.events] (executor-thread-12) type="LOGIN_ERROR", realmId="pacs", error="user_not_found"',
    '{"timestamp":"2026-11-22T01:02:03.456Z","sequence":1,"loggerName":"org.keycloak.events","level":"WARN",'
    '"message":"type=\\"LOGIN_ERROR\\", realmId=\\"pacs\\", error=\\"user_not_found\\""}',
]
NOT_COUNTED = [
    ("pacs-backend", '{"level":"INFO","message":"Request completed"}'),  # no duration
    ("pacs-backend", '{"level":"WARNING","message":"Request completed","duration":5}'),  # wrong level
    ("pacs-backend", '{"level":"INFO","message":"DICOM processed"}'),  # no study uid
    ("api", '{"level":"ERROR","message":"not the backend"}'),  # other service
    ("keycloak", "2026-11-22 01:02:03,456 INFO  [org.keycloak.events] (t) type=LOGIN, realmId=pacs"),
    ("keycloak", '2026-11-22T01:02:03.456Z INFO "Authentication failed" jdoe'),  # seed demands WARN
]


def test_response_time_keeps_every_sample_from_every_form() -> None:
    aggregator, documents = _aggregate([_record("pacs-backend", line) for line in RESPONSE_TIME_LINES])
    assert len(documents) == 1
    document = documents[0]
    assert sorted(document["PACSBackendResponseTime"]) == [80.0, 120.0, 250.0, 5300.0]
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "PACS/Application"
    assert directive["Metrics"] == [{"Name": "PACSBackendResponseTime", "Unit": "Milliseconds"}]
    assert aggregator.totals.samples["PACSBackendResponseTime"] == 4


def test_dicom_processed_from_every_form() -> None:
    _, documents = _aggregate([_record("pacs-backend", line) for line in DICOM_LINES])
    assert documents[0]["DICOMProcessed"] == 3.0
    assert documents[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "PACS/Business"


def test_backend_errors_from_every_form() -> None:
    _, documents = _aggregate([_record("pacs-backend", line) for line in ERROR_LINES])
    assert documents[0]["PACSBackendErrors"] == 4.0


def test_authentication_failures_from_seed_form_and_real_keycloak_events() -> None:
    _, documents = _aggregate([_record("keycloak", line) for line in AUTH_FAILURE_LINES])
    assert documents[0]["AuthenticationFailures"] == 4.0
    assert documents[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "PACS/Security"
    assert documents[0]["Service"] == "keycloak"


@pytest.mark.parametrize(("service", "line"), NOT_COUNTED)
def test_near_misses_are_not_counted(service: str, line: str) -> None:
    aggregator, documents = _aggregate([_record(service, line)])
    assert documents == []
    assert sum(aggregator.totals.samples.values()) == 0


def test_dimensions_and_dimensionless_series() -> None:
    _, documents = _aggregate([_record("pacs-backend", ERROR_LINES[0])])
    document = documents[0]
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service", "Environment"], []]
    assert document["Service"] == "pacs-backend"
    assert document["Environment"] == "prod"


def test_timestamp_is_the_log_minute_not_processing_time() -> None:
    log_time = NOW_MS - 3 * 3600 * 1000 + 42_123
    _, documents = _aggregate([_record("pacs-backend", ERROR_LINES[0], timestamp_ms=log_time)])
    assert documents[0]["_aws"]["Timestamp"] == log_time - log_time % MINUTE


def test_counts_are_summed_per_minute_bucket() -> None:
    start = NOW_MS - NOW_MS % MINUTE - 5 * MINUTE
    records = [_record("pacs-backend", ERROR_LINES[0], timestamp_ms=start + i * 1000) for i in range(90)]
    _, documents = _aggregate(records)
    per_minute = {document["_aws"]["Timestamp"]: document["PACSBackendErrors"] for document in documents}
    assert per_minute == {start: 60.0, start + MINUTE: 30.0}


def test_environment_splits_buckets() -> None:
    records = [
        _record("pacs-backend", ERROR_LINES[0], environment="prod"),
        _record("pacs-backend", '{"level":"ERROR","message":"x","environment":"stg"}'),
    ]
    _, documents = _aggregate(records)
    assert sorted(document["Environment"] for document in documents) == ["prod", "stg"]


def test_more_than_100_samples_split_into_several_documents_without_loss() -> None:
    records = [
        _record("pacs-backend", f'{{"level":"INFO","message":"Request completed","duration":{i}}}') for i in range(250)
    ]
    _, documents = _aggregate(records)
    arrays = [document["PACSBackendResponseTime"] for document in documents]
    assert [len(values) for values in arrays] == [100, 100, 50]
    assert all(len(values) <= MAX_VALUES_PER_METRIC for values in arrays)
    assert sorted(value for values in arrays for value in values) == [float(i) for i in range(250)]
    assert all(len(json.dumps(document)) < 256 * 1024 for document in documents)


def test_count_metric_appears_once_even_when_samples_need_several_documents() -> None:
    records = [
        _record("pacs-backend", f'{{"level":"INFO","message":"Request completed","duration":{i}}}') for i in range(150)
    ]
    records.append(_record("pacs-backend", ERROR_LINES[0]))
    _, documents = _aggregate(records)
    assert summarize(documents)["PACSBackendErrors"] == {"sum": 1.0, "values": 1}
    assert summarize(documents)["PACSBackendResponseTime"]["values"] == 150


def test_points_outside_cloudwatch_window_are_counted_not_sent() -> None:
    old = NOW_MS - 15 * 24 * 3600 * 1000
    future = NOW_MS + 3 * 3600 * 1000
    aggregator, documents = _aggregate(
        [
            _record("pacs-backend", ERROR_LINES[0], timestamp_ms=old),
            _record("pacs-backend", ERROR_LINES[0], timestamp_ms=future),
        ],
    )
    assert documents == []
    assert aggregator.totals.out_of_window == 2


def test_non_numeric_value_is_counted_as_bad() -> None:
    aggregator, documents = _aggregate(
        [_record("pacs-backend", '{"level":"INFO","message":"Request completed","duration":"fast"}')]
    )
    assert documents == []
    assert aggregator.totals.bad_values == 1


def test_write_emits_one_json_line_per_document() -> None:
    aggregator = MetricAggregator(load_metric_rules())
    aggregator.observe(_record("pacs-backend", ERROR_LINES[0]))
    aggregator.observe(_record("keycloak", AUTH_FAILURE_LINES[0]))
    lines: list[bytes] = []
    assert aggregator.write(NOW_MS, lines.append) == 2
    assert all(line.endswith(b"\n") and json.loads(line)["_aws"] for line in lines)


def test_a_user_rule_file_adds_a_metric_without_python(tmp_path: Path) -> None:
    rules = {
        "version": 1,
        "metrics": [
            {
                "name": "SlowQueries",
                "namespace": "PACS/Database",
                "unit": "Milliseconds",
                "when": [{"message_prefix": "duration:", "has_fields": ["duration_ms"]}],
                "value": "$duration_ms",
            },
        ],
    }
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    rule_set = load_metric_rules(path)
    aggregator = MetricAggregator(rule_set)
    context = StreamContext("/aws/rds/db/postgresql", "s", "1", "r", "rds", "db", "postgresql", "prod")
    line = "2026-11-22 01:02:03 UTC:10.0.1.23(53412):u@d:[1]:LOG:  duration: 5123.456 ms  statement: SELECT 1"
    parsed = parse_line(line)
    record = LogRecord(
        NOW_MS,
        Level.INFO,
        parsed.message,
        "db",
        "prod",
        None,
        parsed.fields,
        None,
        "1",
        context,
        parsed.format,
        None,
        line,
    )
    aggregator.observe(record)
    documents = list(aggregator.documents(NOW_MS))
    assert documents[0]["SlowQueries"] == 5123.456
    assert documents[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "PACS/Database"


def test_default_rules_match_the_seed() -> None:
    rule_set = load_metric_rules()
    table = {(rule.name, rule.namespace, rule.unit) for rule in rule_set.rules}
    assert table == {
        ("PACSBackendErrors", "PACS/Application", "Count"),
        ("PACSBackendResponseTime", "PACS/Application", "Milliseconds"),
        ("DICOMProcessed", "PACS/Business", "Count"),
        ("AuthenticationFailures", "PACS/Security", "Count"),
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": 2, "metrics": []}, '"version": 1'),
        ({"version": 1}, "'metrics' must be a list"),
        ({"version": 1, "metrics": [{"name": "A"}]}, "'namespace' is required"),
        ({"version": 1, "metrics": [{"name": "A", "namespace": "N", "when": []}]}, "non-empty list of matchers"),
        (
            {"version": 1, "metrics": [{"name": "A", "namespace": "N", "unit": "Parsecs", "when": [{"message": "x"}]}]},
            "not a CloudWatch unit",
        ),
        ({"version": 1, "metrics": [{"name": "A", "namespace": "N", "when": [{"levels": ["LOUD"]}]}]}, "unknown level"),
        ({"version": 1, "metrics": [{"name": "A", "namespace": "N", "when": [{}]}]}, "at least one condition"),
        ({"version": 1, "metrics": [{"name": "A", "namespace": "N", "when": [{"mesage": "typo"}]}]}, "unknown keys"),
        (
            {
                "version": 1,
                "metrics": [{"name": "A", "namespace": "N", "value": "duration", "when": [{"message": "x"}]}],
            },
            "'\\$field'",
        ),
        (
            {"version": 1, "metrics": [{"name": "A", "namespace": "N", "value": True, "when": [{"message": "x"}]}]},
            "number or",
        ),
        (
            {"version": 1, "metrics": [{"name": "A", "namespace": "N", "when": [{"message": "x"}]}] * 2},
            "duplicate metric name",
        ),
        ({"version": 1, "dimensions": ["Host"], "metrics": []}, "supported dimensions"),
    ],
)
def test_invalid_rule_files_are_clear_errors(document: object, message: str) -> None:
    with pytest.raises(MetricRulesError, match=message):
        build_rule_set(document, "rules.json")


def test_unreadable_and_non_json_rule_files(tmp_path: Path) -> None:
    with pytest.raises(MetricRulesError, match="cannot read"):
        load_metric_rules(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(MetricRulesError, match="not valid JSON"):
        load_metric_rules(bad)
