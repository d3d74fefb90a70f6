"""Canaries: generated PHI in PHI-shaped positions of every format, through the real ingest handler.

Hypothesis draws a set of canaries (a DICOM person name, a Korean name, patient id, accession number,
birth date, resident registration number, phone, e-mail, card, password, login name, address,
public IP) and a mix of log records that carry them where PACS, RIS, HL7, FHIR and identity systems
put them: JSON fields, JSON escaped inside a field, key=value text, free text, split Python
tracebacks, LLM calls, HL7 segments, FHIR resources, dcmdump lines, Keycloak events, a payload that
is not JSON at all. The records go through ``functions/ingest/app.py`` loaded as Lambda would, to a
real Bugsink (whose quota makes it answer 429, so some events are parked), a loopback OTLP receiver
(which fails some requests, so some spans are parked) and SQS on moto.

Then every byte that left is searched: the events Bugsink stored, every OTLP request the receiver
got (decoded), every parked message on the retry queue and the DLQ, and everything the function
printed (its own log and the EMF). Not one canary may be found.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import string
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe.parking import SqsParkingLot
from logpipe_cli.bugsink import BugsinkServer
from logpipe_cli.invoke import invoke
from logpipe_cli.otlp_receiver import Answer, OtlpReceiver, otlp_receiver
from logpipe_cli.template_env import function_spec
from payloads import data_message, subscription_event

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
# Deterministic by default (the same examples on every CI run); HYPOTHESIS_CANARY_EXAMPLES widens the
# search locally, e.g. HYPOTHESIS_CANARY_EXAMPLES=200.
EXAMPLES = int(os.environ.get("HYPOTHESIS_CANARY_EXAMPLES", "12"))
DERANDOMIZE = "HYPOTHESIS_CANARY_EXAMPLES" not in os.environ

HANGUL = "".join(chr(code) for code in range(0xAC00, 0xD7A4, 37))  # a spread of syllables


@dataclass(frozen=True)
class Canaries:
    """One set of generated identifiers; every string in ``tokens`` must be absent from what leaves."""

    family: str
    given: str
    korean_name: str
    patient_id: str
    accession: str
    birth: tuple[int, int, int]
    rrn: str
    phone: str
    email: str
    card: str
    password: str
    username: str
    street: str
    district: str
    ip: str

    @property
    def person_name(self) -> str:
        return f"{self.family}^{self.given}"

    @property
    def birth_iso(self) -> str:
        year, month, day = self.birth
        return f"{year:04d}-{month:02d}-{day:02d}"

    @property
    def birth_da(self) -> str:
        return self.birth_iso.replace("-", "")

    @property
    def address(self) -> str:
        return f"123 {self.street}-ro, {self.district}-gu, Seoul"

    def tokens(self) -> dict[str, str]:
        return {
            "family": self.family,
            "given": self.given,
            "korean_name": self.korean_name,
            "patient_id": self.patient_id,
            "accession": self.accession,
            "birth_iso": self.birth_iso,
            "birth_da": self.birth_da,
            "rrn": self.rrn,
            "rrn_bare": self.rrn.replace("-", ""),
            "phone": self.phone,
            "email": self.email,
            "card": self.card,
            "password": self.password,
            "username": self.username,
            "street": self.street,
            "district": self.district,
            "ip": self.ip,
        }


def _luhn_complete(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return digits + str((10 - total % 10) % 10)


def _rrn(year: int, month: int, day: int, sex: int, serial: str) -> str:
    body = f"{year % 100:02d}{month:02d}{day:02d}{sex}{serial}"
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    check = (11 - sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11) % 10
    return f"{body[:6]}-{body[6:]}{check}"


UPPER = st.text(string.ascii_uppercase, min_size=7, max_size=9)
LOWER = st.text(string.ascii_lowercase, min_size=7, max_size=9)
DIGITS = st.text(string.digits, min_size=8, max_size=8)


@st.composite
def canaries(draw: st.DrawFn) -> Canaries:
    year = draw(st.integers(1931, 1999))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28))
    return Canaries(
        family=draw(UPPER),
        given=draw(UPPER),
        korean_name="".join(draw(st.lists(st.sampled_from(HANGUL), min_size=3, max_size=3))),
        patient_id="PQ" + draw(DIGITS),
        accession="AX" + draw(st.text(string.ascii_uppercase + string.digits, min_size=8, max_size=8)),
        birth=(year, month, day),
        rrn=_rrn(year, month, day, draw(st.sampled_from([1, 2])), draw(st.text(string.digits, min_size=5, max_size=5))),
        phone=f"010-{draw(st.integers(2000, 9999))}-{draw(st.integers(1000, 9999))}",
        email=f"{draw(LOWER)}@{draw(LOWER)}.co.kr",
        card=_luhn_complete("4" + draw(st.text(string.digits, min_size=14, max_size=14))),
        password="Pw" + draw(st.text(string.ascii_letters + string.digits, min_size=10, max_size=12)),
        username=draw(LOWER) + "." + draw(LOWER),
        street=draw(UPPER).capitalize(),
        district=draw(UPPER).capitalize(),
        ip=f"{draw(st.integers(11, 99))}.{draw(st.integers(1, 254))}.{draw(st.integers(1, 254))}.{draw(st.integers(1, 254))}",
    )


# ---------------------------------------------------------------------------------------------
# Where the canaries are put: (log group, lines) per record kind, in the shapes real systems write
# ---------------------------------------------------------------------------------------------

Placement = Callable[[Canaries, str], tuple[str, list[str]]]
APP = "/aws/ecs/pacs-backend/application"
ERRORS = "/aws/ecs/pacs-backend/errors"
LLM = "/aws/ecs/pacs-backend/llm"


def json_fields(c: Canaries, rid: str) -> tuple[str, list[str]]:
    return APP, [
        json.dumps(
            {
                "level": "ERROR",
                "message": "Study import failed",
                "request_id": rid,
                "PatientName": c.person_name,
                "PatientID": c.patient_id,
                "PatientBirthDate": c.birth_da,
                "AccessionNumber": c.accession,
                "card": int(c.card),
                "password": c.password,
                "exc_info": f'Traceback (most recent call last):\n  File "/app/x.py", line 3, in f\nValueError: bad id {c.patient_id}',
            },
            ensure_ascii=False,
        )
    ]


def escaped_dicom_json(c: Canaries, rid: str) -> tuple[str, list[str]]:
    model = {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": c.person_name, "Ideographic": c.korean_name}]},
        "00100020": {"vr": "LO", "Value": [c.patient_id]},
        "00100030": {"vr": "DA", "Value": [c.birth_da]},
        "00080050": {"vr": "SH", "Value": [c.accession]},
        "0020000D": {"vr": "UI", "Value": ["1.2.840.113619.2.55.3.604688119"]},
    }
    return APP, [
        json.dumps({"level": "ERROR", "message": "QIDO-RS failed", "request_id": rid, "response": json.dumps(model)})
    ]


def key_value_text(c: Canaries, rid: str) -> tuple[str, list[str]]:
    return APP, [
        f"2026-11-22 01:02:03,456 ERROR [pacs.api] request_id={rid} store failed PatientName={c.person_name} "
        f"PatientID={c.patient_id} email={c.email} phone={c.phone} PatientAddress={c.address} client={c.ip}"
    ]


def split_traceback(c: Canaries, rid: str) -> tuple[str, list[str]]:
    return APP, [
        f"2026-11-22 01:02:03,456 ERROR [pacs.worker] request_id={rid} Unhandled exception for {c.email}",
        "Traceback (most recent call last):",
        '  File "/app/pacs/worker.py", line 88, in handle',
        "    store(study)",
        f'ValueError: Patient "{c.person_name}" (ID {c.patient_id}) rrn {c.rrn} card {c.card}',
    ]


def breadcrumb_then_error(c: Canaries, rid: str) -> tuple[str, list[str]]:
    return APP, [
        json.dumps(
            {"level": "INFO", "message": f"Opening study for {c.email}", "request_id": rid, "PatientID": c.patient_id}
        ),
        json.dumps(
            {"level": "INFO", "message": "login", "request_id": rid, "username": c.username, "dob": c.birth_iso}
        ),
        json.dumps({"level": "ERROR", "message": "viewer crashed", "request_id": rid}),
    ]


def llm_call(c: Canaries, rid: str) -> tuple[str, list[str]]:
    return LLM, [
        json.dumps(
            {
                "level": "INFO",
                "event": "llm_call",
                "model": "gpt-4o-mini",
                "name": "report-summary",
                "prompt": f"Summarize the report of PatientName={c.person_name}, DOB {c.birth_iso}, RRN {c.rrn}",
                "completion": f"Call {c.phone} or write to {c.email}.",
                "prompt_tokens": 120,
                "completion_tokens": 30,
                "user_id": c.email,
                "session_id": f"session-{rid}",
                "metadata": {"patient_id": c.patient_id, "환자명": c.korean_name},
                "request_id": rid,
            },
            ensure_ascii=False,
        )
    ]


def hl7_segments(c: Canaries, rid: str) -> tuple[str, list[str]]:
    message = "\r".join(
        [
            "MSH|^~\\&|RIS|HOSP|PACS|RAD|20261122010203||ADT^A01|MSG1|P|2.5",
            f"PID|1||{c.patient_id}^^^HOSP^MR||{c.person_name}||{c.birth_da}|M|||{c.street}-ro^^Seoul||{c.phone}|||||{c.accession}|{c.rrn}",
            f"NK1|1|{c.family}^SPOUSE|SPO|{c.district}-gu^^Seoul|{c.phone}",
        ]
    )
    return ERRORS, [json.dumps({"level": "ERROR", "message": "ADT rejected", "request_id": rid, "hl7": message})]


def fhir_patient(c: Canaries, rid: str) -> tuple[str, list[str]]:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.410.1", "value": c.patient_id}],
        "name": [{"family": c.family, "given": [c.given]}],
        "telecom": [{"system": "email", "value": c.email}],
        "birthDate": c.birth_iso,
        "address": [{"line": [f"123 {c.street}-ro"], "district": f"{c.district}-gu"}],
    }
    return ERRORS, [
        json.dumps({"level": "ERROR", "message": "PUT Patient failed", "request_id": rid, "body": json.dumps(patient)})
    ]


def dcmdump_lines(c: Canaries, rid: str) -> tuple[str, list[str]]:
    return ERRORS, [
        f"2026-11-22 01:02:03,456 ERROR [pacs.dicom] request_id={rid} dataset rejected:\n"
        f"(0010,0010) PN [{c.person_name}]                           #  16, 1 PatientName\n"
        f"(0010,0020) LO [{c.patient_id}]                            #  10, 1 PatientID\n"
        f"772: (0008,0050) SH #10 [{c.accession}] AccessionNumber"
    ]


def keycloak_event(c: Canaries, rid: str) -> tuple[str, list[str]]:
    return "/aws/ecs/keycloak/errors", [
        f'2026-11-22 01:02:03,456 WARN  [org.keycloak.events] (executor-thread-1) type="LOGIN_ERROR", '
        f'realmId="pacs", clientId="pacs-viewer", userId="null", ipAddress="{c.ip}", error="user_not_found", '
        f'username="{c.username}", auth_method="openid-connect"'
    ]


def korean_text(c: Canaries, rid: str) -> tuple[str, list[str]]:
    return APP, [
        f"2026-11-22 01:02:03,456 ERROR [pacs.ris] request_id={rid} 검사 등록 실패 환자명: {c.korean_name}, "
        f"생년월일: {c.birth_iso}, 주민등록번호: {c.rrn}, 연락처: {c.phone}"
    ]


def escaped_at_and_numbers(c: Canaries, rid: str) -> tuple[str, list[str]]:
    local, domain = c.email.split("@")
    return APP, [
        '{"level":"ERROR","message":"mail to '
        + local
        + "\\u0040"
        + domain
        + f' failed","request_id":"{rid}","rrn":{c.rrn.replace("-", "")},"card":{c.card}}}'
    ]


PLACEMENTS: tuple[Placement, ...] = (
    json_fields,
    escaped_dicom_json,
    key_value_text,
    split_traceback,
    breadcrumb_then_error,
    llm_call,
    hl7_segments,
    fhir_patient,
    dcmdump_lines,
    keycloak_event,
    korean_text,
    escaped_at_and_numbers,
)


def not_json_payload(c: Canaries) -> dict[str, Any]:
    """A payload that decodes to text, not JSON: parked as malformed, with what could be salvaged."""
    text = f"PatientName={c.person_name} PatientID={c.patient_id} email={c.email} password={c.password}\n"
    return {"awslogs": {"data": base64.b64encode(gzip.compress(text.encode())).decode()}}


# ---------------------------------------------------------------------------------------------
# The world: one Bugsink (with a quota), one OTLP receiver, parking queues on moto
# ---------------------------------------------------------------------------------------------


@dataclass
class World:
    moto: str
    sqs: SQSClient
    queue: str
    dlq: str
    bugsink: BugsinkServer
    receiver: OtlpReceiver


@pytest.fixture(scope="module")
def world(moto_endpoint: str, bugsink_rate_limited: BugsinkServer) -> Iterator[World]:
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="ap-northeast-2")
    queue = sqs.create_queue(QueueName="canary-parking")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="canary-parking-dlq")["QueueUrl"]
    with otlp_receiver() as receiver:
        yield World(moto_endpoint, sqs, queue, dlq, bugsink_rate_limited, receiver)


@contextmanager
def parked_bodies() -> Iterator[list[str]]:
    """Every message body the parking lot sends to SQS, as sent (delayed ones included: SQS would not
    hand those out for up to 15 minutes)."""
    bodies: list[str] = []
    send = SqsParkingLot._send

    def recording(self: SqsParkingLot, queue_url: str, entries: Sequence[Any]) -> None:
        bodies.extend(entry["MessageBody"] for entry in entries)
        send(self, queue_url, entries)

    SqsParkingLot._send = recording  # type: ignore[method-assign]
    try:
        yield bodies
    finally:
        SqsParkingLot._send = send  # type: ignore[method-assign]


@settings(
    max_examples=EXAMPLES,
    derandomize=DERANDOMIZE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    canary=canaries(),
    placements=st.lists(st.sampled_from(PLACEMENTS), min_size=2, max_size=6, unique=True),
    langfuse_fails=st.booleans(),
    with_malformed=st.booleans(),
)
def test_no_canary_leaves(
    world: World, canary: Canaries, placements: list[Placement], langfuse_fails: bool, with_malformed: bool
) -> None:
    project = world.bugsink.create_project(f"canary-{time.time_ns()}")
    received_before = len(world.receiver.received)
    # Five failed attempts cover the sink's inline retries: the chunk is parked, not delivered.
    world.receiver.script[:] = [Answer(503)] * 5 if langfuse_fails else []
    now_ms = int(time.time() * 1000)
    by_group: dict[str, list[str]] = {}
    for index, place in enumerate(placements):
        group, lines = place(canary, f"req-{index}")
        by_group.setdefault(group, []).extend(lines)
    events = [
        subscription_event(data_message(group, lines, start_ms=now_ms, log_stream=f"ecs/canary/{index}"))
        for index, (group, lines) in enumerate(by_group.items())
    ]
    if with_malformed:
        events.append(not_json_payload(canary))
    environment = {
        "AWS_ENDPOINT_URL": world.moto,
        "AWS_LAMBDA_FUNCTION_NAME": "logpipe-ingest",
        "LOGPIPE_ENVIRONMENT": "test",
        "LOGPIPE_PARKING_QUEUE_URL": world.queue,
        "LOGPIPE_DEAD_LETTER_QUEUE_URL": world.dlq,
        "LOGPIPE_SENTRY_DSN": project.dsn,
        "LOGPIPE_LANGFUSE_HOST": world.receiver.host,
        "LOGPIPE_LANGFUSE_PUBLIC_KEY": "pk-lf-canary",
        "LOGPIPE_LANGFUSE_SECRET_KEY": "sk-lf-canary",
    }
    spec = function_spec(TEMPLATE, "ingest")
    outputs: list[str] = []
    summaries: list[dict[str, Any]] = []
    with parked_bodies() as parked:
        for number, event in enumerate(events):
            invocation = invoke(spec, event, echo=None, environment=environment, cold=number == 0)
            outputs.append(invocation.output)
            summaries.append(invocation.result)

    stored = world.bugsink.events(project)
    requests = world.receiver.received[received_before:]
    spans = [json.dumps(MessageToDict(item.request), ensure_ascii=False) for item in requests]
    channels = {
        "sentry (stored events)": json.dumps(stored, ensure_ascii=False),
        "langfuse (OTLP requests)": "\n".join(spans),
        "parked (SQS bodies)": "\n".join(parked),
        "function output (logs, EMF)": "\n".join(outputs),
    }
    leaks = {
        f"{name} in {channel}": token
        for channel, text in channels.items()
        for name, token in canary.tokens().items()
        if token in text
    }
    assert leaks == {}, f"canaries left AWS: {leaks}"

    # The search was over something: what the records could reach did leave, one way or another.
    errors = sum(summary["records"]["error"] for summary in summaries)
    llm = sum(summary["records"]["llm"] for summary in summaries)
    sentry_out = sum(summary["deliveries"].get("sentry.delivered", 0) for summary in summaries)
    sentry_parked = sum(summary["deliveries"].get("sentry.parked", 0) for summary in summaries)
    # Under parallel sends Bugsink may accept (200) an event its quota then drops: stored <= delivered.
    assert len(stored) <= sentry_out
    assert errors == sentry_out + sentry_parked + sum(
        summary["deliveries"].get("sentry.skipped", 0) for summary in summaries
    )
    if sentry_out:
        assert stored, "delivered events were stored"
    if llm:
        assert requests, "the LLM calls were sent"
    if langfuse_fails and llm:
        assert any('"sink":"langfuse"' in body for body in parked)
    if sentry_parked:
        assert any('"sink":"sentry"' in body for body in parked)
    if with_malformed:
        assert sum(summary["malformed"]["payloads"] for summary in summaries) == 1
