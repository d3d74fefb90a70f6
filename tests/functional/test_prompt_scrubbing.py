"""Per-service prompt scrubbing (LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES) through the whole ingest path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from logpipe.classify import RecordKind
from logpipe.langfuse.mapping import Generation, to_generation
from logpipe.metrics import load_metric_rules
from logpipe.parking import MemoryParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.records import LogRecord
from logpipe.runtime import build_boundary
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import SentrySink
from logpipe.sentry.transport import SendOutcome, SendResult
from logpipe.settings import Settings
from logpipe.sinks import Delivery, DeliveryOutcome, SendContext
from payloads import data_message, subscription_event

pytestmark = pytest.mark.functional

NOW_MS = 1_795_300_000_000
EMAIL, PHONE, PATIENT = "hong@example.com", "010-1234-5678", "HONG^GILDONG"


class LlmSink:
    """Accepts every LLM record and keeps the generation the real sink would encode (mapped, then the boundary)."""

    name = "fake-llm"
    kind = RecordKind.LLM

    def __init__(self) -> None:
        self.received: list[LogRecord] = []
        self.generations: list[Generation] = []

    def send(self, records: Sequence[LogRecord], context: SendContext) -> Sequence[Delivery]:
        self.received.extend(records)
        self.generations.extend(context.boundary.generation(to_generation(record)) for record in records)
        return [Delivery(record.event_id, DeliveryOutcome.DELIVERED) for record in records]

    def flush(self) -> None:
        """Nothing buffered."""


class CapturingSender:
    """Stands in for the Sentry SDK client: accepts every event and keeps it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        self.events.append(event)
        return SendResult(str(event["event_id"]), SendOutcome.ACCEPTED, 200, None, "accepted")


def llm_line(**extra: object) -> str:
    return json.dumps(
        {
            "level": "INFO",
            "event": "llm_call",
            "model": "gpt-4o-mini",
            "prompt": f"Summarize the report of PatientName={PATIENT}, reachable at {EMAIL}",
            "completion": f"Call {PHONE} for the follow-up.",
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "user_id": EMAIL,
            "metadata": {"PatientName": PATIENT, "ward": "ct"},
            "message": f"llm call for {EMAIL}",
            **extra,
        }
    )


GENAI_LINE = json.dumps(
    {
        "gen_ai.request.model": "claude-3-5-haiku",
        "gen_ai.input.messages": [{"role": "user", "content": f"mail {EMAIL}"}],
        "gen_ai.output.messages": [{"role": "assistant", "content": f"phone {PHONE}"}],
        "gen_ai.usage.input_tokens": 3,
        "session_id": f"session of {EMAIL}",
    }
)


def pipeline(*services: str, sinks: Sequence[Any] = ()) -> tuple[IngestPipeline, LlmSink]:
    llm = LlmSink()
    settings = Settings(environment="prod", langfuse_unscrubbed_prompt_services=frozenset(services))
    return (
        IngestPipeline(
            settings,
            rules=load_metric_rules(),
            parking=MemoryParkingLot(),
            boundary=build_boundary(settings),
            sinks=[llm, *sinks],
            emf_writer=lambda line: None,
        ),
        llm,
    )


def run(pipe: IngestPipeline, log_group: str, lines: Sequence[str]) -> None:
    pipe.run(subscription_event(data_message(log_group, lines, start_ms=NOW_MS)))


def test_listed_services_keep_prompt_and_response_as_logged_and_everything_else_scrubbed() -> None:
    pipe, llm = pipeline("pacs-backend")
    run(pipe, "/aws/ecs/pacs-backend/llm", [llm_line(), GENAI_LINE])
    flat, genai = llm.generations
    assert flat.input == f"Summarize the report of PatientName={PATIENT}, reachable at {EMAIL}"
    assert flat.output == f"Call {PHONE} for the follow-up."
    assert genai.input == [{"role": "user", "content": f"mail {EMAIL}"}]
    assert genai.output == [{"role": "assistant", "content": f"phone {PHONE}"}]
    # Everything that is not the prompt or the response is still scrubbed.
    assert flat.user_id == "[REDACTED:email]"
    assert flat.metadata["PatientName"] == "[REDACTED:dicom]"
    assert flat.metadata["ward"] == "ct"
    assert genai.session_id == "session of [REDACTED:email]"
    for generation in (flat, genai):
        rest = json.dumps({**generation.to_json(), "input": None, "output": None}, ensure_ascii=False)
        for secret in (EMAIL, PHONE, PATIENT):
            assert secret not in rest


def test_by_default_and_for_unlisted_services_prompts_are_scrubbed() -> None:
    for pipe, llm in (pipeline(), pipeline("keycloak")):
        run(pipe, "/aws/ecs/pacs-backend/llm", [llm_line(), GENAI_LINE])
        flat, genai = llm.generations
        assert flat.input == "Summarize the report of PatientName=[REDACTED:dicom], reachable at [REDACTED:email]"
        for generation in (flat, genai):
            sent = json.dumps(generation.to_json(), ensure_ascii=False)
            for secret in (EMAIL, PHONE, PATIENT):
                assert secret not in sent


def test_non_llm_records_of_a_listed_service_are_scrubbed_in_full() -> None:
    errors = SentrySink(DsnRouter.single("https://k@sentry.example.com/1"), sender_factory=lambda dsn: sender)
    sender = CapturingSender()
    pipe, _ = pipeline("pacs-backend", sinks=[errors])
    error_line = json.dumps({"level": "ERROR", "message": "upload failed", "input": f"form of {EMAIL}"})
    run(pipe, "/aws/ecs/pacs-backend/errors", [error_line])
    [event] = sender.events
    assert EMAIL not in json.dumps(event)


def test_other_sinks_never_see_the_kept_prompts_in_their_context() -> None:
    # A Sentry event cites the records that came before it in the same request as breadcrumbs; the
    # LLM call of a listed service must reach Sentry scrubbed although Langfuse gets its prompt as is.
    sender = CapturingSender()
    errors = SentrySink(DsnRouter.single("https://k@sentry.example.com/1"), sender_factory=lambda dsn: sender)
    pipe, llm = pipeline("pacs-backend", sinks=[errors])
    error_line = json.dumps({"level": "ERROR", "message": "report generation failed", "request_id": "r-7"})
    run(pipe, "/aws/ecs/pacs-backend/application", [llm_line(request_id="r-7"), error_line])
    assert EMAIL in str(llm.generations[0].input)
    [event] = sender.events
    [crumb] = event["breadcrumbs"]["values"]
    assert crumb["data"]["prompt"].startswith("Summarize the report of PatientName=[REDACTED:dicom]")
    for secret in (EMAIL, PHONE, PATIENT):
        assert secret not in json.dumps(event)


def test_scrubbing_switched_off_needs_no_exemption() -> None:
    llm = LlmSink()
    settings = Settings(scrub_enabled=False, langfuse_unscrubbed_prompt_services=frozenset({"pacs-backend"}))
    pipe = IngestPipeline(
        settings,
        rules=load_metric_rules(),
        parking=MemoryParkingLot(),
        boundary=build_boundary(settings),
        sinks=[llm],
        emf_writer=lambda line: None,
    )
    run(pipe, "/aws/ecs/pacs-backend/llm", [llm_line()])
    assert llm.generations[0].user_id == EMAIL
