"""Multi-line reassembly: a trace split over several events of one stream becomes one record."""

from __future__ import annotations

import pytest

from logpipe.assemble import assemble_records, stream_context
from logpipe.decode import LogBatch
from logpipe.records import Level, LogRecord
from payloads import data_message

pytestmark = pytest.mark.unit


def _batch(log_group: str, messages: list[str], events: list[object] | None = None) -> LogBatch:
    document = data_message(log_group, messages)
    return LogBatch(
        message_type="DATA_MESSAGE",
        owner="123456789012",
        log_group=log_group,
        log_stream=document["logStream"],
        subscription_filters=(),
        events=events if events is not None else document["logEvents"],  # type: ignore[arg-type]
        policy_level=None,
        payload_id="p",
        source="awslogs",
    )


def _records(log_group: str, messages: list[str]) -> list[LogRecord]:
    batch = _batch(log_group, messages)
    records, bad = assemble_records(batch, stream_context(batch, "ap-northeast-2", "prod"))
    assert bad == []
    return records


PYTHON_SPLIT = [
    "2026-11-22 01:02:03,456 INFO [pacs.api] request_id=r0 Request completed duration=12",
    "2026-11-22 01:02:03,456 ERROR [pacs.api] request_id=r1 Unhandled exception",
    "Traceback (most recent call last):",
    '  File "/app/pacs/api/views.py", line 120, in get_study',
    "    return repo.get(uid)",
    '  File "/app/pacs/repo.py", line 40, in get',
    "    raise ValueError('study not found')",
    "ValueError: study not found",
    "2026-11-22 01:02:04,000 INFO [pacs.api] request_id=r2 Request completed duration=15",
]


def test_python_traceback_split_over_events_is_one_record() -> None:
    records = _records("/aws/ecs/pacs-backend/application", PYTHON_SPLIT)
    assert [record.request_id for record in records] == ["r0", "r1", "r2"]
    error = records[1]
    assert error.level is Level.ERROR
    assert error.message == "Unhandled exception"
    assert error.line_count == 7
    assert error.exception is not None
    assert error.exception.splitlines()[0] == "Traceback (most recent call last):"
    assert error.exception.splitlines()[-1] == "ValueError: study not found"
    assert error.event_id == str(1).zfill(56)
    assert error.raw.count("\n") == 6


def test_chained_python_exceptions_stay_together() -> None:
    messages = [
        "2026-11-22 01:02:03,456 ERROR [pacs.dicom] request_id=r1 Store failed",
        "Traceback (most recent call last):",
        '  File "/app/pacs/dicom/store.py", line 88, in store',
        "    conn.execute(sql)",
        'psycopg.errors.UniqueViolation: duplicate key value violates unique constraint "instances_pkey"',
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        '  File "/app/pacs/api/views.py", line 50, in upload',
        "    store(ds)",
        "pacs.errors.StoreError: could not store instance",
        "2026-11-22 01:02:05,000 INFO [pacs.api] request_id=r2 Request completed duration=15",
    ]
    records = _records("/aws/ecs/pacs-backend/application", messages)
    assert len(records) == 2
    exception = records[0].exception
    assert exception is not None
    assert "UniqueViolation" in exception
    assert "The above exception was the direct cause" in exception
    assert exception.splitlines()[-1] == "pacs.errors.StoreError: could not store instance"


def test_java_trace_with_caused_by_is_one_record() -> None:
    messages = [
        "2026-11-22 01:02:03,456 ERROR [org.keycloak.services] (executor-thread-1) KC-SERVICES0013: Failed authentication",
        'java.lang.NullPointerException: Cannot invoke "String.length()" because "s" is null',
        "\tat org.keycloak.authentication.AuthenticationProcessor.authenticate(AuthenticationProcessor.java:1021)",
        "\tat org.keycloak.services.resources.LoginActionsService.processFlow(LoginActionsService.java:312)",
        "Caused by: org.postgresql.util.PSQLException: Connection refused",
        "\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:319)",
        "\t... 42 more",
        "2026-11-22 01:02:04,000 INFO  [org.keycloak.events] (executor-thread-2) type=LOGIN, realmId=pacs",
    ]
    records = _records("/aws/ecs/keycloak/application", messages)
    assert len(records) == 2
    error = records[0]
    assert error.level is Level.ERROR
    assert error.exception is not None
    assert error.exception.startswith("java.lang.NullPointerException")
    assert "Caused by: org.postgresql.util.PSQLException: Connection refused" in error.exception
    assert error.exception.endswith("\t... 42 more")
    assert records[1].fields["type"] == "LOGIN"


def test_java_exception_line_after_an_info_line_is_not_swallowed() -> None:
    messages = [
        "2026-11-22 01:02:03,456 INFO  [org.keycloak.events] (t) type=LOGIN, realmId=pacs",
        "java.lang.IllegalStateException: stray line",
    ]
    records = _records("/aws/ecs/keycloak/application", messages)
    assert len(records) == 2


def test_a_trace_whose_head_was_in_a_previous_batch_is_its_own_error_record() -> None:
    records = _records(
        "/aws/ecs/pacs-backend/application",
        ["Traceback (most recent call last):", '  File "/app/x.py", line 1, in f', "KeyError: 'x'"],
    )
    assert len(records) == 1
    assert records[0].level is Level.ERROR
    assert records[0].exception is not None
    assert records[0].exception.endswith("KeyError: 'x'")


def test_postgres_detail_and_statement_attach_to_their_error() -> None:
    prefix = "2026-11-22 01:02:03 UTC:10.0.1.23(53412):pacs_app@pacs:[12345]:"
    records = _records(
        "/aws/rds/pacs-postgresql/error",
        [
            f'{prefix}ERROR:  duplicate key value violates unique constraint "studies_pkey"',
            f"{prefix}DETAIL:  Key (study_uid)=(1.2.3) already exists.",
            f"{prefix}STATEMENT:  INSERT INTO studies (study_uid) VALUES ($1)",
            f"{prefix}LOG:  checkpoint complete",
        ],
    )
    assert len(records) == 2
    assert records[0].fields["detail"] == "Key (study_uid)=(1.2.3) already exists."
    assert records[0].fields["statement"] == "INSERT INTO studies (study_uid) VALUES ($1)"
    assert records[0].line_count == 3
    assert records[1].message == "checkpoint complete"


def test_out_of_order_events_are_ordered_before_reassembly() -> None:
    document = data_message("/aws/ecs/pacs-backend/application", PYTHON_SPLIT[1:8])
    events = list(reversed(document["logEvents"]))
    batch = _batch("/aws/ecs/pacs-backend/application", [], events)
    records, _ = assemble_records(batch, stream_context(batch, "ap-northeast-2", "prod"))
    assert len(records) == 1
    assert records[0].exception is not None
    assert records[0].exception.endswith("ValueError: study not found")


def test_events_missing_fields_are_returned_as_bad_not_dropped() -> None:
    events: list[object] = [
        {"id": "1".zfill(56), "timestamp": 1, "message": "fine"},
        {"id": "2".zfill(56), "message": "no timestamp"},
        "not even an object",
    ]
    batch = _batch("/aws/ecs/api/application", [], events)
    records, bad = assemble_records(batch, stream_context(batch, "ap-northeast-2", "prod"))
    assert [record.message for record in records] == ["fine"]
    assert [item.problem for item in bad] == ["log event has no integer timestamp", "log event is not an object"]


def test_record_origin_and_service_come_from_the_batch() -> None:
    records = _records("/aws/ecs/pacs-backend", ["2026-11-22 01:02:03,456 INFO [x] hello"])
    record = records[0]
    assert record.service == "pacs-backend"
    assert record.environment == "prod"
    assert record.origin == ("/aws/ecs/pacs-backend", "ecs/app/0123456789abcdef", "0".zfill(56))
