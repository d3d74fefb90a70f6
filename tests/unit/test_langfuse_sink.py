"""The Langfuse sink with a scripted poster: outcomes, parking, dead letters, chunking, ledger, deadline."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from logpipe.boundary import Boundary
from logpipe.delivery import ResendOutcome, ResendResult
from logpipe.idempotency import DeliveryLedger, KeyState
from logpipe.langfuse.config import KEY_PREFIX
from logpipe.langfuse.mapping import Generation, to_generation
from logpipe.langfuse.replay import LangfuseResender, replay_key
from logpipe.langfuse.sink import LangfuseSink, chunk_key
from logpipe.langfuse.transport import PostOutcome, PostResult, classify_response
from logpipe.parking import MemoryParkingLot, ParkReason
from logpipe.records import LogRecord
from logpipe.sinks import Delivery, SendContext
from payloads import parsed_records

pytestmark = pytest.mark.unit

NOW = 1_795_300_000.0


class ScriptedPoster:
    """Answers each POST from a script; remembers every body."""

    def __init__(self, answer: Callable[[int], PostResult]) -> None:
        self.answer = answer
        self.bodies: list[bytes] = []

    def post(self, body: bytes, deadline: float) -> PostResult:
        self.bodies.append(body)
        return self.answer(len(self.bodies))


class CountingEncoder:
    """Records chunk sizes instead of building spans (the real encoder is tested elsewhere)."""

    def __init__(self) -> None:
        self.chunks: list[list[str]] = []

    def encode(self, generations: Sequence[Generation]) -> bytes:
        self.chunks.append([g.observation_id for g in generations])
        return b"x" * 10 * len(generations)


def ok(_: int) -> PostResult:
    return PostResult(PostOutcome.ACCEPTED, 200, None, "accepted")


def llm_records(count: int, *, bad: int = 0) -> list[LogRecord]:
    lines = [
        json.dumps(
            {
                "event": "llm_call",
                "model": f"m{i % 2}",
                "prompt": f"p{i}",
                "completion": "c",
                "prompt_tokens": 10,
                "completion_tokens": 2,
                "total_cost": 0.5,
                "latency_ms": 100,
                "trace_id": f"t{i}",
            }
        )
        for i in range(count)
    ]
    lines += [json.dumps({"event": "llm_call", "prompt_tokens": "x"}) for _ in range(bad)]
    return parsed_records("/aws/ecs/pacs-backend/llm", lines, start_ms=int(NOW * 1000))


def context(parking: MemoryParkingLot, deadline: float | None = None) -> SendContext:
    return SendContext(
        batch_records=[],
        boundary=Boundary.disabled(),
        parking=parking,
        deadline=time.monotonic() + 30 if deadline is None else deadline,
    )


def memory_ledger() -> DeliveryLedger:
    return DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=3600)


def sink(
    poster: ScriptedPoster,
    ledger: DeliveryLedger | None = None,
    *,
    max_spans_per_request: int = 200,
    max_request_bytes: int = 2 * 1024 * 1024,
) -> tuple[LangfuseSink, CountingEncoder]:
    encoder = CountingEncoder()
    langfuse = LangfuseSink(
        poster,
        ledger or memory_ledger(),
        encoder=encoder,
        clock=lambda: NOW,
        max_spans_per_request=max_spans_per_request,
        max_request_bytes=max_request_bytes,
    )
    return langfuse, encoder


def outcomes(deliveries: Sequence[object]) -> Counter[str]:
    return Counter(d.outcome.value for d in deliveries)  # type: ignore[attr-defined]


def test_accepted_chunks_are_delivered_and_totalled_per_model() -> None:
    poster = ScriptedPoster(ok)
    langfuse, encoder = sink(poster, max_spans_per_request=3)
    deliveries = langfuse.send(llm_records(7), context(MemoryParkingLot()))
    assert outcomes(deliveries) == {"delivered": 7}
    assert [len(chunk) for chunk in encoder.chunks] == [3, 3, 1]
    assert len(poster.bodies) == 3
    assert langfuse.stats.by_model["m0"].calls == 4
    assert langfuse.stats.by_model["m0"].input_tokens == 40
    assert langfuse.stats.by_model["m1"].cost == pytest.approx(1.5)


def test_byte_budget_splits_chunks() -> None:
    langfuse, encoder = sink(ScriptedPoster(ok), max_request_bytes=1500)
    langfuse.send(llm_records(6), context(MemoryParkingLot()))
    assert len(encoder.chunks) > 1
    assert sum(len(chunk) for chunk in encoder.chunks) == 6


def test_mapping_errors_are_dead_lettered_and_counted_not_raised() -> None:
    parking = MemoryParkingLot()
    langfuse, _ = sink(ScriptedPoster(ok))
    deliveries = langfuse.send(llm_records(2, bad=3), context(parking))
    assert outcomes(deliveries) == {"delivered": 2, "dead_lettered": 3}
    assert langfuse.stats.counters["mapping_errors"] == 3
    assert all(item.dead_letter and item.detail.startswith("mapping: ") for item in parking.items)
    assert all(item.reason is ParkReason.SINK_REJECTED for item in parking.items)


@pytest.mark.parametrize(
    ("result", "outcome", "dead_letter", "wait"),
    [
        (PostResult(PostOutcome.RATE_LIMITED, 429, 42.0, "rate limited"), "parked", False, 42.0),
        (PostResult(PostOutcome.RETRYABLE, 503, None, "HTTP 503"), "parked", False, 60.0),
        (PostResult(PostOutcome.NETWORK_ERROR, None, None, "ConnectTimeoutError"), "parked", False, 60.0),
        (PostResult(PostOutcome.REJECTED, 400, None, "HTTP 400: bad"), "dead_lettered", True, None),
    ],
)
def test_failures_park_or_dead_letter_every_record(
    result: PostResult, outcome: str, dead_letter: bool, wait: float | None
) -> None:
    parking = MemoryParkingLot()
    langfuse, _ = sink(ScriptedPoster(lambda _: result))
    deliveries = langfuse.send(llm_records(4), context(parking))
    assert outcomes(deliveries) == {outcome: 4}
    assert len(parking.items) == 4
    for item in parking.items:
        assert item.dead_letter is dead_letter
        assert item.attributes["sink"] == "langfuse"
        assert item.not_before == (None if wait is None else NOW + wait)
        restored = Generation.from_json(json.loads(item.body))
        assert item.attributes["observation_id"] == restored.observation_id


def test_redelivered_batch_is_not_sent_twice() -> None:
    poster = ScriptedPoster(ok)
    ledger = memory_ledger()
    langfuse, _ = sink(poster, ledger)
    records = llm_records(5)
    first = langfuse.send(records, context(MemoryParkingLot()))
    second = langfuse.send(records, context(MemoryParkingLot()))
    assert outcomes(first) == {"delivered": 5}
    assert outcomes(second) == {"skipped": 5}
    assert len(poster.bodies) == 1


def settle_parking(sent: SendContext, *, parked: bool) -> None:
    """What the pipeline does once the parking lot is flushed (or failed to be)."""
    for callback in sent.after_parking:
        callback(parked)


def test_parked_chunk_is_left_to_the_replay_on_redelivery() -> None:
    poster = ScriptedPoster(lambda n: PostResult(PostOutcome.RETRYABLE, 500, None, "HTTP 500") if n == 1 else ok(n))
    langfuse, _ = sink(poster)
    records = llm_records(3)
    first = context(MemoryParkingLot())
    assert outcomes(langfuse.send(records, first)) == {"parked": 3}
    settle_parking(first, parked=True)
    assert outcomes(langfuse.send(records, context(MemoryParkingLot()))) == {"skipped": 3}
    assert len(poster.bodies) == 1


def test_a_chunk_whose_parking_failed_is_sent_again_by_the_retry() -> None:
    # Parking failed, so the invocation failed and Lambda retries the batch: the ledger must not
    # claim the chunk is parked, or the retry would skip it and the data would be lost.
    poster = ScriptedPoster(lambda n: PostResult(PostOutcome.RETRYABLE, 500, None, "HTTP 500") if n == 1 else ok(n))
    langfuse, _ = sink(poster)
    records = llm_records(3)
    first = context(MemoryParkingLot())
    assert outcomes(langfuse.send(records, first)) == {"parked": 3}
    settle_parking(first, parked=False)
    assert outcomes(langfuse.send(records, context(MemoryParkingLot()))) == {"delivered": 3}
    assert len(poster.bodies) == 2


def test_past_deadline_parks_without_sending() -> None:
    poster = ScriptedPoster(ok)
    parking = MemoryParkingLot()
    langfuse, _ = sink(poster)
    deliveries = langfuse.send(llm_records(3), context(parking, deadline=time.monotonic() - 1))
    assert outcomes(deliveries) == {"parked": 3}
    assert poster.bodies == []
    assert all(item.detail.endswith("deadline reached") for item in parking.items)


def test_chunk_in_progress_elsewhere_is_parked_with_wait_for() -> None:
    ledger = memory_ledger()
    poster = ScriptedPoster(ok)
    langfuse, _ = sink(poster, ledger)
    resender = LangfuseResender(poster, ledger, encoder=CountingEncoder())
    records = llm_records(2)
    key = chunk_key([to_generation(r).observation_id for r in records])
    parking = MemoryParkingLot()
    deliveries: list[Delivery] = []
    meanwhile: list[ResendResult] = []

    def other_invocation_sends_the_chunk() -> dict[str, str]:
        # While it holds the chunk's claim, this invocation parks the chunk for the replay...
        deliveries.extend(langfuse.send(records, context(parking)))
        # ...and the replay waits for the claim to end instead of sending.
        meanwhile.append(resender.resend(json.loads(parking.items[0].to_message()), time.monotonic() + 5))
        return {"settled": "delivered"}

    ledger.run(key, other_invocation_sends_the_chunk, lease_seconds=900)
    assert outcomes(deliveries) == {"parked": 2}
    assert poster.bodies == []
    assert {item.attributes.get("wait_for") for item in parking.items} == {key}
    assert all(item.not_before == NOW + 900 for item in parking.items)
    assert [(m.outcome, m.reason) for m in meanwhile] == [(ResendOutcome.RETRY_LATER, "chunk still in progress")]
    # Once the other invocation finished, the replay drops these as duplicates.
    message = json.loads(parking.items[0].to_message())
    again = resender.resend(message, time.monotonic() + 5)
    assert (again.outcome, again.reason) == (ResendOutcome.DUPLICATE, "chunk delivered by another invocation")
    assert poster.bodies == []


def test_a_claim_left_by_a_crashed_invocation_is_taken_over_when_its_lease_ends() -> None:
    ledger = memory_ledger()
    records = llm_records(2)
    key = chunk_key([to_generation(r).observation_id for r in records])
    # An invocation claimed the chunk and died: its record stays INPROGRESS until its lease ends.
    ledger._persistence().save_inprogress(data={"key": key}, remaining_time_in_millis=60_000)
    assert ledger.state(key)[0] is KeyState.IN_PROGRESS
    poster = ScriptedPoster(ok)
    langfuse, _ = sink(poster, ledger)
    assert outcomes(langfuse.send(records, context(MemoryParkingLot()))) == {"parked": 2}
    ledger._persistence().save_inprogress(data={"key": "other"}, remaining_time_in_millis=0)  # an ended lease
    assert ledger.state("other")[0] is KeyState.FREE
    crashed = llm_records(3)
    crashed_key = chunk_key([to_generation(r).observation_id for r in crashed])
    ledger._persistence().save_inprogress(data={"key": crashed_key}, remaining_time_in_millis=0)
    time.sleep(0.002)
    assert outcomes(langfuse.send(crashed, context(MemoryParkingLot()))) == {"delivered": 3}
    assert ledger.state(crashed_key) == (KeyState.SETTLED, {"settled": "delivered"})


def test_replay_sends_once_and_drops_duplicates() -> None:
    parking = MemoryParkingLot()
    ledger = memory_ledger()
    langfuse, _ = sink(ScriptedPoster(lambda _: PostResult(PostOutcome.RETRYABLE, 500, None, "HTTP 500")), ledger)
    langfuse.send(llm_records(1), context(parking))
    message = json.loads(parking.items[0].to_message())
    poster = ScriptedPoster(ok)
    resender = LangfuseResender(poster, ledger, encoder=CountingEncoder())
    assert resender.resend(message, time.monotonic() + 5).outcome is ResendOutcome.DELIVERED
    assert resender.resend(message, time.monotonic() + 5).outcome is ResendOutcome.DUPLICATE
    assert len(poster.bodies) == 1


def test_replay_retry_later_frees_the_claim() -> None:
    ledger = memory_ledger()
    parking = MemoryParkingLot()
    langfuse, _ = sink(ScriptedPoster(lambda _: PostResult(PostOutcome.RETRYABLE, 500, None, "HTTP 500")), ledger)
    langfuse.send(llm_records(1), context(parking))
    message = json.loads(parking.items[0].to_message())
    poster = ScriptedPoster(
        lambda n: PostResult(PostOutcome.RATE_LIMITED, 429, 9.0, "rate limited") if n == 1 else ok(n)
    )
    resender = LangfuseResender(poster, ledger, encoder=CountingEncoder())
    first = resender.resend(message, time.monotonic() + 5)
    assert (first.outcome, first.retry_after) == (ResendOutcome.RETRY_LATER, 9.0)
    assert resender.resend(message, time.monotonic() + 5).outcome is ResendOutcome.DELIVERED
    assert ledger.state(replay_key(json.loads(message["body"])["observation_id"]))[0] is KeyState.SETTLED


@pytest.mark.parametrize(
    ("status", "headers", "outcome", "retry_after"),
    [
        (200, {}, PostOutcome.ACCEPTED, None),
        (207, {}, PostOutcome.ACCEPTED, None),
        (429, {"Retry-After": "17"}, PostOutcome.RATE_LIMITED, 17.0),
        (429, {}, PostOutcome.RATE_LIMITED, 60.0),
        (503, {"Retry-After": "5"}, PostOutcome.RETRYABLE, 5.0),
        (408, {}, PostOutcome.RETRYABLE, None),
        (401, {}, PostOutcome.REJECTED, None),
        (413, {}, PostOutcome.REJECTED, None),
    ],
)
def test_classify_response(
    status: int, headers: dict[str, str], outcome: PostOutcome, retry_after: float | None
) -> None:
    result = classify_response(status, headers, b"detail")
    assert (result.outcome, result.retry_after) == (outcome, retry_after)
