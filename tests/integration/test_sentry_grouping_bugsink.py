"""Sentry issues a person acts on: one bug is one issue, and an errors group's INFO lines are not issues.

The real pipeline, PHI boundary and SDK client against Bugsink. The variants of each error differ in
everything a log line varies in from one occurrence to the next (study UID, accession number,
request id, duration); a different error in the same batch must still be an issue of its own, so a
grouping that lumped everything together fails too.
"""

from __future__ import annotations

import json
import time

import pytest

from logpipe.boundary import Boundary
from logpipe.metrics import load_metric_rules
from logpipe.parking import MemoryParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import SentrySink
from logpipe.settings import Settings
from logpipe_cli.bugsink import BugsinkProject, BugsinkServer
from payloads import data_message, subscription_event

pytestmark = pytest.mark.integration

# (study UID, accession number, request id, duration) of five occurrences of one error.
VARIANTS = [
    ("1.2.840.113619.2.55.3.604688119.969.1268071029.320", "ACN0012345", "req-7f3c9a2b", "5123"),
    ("1.2.410.200010.1073.5851.20261122.1", "ACN0099871", "req-01e4ab9c", "87"),
    ("1.3.12.2.1107.5.1.4.73251.30000026112201234567800000012", "ACN1000001", "req-a93kx0", "30012"),
    ("2.25.329800735698586629295641978511506172918", "ACN0000042", "4f2b8c1e-9d3a-4e5f-8a7b-6c5d4e3f2a1b", "5"),
    ("1.2.392.200036.9116.2.5.1.48.1215508268.1364434201.959423", "ACN7654321", "req-ffff0000", "99999"),
]
TEMPLATES = {
    "free text": "Archive fetch failed for study {uid} (accession {acc}), request {rid}, after {ms} ms",
    "key=value": "Archive fetch failed study_uid={uid} accession_number={acc} request_id={rid} duration={ms}ms",
}


def _line(level: str, message: str, request_id: str, exc_value: str | None = None) -> str:
    document: dict[str, object] = {"level": level, "message": message, "request_id": request_id}
    if exc_value is not None:
        document["exc_info"] = (
            "Traceback (most recent call last):\n"
            '  File "/app/pacs/archive.py", line 88, in fetch\n'
            "    raise ArchiveTimeout(detail)\n"
            f"pacs.archive.ArchiveTimeout: {exc_value}"
        )
    return json.dumps(document)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_one_error_with_different_ids_and_durations_is_one_issue(
    bugsink: BugsinkServer, sentry_project: BugsinkProject, template: str
) -> None:
    lines: list[str] = []
    for uid, acc, rid, ms in VARIANTS:
        lines.append(_line("INFO", f"GET /studies/{uid}/series", rid))  # context, not an issue
        message = TEMPLATES[template].format(uid=uid, acc=acc, rid=rid, ms=ms)
        lines.append(_line("ERROR", message, rid, exc_value=f"no answer from archive after {ms} ms for {uid}"))
    # A different bug in the same batch: it must not join the first one's issue.
    lines.append(_line("ERROR", "Thumbnail rendering failed for study 1.2.3.4.5.6", "req-0a0a0a0a", "disk full"))
    pipeline = IngestPipeline(
        Settings(environment="prod"),
        rules=load_metric_rules(),
        parking=MemoryParkingLot(),
        boundary=Boundary.default(),
        sinks=[SentrySink(DsnRouter.single(sentry_project.dsn), environment="prod", send_timeout=3.0)],
        emf_writer=lambda _: None,
    )
    start = int(time.time() * 1000) - 60_000
    summary = pipeline.run(
        subscription_event(data_message("/aws/ecs/pacs-backend/errors", lines, start_ms=start, step_ms=5))
    ).to_dict()
    assert summary["deliveries"] == {"sentry.delivered": len(VARIANTS) + 1}
    assert summary["records"]["other"] == len(VARIANTS)  # the INFO lines: breadcrumbs, not events

    issues = bugsink.issues(sentry_project)
    assert sorted(issue["digested_event_count"] for issue in issues) == [1, len(VARIANTS)]
    events = bugsink.events(sentry_project)
    assert len(events) == len(VARIANTS) + 1
    archive = [event for event in events if "Archive fetch failed" in event["message"]["formatted"]]
    assert len({json.dumps(event["fingerprint"]) for event in archive}) == 1
    # Every occurrence keeps its own request's INFO line as a breadcrumb.
    for event in archive:
        crumbs = [crumb["message"] for crumb in event["breadcrumbs"]["values"]]
        assert len(crumbs) == 1
        assert crumbs[0].startswith("GET /studies/")
