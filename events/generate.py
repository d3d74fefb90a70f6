#!/usr/bin/env python3
"""Regenerate every sample Lambda event in ``events/`` deterministically.

    uv run python events/generate.py            # (re)write events/*.json, events/decoded/, events/README.md
    uv run python events/generate.py --check    # exit 1 if the committed files differ from what would be written

It needs the project's environment (``uv run``, or ``make events``); a bare ``python`` says so in one line.

Samples use a fixed seed and a fixed base time (2026-11-22T01:00:00Z) and are built from the line
builders in ``logpipe_cli.workload``, so the ingest parser's tests and these files can never drift
apart silently. ``--check`` compares the gzip payloads by content, not by compressed bytes, so a
different zlib build (zlib-ng, for instance) does not make it fail.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import json
import random
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

try:
    from logpipe_cli import alarms as al
    from logpipe_cli import workload as wl
except ModuleNotFoundError as missing:  # run with a bare interpreter, outside the project's environment
    sys.exit(
        f"events/generate.py needs the project's environment ({missing.name} is not installed here): "
        f"run `uv run python events/generate.py{''.join(' ' + arg for arg in sys.argv[1:])}` or `make events`"
    )

EVENTS_DIR = Path(__file__).resolve().parent
TEMPLATE = EVENTS_DIR.parent / "template.yaml"
BASE_MS = 1_795_309_200_000  # 2026-11-22T01:00:00Z
SEED = 20261122
COUNTS_FILE = "_expected_counts.json"


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample Lambda event and what the ingest function should make of it."""

    name: str
    event: dict[str, object]
    decoded: object | None  # the decoded DATA_MESSAGE(s); None for malformed samples
    counts: dict[str, int]  # non-zero ``workload.expected_counts`` of the sample
    contains: str
    ingest: str


class _Ids:
    """Deterministic ids for one sample (uuid4 strings, hex, DICOM UIDs)."""

    def __init__(self, salt: int) -> None:
        self.rng = random.Random(SEED * 1000 + salt)

    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(4 * digits):0{digits}x}"

    def study_uid(self) -> str:
        rng = self.rng
        return (
            f"1.2.840.113619.2.55.3.{rng.randrange(10**8, 10**9)}.{rng.randrange(100, 1000)}"
            f".{rng.randrange(10**9, 2 * 10**9)}.{rng.randrange(1, 1000)}"
        )


class _Stream:
    """Collects one sample stream's lines together with their bookkeeping counts."""

    def __init__(self, log_group: str, log_stream: str) -> None:
        self.builder = wl.StreamBuilder(log_group, log_stream)

    def add(self, ts: int, *messages: str, **counts: int) -> None:
        self.builder.add([(ts, message) for message in messages], counts)

    def add_split(self, ts: int, lines: Sequence[str], **counts: int) -> None:
        """One event per line, timestamps same or +1 ms (the awslogs driver's split), blank lines dropped."""
        timed = [(ts + index // 2, line) for index, line in enumerate(line for line in lines if line)]
        self.builder.add(timed, counts)

    def done(self) -> wl.SyntheticStream:
        stream = self.builder.flush()
        if stream is None:
            raise ValueError("empty sample stream")
        return stream


def _nonzero(streams: Sequence[wl.SyntheticStream]) -> dict[str, int]:
    return {key: value for key, value in wl.expected_counts(streams).items() if value}


def _cwl_sample(
    name: str,
    stream: wl.SyntheticStream,
    contains: str,
    ingest: str,
    **options: object,
) -> Sample:
    policy_level = options.get("policy_level")
    extracted = options.get("extracted_fields")
    message = wl.subscription_message(
        stream,
        policy_level=policy_level if isinstance(policy_level, str) else None,
        extracted_fields=[str(item) for item in extracted] if isinstance(extracted, list) else None,
    )
    event: dict[str, object] = {"awslogs": {"data": wl.encode_subscription_payload(message)}}
    return Sample(name, event, message, _nonzero([stream]), contains, ingest)


# --------------------------------------------------------------------------------------------------
# Valid samples
# --------------------------------------------------------------------------------------------------


def backend_application() -> Sample:
    """pacs-backend application lines in every format the service writes."""
    ids = _Ids(1)
    s = _Stream(wl.BACKEND_APPLICATION_GROUP, f"ecs/pacs-backend/{ids.hex(32)}")
    t = BASE_MS + 1_234
    uid = ids.study_uid()
    s.add(
        t,
        wl.backend_request_completed_json(
            t, request_id=ids.uuid(), method="GET", path=f"/api/studies/{uid}", status=200, duration_ms=123
        ),
        request_completed=1,
    )
    t += 57
    s.add(
        t,
        wl.backend_dicom_processed_json(
            t, request_id=ids.uuid(), study_uid=uid, modality="CT", instances=312, duration_ms=4410
        ),
        dicom_processed=1,
    )
    t += 140
    s.add(t, wl.space_delimited_line(t, "INFO", "Request completed", 123, request_id=ids.uuid()), request_completed=1)
    t += 23
    s.add(
        t,
        wl.space_delimited_line(
            t, "INFO", "DICOM processed", "1.2.840.113619.2.55.3.604688119.969.1268071029.320", request_id=ids.uuid()
        ),
        dicom_processed=1,
    )
    t += 310
    s.add(
        t,
        wl.python_text_line(
            t,
            level="INFO",
            logger="pacs.api",
            message="Request completed",
            request_id=ids.uuid(),
            fields={"duration": 87, "status": 200, "method": "GET", "path": "/api/worklist"},
        ),
        request_completed=1,
    )
    t += 12
    s.add(
        t,
        wl.python_text_line(
            t,
            level="INFO",
            logger="pacs.dicom",
            message="DICOM processed",
            request_id=ids.uuid(),
            fields={"study_uid": "1.2.840.113619.2.55.3.6046", "modality": "MR", "instances": 180},
        ),
        dicom_processed=1,
    )
    t += 95
    s.add(
        t,
        wl.logfmt_line(
            t,
            level="info",
            msg="Request completed",
            fields={"duration": 45, "request_id": ids.uuid(), "method": "GET", "path": "/api/auth/me", "status": 200},
        ),
        request_completed=1,
    )
    t += 402
    s.add(
        t,
        wl.backend_request_completed_json(
            t,
            request_id=ids.uuid(),
            method="GET",
            path=f"/api/studies/{ids.study_uid()}/series",
            status=200,
            duration_ms=6234,
        ),
        request_completed=1,
        slow_requests=1,
    )
    t += 8
    s.add(
        t,
        wl.backend_json_line(
            t,
            level="WARNING",
            logger="pacs.db",
            message="Slow query detected",
            request_id=ids.uuid(),
            fields={"duration": 4210, "query": "select_study_instances"},
        ),
    )
    t += 33
    s.add(
        t,
        wl.backend_json_line(
            t,
            level="INFO",
            logger="pacs.cache",
            message="Study metadata cached",
            request_id=ids.uuid(),
            fields={"study_uid": uid, "ttl": 300},
        ),
    )
    t += 71
    s.add(
        t,
        wl.python_text_line(
            t,
            level="INFO",
            logger="pacs.worklist",
            message="Worklist query",
            request_id=ids.uuid(),
            fields={"PatientName": "HONG^GILDONG", "modality": "CT"},
        ),
        pii_lines=1,
    )
    t += 19
    s.add(
        t,
        wl.backend_json_line(
            t,
            level="INFO",
            logger="pacs.worklist",
            message="Patient lookup",
            request_id=ids.uuid(),
            fields={"PatientID": "P-000123", "matches": 1},
        ),
        pii_lines=1,
    )
    t += 240
    s.add(
        t,
        wl.python_text_line(
            t,
            level="INFO",
            logger="pacs.api",
            message="Request completed",
            request_id=ids.uuid(),
            fields={"duration": 12, "status": 404, "method": "GET", "path": f"/api/studies/{ids.study_uid()}"},
        ),
        request_completed=1,
    )
    t += 66
    s.add(
        t,
        wl.backend_request_completed_json(
            t, request_id=ids.uuid(), method="POST", path="/dicomweb/studies", status=201, duration_ms=5620
        ),
        request_completed=1,
        slow_requests=1,
    )
    return _cwl_sample(
        "cwl-pacs-backend-application.json",
        s.done(),
        "pacs-backend application batch: JSON, space-delimited, key=value text and logfmt lines; "
        "`Request completed` (two over 5000 ms), `DICOM processed`, a WARNING, two PII lines",
        "parse every format; EMF `PACSBackendResponseTime` (one value per `Request completed`) and "
        "`DICOMProcessed`; no Sentry events; scrub the PII before anything leaves",
    )


_STORE_EXC = "\n".join(
    wl.python_traceback_lines(
        [("/app/pacs/dicom/store.py", 88, "store", "conn.execute(sql)")],
        "psycopg.errors.UniqueViolation",
        'duplicate key value violates unique constraint "instances_pkey"',
    )
)


def backend_errors() -> Sample:
    """pacs-backend errors group: JSON errors, nested-extra errors and split tracebacks."""
    ids = _Ids(2)
    s = _Stream(wl.BACKEND_ERRORS_GROUP, f"ecs/pacs-backend/{ids.hex(32)}")
    t = BASE_MS + 2_000
    s.add(
        t,
        wl.backend_error_json(
            t,
            logger="pacs.dicom",
            message="Failed to store instance",
            request_id=ids.uuid(),
            exc_info=_STORE_EXC,
            fields={"study_uid": ids.study_uid()},
        ),
        backend_errors=1,
    )
    t += 410
    s.add(
        t,
        wl.backend_nested_extra_json(
            t,
            levelname="ERROR",
            name="pacs.dicom",
            message="Failed to store instance",
            extra={"request_id": ids.uuid(), "study_uid": ids.study_uid()},
            exc_info=_STORE_EXC,
        ),
        backend_errors=1,
    )
    t += 1_203
    header = wl.python_text_line(
        t, level="ERROR", logger="pacs.api", message="Unhandled exception", request_id=ids.uuid()
    )
    body = wl.python_traceback_lines(
        [
            ("/app/pacs/api/views.py", 120, "get_study", "return repo.get(uid)"),
            ("/app/pacs/repo/studies.py", 45, "get", 'raise ValueError("study not found")'),
        ],
        "ValueError",
        "study not found",
    )
    s.add_split(t, [header, *body], backend_errors=1, multiline_tracebacks=1)
    t += 2_870
    header = wl.python_text_line(
        t,
        level="ERROR",
        logger="pacs.api",
        message="Unhandled exception",
        request_id=ids.uuid(),
        fields={"path": f"/api/studies/{ids.study_uid()}"},
    )
    body = wl.chained_traceback_lines(
        wl.python_traceback_lines(
            [("/app/pacs/repo/studies.py", 41, "get", "row = cur.fetchone()")],
            "psycopg.OperationalError",
            "consuming input failed: server closed the connection unexpectedly",
        ),
        wl.python_traceback_lines(
            [
                ("/app/pacs/api/views.py", 120, "get_study", "return repo.get(uid)"),
                ("/app/pacs/repo/studies.py", 43, "get", "raise StudyUnavailable(uid) from exc"),
            ],
            "pacs.repo.errors.StudyUnavailable",
            "study temporarily unavailable",
        ),
    )
    s.add_split(t, [header, *body], backend_errors=1, multiline_tracebacks=1)
    t += 950
    s.add(
        t,
        wl.space_delimited_line(t, "ERROR", "Database connection failed", "timeout", request_id=ids.uuid()),
        backend_errors=1,
    )
    t += 38
    s.add(
        t,
        wl.backend_nested_extra_json(
            t,
            levelname="ERROR",
            name="pacs.worklist",
            message="Failed to reconcile patient",
            extra={"request_id": ids.uuid(), "PatientID": "P-004411"},
        ),
        backend_errors=1,
        pii_lines=1,
    )
    t += 77
    s.add(
        t,
        wl.backend_error_json(
            t,
            logger="pacs.api",
            message="Upstream PACS node unreachable",
            request_id=ids.uuid(),
            fields={"node": "orthanc-2", "error": "ConnectTimeout"},
        ),
        backend_errors=1,
    )
    return _cwl_sample(
        "cwl-pacs-backend-errors.json",
        s.done(),
        "pacs-backend errors group: JSON error with `exc_info`, nested-`extra` errors (one with a PatientID), "
        "a split Python traceback, a split chained traceback, a space-delimited ERROR",
        "7 error records: each split traceback folds into ONE record/Sentry event; `PACSBackendErrors` +7; "
        "PatientID scrubbed before Sentry",
    )


def _llm(ids: _Ids, **overrides: object) -> wl.LlmCall:
    values: dict[str, object] = {
        "name": "report-summary",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "prompt": f"Summarize the CT report for study {ids.study_uid()} in three bullet points.",
        "completion": "- No acute intracranial hemorrhage.\n- Chronic small vessel change.\n- Routine follow-up.",
        "input_tokens": 812,
        "output_tokens": 164,
        "cost_usd": 0.00022,
        "latency_ms": 1840,
        "trace_id": ids.hex(32),
        "span_id": ids.hex(16),
        "session_id": f"sess-{ids.hex(12)}",
        "user_id": "radiologist-17",
        "study_uid": ids.study_uid(),
        "error": None,
    }
    values.update(overrides)
    return wl.LlmCall(**values)  # type: ignore[arg-type]


def backend_llm() -> Sample:
    """pacs-backend llm group: one record per supported LLM-call shape."""
    ids = _Ids(3)
    s = _Stream(wl.BACKEND_LLM_GROUP, f"ecs/pacs-backend/{ids.hex(32)}")
    t = BASE_MS + 3_000
    uid = ids.study_uid()
    calls: list[tuple[Callable[..., str], wl.LlmCall]] = [
        (wl.llm_call_flat, _llm(ids, prompt=f"Summarize the CT report for study {uid} in three bullet points.")),
        (
            wl.llm_call_openai,
            _llm(
                ids,
                name="report-draft",
                model="gpt-4o",
                prompt=f"Draft a structured CT report for study {uid}: 3 mm nodule in the right upper lobe.",
                completion="Impression: 3 mm RUL nodule; CT follow-up in 12 months.",
                input_tokens=1530,
                output_tokens=402,
                cost_usd=0.007845,
                latency_ms=4210,
            ),
        ),
        (
            wl.llm_call_anthropic,
            _llm(
                ids,
                name="worklist-triage",
                provider="anthropic",
                model="claude-3-5-haiku-20241022",
                prompt=f"Classify the urgency (routine/urgent/critical) of study {uid} (CT) given: no acute findings.",
                completion="Urgency: routine.",
                input_tokens=640,
                output_tokens=38,
                cost_usd=0.000664,
                latency_ms=905,
            ),
        ),
        (
            wl.llm_call_otel,
            _llm(
                ids,
                name="report-translate",
                provider="anthropic",
                model="claude-sonnet-4-5",
                prompt="Translate the impression into Korean: 3 mm RUL nodule; CT follow-up in 12 months.",
                completion="우측 상엽에 3mm 결절이 있으며 12개월 후 추적 CT를 권고합니다.",
                input_tokens=905,
                output_tokens=311,
                cost_usd=0.00738,
                latency_ms=6120,
            ),
        ),
        (
            wl.llm_call_flat,
            _llm(
                ids,
                name="report-draft",
                prompt=f"Draft a structured MR report for study {uid}: degenerative change at L4-L5.",
                completion="",
                input_tokens=1211,
                output_tokens=0,
                cost_usd=0.000182,
                latency_ms=240,
                error="RateLimitError: 429 Too Many Requests",
            ),
        ),
        (
            wl.llm_call_openai,
            _llm(
                ids,
                name="worklist-triage",
                prompt="Classify urgency for Header: PatientName=KIM^MINSU (CT head, trauma).",
                completion="Urgency: urgent.",
                input_tokens=233,
                output_tokens=12,
                cost_usd=0.000042,
                latency_ms=733,
            ),
        ),
    ]
    for render, call in calls:
        counts = {"llm_calls": 1, "llm_input_tokens": call.input_tokens, "llm_output_tokens": call.output_tokens}
        if "PatientName=" in call.prompt:
            counts["pii_lines"] = 1
        s.add(t, render(t, call), **counts)
        t += call.latency_ms + 250
    return _cwl_sample(
        "cwl-pacs-backend-llm.json",
        s.done(),
        "LLM calls: flat, OpenAI `usage`, Anthropic `input`/`output` with start/end, OpenTelemetry `gen_ai.*`, "
        "a failed call (WARNING, `error`), one prompt with a PatientName",
        "6 Langfuse generations with normalised model/usage/cost (none routed to Sentry); scrub the prompt PII",
    )


_KC_FRAMES = (
    "org.keycloak.authentication.AuthenticationProcessor.authenticate(AuthenticationProcessor.java:1021)",
    "org.keycloak.protocol.AuthorizationEndpointBase.handleBrowserAuthenticationRequest(AuthorizationEndpointBase.java:139)",
    "org.keycloak.protocol.oidc.endpoints.AuthorizationEndpoint.process(AuthorizationEndpoint.java:203)",
)
_KC_CAUSE_FRAMES = (
    "org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:346)",
    "org.postgresql.jdbc.PgConnection.<init>(PgConnection.java:263)",
)


def keycloak() -> Sample:
    """Keycloak: JBoss text (quoted/unquoted), JSON console, a split Java trace, space-delimited lines."""
    ids = _Ids(4)
    s = _Stream(wl.KEYCLOAK_LEGACY_GROUP, f"ecs/keycloak/{ids.hex(32)}")
    redirect = "https://pacs.example.com/viewer"
    t = BASE_MS + 4_000

    def jboss(ts: int, level: str, message: str, thread: str = "executor-thread-12") -> str:
        return wl.keycloak_jboss_line(ts, level=level, category="org.keycloak.events", thread=thread, message=message)

    s.add(
        t,
        jboss(
            t,
            "DEBUG",
            wl.keycloak_event_details(
                "LOGIN",
                realm_id="pacs",
                client_id="pacs-viewer",
                user_id=ids.uuid(),
                ip_address="10.0.1.57",
                details={
                    "auth_method": "openid-connect",
                    "auth_type": "code",
                    "redirect_uri": redirect,
                    "consent": "no_consent_required",
                    "code_id": ids.uuid(),
                },
                username="park.sy",
            ),
        ),
    )
    t += 211
    s.add(
        t,
        jboss(
            t,
            "WARN",
            wl.keycloak_event_details(
                "LOGIN_ERROR",
                realm_id="pacs",
                client_id="pacs-viewer",
                user_id=None,
                ip_address="10.0.1.57",
                error="invalid_user_credentials",
                details={"auth_method": "openid-connect", "redirect_uri": redirect, "code_id": ids.uuid()},
                username="jdoe",
            ),
        ),
        auth_failures=1,
    )
    t += 402
    s.add(
        t,
        jboss(
            t,
            "WARN",
            wl.keycloak_event_details(
                "LOGIN_ERROR",
                realm_id="pacs",
                client_id="pacs-viewer",
                user_id=None,
                ip_address="10.0.1.57",
                error="user_not_found",
                username="kim.minsu",
                quoted=True,
            ),
            thread="executor-thread-3",
        ),
        auth_failures=1,
    )
    t += 97
    s.add(
        t,
        jboss(
            t,
            "INFO",
            wl.keycloak_event_details(
                "LOGIN",
                realm_id="pacs",
                client_id="pacs-viewer",
                user_id=ids.uuid(),
                ip_address="10.0.2.31",
                details={"auth_method": "openid-connect", "code_id": ids.uuid()},
                username="lee.jieun",
                quoted=True,
            ),
            thread="executor-thread-7",
        ),
    )
    t += 350
    s.add(
        t,
        wl.keycloak_json_line(
            t,
            level="WARN",
            logger_name="org.keycloak.events",
            message=wl.keycloak_event_details(
                "LOGIN_ERROR",
                realm_id="pacs",
                client_id="pacs-viewer",
                user_id=None,
                ip_address="10.0.1.57",
                error="invalid_user_credentials",
                username="jdoe",
                quoted=True,
            ),
            sequence=8812,
            thread_name="executor-thread-3",
            thread_id=55,
            host_name="keycloak-0",
        ),
        auth_failures=1,
    )
    t += 45
    s.add(
        t,
        wl.keycloak_json_line(
            t,
            level="INFO",
            logger_name="org.keycloak.events",
            message=wl.keycloak_event_details(
                "CODE_TO_TOKEN",
                realm_id="pacs",
                client_id="pacs-viewer",
                user_id=ids.uuid(),
                ip_address="10.0.2.31",
                details={"token_id": ids.uuid(), "grant_type": "authorization_code", "code_id": ids.uuid()},
                quoted=True,
            ),
            sequence=8813,
            thread_name="executor-thread-5",
            thread_id=57,
            host_name="keycloak-0",
        ),
    )
    t += 1_020
    header = wl.keycloak_jboss_line(
        t,
        level="ERROR",
        category="org.keycloak.services",
        thread="executor-thread-1",
        message="KC-SERVICES0013: Failed authentication",
    )
    body = wl.java_stack_trace_lines(
        "java.lang.NullPointerException",
        'Cannot invoke "String.length()" because "<parameter1>" is null',
        _KC_FRAMES,
        cause=("org.postgresql.util.PSQLException", "Connection to keycloak-db:5432 refused.", _KC_CAUSE_FRAMES, 42),
    )
    s.add_split(t, [header, *body], keycloak_errors=1, multiline_tracebacks=1)
    t += 640
    s.add(t, wl.space_delimited_line(t, "WARN", "Authentication failed", "jdoe", "10.0.1.5"), auth_failures=1)
    t += 12
    s.add(t, wl.space_delimited_line(t, "INFO", "Login succeeded", "lee.jieun", "10.0.2.31"))
    t += 530
    s.add(
        t,
        jboss(
            t,
            "WARN",
            wl.keycloak_event_details(
                "LOGIN_ERROR",
                realm_id="pacs",
                client_id="pacs-viewer",
                user_id=ids.uuid(),
                ip_address="203.0.113.24",
                error="invalid_user_credentials",
                details={"auth_method": "openid-connect", "redirect_uri": redirect},
                username="minsu.kim7@hospital.example.kr",
            ),
        ),
        auth_failures=1,
        pii_lines=1,
    )
    t += 77
    s.add(
        t,
        jboss(
            t,
            "WARN",
            wl.keycloak_event_details(
                "REFRESH_TOKEN_ERROR",
                realm_id="pacs",
                client_id="pacs-viewer",
                user_id=None,
                ip_address="10.0.2.31",
                error="invalid_token",
                details={"grant_type": "refresh_token"},
            ),
        ),
    )
    return _cwl_sample(
        "cwl-keycloak.json",
        s.done(),
        "Keycloak (guide group `/aws/ecs/keycloak`, account-level policy): JBoss text LOGIN/LOGIN_ERROR unquoted and "
        'quoted, Quarkus JSON console, a split Java trace with `Caused by`, space-delimited `"Authentication failed"`, '
        "a REFRESH_TOKEN_ERROR, a LOGIN_ERROR whose username is an email",
        "`AuthenticationFailures` +5 (4 LOGIN_ERROR + 1 `Authentication failed`; REFRESH_TOKEN_ERROR is not one); "
        "the Java trace folds into ONE Sentry event; email scrubbed",
        policy_level="ACCOUNT_LEVEL_POLICY",
    )


@dataclass(frozen=True, slots=True)
class _Invocation:
    """The identity of one sample Lambda invocation, for its Powertools lines."""

    request_id: str
    xray_trace_id: str
    cold: bool

    def powertools(self, ts: int, level: str, location: str, message: str, **extra: object) -> str:
        exception = extra.pop("exception", None)
        return wl.powertools_line(
            ts,
            level=level,
            location=location,
            message=message,
            function_name=wl.THUMBNAILER_FUNCTION,
            request_id=self.request_id,
            xray_trace_id=self.xray_trace_id,
            cold_start=self.cold,
            extra=extra or None,
            exception=None if exception is None else str(exception),
            exception_name=None if exception is None else "KeyError",
        )


def lambda_thumbnailer() -> Sample:
    """pacs-thumbnailer Lambda: platform lines, runtime text/JSON errors, Powertools, a timeout."""
    ids = _Ids(5)
    s = _Stream(wl.THUMBNAILER_GROUP, f"2026/11/22/[$LATEST]{ids.hex(32)}")
    tb = wl.python_traceback_lines(
        [("/var/task/app.py", 20, "lambda_handler", 'uid = ds["SeriesInstanceUID"]')], "KeyError", "'SeriesInstanceUID'"
    )
    t = BASE_MS + 5_000
    for number in range(6):
        rid = ids.uuid()
        cold = number == 0
        xray = f"1-{t // 1000:08x}-{ids.hex(24)}"

        invocation = _Invocation(rid, xray, cold=cold)
        pt = invocation.powertools

        s.add(t, wl.lambda_start(rid), lambda_invocations=1)
        status: str | None = None
        if number == 0:
            duration = 812.44
            s.add(
                t + 2,
                pt(
                    t + 2,
                    "INFO",
                    "handler:42",
                    "Processing DICOM object",
                    bucket="pacs-dicom-prod",
                    key=f"incoming/{ids.study_uid()}/{ids.uuid()}.dcm",
                ),
            )
            s.add(t + 809, wl.lambda_text_line(t + 809, "INFO", rid, "Thumbnail written"))
        elif number == 1:
            duration = 143.2
            s.add(t + 3, pt(t + 3, "INFO", "handler:42", "Processing DICOM object", bucket="pacs-dicom-prod"))
            s.add(
                t + 140,
                wl.lambda_text_line(t + 140, "ERROR", rid, "KeyError: 'SeriesInstanceUID'\n" + "\n".join(tb)),
                lambda_errors=1,
            )
        elif number == 2:
            duration = 98.07
            stack = ['  File "/var/task/app.py", line 20, in lambda_handler\n    uid = ds["SeriesInstanceUID"]\n']
            s.add(t + 97, wl.lambda_runtime_error_json(rid, "KeyError", "'SeriesInstanceUID'", stack), lambda_errors=1)
        elif number == 3:
            duration = 211.9
            s.add(t + 2, pt(t + 2, "INFO", "handler:42", "Processing DICOM object", bucket="pacs-dicom-prod"))
            s.add(
                t + 209,
                pt(t + 209, "ERROR", "handler:57", "Failed to render thumbnail", exception="\n".join(tb)),
                lambda_errors=1,
            )
        elif number == 4:
            duration = 30028.61
            status = "timeout"
            s.add(t + 1, pt(t + 1, "INFO", "handler:42", "Processing DICOM object", bucket="pacs-dicom-prod"))
            s.add(t + 30028, wl.lambda_timeout(t + 30028, rid, 30.03), lambda_timeouts=1)
        else:
            duration = 655.0
            s.add(
                t + 4,
                pt(t + 4, "WARNING", "render:88", "Unexpected patient tag", tag="(0010,0030) DA [19800101]"),
                pii_lines=1,
            )
            s.add(t + 651, wl.lambda_text_line(t + 651, "INFO", rid, "Thumbnail written"))
        end = t + int(duration)
        s.add(
            end,
            wl.lambda_end(rid),
            wl.lambda_report(
                rid,
                duration_ms=duration,
                memory_size_mb=512,
                max_memory_used_mb=70 + 9 * number,
                init_duration_ms=200.51 if cold else None,
                status=status,
            ),
        )
        t = end + 1_500
    return _cwl_sample(
        "cwl-lambda-thumbnailer.json",
        s.done(),
        "6 invocations: START/END/REPORT (cold start with Init Duration, one `Status: timeout`), `[INFO]`/`[ERROR]` "
        "runtime text (multi-line traceback in ONE event), runtime error JSON, Powertools INFO/WARNING/ERROR, "
        "`Task timed out`",
        "3 error records + 1 timeout to Sentry; REPORT durations/memory as metrics; DOB tag scrubbed",
    )


def rds_postgresql() -> Sample:
    """RDS PostgreSQL error log with log_line_prefix ``%t:%r:%u@%d:[%p]:``."""
    s = _Stream(wl.RDS_ERROR_GROUP, "pacs-postgresql")
    client = "10.0.1.23(53412)"
    t = BASE_MS + 6_000

    def pg(ts: int, severity: str, message: str, pid: int = 12345, user: str = "pacs_app") -> str:
        return wl.postgres_line(ts, severity, message, pid=pid, client=client, user=user, database="pacs")

    s.add(
        t,
        wl.postgres_line(
            t,
            "LOG",
            "connection received: host=10.0.1.23 port=53412",
            pid=12345,
            client=client,
            user="[unknown]",
            database="[unknown]",
        ),
        pg(t, "LOG", "connection authorized: user=pacs_app database=pacs application_name=pacs-backend"),
    )
    t += 1_003
    s.add(
        t,
        pg(t, "ERROR", 'duplicate key value violates unique constraint "studies_pkey"'),
        pg(t, "DETAIL", "Key (study_uid)=(1.2.3) already exists."),
        pg(t, "STATEMENT", "INSERT INTO studies (study_uid, modality, study_date) VALUES ($1, $2, $3)"),
        rds_errors=1,
    )
    t += 2_450
    s.add(
        t,
        pg(
            t,
            "LOG",
            "duration: 5123.456 ms  statement: SELECT sop_instance_uid FROM instances WHERE "
            "study_uid = '1.2.3' ORDER BY instance_number",
        ),
        rds_slow_queries=1,
    )
    t += 1_877
    s.add(
        t,
        wl.postgres_line(
            t,
            "FATAL",
            'password authentication failed for user "report_ro"',
            pid=23456,
            client="10.0.3.9(40112)",
            user="report_ro",
            database="pacs",
        ),
        wl.postgres_line(
            t,
            "DETAIL",
            'User "report_ro" does not have a valid SCRAM secret.',
            pid=23456,
            client="10.0.3.9(40112)",
            user="report_ro",
            database="pacs",
        ),
        rds_errors=1,
    )
    t += 3_210
    s.add(t, wl.postgres_line(t, "LOG", "checkpoint starting: time", pid=611))
    t += 900
    s.add(
        t,
        pg(t, "ERROR", "canceling statement due to statement timeout", pid=12377),
        pg(
            t,
            "STATEMENT",
            "SELECT s.study_uid, count(*) FROM studies s JOIN instances i USING (study_uid) GROUP BY s.study_uid",
            pid=12377,
        ),
        rds_errors=1,
    )
    t += 4_015
    s.add(
        t,
        pg(t, "ERROR", 'duplicate key value violates unique constraint "users_email_key"', pid=12390),
        pg(t, "DETAIL", "Key (email)=(jieun.lee3@hospital.example.kr) already exists.", pid=12390),
        pg(t, "STATEMENT", "INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3)", pid=12390),
        rds_errors=1,
        pii_lines=1,
    )
    t += 5_004
    s.add(
        t,
        wl.postgres_line(
            t,
            "LOG",
            "checkpoint complete: wrote 1893 buffers (1.4%); 0 WAL file(s) added, "
            "0 removed, 1 recycled; write=29.812 s, sync=0.004 s, total=29.845 s",
            pid=611,
        ),
    )
    t += 220
    s.add(
        t,
        pg(t, "LOG", "disconnection: session time: 0:00:27.441 user=pacs_app database=pacs host=10.0.1.23 port=53412"),
    )
    return _cwl_sample(
        "cwl-rds-postgresql.json",
        s.done(),
        "PostgreSQL error log: connections, ERROR+DETAIL+STATEMENT (one with an email in DETAIL), statement "
        "timeout, slow `duration:` line, FATAL password authentication, checkpoints",
        "4 error records (DETAIL/STATEMENT folded into their ERROR/FATAL), 1 slow-query metric (5123.456 ms); "
        "email scrubbed",
    )


def control() -> Sample:
    """CloudWatch Logs destination health check."""
    message = wl.control_message(BASE_MS + 7_000)
    return Sample(
        "cwl-control-message.json",
        {"awslogs": {"data": wl.encode_subscription_payload(message)}},
        message,
        {},
        "CONTROL_MESSAGE (owner `CloudwatchLogs`, empty logGroup/logStream, one health-check event)",
        "acknowledge and skip: no records, no metrics except a control-message count, no parking, no error",
    )


def schedule() -> Sample:
    """The exporter's scheduled invocation (EventBridge Scheduler input; the exporter ignores its content)."""
    return Sample(
        "schedule.json",
        {"source": "logpipe.scheduler", "detail-type": "Export step", "detail": {}},
        None,
        {},
        "the input the exporter's EventBridge Scheduler schedule sends every 15 minutes",
        "not for ingest: `logpipe invoke exporter --event events/schedule.json` advances the export one step",
    )


def _error_rate_alarm() -> al.TemplateAlarm:
    by_id = {alarm.logical_id: alarm for alarm in al.template_alarms(TEMPLATE, "pacs-logpipe")}
    return by_id["PacsBackendErrorRateAlarm"]


def sns_alarm() -> Sample:
    """pacs-alerts -> notifier: the PACS error-rate alarm going to ALARM, as CloudWatch publishes it."""
    alarm = _error_rate_alarm()
    # 17 then 23 errors in two 5-minute periods from 01:00Z: the template's alarm fires at 01:10Z.
    evaluation = al.evaluate(alarm, {BASE_MS: [1.0] * 17, BASE_MS + 300_000: [1.0] * 23})
    if evaluation.fired_at_ms is None:
        raise RuntimeError("the sample's datapoints no longer fire the template's error-rate alarm")
    changed_at = datetime.fromtimestamp(evaluation.fired_at_ms / 1000, UTC)
    event = al.alarm_sns_event(
        alarm,
        new_state="ALARM",
        old_state="OK",
        reason=evaluation.reason,
        changed_at=changed_at,
        message_id=_Ids(20).uuid(),
    )
    return Sample(
        "sns-alarm.json",
        event,
        None,
        {},
        (
            "SNS record of `pacs-alerts`: the PACS error-rate alarm going OK -> ALARM (17 and 23 errors in two "
            "5-minute periods)"
        ),
        (
            "not for ingest: `logpipe invoke notify --event events/sns-alarm.json` posts a red ALARM message to the "
            "webhooks in `LOGPIPE_SLACK_WEBHOOK_URL` / `LOGPIPE_TEAMS_WEBHOOK_URL`, once per channel"
        ),
    )


def sns_alarm_ok() -> Sample:
    """pacs-alerts -> notifier: the same alarm resolved."""
    alarm = _error_rate_alarm()
    changed_at = datetime.fromtimestamp((BASE_MS + 1_800_000) / 1000, UTC)
    reason = (
        "Threshold Crossed: 2 out of the last 2 datapoints [3.0 (22/11/26 01:25:00), 1.0 (22/11/26 01:20:00)] were "
        "not greater than the threshold (10.0) (minimum 1 datapoint for ALARM -> OK transition)."
    )
    event = al.alarm_sns_event(
        alarm, new_state="OK", old_state="ALARM", reason=reason, changed_at=changed_at, message_id=_Ids(21).uuid()
    )
    return Sample(
        "sns-alarm-ok.json",
        event,
        None,
        {},
        "SNS record of `pacs-alerts`: the same alarm going ALARM -> OK",
        "not for ingest: `logpipe invoke notify --event events/sns-alarm-ok.json` posts a green resolved message",
    )


def kinesis() -> Sample:
    """Kinesis Data Streams destination: two records, each a gzip DATA_MESSAGE."""
    ids = _Ids(8)
    task = ids.hex(32)
    app = _Stream(wl.BACKEND_APPLICATION_GROUP, f"ecs/pacs-backend/{task}")
    t = BASE_MS + 8_000
    app.add(
        t,
        wl.backend_request_completed_json(
            t, request_id=ids.uuid(), method="GET", path=f"/api/studies/{ids.study_uid()}", status=200, duration_ms=95
        ),
        request_completed=1,
    )
    app.add(
        t + 4,
        wl.backend_dicom_processed_json(
            t + 4, request_id=ids.uuid(), study_uid=ids.study_uid(), modality="MR", instances=176, duration_ms=2990
        ),
        dicom_processed=1,
    )
    app.add(
        t + 31,
        wl.python_text_line(
            t + 31,
            level="INFO",
            logger="pacs.api",
            message="Request completed",
            request_id=ids.uuid(),
            fields={"duration": 7120, "status": 200},
        ),
        request_completed=1,
        slow_requests=1,
    )
    errors = _Stream(wl.BACKEND_ERRORS_GROUP, f"ecs/pacs-backend/{task}")
    errors.add(
        t + 40,
        wl.backend_error_json(
            t + 40,
            logger="pacs.dicom",
            message="Failed to store instance",
            request_id=ids.uuid(),
            exc_info=_STORE_EXC,
            fields={"study_uid": ids.study_uid()},
        ),
        backend_errors=1,
    )
    streams = [app.done(), errors.done()]
    event = wl.kinesis_event(streams)
    return Sample(
        "kinesis-pacs-backend.json",
        event,
        [wl.subscription_message(stream) for stream in streams],
        _nonzero(streams),
        "Kinesis event with 2 records (pacs-backend application + errors), each record's data a gzip DATA_MESSAGE",
        "decode every record like an awslogs payload; 4 records out; a bad record must be reported via "
        "batchItemFailures/parking, not fail the whole batch",
    )


def backend_space_delimited() -> Sample:
    """The guide's space-delimited pacs-backend group, delivered with ``extractedFields``."""
    ids = _Ids(9)
    s = _Stream(wl.BACKEND_LEGACY_GROUP, f"ecs/pacs-backend/{ids.hex(32)}")
    t = BASE_MS + 9_000
    for delta, level, message, value, counts in (
        (0, "INFO", "Request completed", 123, {"request_completed": 1}),
        (41, "INFO", "DICOM processed", "1.2.840.113619.2.55.3.604688119.969.1268071029.320", {"dicom_processed": 1}),
        (77, "INFO", "Request completed", 5310, {"request_completed": 1, "slow_requests": 1}),
        (150, "WARN", "Slow query", 4210, {}),
        (152, "ERROR", "Database connection failed", "timeout", {"backend_errors": 1}),
        (390, "INFO", "Request completed", 64, {"request_completed": 1}),
    ):
        s.add(t + delta, wl.space_delimited_line(t + delta, level, message, value, request_id=ids.uuid()), **counts)
    return _cwl_sample(
        "cwl-pacs-backend-space-delimited.json",
        s.done(),
        "the guide's `/aws/ecs/pacs-backend` group through a space-delimited filter: every event also carries "
        "`extractedFields` (timestamp, request_id, level, message, value)",
        "same results as parsing the message: 3 `Request completed` (one over 5000 ms), 1 `DICOM processed`, "
        "1 backend error",
        extracted_fields=["timestamp", "request_id", "level", "message", "value"],
    )


# --------------------------------------------------------------------------------------------------
# Malformed samples
# --------------------------------------------------------------------------------------------------


def _gzip(raw: bytes) -> bytes:
    return gzip.compress(raw, compresslevel=6, mtime=0)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _small_message() -> dict[str, object]:
    ids = _Ids(10)
    s = _Stream(wl.BACKEND_APPLICATION_GROUP, f"ecs/pacs-backend/{ids.hex(32)}")
    t = BASE_MS + 10_000
    for index in range(12):
        s.add(
            t + index * 9,
            wl.backend_request_completed_json(
                t + index * 9,
                request_id=ids.uuid(),
                method="GET",
                path=f"/api/studies/{ids.study_uid()}",
                status=200,
                duration_ms=40 + index,
            ),
        )
    return wl.subscription_message(s.done())


def malformed() -> list[Sample]:
    """Payloads the ingest function must survive: each is parked and counted, never raised."""
    park = "count it as malformed ({kind}), park the raw payload, return normally (no retry storm)"
    message = _small_message()
    full = _gzip(json.dumps(message).encode())
    wrong = {key: value for key, value in message.items() if key != "logEvents"}
    bad_utf8 = json.dumps(
        {**message, "logEvents": [{"id": "0" * 55 + "1", "timestamp": BASE_MS + 11_000, "message": "@@BAD@@"}]}
    ).encode()
    bad_utf8 = bad_utf8.replace(b"@@BAD@@", b"DICOM tag (0008,103E) value: \xff\xfe\xc3\x28 garbled")
    return [
        Sample(
            "malformed-bad-base64.json",
            {"awslogs": {"data": "H4sIAAAAAAAA/+1X!!!not*base64%%"}},
            None,
            {},
            "`awslogs.data` that is not base64",
            park.format(kind="bad_base64"),
        ),
        Sample(
            "malformed-truncated-gzip.json",
            {"awslogs": {"data": _b64(full[: len(full) // 2])}},
            None,
            {},
            "valid base64 of a gzip stream cut in half",
            park.format(kind="truncated_gzip"),
        ),
        Sample(
            "malformed-not-json.json",
            {
                "awslogs": {
                    "data": _b64(
                        _gzip(
                            b"upstream connect error or disconnect/reset before headers. "
                            b"reset reason: connection termination\n"
                        )
                    )
                }
            },
            None,
            {},
            "gzip of plain text, not JSON",
            park.format(kind="not_json"),
        ),
        Sample(
            "malformed-wrong-shape.json",
            {"awslogs": {"data": _b64(_gzip(json.dumps(wrong).encode()))}},
            None,
            {},
            "gzip of a DATA_MESSAGE without `logEvents`",
            park.format(kind="wrong_shape"),
        ),
        Sample(
            "malformed-invalid-utf8.json",
            {"awslogs": {"data": _b64(_gzip(bad_utf8))}},
            None,
            {},
            "gzip of a DATA_MESSAGE whose one message contains invalid UTF-8 bytes",
            park.format(kind="invalid_utf8"),
        ),
    ]


def build_samples() -> list[Sample]:
    """Every sample, in README order."""
    return [
        backend_application(),
        backend_errors(),
        backend_llm(),
        backend_space_delimited(),
        keycloak(),
        lambda_thumbnailer(),
        rds_postgresql(),
        control(),
        kinesis(),
        *malformed(),
        schedule(),
        sns_alarm(),
        sns_alarm_ok(),
    ]


# --------------------------------------------------------------------------------------------------
# Rendering, writing, checking
# --------------------------------------------------------------------------------------------------


def _pretty(document: object) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _readme(samples: Sequence[Sample]) -> str:
    lines = [
        "# Sample Lambda events",
        "",
        (
            "Generated by `make events` (`uv run python events/generate.py`: fixed seed, base time "
            "2026-11-22T01:00:00Z) from the line builders in `cli/logpipe_cli/workload.py`; do not edit by hand. "
            "`uv run python events/generate.py --check` fails when these files are stale. Each `*.json` is a complete "
            "Lambda event; `decoded/<file>` shows the DATA_MESSAGE inside each valid one, and "
            f"`decoded/{COUNTS_FILE}` holds the exact `workload.expected_counts` of each sample."
        ),
        "",
        (
            "**They age.** CloudWatch refuses EMF points older than 14 days, so these fixed times print no PACS "
            "metrics two weeks after 2026-11-22. `logpipe invoke ingest -e events/<file>` moves the log events to "
            "now first (`--keep-timestamps` keeps them). For `sam local invoke`, use the copies stamped now that "
            "`make events` writes to `events/now/` (not committed): `sam local invoke IngestFunction -e "
            "events/now/cwl-keycloak.json`, or `uv run logpipe restamp events/<file> > /tmp/event.json` for one."
        ),
        "",
        "| file | contains | the ingest function should |",
        "|---|---|---|",
    ]
    lines.extend(f"| `{sample.name}` | {sample.contains} | {sample.ingest} |" for sample in samples)
    lines.append("")
    return "\n".join(lines)


def render(samples: Sequence[Sample]) -> dict[str, str]:
    """Map relative path -> file content for every generated file."""
    files: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    for sample in samples:
        files[sample.name] = _pretty(sample.event)
        if sample.decoded is not None:
            files[f"decoded/{sample.name}"] = _pretty(sample.decoded)
            counts[sample.name] = sample.counts
    files[f"decoded/{COUNTS_FILE}"] = _pretty(counts)
    files["README.md"] = _readme(samples)
    return files


def _payload_content(data: object) -> object:
    """Content of an encoded payload, independent of how a zlib build compresses it."""
    if not isinstance(data, str):
        return data
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return ("not-base64", data)
    inflater = zlib.decompressobj(31)
    try:
        out = inflater.decompress(raw)
    except zlib.error:
        return ("not-gzip", data)
    if not inflater.eof:
        return ("truncated-gzip", len(out) > 0)
    return ("gzip", out)


def _normalised(text: str) -> object:
    document = json.loads(text)
    if isinstance(document, dict):
        awslogs = document.get("awslogs")
        if isinstance(awslogs, dict) and "data" in awslogs:
            document["awslogs"] = {**awslogs, "data": _payload_content(awslogs["data"])}
        for record in document.get("Records", []) if isinstance(document.get("Records"), list) else []:
            kinesis_part = record.get("kinesis") if isinstance(record, dict) else None
            if isinstance(kinesis_part, dict) and "data" in kinesis_part:
                kinesis_part["data"] = _payload_content(kinesis_part["data"])
    return document


def _same(path: str, expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    if not path.endswith(".json") or path.startswith("decoded/"):
        return False
    try:
        return _normalised(expected) == _normalised(actual)
    except (ValueError, TypeError):
        return False


def check(out_dir: Path, files: dict[str, str]) -> list[str]:
    """Return the relative paths whose committed content differs from ``files`` (missing counts too)."""
    problems: list[str] = []
    for relative, content in files.items():
        path = out_dir / relative
        if not path.is_file():
            problems.append(f"missing: {relative}")
        elif not _same(relative, content, path.read_text(encoding="utf-8")):
            problems.append(f"differs: {relative}")
    return problems


def write(out_dir: Path, files: dict[str, str]) -> None:
    """Write every generated file under ``out_dir``."""
    for relative, content in files.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the samples, or with ``--check`` verify the committed ones; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if committed files differ; write nothing")
    parser.add_argument("--out", type=Path, default=EVENTS_DIR, help="directory to write/check (default: events/)")
    args = parser.parse_args(argv)
    files = render(build_samples())
    out_dir: Path = args.out
    if args.check:
        problems = check(out_dir, files)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("events/ is stale: run `make events` (or `uv run python events/generate.py`)", file=sys.stderr)
            return 1
        print(f"{len(files)} files up to date in {out_dir}")
        return 0
    write(out_dir, files)
    print(f"wrote {len(files)} files to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
