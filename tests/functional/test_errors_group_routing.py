"""An errors group's lines marked below WARNING are breadcrumbs of the next error, not Sentry events.

The whole ingest path, with the real Sentry sink and a sender that records the events it is given.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from logpipe.boundary import Boundary
from logpipe.metrics import load_metric_rules
from logpipe.parking import MemoryParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import SentrySink
from logpipe.sentry.transport import SendOutcome, SendResult
from logpipe.settings import Settings
from payloads import data_message, subscription_event

pytestmark = pytest.mark.functional

NOW_MS = 1_795_300_000_000


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        self.sent.append(event)
        return SendResult(event["event_id"], SendOutcome.ACCEPTED, 200, None, "accepted")


def run(log_group: str, lines: list[str]) -> tuple[RecordingSender, dict[str, Any]]:
    sender = RecordingSender()
    pipeline = IngestPipeline(
        Settings(environment="prod"),
        rules=load_metric_rules(),
        parking=MemoryParkingLot(),
        boundary=Boundary.default(),
        sinks=[SentrySink(DsnRouter.single("https://k@sentry.example.com/1"), sender_factory=lambda _: sender)],
        emf_writer=lambda _: None,
        clock=lambda: NOW_MS / 1000,
    )
    summary = pipeline.run(subscription_event(data_message(log_group, lines, start_ms=NOW_MS, step_ms=10)))
    return sender, summary.to_dict()


def line(level: str | None, message: str, request_id: str, **fields: object) -> str:
    document: dict[str, object] = {"message": message, "request_id": request_id, **fields}
    if level is not None:
        document["level"] = level
    return json.dumps(document)


def test_info_and_debug_lines_of_an_errors_group_become_breadcrumbs_of_the_next_error() -> None:
    sender, summary = run(
        "/aws/ecs/pacs-backend/errors",
        [
            line("INFO", "GET /studies/1.2.840.113619.2.55.3.7", "req-1"),
            line("DEBUG", "cache miss for series 4", "req-1"),
            line("INFO", "GET /health", "req-2"),  # no error follows in its request: no event, no crumb
            line("ERROR", "Study load failed", "req-1"),
            line("WARNING", "Retrying the archive fetch", "req-3"),
        ],
    )
    assert summary["records"] == {"error": 2, "llm": 0, "other": 3}
    assert [event["message"]["formatted"] for event in sender.sent] == [
        "Study load failed",
        "Retrying the archive fetch",
    ]
    assert [event["level"] for event in sender.sent] == ["error", "warning"]
    crumbs = sender.sent[0]["breadcrumbs"]["values"]
    assert [(crumb["level"], crumb["message"]) for crumb in crumbs] == [
        ("info", "GET /studies/1.2.840.113619.2.55.3.7"),
        ("debug", "cache miss for series 4"),
    ]
    assert not any(
        crumb["message"] == "GET /health" for event in sender.sent for crumb in event["breadcrumbs"]["values"]
    )


def test_lines_without_a_level_in_an_errors_group_stay_errors() -> None:
    sender, summary = run(
        "/aws/ecs/pacs-backend/errors",
        [
            "Segmentation fault in DICOM worker 7",
            line(None, "Archive unreachable", "req-9"),
            line("INFO", "GET /studies/1.2.3", "req-10"),
        ],
    )
    assert summary["records"]["error"] == 2
    assert [(event["message"]["formatted"], event["level"]) for event in sender.sent] == [
        ("Segmentation fault in DICOM worker 7", "error"),
        ("Archive unreachable", "error"),
    ]


def test_info_lines_of_the_stream_are_breadcrumbs_when_the_error_has_no_request_id() -> None:
    sender, _ = run(
        "/aws/lambda/report-builder/errors",
        ['{"level": "INFO", "message": "building report 17"}', "Report builder crashed: worker pool exhausted"],
    )
    (event,) = sender.sent
    assert [crumb["message"] for crumb in event["breadcrumbs"]["values"]] == ["building report 17"]


def test_application_groups_are_unchanged() -> None:
    # Outside errors groups only ERROR/CRITICAL or a trace makes an error; a line without a level is INFO.
    sender, summary = run(
        "/aws/ecs/pacs-backend/application",
        ["Segmentation fault in DICOM worker 7", line("WARNING", "slow disk", "r"), line("ERROR", "boom", "r")],
    )
    assert summary["records"] == {"error": 1, "llm": 0, "other": 2}
    assert [event["message"]["formatted"] for event in sender.sent] == ["boom"]
