"""Error records -> Sentry event payloads, checked against golden files.

Goldens live in ``tests/golden/sentry/<case>.json``; ``build_event`` output must equal them exactly.
After an intended change to the mapping, rewrite them and review the diff::

    LOGPIPE_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/unit/test_sentry_event.py

The records come from the sample events in ``events/decoded/`` (parsed by ``logpipe.assemble``)
plus realistic Node samples written here; breadcrumbs are picked from the same batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from logpipe.records import Level, LogFormat, LogRecord, StreamContext
from logpipe.sentry.event import (
    EVENT_ID_NAMESPACE,
    MAX_BREADCRUMB_MESSAGE_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_TAG_CHARS,
    BreadcrumbIndex,
    build_event,
    console_url,
    fingerprint,
    normalize_message,
    release_of,
    rfc3339,
    select_breadcrumbs,
    sentry_event_id,
    server_name_of,
)
from payloads import OWNER, data_message, records_of_document

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = ROOT / "tests" / "golden" / "sentry"
DECODED = ROOT / "events" / "decoded"
REGION = "ap-northeast-2"
UPDATE_GOLDENS = os.environ.get("LOGPIPE_UPDATE_GOLDENS") == "1"
GOLDEN_SDK_VERSION = "golden"  # fixed, so a version bump does not rewrite every golden


def assert_golden(name: str, event: Mapping[str, Any]) -> None:
    """Compare ``event`` with ``tests/golden/sentry/<name>.json``; rewrite it when LOGPIPE_UPDATE_GOLDENS=1."""
    path = GOLDEN_DIR / f"{name}.json"
    text = json.dumps(event, indent=2, ensure_ascii=False) + "\n"
    if UPDATE_GOLDENS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"golden {path} is missing: run with LOGPIPE_UPDATE_GOLDENS=1 and review it"
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(text), f"event differs from golden {name}"


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def records_of(document: Mapping[str, Any]) -> list[LogRecord]:
    """Parse a decoded DATA_MESSAGE the way the pipeline does."""
    return records_of_document(document)


def sample(name: str) -> list[LogRecord]:
    return records_of(json.loads((DECODED / f"{name}.json").read_text(encoding="utf-8")))


NODE_REQUEST = "5f0c1c1e-2b7a-4f43-9d3a-0c8f6a1e2b11"
NODE_STACK = "\n".join(
    [
        "TypeError: Cannot read properties of undefined (reading 'StudyInstanceUID')",
        "    at buildThumbnailKey (/usr/src/app/src/thumbnails/keys.js:18:35)",
        "    at ThumbnailService.render (/usr/src/app/src/thumbnails/service.js:77:21)",
        "    at async Promise.all (index 0)",
        "    at async renderStudy (/usr/src/app/src/routes/studies.js:41:5)",
        "    at async /usr/src/app/node_modules/express-async-handler/index.js:3:14",
    ]
)


def node_records() -> list[LogRecord]:
    """A Node (winston JSON) viewer API: two lines of the failing request, one of another, the error."""
    path = "/api/studies/1.2.840.113619.2.55.3.604688119.969.1268071029.320/thumbnail"
    lines: list[dict[str, Any]] = [
        {"level": "info", "message": f"GET {path}", "requestId": NODE_REQUEST, "method": "GET", "path": path},
        {
            "level": "info",
            "message": "GET /healthz",
            "requestId": "0d9e7a55-3c1f-4d43-8f1e-7f2b0a9c1d22",
            "status": 200,
        },
        {"level": "warn", "message": "Series cache miss", "requestId": NODE_REQUEST, "cache": "thumbnails"},
        {
            "level": "error",
            "message": "Failed to render study thumbnail",
            "requestId": NODE_REQUEST,
            "hostname": "ip-10-0-2-17.ap-northeast-2.compute.internal",
            "release": "2.14.0",
            "route": "/api/studies/:uid/thumbnail",
            "stack": NODE_STACK,
        },
    ]
    messages = [
        json.dumps(
            {
                **line,
                "service": "pacs-viewer-api",
                "environment": "prod",
                "timestamp": f"2026-11-22T01:00:05.{100 + n}Z",
            }
        )
        for n, line in enumerate(lines)
    ]
    return records_of(
        data_message(
            "/aws/ecs/pacs-viewer-api/application",
            messages,
            start_ms=1_795_309_205_100,
            log_stream="ecs/pacs-viewer-api/3f1d0c7e2b9a4c58a6e1f0d2c3b4a596",
        )
    )


def lambda_node_init_records() -> list[LogRecord]:
    """The Node.js runtime's init failure, written as its error JSON."""
    error = {
        "errorType": "Runtime.ImportModuleError",
        "errorMessage": "Error: Cannot find module 'sharp'\nRequire stack:\n- /var/task/index.js",
        "stack": [
            "Runtime.ImportModuleError: Error: Cannot find module 'sharp'",
            "Require stack:",
            "- /var/task/index.js",
            "    at _loadUserApp (file:///var/runtime/index.mjs:1087:17)",
            "    at async UserFunction.js.module.exports.load (file:///var/runtime/index.mjs:1119:21)",
            "    at async start (file:///var/runtime/index.mjs:1282:23)",
            "    at async file:///var/runtime/index.mjs:1288:1",
        ],
    }
    return records_of(
        data_message(
            "/aws/lambda/pacs-dicomweb-proxy",
            [
                "INIT_START Runtime Version: nodejs:20.v48\tRuntime Version ARN: arn:aws:lambda:ap-northeast-2::runtime:0c7a\n",
                json.dumps(error),
            ],
            start_ms=1_795_309_206_000,
            log_stream="2026/11/22/[7]4b2f9a0c1d8e4f6a9b3c2d1e0f9a8b7c",
        )
    )


def _one(records: list[LogRecord], predicate: Callable[[LogRecord], bool]) -> tuple[LogRecord, list[LogRecord]]:
    matches = [record for record in records if predicate(record)]
    assert len(matches) == 1, matches
    return matches[0], records


GOLDEN_CASES: dict[str, Callable[[], tuple[LogRecord, list[LogRecord]]]] = {
    "python-traceback-split": lambda: _one(
        sample("cwl-pacs-backend-errors"), lambda r: (r.exception or "").endswith("ValueError: study not found")
    ),
    "python-chained": lambda: _one(
        sample("cwl-pacs-backend-errors"), lambda r: "StudyUnavailable" in (r.exception or "")
    ),
    "nested-extra-exc-info": lambda: _one(
        sample("cwl-pacs-backend-errors"), lambda r: "asctime" in r.fields and r.exception is not None
    ),
    "space-delimited-no-trace": lambda: _one(
        sample("cwl-pacs-backend-errors"), lambda r: r.format is LogFormat.SPACE_DELIMITED
    ),
    "keycloak-java-caused-by": lambda: _one(sample("cwl-keycloak"), lambda r: r.exception is not None),
    "lambda-runtime-error-json": lambda: _one(
        sample("cwl-lambda-thumbnailer"), lambda r: r.format is LogFormat.LAMBDA_ERROR_JSON
    ),
    "lambda-error-line": lambda: _one(
        sample("cwl-lambda-thumbnailer"), lambda r: r.format is LogFormat.LAMBDA_RUNTIME and r.exception is not None
    ),
    "lambda-task-timeout": lambda: _one(
        sample("cwl-lambda-thumbnailer"), lambda r: r.message.startswith("Task timed out")
    ),
    "powertools-exception": lambda: _one(
        sample("cwl-lambda-thumbnailer"), lambda r: r.format is LogFormat.POWERTOOLS and r.exception is not None
    ),
    "postgres-error-detail": lambda: _one(sample("cwl-rds-postgresql"), lambda r: "studies_pkey" in r.message),
    "postgres-fatal": lambda: _one(sample("cwl-rds-postgresql"), lambda r: r.level is Level.CRITICAL),
    "node-trace": lambda: _one(node_records(), lambda r: r.exception is not None),
    "lambda-node-init-error-json": lambda: _one(
        lambda_node_init_records(), lambda r: r.format is LogFormat.LAMBDA_ERROR_JSON
    ),
}


def golden_event(name: str) -> dict[str, Any]:
    record, batch = GOLDEN_CASES[name]()
    return build_event(record, breadcrumbs=select_breadcrumbs(record, batch), sdk_version=GOLDEN_SDK_VERSION)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_event_matches_golden(name: str) -> None:
    event = golden_event(name)
    assert_golden(name, event)
    assert golden_event(name) == event  # deterministic: a second build is identical


# --------------------------------------------------------------------------------------------
# What the goldens pin, asserted directly
# --------------------------------------------------------------------------------------------


def test_split_traceback_event_shape() -> None:
    event = golden_event("python-traceback-split")
    record, _ = GOLDEN_CASES["python-traceback-split"]()
    assert event["event_id"] == sentry_event_id(record.log_group, record.event_id)
    assert event["timestamp"] == "2026-11-22T01:00:03.613Z"
    assert (event["platform"], event["level"], event["logger"]) == ("python", "error", "pacs.api")
    assert event["message"] == {"formatted": "Unhandled exception"}
    [value] = event["exception"]["values"]
    assert (value["type"], value["value"]) == ("ValueError", "study not found")
    assert [frame["lineno"] for frame in value["stacktrace"]["frames"]] == [120, 45]
    assert event["fingerprint"] == ["pacs-backend", "ValueError", "Unhandled exception | study not found"]
    assert event["tags"]["request_id"] == "58a722de-c7c3-4f87-a41f-3d754a7e9987"
    assert event["tags"]["logpipe.format"] == "key_value"
    assert event["contexts"]["cloudwatch"]["line_count"] == 7
    assert event["sdk"] == {"name": "logpipe", "version": GOLDEN_SDK_VERSION}
    assert "extra" not in event


def test_keycloak_event_is_java_with_cause_first_and_stream_breadcrumbs() -> None:
    event = golden_event("keycloak-java-caused-by")
    assert event["platform"] == "java"
    types = [value["type"] for value in event["exception"]["values"]]
    assert types == ["PSQLException", "NullPointerException"]
    assert event["fingerprint"][:2] == ["keycloak", "java.lang.NullPointerException"]
    # No request id: the earlier records of the same stream, oldest first, the error's own line excluded.
    crumbs = event["breadcrumbs"]["values"]
    assert len(crumbs) == 6
    assert [crumb["timestamp"] for crumb in crumbs] == sorted(crumb["timestamp"] for crumb in crumbs)
    assert crumbs[-1]["timestamp"] < event["timestamp"]
    assert crumbs[1]["level"] == "warning"
    assert crumbs[0]["category"] == "org.keycloak.events"


def test_lambda_events_carry_request_breadcrumbs_and_lambda_context() -> None:
    event = golden_event("lambda-error-line")
    assert [crumb["message"] for crumb in event["breadcrumbs"]["values"]] == [
        "START RequestId: 845d867a-00eb-40d6-aa68-210d46b5fc59 Version: $LATEST",
        "Processing DICOM object",
    ]
    assert event["contexts"]["aws_lambda"]["function_version"] == "$LATEST"
    assert event["contexts"]["aws_lambda"]["aws_request_id"] == "845d867a-00eb-40d6-aa68-210d46b5fc59"
    json_error = golden_event("lambda-runtime-error-json")
    assert json_error["exception"]["values"][0]["stacktrace"]["frames"][0]["abs_path"] == "/var/task/app.py"
    # The same bug written two ways groups by type, not by the text around it.
    assert json_error["fingerprint"] == event["fingerprint"]


def test_task_timeout_is_a_frameless_lambda_timeout() -> None:
    event = golden_event("lambda-task-timeout")
    [value] = event["exception"]["values"]
    assert value["type"] == "LambdaTimeout"
    assert value["value"] == "Task timed out after 30.03 seconds"
    assert "stacktrace" not in value
    assert value["mechanism"]["data"] == {"timeout_seconds": 30.03}
    assert event["fingerprint"] == ["pacs-thumbnailer", "LambdaTimeout", "Task timed out after <num> seconds"]


def test_postgres_events_have_detail_context_and_fatal_level() -> None:
    event = golden_event("postgres-error-detail")
    assert "exception" not in event
    assert event["platform"] == "other"
    assert event["contexts"]["postgres"]["detail"] == "Key (study_uid)=(1.2.3) already exists."
    assert event["contexts"]["postgres"]["statement"].startswith("INSERT INTO studies")
    assert event["fingerprint"] == ["pacs-postgresql", "log", "duplicate key value violates unique constraint <str>"]
    assert golden_event("postgres-fatal")["level"] == "fatal"


def test_node_event_has_release_server_name_and_request_breadcrumbs() -> None:
    event = golden_event("node-trace")
    assert event["platform"] == "node"
    assert event["release"] == "pacs-viewer-api@2.14.0"
    assert event["server_name"] == "ip-10-0-2-17.ap-northeast-2.compute.internal"
    [value] = event["exception"]["values"]
    assert value["stacktrace"]["frames"][-1]["function"] == "buildThumbnailKey"
    assert [crumb["message"] for crumb in event["breadcrumbs"]["values"]] == [
        "GET /api/studies/1.2.840.113619.2.55.3.604688119.969.1268071029.320/thumbnail",
        "Series cache miss",
    ]
    assert event["breadcrumbs"]["values"][1]["data"] == {"request_id": NODE_REQUEST, "cache": "thumbnails"}


def test_lambda_node_error_json_is_parsed_from_its_fields() -> None:
    event = golden_event("lambda-node-init-error-json")
    assert event["platform"] == "node"
    [value] = event["exception"]["values"]
    assert value["type"] == "Runtime.ImportModuleError"
    frames = value["stacktrace"]["frames"]
    assert [frame["lineno"] for frame in frames] == [1288, 1282, 1119, 1087]
    assert not any(frame["in_app"] for frame in frames)  # /var/runtime is the runtime, not the app


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------


def _record(**changes: Any) -> LogRecord:
    base, _ = GOLDEN_CASES["python-traceback-split"]()
    return replace(base, **changes)


def test_event_id_is_deterministic_uuid5_hex() -> None:
    event_id = sentry_event_id("/aws/ecs/pacs-backend/errors", "1" * 56)
    assert event_id == sentry_event_id("/aws/ecs/pacs-backend/errors", "1" * 56)
    assert len(event_id) == 32
    assert event_id == event_id.lower()
    assert uuid.UUID(hex=event_id).version == 5
    assert event_id == uuid.uuid5(EVENT_ID_NAMESPACE, "/aws/ecs/pacs-backend/errors/" + "1" * 56).hex
    assert uuid.uuid5(uuid.NAMESPACE_URL, "urn:pacs-logpipe:sentry-event-id") == EVENT_ID_NAMESPACE
    assert sentry_event_id("/aws/ecs/keycloak", "1" * 56) != event_id
    assert sentry_event_id("/aws/ecs/pacs-backend/errors", "2" * 56) != event_id


def test_build_event_reads_no_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_clock() -> float:
        raise AssertionError("build_event must not read the clock")

    monkeypatch.setattr(time, "time", no_clock)
    monkeypatch.setattr(time, "time_ns", no_clock)
    event = build_event(_record())
    assert event["timestamp"] == rfc3339(_record().timestamp_ms)


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1_795_309_203_613) == "2026-11-22T01:00:03.613Z"
    assert rfc3339(1_795_309_203_007) == "2026-11-22T01:00:03.007Z"


def test_levels_map_to_sentry_levels() -> None:
    levels = {level: build_event(_record(level=level))["level"] for level in Level}
    assert levels == {
        Level.DEBUG: "debug",
        Level.INFO: "info",
        Level.WARNING: "warning",
        Level.ERROR: "error",
        Level.CRITICAL: "fatal",
    }


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Study 1.2.840.113619.2.55.3.604688119 not found", "Study <num> not found"),
        ("user 3ceef809-764c-475c-8329-a72cffb5288e locked", "user <id> locked"),
        ("mail to minsu.kim7@hospital.example.kr bounced", "mail to <email> bounced"),
        ("peer 10.0.1.23:5432 reset", "peer <ip> reset"),
        ("peer 2001:db8::8a2e:370:7334 reset", "peer <ip> reset"),
        ('duplicate key "studies_pkey"', "duplicate key <str>"),
        ("KeyError: 'SeriesInstanceUID'", "KeyError: <str>"),
        ("object 0x7f3a2c1e9d40 freed; sha deadbeef12345678", "object <id> freed; sha <id>"),
        ("token eyJhbGciOiJIUzI1NiJ9abc123xyz0987 rejected", "token <id> rejected"),
        ("at 2026-11-22T01:00:03.613Z took 5123.456 ms", "at <datetime> took <num> ms"),
        ("KC-SERVICES0013: can't   login", "KC-SERVICES0013: can't login"),
        ("Task timed out after 30.03 seconds", "Task timed out after <num> seconds"),
        # Request ids, accession numbers and durations: one placeholder whatever their shape.
        ("request req-7f3c9a2b took 5123ms", "request <id> took <num>ms"),
        ("request_id=4f2b8c1e-9d3a-4e5f-8a7b-6c5d4e3f2a1b failed", "request_id=<id> failed"),
        ("session a93kx0q7 expired", "session <id> expired"),
        ("for accession ACN0012345 after 5.2s", "for accession <id> after <num>s"),
        ("Accession no. ACN-2026-000777: not in worklist", "accession <id>: not in worklist"),
        ("ORA-00942: table or view does not exist", "ORA-<num>: table or view does not exist"),
    ],
)
def test_normalize_message(message: str, expected: str) -> None:
    assert normalize_message(message) == expected


@pytest.mark.parametrize(
    "template",
    [
        "Archive fetch failed for study {uid} (accession {acc}), request {rid}, after {ms} ms",
        "Archive fetch failed study_uid={uid} accession_number={acc} request_id={rid} duration={ms}ms",
    ],
)
def test_one_error_with_different_uids_accessions_request_ids_and_durations_has_one_fingerprint(
    template: str,
) -> None:
    from logpipe.boundary import Boundary

    variants = [
        ("1.2.840.113619.2.55.3.604688119.969.1268071029.320", "ACN0012345", "req-7f3c9a2b", "5123"),
        ("1.2.410.200010.1073.5851.20261122.1", "ACN0099871", "req-01e4ab9c", "87"),
        ("2.25.329800735698586629295641978511506172918", "ACN0000042", "4f2b8c1e-9d3a-4e5f-8a7b-6c5d4e3f2a1b", "5"),
    ]
    boundary = Boundary.default()  # the sink fingerprints the record as the boundary scrubbed it
    prints = {
        tuple(fingerprint(boundary.record(_record(message=template.format(uid=u, acc=a, rid=r, ms=m))), "X"))
        for u, a, r, m in variants
    }
    assert len(prints) == 1, prints


def test_fingerprint_groups_one_bug_and_splits_different_types() -> None:
    first = _record(message="Study 1.2.840.1 missing for user 3ceef809-764c-475c-8329-a72cffb5288e from 10.0.1.5")
    second = _record(message="Study 1.2.840.99 missing for user 0464f592-38b6-4910-8572-b8006673cb4c from 10.0.3.9")
    assert fingerprint(first, "ValueError") == fingerprint(second, "ValueError")
    assert fingerprint(first, "ValueError") != fingerprint(first, "KeyError")
    assert fingerprint(first, None)[1] == "log"
    assert fingerprint(replace(first, service="keycloak"), "ValueError") != fingerprint(first, "ValueError")
    assert build_event(first)["fingerprint"] == build_event(second)["fingerprint"]
    # The two "Failed to store instance" records of the errors sample: two loggers' formats, one issue.
    records = [r for r in sample("cwl-pacs-backend-errors") if r.message == "Failed to store instance"]
    assert len(records) == 2
    prints = {tuple(build_event(r)["fingerprint"]) for r in records}
    assert prints == {
        (
            "pacs-backend",
            "psycopg.errors.UniqueViolation",
            "Failed to store instance | duplicate key value violates unique constraint <str>",
        )
    }


def test_fingerprint_of_a_generic_log_message_uses_the_exception_message() -> None:
    record = _record(message="Unhandled exception")
    assert fingerprint(record, "ValueError", "study 1.2.3 not found") == fingerprint(
        record, "ValueError", "study 4.5.6 not found\nmore detail"
    )
    assert fingerprint(record, "ValueError", "study 1.2.3 not found") != fingerprint(
        record, "ValueError", "invalid modality 'XX'"
    )
    assert (
        fingerprint(record, "ValueError", "study 1.2.3 not found")[2] == "Unhandled exception | study <num> not found"
    )
    # Already in the log message: not repeated.
    said = _record(message="KeyError: 'SeriesInstanceUID'")
    assert fingerprint(said, "KeyError", "'SeriesInstanceUID'")[2] == "KeyError: <str>"


def _crumb_batch() -> list[LogRecord]:
    base = _record()
    stream = base.stream
    other = replace(stream, log_stream="ecs/other/1")

    def make(ts: int, eid: int, rid: str | None, on: StreamContext = stream) -> LogRecord:
        return replace(base, timestamp_ms=ts, event_id=str(eid).zfill(56), request_id=rid, stream=on, message=f"m{eid}")

    return [
        make(100, 1, "r1"),
        make(100, 2, "r2"),
        make(101, 3, None),
        make(102, 4, "r1", other),  # same request id, another stream
        make(103, 5, None, other),
        make(104, 6, "r1"),
        make(104, 7, "r1"),  # same ms as the next record: ordered by event id
        make(104, 8, "r1"),
        make(105, 9, None),
        make(106, 10, "r1"),  # later than every target below
    ]


def test_breadcrumbs_same_request_id_only_earlier_most_recent_last() -> None:
    batch = _crumb_batch()
    target = batch[7]  # r1 at 104, event 8
    assert [r.message for r in select_breadcrumbs(target, batch)] == ["m1", "m4", "m6", "m7"]
    assert [r.message for r in select_breadcrumbs(target, batch, limit=2)] == ["m6", "m7"]
    assert select_breadcrumbs(target, batch, limit=0) == []
    assert select_breadcrumbs(batch[0], batch) == []


def test_breadcrumbs_fall_back_to_the_stream_without_request_id() -> None:
    batch = _crumb_batch()
    target = batch[8]  # no request id, first stream, 105
    assert [r.message for r in select_breadcrumbs(target, batch)] == ["m1", "m2", "m3", "m6", "m7", "m8"]
    other_target = batch[4]  # no request id, other stream
    assert [r.message for r in select_breadcrumbs(other_target, batch)] == ["m4"]


def test_breadcrumbs_limit_default_and_any_input_order() -> None:
    base = _record(request_id="req")
    batch = [replace(base, timestamp_ms=1000 + n, event_id=str(n).zfill(56), message=f"m{n}") for n in range(40)]
    target = batch[-1]
    shuffled = list(reversed(batch))
    picked = select_breadcrumbs(target, shuffled)
    assert [r.message for r in picked] == [f"m{n}" for n in range(19, 39)]
    assert [r.message for r in BreadcrumbIndex(batch).select(target)] == [r.message for r in picked]


def test_breadcrumb_index_cache_follows_the_batch() -> None:
    batch = _crumb_batch()
    target = batch[7]
    assert len(select_breadcrumbs(target, batch)) == 4
    batch.insert(0, replace(batch[0], event_id="0" * 56, message="m0"))  # changed in place: re-indexed
    assert [r.message for r in select_breadcrumbs(target, batch)] == ["m0", "m1", "m4", "m6", "m7"]
    assert [r.message for r in select_breadcrumbs(target, batch[1:])] == ["m1", "m4", "m6", "m7"]


def test_console_url_escaping() -> None:
    url = console_url(
        "ap-northeast-2",
        "/aws/lambda/pacs-thumbnailer",
        "2026/11/22/[$LATEST]b912cd00",
        1795309207452,
        "4003" + "0" * 52,
    )
    assert url == (
        "https://ap-northeast-2.console.aws.amazon.com/cloudwatch/home?region=ap-northeast-2"
        "#logsV2:log-groups/log-group/$252Faws$252Flambda$252Fpacs-thumbnailer"
        "/log-events/2026$252F11$252F22$252F$255B$2524LATEST$255Db912cd00"
        "$3Fstart$3D1795309207452$26refEventId$3D4003" + "0" * 52
    )
    spaced = console_url("us-east-1", "/my group#1", "a b", 1, "2")
    assert "/log-group/$252Fmy$2520group$25231/log-events/a$2520b$3Fstart$3D1$26refEventId$3D2" in spaced
    assert console_url("cn-north-1", "/g", "s", 1, "2").startswith(
        "https://cn-north-1.console.amazonaws.cn/cloudwatch/"
    )
    assert "%" not in url


def test_release_and_server_name_extraction() -> None:
    def with_fields(**fields: Any) -> LogRecord:
        return _record(fields=fields)

    assert release_of(with_fields(release="1.4.2")) == "pacs-backend@1.4.2"
    assert release_of(with_fields(release="pacs-backend@1.4.2+abc")) == "pacs-backend@1.4.2+abc"
    assert release_of(with_fields(version="2.0.0")) == "pacs-backend@2.0.0"
    assert release_of(with_fields(**{"service.version": "3.1"})) == "pacs-backend@3.1"
    assert release_of(with_fields(service={"name": "x", "version": "4.0"})) == "pacs-backend@4.0"
    assert release_of(with_fields(release="feature/x", version="5.0")) == "pacs-backend@5.0"  # '/' is refused
    assert release_of(with_fields(release="..")) is None
    assert release_of(replace(with_fields(release="1.0"), service="team/api")) == "team-api@1.0"
    assert release_of(with_fields()) is None
    assert server_name_of(with_fields(hostname="pacs-1")) == "pacs-1"
    assert server_name_of(with_fields(hostName="keycloak-0")) == "keycloak-0"
    assert server_name_of(with_fields(server_name="db-1")) == "db-1"
    assert server_name_of(with_fields(host={"name": "ip-10-0-1-5"})) == "ip-10-0-1-5"
    assert server_name_of(with_fields(host="")) is None
    event = build_event(with_fields(release="1.4.2", hostname="pacs-1"))
    assert (event["release"], event["server_name"]) == ("pacs-backend@1.4.2", "pacs-1")
    assert "release" not in build_event(with_fields())
    assert "server_name" not in build_event(with_fields())


def test_truncation_of_message_breadcrumbs_and_tags() -> None:
    long = _record(message="x" * 20_000, request_id="r" * 500)
    event = build_event(long, breadcrumbs=[long])
    assert len(event["message"]["formatted"]) == MAX_MESSAGE_CHARS
    assert event["message"]["formatted"].endswith("...")
    assert len(event["breadcrumbs"]["values"][0]["message"]) == MAX_BREADCRUMB_MESSAGE_CHARS
    assert len(event["tags"]["request_id"]) == MAX_TAG_CHARS
    newline = build_event(_record(environment="prod\nstaging"))
    assert newline["tags"]["environment"] == "prod staging"
    assert len(json.dumps(event)) < 200_000


def test_suppressed_similar_goes_to_extra_only_when_positive() -> None:
    assert "extra" not in build_event(_record(), suppressed_similar=0)
    assert build_event(_record(), suppressed_similar=7)["extra"] == {"suppressed_similar_events": 7}


def test_tags_and_cloudwatch_context() -> None:
    event = build_event(_record(request_id=None))
    assert set(event["tags"]) == {
        "service",
        "environment",
        "log_group",
        "log_stream",
        "region",
        "account",
        "logpipe.format",
    }
    assert event["tags"]["account"] == OWNER
    cloudwatch = event["contexts"]["cloudwatch"]
    assert cloudwatch["region"] == REGION
    assert cloudwatch["console_url"].endswith(f"$26refEventId$3D{cloudwatch['event_id']}")


def test_event_module_does_not_import_sentry_sdk() -> None:
    code = "import sys, logpipe.sentry.event, logpipe.sentry.stacktrace; print('sentry_sdk' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.strip() == "False"


def test_index_is_built_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    import logpipe.sentry.event as event_module

    built: list[int] = []

    class CountingIndex(BreadcrumbIndex):
        def __init__(self, batch: Any) -> None:
            built.append(1)
            super().__init__(batch)

    monkeypatch.setattr(event_module, "BreadcrumbIndex", CountingIndex)
    monkeypatch.setattr(event_module, "_LAST_INDEX", event_module._LastIndex())
    batch = _crumb_batch()
    for record in batch:
        select_breadcrumbs(record, batch)
    assert len(built) == 1
    select_breadcrumbs(batch[0], list(batch))  # an equal but different sequence is indexed anew
    assert len(built) == 2


def test_breadcrumb_entries() -> None:
    batch = _crumb_batch()
    error = replace(
        batch[5],
        level=Level.ERROR,
        logger=None,
        message="",
        raw="first line\nsecond",
        fields={"a": 1, "b": {"x": 1}, "message": "dup", "c": "y" * 1000},
    )
    [crumb] = build_event(batch[7], breadcrumbs=[error])["breadcrumbs"]["values"]
    assert crumb["type"] == "error"
    assert crumb["level"] == "error"
    assert crumb["category"] == "pacs-backend"  # no logger: the service
    assert crumb["message"] == "first line"
    assert crumb["timestamp"] == rfc3339(error.timestamp_ms)
    # Scalars only, consumed keys (message, ...) left out, long values cut.
    assert list(crumb["data"]) == ["request_id", "a", "c"]
    assert len(crumb["data"]["c"]) == 256
    many = replace(error, fields={f"k{n}": n for n in range(30)})
    [crumb] = build_event(batch[7], breadcrumbs=[many])["breadcrumbs"]["values"]
    assert len(crumb["data"]) == 8
    assert build_event(batch[7])["breadcrumbs"] == {"values": []}


def test_unrecognised_trace_becomes_a_frameless_exception_event() -> None:
    event = build_event(_record(exception="something odd happened\nand more", message="Worker crashed"))
    [value] = event["exception"]["values"]
    assert (value["type"], value["value"]) == ("Error", "Worker crashed")
    assert "stacktrace" not in value
    assert event["platform"] == "other"
    assert event["fingerprint"] == ["pacs-backend", "Error", "Worker crashed"]
