"""Coverage-guided fuzzing of the ingest path with atheris (libFuzzer): ``make fuzz``.

Each input's first byte picks how the rest becomes a Lambda event, so the corpus can be seeded with
real events and libFuzzer's mutations still reach every layer:

* 0: the rest is gzipped and base64'd as ``awslogs.data`` (JSON parsing of the decoded document);
* 1: the rest is a JSON array of messages, wrapped into a DATA_MESSAGE of one log group (the parsers,
  reassembly, classification, metric rules, event and span building, scrubbing);
* 2: the rest is base64'd as ``awslogs.data`` as it is (gzip, multi-member and trailing bytes);
* 3: the rest is the Lambda event itself, as JSON (any shape).

Properties checked on every input, like the Hypothesis tests: no exception escapes the pipeline, every
event is accounted for (events in = record lines + control + malformed + parked events), and each run
stays under ``MAX_SECONDS`` (libFuzzer's ``-timeout`` and ``-rss_limit_mb`` bound time and memory too).

    uv run python tests/fuzz/atheris_ingest.py .cache/fuzz-corpus -max_total_time=120
    uv run python tests/fuzz/atheris_ingest.py --seed-corpus .cache/fuzz-corpus
"""

from __future__ import annotations

import base64
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fuzz_inputs

with atheris.instrument_imports(include=["logpipe"]):
    # The pipeline imports some modules on first use: import them here so they are instrumented too.
    import logpipe.assemble
    import logpipe.formats
    import logpipe.langfuse.mapping
    import logpipe.langfuse.spans
    import logpipe.sentry.event
    import logpipe.sentry.stacktrace  # noqa: F401 - imported to be instrumented
    from logpipe.boundary import Boundary
    from logpipe.idempotency import DeliveryLedger
    from logpipe.langfuse.config import KEY_PREFIX, RECORD_SECONDS
    from logpipe.langfuse.sink import LangfuseSink
    from logpipe.langfuse.transport import PostOutcome, PostResult
    from logpipe.metrics import load_metric_rules
    from logpipe.parking import MemoryParkingLot
    from logpipe.pipeline import IngestPipeline
    from logpipe.sentry.routing import DsnRouter
    from logpipe.sentry.sink import SentrySink
    from logpipe.sentry.transport import SendOutcome, SendResult
    from logpipe.settings import Settings

MAX_SECONDS = 5.0
LOG_GROUPS = (
    "/aws/ecs/pacs-backend/application",
    "/aws/ecs/pacs-backend/llm",
    "/aws/ecs/keycloak/application",
    "/aws/rds/pacs-postgresql/error",
    "/aws/lambda/pacs-thumbnailer",
)


class _Accepting:
    def post(self, body: bytes, deadline: float) -> PostResult:
        return PostResult(PostOutcome.ACCEPTED, 200, None, "accepted")

    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        json.dumps(event)
        return SendResult(str(event["event_id"]), SendOutcome.ACCEPTED, 200, None, "accepted")


_ACCEPTING = _Accepting()
_PIPELINE = IngestPipeline(
    Settings(environment="fuzz"),
    rules=load_metric_rules(),
    parking=MemoryParkingLot(),
    boundary=Boundary.default(),
    sinks=[
        SentrySink(DsnRouter.single("https://k@sentry.invalid/1"), sender_factory=lambda _dsn: _ACCEPTING),
        LangfuseSink(_ACCEPTING, DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS)),
    ],
    emf_writer=lambda line: None,
)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def event_from(data: bytes) -> object:
    """The Lambda event one fuzzer input stands for."""
    if not data:
        return {}
    mode, rest = data[0] % 4, data[1:]
    if mode == 0:
        return {"awslogs": {"data": _b64(gzip.compress(rest, mtime=0))}}
    if mode == 1:
        try:
            messages = json.loads(rest.decode("utf-8", "replace"))
        except ValueError:
            messages = rest.decode("utf-8", "replace").split("\n")
        if not isinstance(messages, list):
            messages = [messages]
        log_group = LOG_GROUPS[len(rest) % len(LOG_GROUPS)]
        events = [
            {"id": str(index).zfill(56), "timestamp": 1_795_300_000_000 + index, "message": message}
            for index, message in enumerate(messages[:500])
        ]
        document = {
            "messageType": "DATA_MESSAGE",
            "owner": "1",
            "logGroup": log_group,
            "logStream": "s",
            "logEvents": events,
        }
        return {"awslogs": {"data": _b64(gzip.compress(json.dumps(document, default=str).encode(), mtime=0))}}
    if mode == 2:
        return {"awslogs": {"data": _b64(rest)}}
    try:
        return json.loads(rest.decode("utf-8", "replace"))
    except ValueError:
        return rest


def test_one_input(data: bytes) -> None:
    """One fuzzer input through the pipeline; raise on a broken property."""
    event = event_from(data)
    started = time.perf_counter()
    result = _PIPELINE.run(event).to_dict()
    elapsed = time.perf_counter() - started
    accounting = result["accounting"]
    accounted = (
        accounting["record_lines"]
        + accounting["control_events"]
        + accounting["malformed_events"]
        + accounting["parked_events"]
    )
    if accounted != result["events_in"]:
        msg = f"events in {result['events_in']} != accounted {accounted}: {accounting}"
        raise AssertionError(msg)
    if elapsed > MAX_SECONDS:
        msg = f"one input took {elapsed:.1f}s"
        raise AssertionError(msg)


def seed_corpus(directory: Path) -> int:
    """Write seeds from events/ and the workload generator; return how many."""
    from fuzz_inputs import JAVA_TRACE, POSTGRES, PYTHON_TRACE, sample_lines, seed_events

    directory.mkdir(parents=True, exist_ok=True)
    seeds: list[bytes] = [bytes([3]) + json.dumps(event).encode() for event in seed_events()]
    lines = list(sample_lines())
    seeds.extend(bytes([1]) + json.dumps(lines[start : start + 20]).encode() for start in range(0, len(lines), 20))
    seeds.extend(bytes([1]) + json.dumps(list(trace)).encode() for trace in (PYTHON_TRACE, JAVA_TRACE, POSTGRES))
    for index, seed in enumerate(seeds):
        (directory / f"seed-{index:04d}").write_bytes(seed)
    return len(seeds)


def main() -> None:
    """``--seed-corpus DIR`` writes the seeds; anything else is handed to libFuzzer."""
    if len(sys.argv) == 3 and sys.argv[1] == "--seed-corpus":
        count = seed_corpus(Path(sys.argv[2]))
        print(f"wrote {count} seeds to {sys.argv[2]}")
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
