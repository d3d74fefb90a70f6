"""Every log format the PACS services write, parsed into the fields the routes rely on."""

from __future__ import annotations

import pytest

from logpipe.formats import parse_key_values, parse_line
from logpipe.records import Level, LogFormat

pytestmark = pytest.mark.unit

UUID = "7f3c9a1e-2b4d-4c6e-8f0a-1b2c3d4e5f60"


def test_python_json_logger_line() -> None:
    parsed = parse_line(
        '{"timestamp":"2026-11-22T01:02:03.456Z","level":"INFO","logger":"pacs.api","message":"Request completed",'
        f'"request_id":"{UUID}","method":"GET","status":200,"duration":123,"service":"pacs-backend","environment":"stg"}}',
    )
    assert parsed.format is LogFormat.JSON
    assert parsed.level is Level.INFO
    assert parsed.message == "Request completed"
    assert parsed.request_id == UUID
    assert parsed.fields["duration"] == 123
    assert parsed.logger == "pacs.api"
    assert parsed.environment == "stg"
    assert parsed.exception is None


def test_json_with_nested_extra_and_exc_info() -> None:
    parsed = parse_line(
        '{"asctime":"2026-11-22 01:02:03,456","levelname":"ERROR","name":"pacs.dicom","message":"Failed to store",'
        '"extra":{"request_id":"r-1","study_uid":"1.2.3"},'
        '"exc_info":"Traceback (most recent call last):\\n  File \\"/app/x.py\\", line 1, in f\\nValueError: bad"}',
    )
    assert parsed.level is Level.ERROR
    assert parsed.request_id == "r-1"
    assert parsed.fields["study_uid"] == "1.2.3"
    assert parsed.logger == "pacs.dicom"
    assert parsed.exception is not None
    assert parsed.exception.endswith("ValueError: bad")


def test_powertools_structured_line() -> None:
    parsed = parse_line(
        '{"level":"ERROR","location":"handler:42","message":"Thumbnail failed","timestamp":"2026-11-22 01:02:03,456+0000",'
        f'"service":"pacs-thumbnailer","cold_start":false,"function_request_id":"{UUID}",'
        '"exception":"Traceback (most recent call last):\\n  File \\"/var/task/app.py\\", line 3, in h\\nKeyError: \'x\'",'
        '"exception_name":"KeyError"}',
    )
    assert parsed.format is LogFormat.POWERTOOLS
    assert parsed.level is Level.ERROR
    assert parsed.request_id == UUID
    assert parsed.exception is not None
    assert "KeyError" in parsed.exception


def test_lambda_runtime_error_json() -> None:
    parsed = parse_line(
        '{"errorMessage": "\'SeriesInstanceUID\'", "errorType": "KeyError", "requestId": "' + UUID + '", '
        '"stackTrace": ["  File \\"/var/task/app.py\\", line 20, in lambda_handler\\n    uid = ds[\\"S\\"]\\n"]}',
    )
    assert parsed.format is LogFormat.LAMBDA_ERROR_JSON
    assert parsed.level is Level.ERROR
    assert parsed.message == "KeyError: 'SeriesInstanceUID'"
    assert parsed.request_id == UUID
    assert parsed.exception is not None
    assert parsed.exception.startswith('Traceback (most recent call last):\n  File "/var/task/app.py", line 20')
    assert parsed.exception.endswith("KeyError: 'SeriesInstanceUID'")


@pytest.mark.parametrize(
    ("line", "level", "message", "request_id", "values"),
    [
        (
            f'2026-11-22T01:02:03.456Z {UUID} INFO "Request completed" 123',
            Level.INFO,
            "Request completed",
            UUID,
            ["123"],
        ),
        (
            f'2026-11-22T01:02:03.456Z {UUID} INFO "DICOM processed" 1.2.840.113619.2.55.3.604688119.969.1268071029.320',
            Level.INFO,
            "DICOM processed",
            UUID,
            ["1.2.840.113619.2.55.3.604688119.969.1268071029.320"],
        ),
        (
            f'2026-11-22T01:02:03.456Z {UUID} ERROR "Database connection failed" timeout',
            Level.ERROR,
            "Database connection failed",
            UUID,
            ["timeout"],
        ),
        (
            '2026-11-22T01:02:03.456Z WARN "Authentication failed" jdoe 10.0.1.5',
            Level.WARNING,
            "Authentication failed",
            None,
            ["jdoe", "10.0.1.5"],
        ),
        (f'2026-11-22T01:02:03.456Z {UUID} ERROR "quote \\" inside"', Level.ERROR, 'quote " inside', UUID, []),
    ],
)
def test_space_delimited_seed_form(
    line: str, level: Level, message: str, request_id: str | None, values: list[str]
) -> None:
    parsed = parse_line(line)
    assert parsed.format is LogFormat.SPACE_DELIMITED
    assert parsed.level is level
    assert parsed.message == message
    assert parsed.request_id == request_id
    assert parsed.fields["values"] == values


def test_space_delimited_uses_cloudwatch_extracted_fields() -> None:
    parsed = parse_line(
        f'2026-11-22T01:02:03.456Z {UUID} INFO "Request completed" 321',
        {
            "timestamp": "2026-11-22T01:02:03.456Z",
            "request_id": UUID,
            "level": "INFO",
            "message": "Request completed",
            "duration": "321",
        },
    )
    assert parsed.fields["duration"] == "321"


def test_python_text_with_key_values() -> None:
    parsed = parse_line(
        f"2026-11-22 01:02:03,456 INFO [pacs.api] request_id={UUID} Request completed duration=123 status=200"
    )
    assert parsed.format is LogFormat.KEY_VALUE
    assert parsed.level is Level.INFO
    assert parsed.logger == "pacs.api"
    assert parsed.message == "Request completed"
    assert parsed.request_id == UUID
    assert parsed.fields["duration"] == "123"
    assert parsed.fields["status"] == "200"


def test_dicom_processed_key_value_keeps_the_full_uid() -> None:
    parsed = parse_line(
        "2026-11-22 01:02:03,456 INFO [pacs.dicom] request_id=r DICOM processed study_uid=1.2.840.113619.2.55.3.6046 modality=MR"
    )
    assert parsed.message == "DICOM processed"
    assert parsed.fields["study_uid"] == "1.2.840.113619.2.55.3.6046"
    assert parsed.fields["modality"] == "MR"


def test_logfmt_line() -> None:
    parsed = parse_line(
        f'time=2026-11-22T01:02:03.456Z level=warn msg="Slow query detected" duration=5300 request_id={UUID}'
    )
    assert parsed.format is LogFormat.LOGFMT
    assert parsed.level is Level.WARNING
    assert parsed.message == "Slow query detected"
    assert parsed.fields["duration"] == "5300"
    assert parsed.request_id == UUID


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-22 01:02:03,456 WARN  [org.keycloak.events] (executor-thread-12) type=LOGIN_ERROR, realmId=pacs, "
        "clientId=pacs-viewer, userId=null, ipAddress=10.0.1.57, error=invalid_user_credentials, auth_method=openid-connect, "
        "redirect_uri=https://pacs.example.com/viewer, username=jdoe",
        '2026-11-22 01:02:03,456 WARN  [org.keycloak.events] (executor-thread-12) type="LOGIN_ERROR", realmId="pacs", '
        'clientId="pacs-viewer", userId="null", ipAddress="10.0.1.57", error="invalid_user_credentials", username="jdoe"',
    ],
)
def test_keycloak_jboss_text_quoted_and_unquoted(line: str) -> None:
    parsed = parse_line(line)
    assert parsed.format is LogFormat.JBOSS_TEXT
    assert parsed.level is Level.WARNING
    assert parsed.logger == "org.keycloak.events"
    assert parsed.fields["type"] == "LOGIN_ERROR"
    assert parsed.fields["error"] == "invalid_user_credentials"
    assert parsed.fields["ipAddress"] == "10.0.1.57"
    assert parsed.fields["thread"] == "executor-thread-12"


def test_keycloak_json_console_format() -> None:
    parsed = parse_line(
        '{"timestamp":"2026-11-22T01:02:03.456Z","sequence":8812,"loggerClassName":"org.jboss.logging.Logger",'
        '"loggerName":"org.keycloak.events","level":"WARN","message":"type=\\"LOGIN_ERROR\\", realmId=\\"pacs\\", '
        'clientId=\\"pacs-viewer\\", error=\\"user_not_found\\", username=\\"kim\\"","threadName":"executor-thread-3",'
        '"threadId":55,"mdc":{},"ndc":"","hostName":"keycloak-0","processName":"QuarkusEntryPoint","processId":1}',
    )
    assert parsed.format is LogFormat.KEYCLOAK_JSON
    assert parsed.level is Level.WARNING
    assert parsed.logger == "org.keycloak.events"
    assert parsed.fields["type"] == "LOGIN_ERROR"
    assert parsed.fields["error"] == "user_not_found"


def test_lambda_runtime_error_line_with_embedded_traceback() -> None:
    parsed = parse_line(
        f"[ERROR]\t2026-11-22T01:02:03.456Z\t{UUID}\tKeyError: 'SeriesInstanceUID'\nTraceback (most recent call last):\n"
        '  File "/var/task/app.py", line 20, in lambda_handler\n    uid = ds["SeriesInstanceUID"]\nKeyError: \'SeriesInstanceUID\'\n',
    )
    assert parsed.format is LogFormat.LAMBDA_RUNTIME
    assert parsed.level is Level.ERROR
    assert parsed.request_id == UUID
    assert parsed.message == "KeyError: 'SeriesInstanceUID'"
    assert parsed.exception is not None
    assert parsed.exception.startswith("Traceback (most recent call last):")


def test_lambda_runtime_info_line() -> None:
    parsed = parse_line(f"[INFO]\t2026-11-22T01:02:03.456Z\t{UUID}\tThumbnail written\n")
    assert parsed.level is Level.INFO
    assert parsed.message == "Thumbnail written"
    assert parsed.exception is None


def test_lambda_init_error_without_tabs() -> None:
    parsed = parse_line("[ERROR] Runtime.ImportModuleError: Unable to import module 'app': No module named 'pydicom'")
    assert parsed.level is Level.ERROR
    assert parsed.message.startswith("Runtime.ImportModuleError")


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (f"START RequestId: {UUID} Version: $LATEST", {"platform_event": "START"}),
        (f"END RequestId: {UUID}", {"platform_event": "END"}),
        (
            f"REPORT RequestId: {UUID}\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 512 MB\t"
            "Max Memory Used: 70 MB\tInit Duration: 200.51 ms\t",
            {
                "platform_event": "REPORT",
                "duration_ms": 12.34,
                "billed_duration_ms": 13.0,
                "memory_size_mb": 512.0,
                "max_memory_used_mb": 70.0,
                "init_duration_ms": 200.51,
            },
        ),
    ],
)
def test_lambda_platform_lines(line: str, fields: dict[str, object]) -> None:
    parsed = parse_line(line)
    assert parsed.format is LogFormat.LAMBDA_PLATFORM
    assert parsed.level is Level.INFO
    assert parsed.request_id == UUID
    assert dict(parsed.fields) == fields


def test_lambda_task_timeout_is_an_error() -> None:
    parsed = parse_line(f"2026-11-22T01:02:03.456Z {UUID} Task timed out after 30.03 seconds")
    assert parsed.level is Level.ERROR
    assert parsed.message == "Task timed out after 30.03 seconds"
    assert parsed.request_id == UUID
    assert parsed.fields["timeout_seconds"] == 30.03


@pytest.mark.parametrize(
    ("line", "level", "message", "extra"),
    [
        (
            '2026-11-22 01:02:03 UTC:10.0.1.23(53412):pacs_app@pacs:[12345]:ERROR:  duplicate key value violates unique constraint "studies_pkey"',
            Level.ERROR,
            'duplicate key value violates unique constraint "studies_pkey"',
            {"pid": "12345", "user": "pacs_app", "database": "pacs", "severity": "ERROR"},
        ),
        (
            '2026-11-22 01:02:03 UTC:10.0.1.23(53412):report_ro@pacs:[12346]:FATAL:  password authentication failed for user "report_ro"',
            Level.CRITICAL,
            'password authentication failed for user "report_ro"',
            {"severity": "FATAL"},
        ),
        (
            "2026-11-22 01:02:03 UTC:10.0.1.23(53412):pacs_app@pacs:[12347]:LOG:  duration: 5123.456 ms  statement: SELECT 1",
            Level.INFO,
            "duration: 5123.456 ms  statement: SELECT 1",
            {"duration_ms": 5123.456},
        ),
    ],
)
def test_postgres_lines(line: str, level: Level, message: str, extra: dict[str, object]) -> None:
    parsed = parse_line(line)
    assert parsed.format is LogFormat.POSTGRES
    assert parsed.level is level
    assert parsed.message == message
    for key, value in extra.items():
        assert parsed.fields[key] == value


def test_unrecognised_text_is_still_a_record() -> None:
    parsed = parse_line("something happened")
    assert parsed.format is LogFormat.TEXT
    assert parsed.level is None
    assert parsed.message == "something happened"


def test_broken_json_falls_back_to_text() -> None:
    parsed = parse_line('{"level": "INFO", "message": ')
    assert parsed.format is LogFormat.TEXT


def test_empty_message() -> None:
    parsed = parse_line("")
    assert parsed.message == ""
    assert parsed.format is LogFormat.TEXT


def test_parse_key_values_unquotes_and_returns_the_remainder() -> None:
    fields, remainder = parse_key_values('user="kim minsu" action=view Study opened, quickly')
    assert fields == {"user": "kim minsu", "action": "view"}
    # Separators between the words and the pairs go; punctuation inside the message stays.
    assert remainder == "Study opened, quickly"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Request completed, duration=5 status=200", "Request completed"),
        ("request_id=q3 Unhandled exception, phone number invalid", "Unhandled exception, phone number invalid"),
        ("DICOM processed; study_uid=1.2 ok;", "DICOM processed ok"),
        ('note="say \\"hi\\"", Request completed, duration=5', "Request completed"),
        ('note="say \\"hi\\"" Unhandled exception, retrying', "Unhandled exception, retrying"),
    ],
)
def test_parse_key_values_keeps_punctuation_inside_the_message(text: str, message: str) -> None:
    assert parse_key_values(text)[1] == message


def test_parse_key_values_ignores_urls_and_uids() -> None:
    fields, _ = parse_key_values("redirect=https://pacs.example.com/viewer?a=b study=1.2.3")
    assert fields["redirect"] == "https://pacs.example.com/viewer?a=b"
    assert fields["study"] == "1.2.3"
    assert "a" not in fields


def test_keycloak_comma_list_with_a_comma_inside_a_quoted_value_falls_back_to_the_tokenizer() -> None:
    fields, _ = parse_key_values('type="LOGIN", scope="openid, profile", username="kim"')
    assert fields == {"type": "LOGIN", "scope": "openid, profile", "username": "kim"}


def test_keycloak_comma_list_fast_path() -> None:
    fields, message = parse_key_values('type="LOGIN_ERROR", realmId="pacs", error=user_not_found')
    assert fields == {"type": "LOGIN_ERROR", "realmId": "pacs", "error": "user_not_found"}
    assert message == ""


@pytest.mark.parametrize(
    "text",
    [
        "request_id=r-1 upload failed for kim@hospital.kr 010-1234-5678, user=kim",
        "request_id=r-1 upload failed for kim@hospital.kr, user=kim, retry=2",
        'request_id=r-1 upload "failed" for kim, user=kim',
    ],
)
def test_a_value_never_runs_on_over_free_text(text: str) -> None:
    # The comma-list fast path used to keep "r-1 upload failed for kim@hospital.kr ..." as the
    # request id, which then became an (unscrubbed) Sentry tag.
    fields, message = parse_key_values(text)
    assert fields["request_id"] == "r-1"
    assert fields["user"] == "kim"
    assert "upload" in message
