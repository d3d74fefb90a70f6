"""Tests of the synthetic PACS workload (``logpipe_cli.workload``) and the committed ``events/`` samples."""

from __future__ import annotations

import base64
import binascii
import calendar
import gzip
import itertools
import json
import re
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from logpipe_cli import workload as wl

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
GENERATE = EVENTS / "generate.py"
START_MS = 1_795_309_200_000  # 2026-11-22T01:00:00Z

PII = re.compile(
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"  # email
    r"|(?<![\w-])010-\d{4}-\d{4}(?![\w-])"  # Korean mobile number
    r"|PatientName=\S+"
    r'|\\?"PatientID\\?":\s*\\?"'
    r"|\(0010,0030\) DA \["
    r"|Bearer eyJ"
    r"|postgres://[^:\s]+:[^@\s]+@"
)
ISO = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.(\d{3})Z")
ASCTIME = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3})")
PG_TIME = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) UTC:")
SEQUENCE_MASK = (1 << 64) - 1  # the per-stream sequence number in the low bits of an event id
BACKEND_ERROR_MARKERS = ('"level":"ERROR"', '"levelname": "ERROR"', " ERROR [", ' ERROR "', "level=error ")


@pytest.fixture(scope="module")
def streams() -> list[wl.SyntheticStream]:
    return wl.synthesize_workload(10_000, seed=7, start_ms=START_MS)


def _decode(data: str) -> Any:
    """Independent decoder (does not use the module under test)."""
    return json.loads(gzip.decompress(base64.b64decode(data, validate=True)))


def _events(streams: list[wl.SyntheticStream]) -> Iterator[tuple[str, dict[str, Any]]]:
    for stream in streams:
        for event in stream.events:
            yield stream.log_group, event


def _epoch_ms(text: str, fmt: str, millis: str = "0") -> int:
    return calendar.timegm(time.strptime(text, fmt)) * 1000 + int(millis)


# ---- payload encoding --------------------------------------------------------------------------------


def test_subscription_event_round_trips_through_base64_gzip_json(streams: list[wl.SyntheticStream]) -> None:
    for stream in streams:
        event = wl.subscription_event(stream)
        decoded = _decode(event["awslogs"]["data"])  # type: ignore[index]
        assert decoded == {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": stream.log_group,
            "logStream": stream.log_stream,
            "subscriptionFilters": ["logpipe-ingest"],
            "logEvents": stream.events,
        }
        assert wl.decode_subscription_payload(event["awslogs"]["data"]) == decoded  # type: ignore[index]


def test_encoding_is_byte_for_byte_deterministic(streams: list[wl.SyntheticStream]) -> None:
    first = wl.subscription_event(streams[0])
    assert wl.subscription_event(streams[0]) == first
    raw = base64.b64decode(first["awslogs"]["data"])  # type: ignore[index]
    assert raw[:2] == b"\x1f\x8b"
    assert raw[4:8] == b"\x00\x00\x00\x00"  # gzip mtime fixed at 0


def test_policy_level_and_extracted_fields_are_optional_extras() -> None:
    builder = wl.StreamBuilder(wl.BACKEND_LEGACY_GROUP, "ecs/pacs-backend/abc")
    line = wl.space_delimited_line(START_MS, "INFO", "Request completed", 123, request_id="rid-1")
    builder.add([(START_MS, line)])
    stream = builder.flush()
    assert stream is not None
    plain = wl.subscription_message(stream)
    assert "policyLevel" not in plain
    assert "extractedFields" not in plain["logEvents"][0]  # type: ignore[index]
    rich = wl.subscription_message(
        stream,
        policy_level="ACCOUNT_LEVEL_POLICY",
        extracted_fields=["timestamp", "request_id", "level", "message", "value"],
    )
    assert rich["policyLevel"] == "ACCOUNT_LEVEL_POLICY"
    assert rich["logEvents"][0]["extractedFields"] == {  # type: ignore[index]
        "timestamp": "2026-11-22T01:00:00.000Z",
        "request_id": "rid-1",
        "level": "INFO",
        "message": "Request completed",
        "value": "123",
    }


def test_control_message_event_has_the_cloudwatch_shape() -> None:
    event = wl.control_message_event(START_MS)
    decoded = _decode(event["awslogs"]["data"])  # type: ignore[index]
    assert decoded["messageType"] == "CONTROL_MESSAGE"
    assert decoded["owner"] == "CloudwatchLogs"
    assert (decoded["logGroup"], decoded["logStream"], decoded["subscriptionFilters"]) == ("", "", [])
    assert len(decoded["logEvents"]) == 1
    assert decoded["logEvents"][0]["timestamp"] == START_MS
    assert decoded["logEvents"][0]["message"].startswith("CWL CONTROL MESSAGE: Checking health of destination")


def test_kinesis_event_wraps_one_gzip_data_message_per_stream(streams: list[wl.SyntheticStream]) -> None:
    event = wl.kinesis_event(streams[:3])
    records = event["Records"]
    assert isinstance(records, list)
    assert len(records) == 3
    sequences = []
    for record, stream in zip(records, streams[:3], strict=True):
        assert record["eventSource"] == "aws:kinesis"
        assert record["eventName"] == "aws:kinesis:record"
        assert record["awsRegion"] == "ap-northeast-2"
        assert record["eventSourceARN"] == "arn:aws:kinesis:ap-northeast-2:123456789012:stream/pacs-logs"
        kinesis = record["kinesis"]
        assert kinesis["kinesisSchemaVersion"] == "1.0"
        assert record["eventID"] == f"shardId-000000000000:{kinesis['sequenceNumber']}"
        assert isinstance(kinesis["approximateArrivalTimestamp"], float)
        assert _decode(kinesis["data"]) == wl.subscription_message(stream)
        sequences.append(kinesis["sequenceNumber"])
    assert all(len(sequence) == 56 and sequence.isdigit() for sequence in sequences)
    assert len(set(sequences)) == 3


# ---- ids, ordering and batch limits ----------------------------------------------------------------


def test_event_id_is_56_digits_and_orders_by_time_then_sequence() -> None:
    key = 123_456_789
    ids = [wl.event_id(START_MS, key, 1), wl.event_id(START_MS, key, 2), wl.event_id(START_MS + 1, key, 1)]
    assert all(len(value) == 56 and value.isdigit() for value in ids)
    assert ids == sorted(ids)
    assert [int(value) for value in ids] == sorted(int(value) for value in ids)
    with pytest.raises(ValueError, match="56-digit"):
        wl.event_id(10**14, key, 1)


def test_ids_increase_and_timestamps_never_go_back_within_each_log_stream(streams: list[wl.SyntheticStream]) -> None:
    by_stream: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for stream in streams:
        by_stream.setdefault((stream.log_group, stream.log_stream), []).extend(stream.events)
    assert len(by_stream) >= 15
    for events in by_stream.values():
        ids = [str(event["id"]) for event in events]
        assert all(len(value) == 56 and value.isdigit() for value in ids)
        assert all(a < b for a, b in itertools.pairwise(ids))
        stamps = [int(event["timestamp"]) for event in events]
        assert stamps == sorted(stamps)


def test_total_event_count_is_exact() -> None:
    for total in (0, 1, 7, 2_345):
        generated = wl.synthesize_workload(total, seed=3, start_ms=START_MS)
        assert sum(len(stream.events) for stream in generated) == total
        assert wl.expected_counts(generated)["events"] == total
        assert all(stream.events for stream in generated)


def test_batches_fit_a_subscription_delivery() -> None:
    big = wl.synthesize_workload(40_000, seed=11, start_ms=START_MS)
    assert max(len(stream.events) for stream in big) <= wl.MAX_BATCH_EVENTS
    for stream in big:
        encoded = orjson.dumps(wl.subscription_event(stream))
        assert len(encoded) < wl.MAX_PAYLOAD_BYTES
        assert len(orjson.dumps(wl.subscription_message(stream))) < wl.MAX_PAYLOAD_BYTES


def test_same_seed_same_workload_and_other_seed_differs() -> None:
    first = wl.synthesize_workload(3_000, seed=7, start_ms=START_MS)
    again = wl.synthesize_workload(3_000, seed=7, start_ms=START_MS)
    other = wl.synthesize_workload(3_000, seed=8, start_ms=START_MS)
    assert first == again
    assert [wl.subscription_event(s) for s in first] == [wl.subscription_event(s) for s in again]
    assert first != other


def test_start_time_is_respected_and_defaults_to_about_ten_minutes_ago() -> None:
    given = wl.synthesize_workload(500, seed=7, start_ms=START_MS)
    stamps = [int(e["timestamp"]) for _, e in _events(given)]
    assert START_MS <= min(stamps) < START_MS + 5_000
    now_ms = int(time.time() * 1000)
    default = wl.synthesize_workload(50, seed=7)
    first = min(int(e["timestamp"]) for _, e in _events(default))
    assert now_ms - 11 * 60_000 <= first <= now_ms - 9 * 60_000 + 5_000


def test_ten_thousand_events_in_well_under_a_second() -> None:
    best = min(_timed(lambda: wl.synthesize_workload(10_000, seed=7, start_ms=START_MS)) for _ in range(3))
    assert best < 1.0


def _timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


# ---- content ------------------------------------------------------------------------------------------


def test_workload_covers_every_service_and_log_group(streams: list[wl.SyntheticStream]) -> None:
    groups = {stream.log_group for stream in streams}
    assert groups == {
        wl.BACKEND_APPLICATION_GROUP,
        wl.BACKEND_ERRORS_GROUP,
        wl.BACKEND_LLM_GROUP,
        wl.BACKEND_LEGACY_GROUP,
        wl.KEYCLOAK_APPLICATION_GROUP,
        wl.KEYCLOAK_LEGACY_GROUP,
        wl.API_APPLICATION_GROUP,
        wl.THUMBNAILER_GROUP,
        wl.RDS_ERROR_GROUP,
    }
    ecs = [s.log_stream for s in streams if s.log_group.startswith("/aws/ecs/")]
    assert all(re.fullmatch(r"ecs/[a-z-]+/[0-9a-f]{32}", name) for name in ecs)
    lambdas = [s.log_stream for s in streams if s.log_group == wl.THUMBNAILER_GROUP]
    assert all(re.fullmatch(r"2026/11/22/\[\$LATEST\][0-9a-f]{32}", name) for name in lambdas)


def test_expected_counts_match_an_independent_count(streams: list[wl.SyntheticStream]) -> None:
    counts = wl.expected_counts(streams)
    seen: Counter[str] = Counter()
    previous = ""
    for group, event in _events(streams):
        message = str(event["message"])
        seen["events"] += 1
        if "Request completed" in message:
            seen["request_completed"] += 1
            if _request_duration(message) > 5000:
                seen["slow_requests"] += 1
        seen["dicom_processed"] += "DICOM processed" in message
        seen["auth_failures"] += "LOGIN_ERROR" in message or '"Authentication failed"' in message
        seen["pii_lines"] += PII.search(message) is not None
        if group in wl.BACKEND_GROUPS:
            seen["backend_errors"] += any(marker in message for marker in BACKEND_ERROR_MARKERS)
        if group in wl.KEYCLOAK_GROUPS:
            seen["keycloak_errors"] += " ERROR [" in message or '"level":"ERROR"' in message
        if group == wl.API_APPLICATION_GROUP:
            seen["api_errors"] += "level=error " in message
        if group == wl.THUMBNAILER_GROUP:
            seen["lambda_invocations"] += message.startswith("START RequestId: ")
            seen["lambda_timeouts"] += "Task timed out after" in message
            seen["lambda_errors"] += message.startswith(("[ERROR]", '{"errorMessage"', '{"level":"ERROR"'))
        if group == wl.RDS_ERROR_GROUP:
            seen["rds_errors"] += ":ERROR:  " in message or ":FATAL:  " in message
            seen["rds_slow_queries"] += ":LOG:  duration: " in message
        if group == wl.BACKEND_LLM_GROUP:
            seen["llm_calls"] += 1
            tokens = _llm_tokens(orjson.loads(message))
            seen["llm_input_tokens"] += tokens[0]
            seen["llm_output_tokens"] += tokens[1]
        if message == "Traceback (most recent call last):" and previous != wl.CHAINED_CAUSE_LINE:
            seen["multiline_tracebacks"] += 1
        if message.startswith("java.lang."):
            seen["multiline_tracebacks"] += 1
        previous = message
    assert set(counts) == set(wl.COUNT_KEYS)
    assert dict(seen) == {key: value for key, value in counts.items() if value}
    for key in (
        "request_completed",
        "slow_requests",
        "dicom_processed",
        "auth_failures",
        "backend_errors",
        "llm_calls",
    ):
        assert counts[key] > 0, key


def _request_duration(message: str) -> int:
    if message.startswith("{"):
        return int(orjson.loads(message)["duration"])
    match = re.search(r"\bduration=(\d+)", message)
    if match is not None:
        return int(match.group(1))
    return int(message.rsplit(" ", 1)[1])  # space-delimited: "... "Request completed" 123"


def _llm_tokens(record: dict[str, Any]) -> tuple[int, int]:
    usage = record.get("usage", {})
    for input_key, output_key, source in (
        ("prompt_tokens", "completion_tokens", record),
        ("prompt_tokens", "completion_tokens", usage),
        ("input_tokens", "output_tokens", usage),
        ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", record),
    ):
        if input_key in source:
            return int(source[input_key]), int(source[output_key])
    raise AssertionError(f"no token counts in {record}")


def test_rates_are_realistic(streams: list[wl.SyntheticStream]) -> None:
    counts = wl.expected_counts(streams)
    errors = sum(counts[key] for key in ("backend_errors", "api_errors", "keycloak_errors", "lambda_errors"))
    errors += counts["rds_errors"] + counts["lambda_timeouts"]
    assert 0.02 <= errors / counts["events"] <= 0.045
    assert 0.03 <= counts["pii_lines"] / counts["events"] <= 0.05
    assert counts["multiline_tracebacks"] >= 10
    assert 0.005 <= counts["slow_requests"] / counts["request_completed"] <= 0.04


def test_content_timestamps_agree_with_event_timestamps(streams: list[wl.SyntheticStream]) -> None:
    checked = 0
    for _, event in _events(streams):
        message = str(event["message"])
        stamp = int(event["timestamp"])
        expected = _content_timestamp(message)
        if expected is None:
            continue
        checked += 1
        value, precision = expected
        assert stamp - stamp % precision == value, message
    assert checked > 0.8 * 10_000


def _content_timestamp(message: str) -> tuple[int, int] | None:
    """(epoch ms, precision ms) of the timestamp a line carries, if any."""
    if message.startswith("{"):
        document = orjson.loads(message)
        text = document.get("timestamp") or document.get("asctime")
        if not isinstance(text, str):
            return None
        message = text
    elif message.startswith("time="):
        message = message[5:]
    elif message.startswith("[") and "\t" in message:
        message = message.split("\t", 2)[1]
    if (match := ISO.match(message)) is not None:
        return _epoch_ms(match.group(1), "%Y-%m-%dT%H:%M:%S", match.group(2)), 1
    if (match := ASCTIME.match(message)) is not None:
        return _epoch_ms(match.group(1), "%Y-%m-%d %H:%M:%S", match.group(2)), 1
    if (match := PG_TIME.match(message)) is not None:
        return _epoch_ms(match.group(1), "%Y-%m-%d %H:%M:%S"), 1000
    return None


def test_split_traces_are_consecutive_events_of_one_stream_in_one_batch(streams: list[wl.SyntheticStream]) -> None:
    continuation = ("Traceback", " ", "\t", "Caused by: ", wl.CHAINED_CAUSE_LINE, "java.lang.")
    traces = 0
    for stream in streams:
        assert not str(stream.events[0]["message"]).startswith(continuation)
        for before, after in itertools.pairwise(stream.events):
            if str(after["message"]).startswith(continuation):
                assert int(str(after["timestamp"])) - int(str(before["timestamp"])) in {0, 1}
                sequence_gap = (int(str(after["id"])) & SEQUENCE_MASK) - (int(str(before["id"])) & SEQUENCE_MASK)
                assert sequence_gap == 1  # the very next event of the stream
                traces += 1
        if stream.log_group == wl.THUMBNAILER_GROUP:
            messages = [str(e["message"]) for e in stream.events]
            starts = sum(m.startswith("START RequestId:") for m in messages)
            assert starts == sum(m.startswith("REPORT RequestId:") for m in messages)
    assert traces > 100


def test_builders_render_the_documented_formats() -> None:
    ts = 1_795_309_323_456  # 2026-11-22T01:02:03.456Z
    rid = "7f3c9a1e-0000-4000-8000-000000000001"
    assert wl.iso_ms(ts) == "2026-11-22T01:02:03.456Z"
    assert wl.space_delimited_line(ts, "INFO", "Request completed", 123, request_id=rid) == (
        f'2026-11-22T01:02:03.456Z {rid} INFO "Request completed" 123'
    )
    assert wl.space_delimited_line(ts, "WARN", "Authentication failed", "jdoe", "10.0.1.5") == (
        '2026-11-22T01:02:03.456Z WARN "Authentication failed" jdoe 10.0.1.5'
    )
    assert (
        wl.python_text_line(
            ts,
            level="INFO",
            logger="pacs.api",
            message="Request completed",
            request_id=rid,
            fields={"duration": 123, "status": 200},
        )
        == f"2026-11-22 01:02:03,456 INFO [pacs.api] request_id={rid} Request completed duration=123 status=200"
    )
    assert wl.logfmt_line(ts, level="info", msg="Request completed", fields={"duration": 123}) == (
        'time=2026-11-22T01:02:03.456Z level=info msg="Request completed" duration=123'
    )
    assert wl.lambda_report(
        rid, duration_ms=12.34, memory_size_mb=512, max_memory_used_mb=70, init_duration_ms=200.51
    ) == (
        f"REPORT RequestId: {rid}\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 512 MB\t"
        "Max Memory Used: 70 MB\tInit Duration: 200.51 ms\t\n"
    )
    assert wl.lambda_timeout(ts, rid, 30.03) == f"2026-11-22T01:02:03.456Z {rid} Task timed out after 30.03 seconds"
    assert wl.postgres_line(
        ts,
        "ERROR",
        'duplicate key value violates unique constraint "studies_pkey"',
        pid=12345,
        client="10.0.1.23(53412)",
        user="pacs_app",
        database="pacs",
    ) == (
        "2026-11-22 01:02:03 UTC:10.0.1.23(53412):pacs_app@pacs:[12345]:ERROR:  "
        'duplicate key value violates unique constraint "studies_pkey"'
    )
    details = wl.keycloak_event_details(
        "LOGIN_ERROR",
        realm_id="pacs",
        client_id="pacs-viewer",
        user_id=None,
        ip_address="10.0.1.57",
        error="user_not_found",
        username="kim.minsu",
        quoted=True,
    )
    assert details == (
        'type="LOGIN_ERROR", realmId="pacs", clientId="pacs-viewer", userId="null", ipAddress="10.0.1.57", '
        'error="user_not_found", username="kim.minsu"'
    )
    assert (
        wl.keycloak_jboss_line(
            ts, level="WARN", category="org.keycloak.events", thread="executor-thread-12", message="x"
        )
        == "2026-11-22 01:02:03,456 WARN  [org.keycloak.events] (executor-thread-12) x"
    )
    chained = "\n".join(wl.chained_traceback_lines(["A"], ["B"]))
    assert "\nThe above exception was the direct cause of the following exception:\n" in chained


# ---- committed samples ----------------------------------------------------------------------------------


def _run_generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATE), *args], capture_output=True, text=True, check=False, timeout=120, cwd=ROOT
    )


def test_committed_samples_are_up_to_date() -> None:
    result = _run_generate("--check")
    assert result.returncode == 0, result.stderr


def test_check_mode_fails_on_stale_or_missing_files_but_not_on_recompression(tmp_path: Path) -> None:
    assert _run_generate("--out", str(tmp_path)).returncode == 0
    assert _run_generate("--check", "--out", str(tmp_path)).returncode == 0

    # Same content, different compressed bytes (another zlib build): still up to date.
    sample = tmp_path / "cwl-keycloak.json"
    event = json.loads(sample.read_text(encoding="utf-8"))
    original = event["awslogs"]["data"]
    recompressed = gzip.compress(gzip.decompress(base64.b64decode(original)), compresslevel=1, mtime=0)
    event["awslogs"]["data"] = base64.b64encode(recompressed).decode()
    assert event["awslogs"]["data"] != original
    sample.write_text(json.dumps(event, indent=2) + "\n", encoding="utf-8")
    assert _run_generate("--check", "--out", str(tmp_path)).returncode == 0

    decoded = tmp_path / "decoded" / "cwl-rds-postgresql.json"
    decoded.write_text(decoded.read_text(encoding="utf-8").replace("report_ro", "report_rw"), encoding="utf-8")
    stale = _run_generate("--check", "--out", str(tmp_path))
    assert stale.returncode == 1
    assert "differs: decoded/cwl-rds-postgresql.json" in stale.stderr

    (tmp_path / "malformed-not-json.json").unlink()
    missing = _run_generate("--check", "--out", str(tmp_path))
    assert missing.returncode == 1
    assert "missing: malformed-not-json.json" in missing.stderr


def _sample_messages(name: str) -> list[dict[str, Any]]:
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    if "Records" in event:
        return [_decode(record["kinesis"]["data"]) for record in event["Records"]]
    return [_decode(event["awslogs"]["data"])]


def test_committed_samples_decode_to_their_readable_copies_and_counts() -> None:
    expected_counts = json.loads((EVENTS / "decoded" / "_expected_counts.json").read_text(encoding="utf-8"))
    assert len(expected_counts) == 9
    for name, counts in expected_counts.items():
        messages = _sample_messages(name)
        readable = json.loads((EVENTS / "decoded" / name).read_text(encoding="utf-8"))
        assert (messages if name.startswith("kinesis") else messages[0]) == readable
        seen: Counter[str] = Counter()
        for message in messages:
            for event in message["logEvents"]:
                text = event["message"]
                seen["request_completed"] += "Request completed" in text
                seen["dicom_processed"] += "DICOM processed" in text
                seen["auth_failures"] += "LOGIN_ERROR" in text or '"Authentication failed"' in text
                seen["pii_lines"] += PII.search(text) is not None
                seen["llm_calls"] += message["logGroup"] == wl.BACKEND_LLM_GROUP
                seen["events"] += message["messageType"] == "DATA_MESSAGE"
        for key, value in seen.items():
            assert counts.get(key, 0) == value, (name, key)


def test_every_required_sample_exists() -> None:
    names = {path.name for path in EVENTS.glob("*.json")}
    assert names >= {
        "cwl-pacs-backend-application.json",
        "cwl-pacs-backend-errors.json",
        "cwl-pacs-backend-llm.json",
        "cwl-keycloak.json",
        "cwl-lambda-thumbnailer.json",
        "cwl-rds-postgresql.json",
        "cwl-control-message.json",
        "kinesis-pacs-backend.json",
        "malformed-bad-base64.json",
        "malformed-truncated-gzip.json",
        "malformed-not-json.json",
        "malformed-wrong-shape.json",
        "malformed-invalid-utf8.json",
    }
    assert (EVENTS / "README.md").read_text(encoding="utf-8").count("\n| `") == len(names)


def _malformed_data(name: str) -> str:
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return str(event["awslogs"]["data"])


def test_malformed_samples_fail_exactly_where_their_names_say() -> None:
    with pytest.raises(binascii.Error):
        base64.b64decode(_malformed_data("malformed-bad-base64.json"), validate=True)
    with pytest.raises(binascii.Error):
        base64.b64decode(_malformed_data("malformed-bad-base64.json"))

    truncated = base64.b64decode(_malformed_data("malformed-truncated-gzip.json"), validate=True)
    with pytest.raises(EOFError):
        gzip.decompress(truncated)
    inflater = zlib.decompressobj(31)
    assert inflater.decompress(truncated)
    assert not inflater.eof

    not_json = gzip.decompress(base64.b64decode(_malformed_data("malformed-not-json.json"), validate=True))
    with pytest.raises(json.JSONDecodeError):
        json.loads(not_json)

    wrong = _decode(_malformed_data("malformed-wrong-shape.json"))
    assert wrong["messageType"] == "DATA_MESSAGE"
    assert "logEvents" not in wrong

    bad_utf8 = gzip.decompress(base64.b64decode(_malformed_data("malformed-invalid-utf8.json"), validate=True))
    with pytest.raises(UnicodeDecodeError):
        bad_utf8.decode("utf-8")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(bad_utf8)
    assert bad_utf8.decode("utf-8", "replace").count('"logEvents"') == 1
