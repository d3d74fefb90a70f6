"""Unit tests for logpipe.boundary: the structure-aware, fail-closed walk over everything that leaves."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import pytest

from logpipe.boundary import (
    FAILED_MARKER,
    FAILURE_COUNTER,
    MAX_DEPTH,
    OVER_BUDGET_MARKER,
    UNSUPPORTED_MARKER,
    Boundary,
)
from logpipe.langfuse.mapping import Generation
from logpipe.parking import ParkedItem, ParkReason
from logpipe.scrub_rules import load_scrub_config

pytestmark = pytest.mark.unit

EMAIL = "[REDACTED:email]"
PHONE = "[REDACTED:phone]"
RRN = "[REDACTED:rrn]"
CARD = "[REDACTED:card]"
AWS = "[REDACTED:aws_key]"
SECRET = "[REDACTED:secret]"
DICOM = "[REDACTED:dicom]"
FHIR = "[REDACTED:fhir]"
HL7 = "[REDACTED:hl7]"
CONTACT = "[REDACTED:contact]"
BIRTH = "[REDACTED:birth_date]"


@pytest.fixture
def boundary() -> Boundary:
    return Boundary(load_scrub_config())


def test_nested_values_are_scrubbed_and_unchanged_parts_kept(boundary: Boundary) -> None:
    value = {
        "level": "INFO",
        "user": {"mail": "kim@hospital.co.kr", "roles": ["rad", "admin"]},
        "events": [{"note": "call 010-1234-5678"}, "note: rrn 900101-1234567", 42, None, 1.5],
        "tuple": ("AKIAIOSFODNN7EXAMPLE", "plain"),
    }
    out = boundary.scrub_value(value)
    assert out == {
        "level": "INFO",
        "user": {"mail": EMAIL, "roles": ["rad", "admin"]},
        "events": [{"note": f"call {PHONE}"}, f"note: rrn {RRN}", 42, None, 1.5],
        "tuple": (AWS, "plain"),
    }
    assert isinstance(out, dict)
    assert out["user"]["roles"] is value["user"]["roles"]  # type: ignore[index]
    assert value["user"]["mail"] == "kim@hospital.co.kr"  # type: ignore[index]


def test_a_sensitive_key_masks_its_whole_value_whatever_its_type(boundary: Boundary) -> None:
    value = {
        "password": 1234,
        "client_secret": {"nested": "abc"},
        "PatientName": ["DOE^JOHN", "DOE^J"],
        "00100020": {"vr": "LO", "Value": ["P12345"]},
        "(0010,0030)": 19800101,
        "patient_id": "P-77",
        "usage": {"prompt_tokens": 12, "total_tokens": 20},
        "token": 5,
        "access_token": "abc",
        "has_password": True,
        "PatientSex": None,
        "email": "not-an-address-but-a-contact",
        "dob": "1 Jan 1980",
    }
    assert boundary.scrub_value(value) == {
        "password": SECRET,
        "client_secret": SECRET,
        "PatientName": DICOM,
        "00100020": DICOM,
        "(0010,0030)": DICOM,
        "patient_id": DICOM,
        "usage": {"prompt_tokens": 12, "total_tokens": 20},
        "token": 5,  # numbers under *token keys are counts
        "access_token": SECRET,
        "has_password": True,  # flags and nulls carry nothing
        "PatientSex": None,
        "email": CONTACT,
        "dob": BIRTH,
    }


@pytest.mark.parametrize(
    ("key", "masked"),
    [
        ("PatientName", True),
        ("patient_name", True),
        ("Patient's Name", True),
        ("PATIENT-NAME", True),
        ("00100010", True),
        ("(0010,0010)", True),
        ("0010,0010", True),
        ("0010|0010", True),
        ("AccessionNumber", True),
        ("00080050", True),
        ("ReferringPhysicianName", True),
        ("OtherPatientIDs", True),
        ("PID-5", True),
        ("pid.3.1", True),
        ("NK1-2", True),
        ("PV1-7", True),
        ("PV1-2", False),
        ("username", True),
        ("환자명", True),
        ("PatientIdentityRemoved", False),
        ("StudyInstanceUID", False),
        ("patients", False),
        ("name", False),
    ],
)
def test_key_spellings(boundary: Boundary, key: str, masked: bool) -> None:
    out = boundary.scrub_value({key: "ZQXW"})
    assert isinstance(out, dict)
    assert (out[key] != "ZQXW") is masked


def test_keys_are_qualified_by_their_parent(boundary: Boundary) -> None:
    out = boundary.scrub_value({"patient": {"name": "Hong", "id": "P1", "ward": "CT"}, "study": {"name": "CT head"}})
    assert out == {"patient": {"name": DICOM, "id": DICOM, "ward": "CT"}, "study": {"name": "CT head"}}


def test_numbers_are_checked_as_text(boundary: Boundary) -> None:
    out = boundary.scrub_value({"n": 4111111111111111, "m": 9001011234568, "small": 42, "f": 4111111111111111.0})
    assert out == {"n": CARD, "m": RRN, "small": 42, "f": CARD}


def test_json_inside_a_string_is_decoded_and_scrubbed_inside(boundary: Boundary) -> None:
    dicom = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "HONG^GILDONG"}]}, "0020000D": {"vr": "UI"}}
    value = {
        "payload": json.dumps(dicom),
        "twice": json.dumps({"inner": json.dumps({"PatientID": "P-1"})}),
        "list": json.dumps([{"email": "kim@x.org"}]),
    }
    out = boundary.scrub_value(value)
    assert isinstance(out, dict)
    assert "HONG" not in out["payload"]
    assert json.loads(out["payload"]) == {"00100010": DICOM, "0020000D": {"vr": "UI"}}
    assert "P-1" not in out["twice"]
    assert "kim@x.org" not in out["list"]


def test_unicode_escapes_do_not_hide_anything(boundary: Boundary) -> None:
    assert boundary.scrub_text("mail kim\\u0040hospital.co.kr") == f"mail {EMAIL}"
    assert boundary.scrub_text('{"m": "kim\\u0040hospital.co.kr"}') == f'{{"m":"{EMAIL}"}}'


def test_keys_that_are_themselves_pii_are_scrubbed(boundary: Boundary) -> None:
    out = boundary.scrub_value({"kim@hospital.co.kr": {"password": "x"}, "lee@hospital.co.kr": 1})
    assert isinstance(out, dict)
    assert all("@" not in key for key in out)
    assert len(out) == 2  # two masked keys do not collapse into one


def test_fhir_patient_resource(boundary: Boundary) -> None:
    patient = {
        "resourceType": "Patient",
        "id": "example",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
        "telecom": [{"system": "phone", "value": "(03) 5555 6473"}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "address": [{"line": ["534 Erewhon St"], "city": "PleasantVille", "postalCode": "3999"}],
        "text": {"status": "generated", "div": "<div>Peter James Chalmers</div>"},
    }
    out = boundary.scrub_value({"resource": json.dumps(patient)})
    assert isinstance(out, dict)
    decoded = json.loads(out["resource"])
    for key in ("identifier", "name", "telecom", "birthDate", "address", "text"):
        assert decoded[key] == FHIR
    assert decoded["resourceType"] == "Patient"
    assert decoded["gender"] == "male"
    for secret in ("Chalmers", "Peter", "12345", "5555", "1974-12-25", "Erewhon"):
        assert secret not in out["resource"]


def test_clean_values_come_back_as_the_same_objects(boundary: Boundary) -> None:
    for value in (
        {"level": "INFO", "nested": {"list": [1, "two", {"three": 3.0}]}, "token_count": 3},
        ["a", ("b", "c"), {"d": None}],
        "plain text",
        12345,
        None,
    ):
        assert boundary.scrub_value(value) is value


def test_values_of_unknown_types_fail_closed(boundary: Boundary) -> None:
    out = boundary.scrub_value({"blob": b"kim@x.org", "obj": object()})
    assert out == {"blob": UNSUPPORTED_MARKER, "obj": UNSUPPORTED_MARKER}
    assert boundary.take_counters()[FAILURE_COUNTER] == 2


def test_a_scrubber_error_fails_closed(boundary: Boundary, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def scrub_collecting(self, text: str) -> tuple[str, list[tuple[str, str]]]:
            if text == "m":
                return text, []
            raise RuntimeError("bug in a rule")

    monkeypatch.setattr(boundary, "text", Broken())
    assert boundary.scrub_value({"m": "hello kim@x.org"}) == {"m": FAILED_MARKER}
    assert boundary.take_counters()[FAILURE_COUNTER] == 1


def test_an_exhausted_budget_fails_closed() -> None:
    boundary = Boundary(load_scrub_config(), budget_seconds=-1.0)
    # Keys can hold PII too: past the budget they leave as markers like everything else.
    out = boundary.scrub_value({"a": "x", "b": ["y"]})
    assert out == {OVER_BUDGET_MARKER: OVER_BUDGET_MARKER, f"{OVER_BUDGET_MARKER}#": [OVER_BUDGET_MARKER]}
    assert boundary.take_counters()[FAILURE_COUNTER] == 4


def test_absurd_nesting_fails_closed(boundary: Boundary) -> None:
    value: Any = "kim@x.org"
    for _ in range(MAX_DEPTH + 5):
        value = {"k": value}
    out = json.dumps(boundary.scrub_value(value))
    assert "kim@x.org" not in out
    assert OVER_BUDGET_MARKER in out


def test_ip_addresses_by_policy() -> None:
    text = "from 211.234.56.78 via 10.0.1.23 and 2001:db8::1 and fd00::1"
    public = Boundary(load_scrub_config()).scrub_text(text)
    every = Boundary(load_scrub_config(), ip_addresses="all").scrub_text(text)
    none = Boundary(load_scrub_config(), ip_addresses="none").scrub_text(text)
    assert public == "from [REDACTED:ip] via 10.0.1.23 and [REDACTED:ip] and fd00::1"
    assert every == "from [REDACTED:ip] via [REDACTED:ip] and [REDACTED:ip] and [REDACTED:ip]"
    assert none == text


def test_disabled_boundary_lets_everything_through() -> None:
    value = {"password": "x", "m": "kim@x.org"}
    assert Boundary.disabled().scrub_value(value) is value


# ---------------------------------------------------------------------------------------------
# Sentry events
# ---------------------------------------------------------------------------------------------


def sentry_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "a" * 32,
        "timestamp": "2026-11-22T01:00:03.613Z",
        "platform": "python",
        "level": "error",
        "message": {"formatted": "Upload failed for kim@hospital.co.kr"},
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": "bad PatientID=P-000123",
                    "stacktrace": {"frames": [{"filename": "app.py", "function": "f", "lineno": 3}]},
                }
            ]
        },
        "fingerprint": ["pacs-backend", "ValueError", "Upload failed for kim@hospital.co.kr"],
        "tags": {
            "service": "pacs-backend",
            "environment": "prod",
            "request_id": "r-1 failed for kim@hospital.co.kr",
            "log_group": "/aws/ecs/pacs-backend/errors",
            "log_stream": "ecs/pacs-backend/abc123",
            "logpipe.format": "json",
        },
        "contexts": {"log_fields": {"PatientName": "HONG^GILDONG", "ward": "CT"}},
        "breadcrumbs": {
            "values": [
                {
                    "timestamp": "2026-11-22T01:00:02.000Z",
                    "type": "default",
                    "level": "info",
                    "category": "pacs.api",
                    "message": "Opening study for 010-1234-5678",
                    "data": {"password": "hunter2", "duration": 5},
                }
            ]
        },
        "sdk": {"name": "logpipe", "version": "0.1.0"},
    }
    event.update(overrides)
    return event


def test_sentry_events_are_scrubbed_in_every_part(boundary: Boundary) -> None:
    out = boundary.sentry_event(sentry_event())
    text = json.dumps(out, ensure_ascii=False)
    for secret in ("kim@hospital.co.kr", "P-000123", "HONG^GILDONG", "010-1234-5678", "hunter2"):
        assert secret not in text
    assert out["breadcrumbs"]["values"][0]["data"] == {"password": SECRET, "duration": 5}
    assert out["breadcrumbs"]["values"][0]["timestamp"] == "2026-11-22T01:00:02.000Z"
    assert out["contexts"]["log_fields"] == {"PatientName": DICOM, "ward": "CT"}
    assert out["fingerprint"] == ["pacs-backend", "ValueError", f"Upload failed for {EMAIL}"]
    assert (out["event_id"], out["timestamp"], out["sdk"]) == (
        "a" * 32,
        "2026-11-22T01:00:03.613Z",
        {"name": "logpipe", "version": "0.1.0"},
    )


def test_sentry_tags_are_an_allow_list(boundary: Boundary) -> None:
    out = boundary.sentry_event(sentry_event())
    assert out["tags"] == {
        "service": "pacs-backend",
        "environment": "prod",
        "log_group": "/aws/ecs/pacs-backend/errors",
        "log_stream": "ecs/pacs-backend/abc123",
        "logpipe.format": "json",
    }
    # Anything not id-shaped or not on the list moves, scrubbed, into a context.
    assert out["contexts"]["log_tags"] == {"request_id": f"r-1 failed for {EMAIL}"}
    odd = boundary.sentry_event(sentry_event(tags={"service": "pacs", "custom": "x", "request_id": "010-1234-5678"}))
    assert odd["tags"] == {"service": "pacs"}
    assert odd["contexts"]["log_tags"] == {"custom": "x", "request_id": PHONE}


# ---------------------------------------------------------------------------------------------
# Generations, parked items, log lines
# ---------------------------------------------------------------------------------------------


def generation(service: str = "pacs-backend") -> Generation:
    return Generation(
        event_id="1",
        trace_seed="seed kim@x.org",
        trace_id="0" * 32,
        observation_id="0" * 16,
        name="summarize for kim@x.org",
        model="gpt-4o-mini",
        start_ns=1,
        end_ns=2,
        input=[{"role": "user", "content": "PatientName=HONG^GILDONG"}],
        output="call 010-1234-5678",
        usage={"input": 3},
        cost={"total": 0.1},
        user_id="kim@x.org",
        session_id="s-1",
        environment="prod",
        release=None,
        level=None,
        status_message=None,
        service=service,
        log_group="/aws/ecs/pacs-backend/llm",
        log_stream="s",
        metadata={"patient_name": "HONG", "ward": "CT"},
    )


def test_generations_are_scrubbed_and_listed_services_keep_prompts() -> None:
    config = load_scrub_config()
    scrubbed = Boundary(config).generation(generation())
    assert scrubbed.input == [{"role": "user", "content": f"PatientName={DICOM}"}]
    assert scrubbed.output == f"call {PHONE}"
    assert (scrubbed.user_id, scrubbed.name, scrubbed.trace_seed) == (EMAIL, f"summarize for {EMAIL}", f"seed {EMAIL}")
    assert scrubbed.metadata == {"patient_name": DICOM, "ward": "CT"}
    assert (scrubbed.usage, scrubbed.cost, scrubbed.trace_id) == ({"input": 3}, {"total": 0.1}, "0" * 32)
    kept = Boundary(config, prompt_services=frozenset({"pacs-backend"})).generation(generation())
    assert kept.input == generation().input
    assert kept.output == generation().output
    assert kept.user_id == EMAIL
    assert kept.metadata == {"patient_name": DICOM, "ward": "CT"}


def parked(body: str, **attributes: str) -> ParkedItem:
    return ParkedItem(
        reason=ParkReason.SINK_RETRY,
        detail="HTTP 500: echo kim@x.org",
        body=body,
        item_id="i",
        attributes=dict(attributes),
    )


def test_parked_items_are_scrubbed_whatever_parked_them(boundary: Boundary) -> None:
    out = boundary.parked(parked("not json: PatientID=P-1 kim@x.org", sink="sentry"))
    assert out.body == f"not json: PatientID={DICOM} {EMAIL}"
    assert out.detail == f"HTTP 500: echo {EMAIL}"
    truncated = boundary.parked(parked('{"logEvents": [{"message": "PatientName=HONG^GILDONG ki'))
    assert "HONG" not in truncated.body
    clean = parked('{"a": 1}')
    clean = replace(clean, detail="HTTP 500")
    assert boundary.parked(clean) is clean


def test_parked_generations_keep_prompts_only_for_listed_services() -> None:
    body = json.dumps(generation().to_json())
    config = load_scrub_config()
    listed = Boundary(config, prompt_services=frozenset({"pacs-backend"}))
    kept = json.loads(listed.parked(parked(body, sink="langfuse", service="pacs-backend")).body)
    assert kept["input"] == generation().input
    assert kept["user_id"] == EMAIL
    other = json.loads(listed.parked(parked(body, sink="langfuse", service="api")).body)
    assert "HONG" not in json.dumps(other)


def test_the_pipelines_own_log_lines_are_scrubbed(boundary: Boundary) -> None:
    logger = logging.getLogger("test-boundary-log-filter")
    logger.propagate = False
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger.addHandler(Keep())
    logger.addFilter(boundary.log_filter())
    try:
        raise ValueError("lookup failed for PatientID=P-1")  # noqa: TRY301 - a traceback to log
    except ValueError:
        logger.exception("parked %s", "kim@x.org", extra={"detail": {"password": "x"}, "n": 4111111111111111})
    [record] = records
    assert record.getMessage() == f"parked {EMAIL}"
    assert record.detail == {"password": SECRET}  # type: ignore[attr-defined]
    assert record.n == CARD  # type: ignore[attr-defined]
    assert record.exc_info is None
    assert "P-1" not in record.exception  # type: ignore[attr-defined]
    assert "ValueError" in record.exception  # type: ignore[attr-defined]


def test_what_is_masked_somewhere_is_masked_wherever_it_recurs(boundary: Boundary) -> None:
    # The id is only labelled in one field; the traceback and the message mention it bare.
    value = {
        "PatientID": "PQ12345678",
        "exc_info": "ValueError: bad id PQ12345678",
        "message": "retrying PQ12345678 later",
        "PatientAddress": "123 Haneul-ro, Gangnam-gu, Seoul",
        "note": "shipping to Haneul-ro",
    }
    out = boundary.scrub_value(value)
    text = json.dumps(out)
    assert "PQ12345678" not in text
    assert "Haneul-ro" not in text
    assert out == {
        "PatientID": DICOM,
        "exc_info": f"ValueError: bad id {DICOM}",
        "message": f"retrying {DICOM} later",
        "PatientAddress": DICOM,
        "note": f"shipping to {DICOM}",
    }


def test_a_record_is_scrubbed_as_one_unit(boundary: Boundary) -> None:
    from logpipe.assemble import assemble_records, stream_context
    from logpipe.decode import decode_payload, iter_payloads
    from payloads import data_message, subscription_event

    line = (
        "2026-11-22 01:02:03,456 ERROR [pacs.api] request_id=r-1 store failed "
        "PatientAddress=123 Haneul-ro, Gangnam-gu, Seoul client=10.0.0.1"
    )
    [payload] = iter_payloads(subscription_event(data_message("/aws/ecs/pacs-backend/application", [line])))
    batch = decode_payload(payload)
    [record], _ = assemble_records(batch, stream_context(batch, "ap-northeast-2", "test"))
    # The key=value parser moved the address words into the message; the raw line's rule masked
    # them whole, so they are masked in the message too.
    assert "Haneul-ro" in record.message
    clean = boundary.record(record)
    for part in (clean.message, clean.raw, json.dumps(clean.fields)):
        assert "Haneul-ro" not in part
        assert "Gangnam-gu" not in part
    assert clean.request_id == "r-1"
    assert clean.event_id == record.event_id
