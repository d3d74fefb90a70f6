"""Hostile and ordinary ingest inputs, shared by the Hypothesis tests and the atheris harness.

Lines come from the committed samples (every supported format: JSON, Powertools, Keycloak, Lambda
runtime and platform lines, space-delimited, key=value, logfmt, PostgreSQL with DETAIL/STATEMENT,
Python and Java traces split into one event per line) and from the workload generator; batches mix
them with garbage lines, malformed events, control messages, damaged payloads, multi-member gzip,
and traces split across two payloads of one stream.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DECODED = ROOT / "events" / "decoded"
NOW_MS = 1_795_300_000_000
LOG_GROUPS = (
    "/aws/ecs/pacs-backend/application",
    "/aws/ecs/pacs-backend/errors",
    "/aws/ecs/pacs-backend/llm",
    "/aws/ecs/keycloak/application",
    "/aws/lambda/pacs-thumbnailer",
    "/aws/rds/pacs-postgresql/error",
    "/aws/alb/pacs/access-logs",
    "weird group name",
)
PYTHON_TRACE = (
    "2026-11-22 01:02:03,456 ERROR [pacs.api] request_id=r9 Unhandled exception for kim@example.org",
    "Traceback (most recent call last):",
    '  File "/app/pacs/api/views.py", line 120, in get_study',
    "    study = repository.load(uid)",
    "ValueError: study 1.2.3 not found",
)
JAVA_TRACE = (
    "2026-11-22 01:02:03,456 ERROR [org.keycloak.services] (executor-thread-1) Uncaught server error",
    "java.lang.NullPointerException: user is null",
    "\tat org.keycloak.services.resources.Foo.bar(Foo.java:42)",
    "\tat org.keycloak.services.resources.Foo.baz(Foo.java:7)",
    "Caused by: java.lang.IllegalStateException: broken",
    "\t... 12 more",
)
POSTGRES = (
    "2026-11-22 01:02:03 UTC:10.0.1.23(53412):app@pacs:[4242]:ERROR:  duplicate key value",
    "2026-11-22 01:02:03 UTC:10.0.1.23(53412):app@pacs:[4242]:DETAIL:  Key (uid)=(1.2.3) already exists.",
    "2026-11-22 01:02:03 UTC:10.0.1.23(53412):app@pacs:[4242]:DETAIL:  A second detail.",
    "2026-11-22 01:02:03 UTC:10.0.1.23(53412):app@pacs:[4242]:STATEMENT:  INSERT INTO studies VALUES ('1.2.3')",
)


@cache
def sample_lines() -> tuple[str, ...]:
    """Every message of the committed decoded samples, plus generated lines of every workload kind."""
    lines: list[str] = []
    for path in sorted(DECODED.glob("cwl-*.json")):
        document = json.loads(path.read_text())
        lines.extend(str(event["message"]) for event in document.get("logEvents", []))
    from logpipe_cli.workload import synthesize_workload

    for stream in synthesize_workload(300, seed=3)[:12]:
        lines.extend(str(event["message"]) for event in stream.events[:25])
    return tuple(dict.fromkeys(lines))


def log_event(message: str, index: int, start_ms: int = NOW_MS) -> dict[str, Any]:
    """One well-formed CloudWatch log event."""
    return {"id": str(index).zfill(56), "timestamp": start_ms + index, "message": message}


def document(
    log_group: str, events: Sequence[object], *, stream: str = "ecs/app/0", control: bool = False
) -> dict[str, Any]:
    """A DATA_MESSAGE (or CONTROL_MESSAGE) document."""
    return {
        "messageType": "CONTROL_MESSAGE" if control else "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": log_group,
        "logStream": stream,
        "subscriptionFilters": ["logpipe-ingest"],
        "logEvents": list(events),
    }


def encode(value: object, *, members: int = 1, tail: bytes = b"") -> str:
    """base64(gzip(json)), optionally as several gzip members (split anywhere) and with trailing bytes."""
    raw = json.dumps(value).encode()
    if members <= 1:
        compressed = gzip.compress(raw, mtime=0)
    else:
        step = max(len(raw) // members, 1)
        pieces = [raw[i : i + step] for i in range(0, len(raw), step)] or [raw]
        compressed = b"".join(gzip.compress(piece, mtime=0) for piece in pieces)
    return base64.b64encode(compressed + tail).decode()


def kinesis(datas: Sequence[object]) -> dict[str, Any]:
    """A Kinesis event whose records carry the given data values."""
    return {"Records": [{"kinesis": {"data": data}, "eventID": f"shard-0:{index}"} for index, data in enumerate(datas)]}


def seed_events() -> Iterator[dict[str, Any]]:
    """Lambda events for a fuzzer's corpus: the committed samples and hostile variants of them."""
    for path in sorted((ROOT / "events").glob("*.json")):
        event = json.loads(path.read_text())
        if isinstance(event, dict) and ("awslogs" in event or "Records" in event):
            yield event
    lines = sample_lines()
    yield {"awslogs": {"data": encode(document(LOG_GROUPS[0], [log_event(m, i) for i, m in enumerate(lines[:40])]))}}
    yield {
        "awslogs": {
            "data": encode(
                document(LOG_GROUPS[1], [log_event(m, i) for i, m in enumerate(PYTHON_TRACE)]), members=3, tail=b"junk"
            )
        }
    }
    yield kinesis([encode(document(LOG_GROUPS[5], [log_event(m, i) for i, m in enumerate(POSTGRES)])), 12345, None])
    yield {"awslogs": {"data": base64.b64encode(gzip.compress(b"[" * 5000)).decode()}}
