"""Property tests of the ingest path (issue 12): the accounting invariant, and a bounded fuzz of the handler.

Invariant, for every input: ``events_in`` = lines inside records + control events + malformed events
+ events parked whole. Hypothesis builds Kinesis batches that mix every supported format (from the
committed samples and the workload generator), multi-line traces, traces split across two payloads of
one stream, PostgreSQL continuation lines, garbage lines, malformed events, control messages, damaged
payloads and multi-member gzip. The real Sentry and Langfuse sinks run behind senders that accept
everything, so event building, span encoding and parking are exercised too.

The fuzz test throws arbitrary Lambda events at the real handler: no exception escapes, the invariant
holds, and each invocation stays within a time and memory bound. Examples are bounded and the search
is derandomized, so the suite stays fast and repeatable; ``make fuzz`` runs the coverage-guided search.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_inputs import (
    JAVA_TRACE,
    LOG_GROUPS,
    NOW_MS,
    POSTGRES,
    PYTHON_TRACE,
    document,
    encode,
    kinesis,
    log_event,
    sample_lines,
)
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

pytestmark = pytest.mark.functional

PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class AcceptingPoster:
    def post(self, body: bytes, deadline: float) -> PostResult:
        return PostResult(PostOutcome.ACCEPTED, 200, None, "accepted")


class AcceptingSender:
    def send(self, event: dict[str, Any], deadline: float | None = None) -> SendResult:
        json.dumps(event)  # what would go on the wire must be JSON
        return SendResult(str(event["event_id"]), SendOutcome.ACCEPTED, 200, None, "accepted")


def make_pipeline(parking: MemoryParkingLot) -> IngestPipeline:
    sender = AcceptingSender()
    return IngestPipeline(
        Settings(environment="prod"),
        rules=load_metric_rules(),
        parking=parking,
        boundary=Boundary.default(),
        sinks=[
            SentrySink(DsnRouter.single("https://k@sentry.invalid/1"), sender_factory=lambda _dsn: sender),
            LangfuseSink(
                AcceptingPoster(), DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS)
            ),
        ],
        emf_writer=json.loads,
        clock=lambda: NOW_MS / 1000,
    )


def assert_accounted(result: dict[str, Any]) -> None:
    accounting = result["accounting"]
    assert result["events_in"] == (
        accounting["record_lines"]
        + accounting["control_events"]
        + accounting["malformed_events"]
        + accounting["parked_events"]
    ), accounting


garbage_lines = st.text(max_size=120) | st.binary(max_size=60).map(lambda raw: raw.decode("latin-1"))
lines = st.sampled_from(sample_lines()) | garbage_lines
traces = st.sampled_from([PYTHON_TRACE, JAVA_TRACE, POSTGRES]).map(list)
malformed_events = st.sampled_from(
    [
        {"id": "x", "timestamp": "soon", "message": "bad time"},
        {"timestamp": NOW_MS, "message": "no id"},
        {"id": "y", "timestamp": NOW_MS},
        {"id": "z", "timestamp": 2**63, "message": "far future"},
        {"id": "w", "timestamp": -1, "message": "before 1970"},
        "not an object",
        None,
        [1, 2],
    ]
)


@st.composite
def batch_payloads(draw: st.DrawFn) -> list[object]:
    """The data values of one Kinesis event: good batches, split traces, damaged payloads, junk."""
    payloads: list[object] = []
    for _ in range(draw(st.integers(1, 4))):
        log_group = draw(st.sampled_from(LOG_GROUPS))
        messages: list[str] = []
        for piece in draw(st.lists(lines.map(lambda line: [line]) | traces, max_size=12)):
            messages.extend(piece)
        events: list[object] = [log_event(message, index) for index, message in enumerate(messages)]
        for bad in draw(st.lists(malformed_events, max_size=2)):
            events.insert(draw(st.integers(0, len(events))), bad)
        kind = draw(st.sampled_from(["plain", "split_trace", "members", "control", "damaged", "junk"]))
        if kind == "split_trace":
            # One trace, its lines delivered in two payloads of the same stream.
            trace = draw(traces)
            cut = draw(st.integers(1, len(trace) - 1))
            first = [log_event(m, i, NOW_MS + 1000) for i, m in enumerate(trace[:cut])]
            second = [log_event(m, i + cut, NOW_MS + 1000) for i, m in enumerate(trace[cut:])]
            payloads += [encode(document(log_group, first)), encode(document(log_group, second))]
        elif kind == "members":
            tail = draw(st.sampled_from([b"", b"\x00\x00", b"trailing junk"]))
            payloads.append(encode(document(log_group, events), members=draw(st.integers(2, 4)), tail=tail))
        elif kind == "control":
            payloads.append(encode(document("", [log_event("CWL CONTROL MESSAGE: Checking health", 0)], control=True)))
        elif kind == "damaged":
            raw = base64.b64decode(encode(document(log_group, events)))
            payloads.append(base64.b64encode(raw[: draw(st.integers(0, len(raw)))]).decode())
        elif kind == "junk":
            payloads.append(
                draw(st.sampled_from([12345, None, "%%%", base64.b64encode(gzip.compress(b"[1,")).decode()]))
            )
        else:
            payloads.append(encode(document(log_group, events)))
    return payloads


@PROPERTY_SETTINGS
@given(batch_payloads())
def test_every_event_is_accounted_for_whatever_the_batch(payloads: list[object]) -> None:
    parking = MemoryParkingLot()
    result = make_pipeline(parking).run(kinesis(payloads)).to_dict()
    assert_accounted(result)
    assert result["payloads"] == len(payloads)
    assert result["parked"] == len(parking.flushed)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
lambda_events = (
    json_values
    | st.builds(lambda data: {"awslogs": {"data": data}}, json_values | st.text(max_size=200))
    | st.builds(kinesis, st.lists(json_values | st.text(max_size=100), max_size=4))
    | batch_payloads().map(kinesis)
    | batch_payloads().map(lambda payloads: {"awslogs": {"data": payloads[0]}})
)


@pytest.fixture(scope="module")
def handler(monkeypatch_module: pytest.MonkeyPatch) -> Any:
    for name in ("LOGPIPE_PARKING_QUEUE_URL", "LOGPIPE_SENTRY_DSN", "LOGPIPE_SENTRY_SECRET", "LOGPIPE_LANGFUSE_SECRET"):
        monkeypatch_module.delenv(name, raising=False)
    monkeypatch_module.setenv("LOGPIPE_ENVIRONMENT", "test")
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "fuzzed_ingest_app", Path(__file__).parents[2] / "functions/ingest/app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@PROPERTY_SETTINGS
@given(event=lambda_events)
def test_the_handler_survives_any_event_within_time_and_memory(handler: Any, event: object) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = handler(event, Context())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 10
    assert peak < 64 * 1024 * 1024
    assert_accounted(result)
    json.dumps(result)
