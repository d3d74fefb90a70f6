"""The Langfuse sink: LLM-call records -> generations -> OTLP chunks, each claimed, sent and confirmed.

Per invocation: map every record (a record that cannot be mapped is dead-lettered with the reason
and counted, never a crash), cut the generations into chunks (by span count and encoded size),
and for each chunk: send it inside the delivery ledger (Powertools Idempotency, ``logpipe.idempotency``:
a redelivered batch finds the chunk delivered or parked and skips it), POST it once, and settle
every record of it -- delivered, parked for retry with a
not-before time (429 with Retry-After, 5xx and network errors after inline retries, the deadline),
or dead-lettered (any other 4xx, or a 2xx whose OTLP partial_success reports rejected spans: the
response never says which, so the whole chunk is dead-lettered with the server's message). Records
arrive unscrubbed; each generation passes through the PHI boundary before it is encoded or parked
(prompts stay as logged only for the services in ``LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES``).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import orjson

from logpipe.classify import RecordKind
from logpipe.delivery import bounded_chunks
from logpipe.idempotency import DEFAULT_LEASE_SECONDS, DeliveryLedger, LedgerBusyError, LedgerError
from logpipe.langfuse.mapping import TIME_OUT_OF_RANGE_KEY, Generation, MappingError, to_generation
from logpipe.langfuse.transport import CredentialsSource, PostOutcome, PostResult
from logpipe.parking import ParkedItem, ParkReason, item_id_for
from logpipe.records import LogRecord
from logpipe.secret_store import SecretNotConfiguredError, SecretUnavailableError
from logpipe.sinks import Delivery, DeliveryOutcome, SendContext

SINK_NAME = "langfuse"
# An uncertain send (it may be stored already) waits this long before the replay looks it up: Langfuse
# stores what its OTLP endpoint accepted asynchronously, through a queue and a worker.
UNCERTAIN_RECHECK_SECONDS = 300.0
DEFAULT_MAX_SPANS_PER_REQUEST = 200
DEFAULT_MAX_REQUEST_BYTES = 2 * 1024 * 1024
_SPAN_OVERHEAD_BYTES = 600  # ids, times, attribute names and protobuf framing of one span
# What the ledger records for a chunk (or a replayed generation) once it is settled.
SETTLED_DELIVERED = "delivered"
SETTLED_PARKED = "parked"  # parked or dead-lettered: the parked items carry the data onward


def chunk_key(observation_ids: Sequence[str]) -> str:
    """The ledger key of one chunk: a digest of its observation ids, in order (a redelivered batch chunks alike)."""
    return "langfuse:" + hashlib.sha256("\n".join(observation_ids).encode()).hexdigest()[:40]


class ChunkPoster(Protocol):
    """Posts one OTLP body and confirms the outcome (``OtlpTransport`` or a test fake)."""

    def post(self, body: bytes, deadline: float) -> PostResult:
        """Send and confirm."""
        ...


class ChunkEncoder(Protocol):
    """Generations -> one OTLP protobuf body (``SpanEncoder`` or a test fake)."""

    def encode(self, generations: Sequence[Generation]) -> bytes:
        """Build the spans and serialize the request."""
        ...


class SpanEncoder:
    """The real encoder: OTel SDK spans on a private provider, created on first use."""

    def __init__(self) -> None:
        """Nothing is imported until the first chunk."""
        self._builder: Any = None

    def encode(self, generations: Sequence[Generation]) -> bytes:
        """Build and serialize."""
        from logpipe.langfuse.spans import SpanBuilder, encode_spans_body

        if self._builder is None:
            self._builder = SpanBuilder()
        return encode_spans_body(self._builder.build(generations))


@dataclass(slots=True)
class ModelTotals:
    """What was delivered for one model: calls, tokens and cost."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


@dataclass(slots=True)
class SendStats:
    """Counters of one ``send`` beyond the per-record outcomes."""

    counters: Counter[str] = field(default_factory=Counter)
    by_model: dict[str, ModelTotals] = field(default_factory=dict)


def _estimated_bytes(generation: Generation) -> int:
    size = _SPAN_OVERHEAD_BYTES + len(generation.name) + len(generation.model)
    for value in (generation.input, generation.output, generation.metadata):
        if value is not None:
            size += len(value.encode()) if isinstance(value, str) else len(orjson.dumps(value, default=str))
    return size


def chunk_generations(generations: Sequence[Generation], max_spans: int, max_bytes: int) -> list[list[Generation]]:
    """Cut generations into request-sized chunks (a single oversized one still gets its own chunk)."""
    return bounded_chunks(generations, _estimated_bytes, max_spans, max_bytes)


def parked_generation(  # noqa: PLR0913 - everything a parked item records
    generation: Generation,
    *,
    retry: bool,
    detail: str,
    now: float,
    wait_seconds: float | None,
    wait_for: str | None = None,
    uncertain: bool = False,
) -> ParkedItem:
    """One generation that was not delivered, ready for the retry queue or the DLQ."""
    attributes = {
        "sink": SINK_NAME,
        "service": generation.service,
        "trace_id": generation.trace_id,
        "observation_id": generation.observation_id,
    }
    if wait_for is not None:
        attributes["wait_for"] = wait_for
    if uncertain:
        # The replay asks Langfuse whether it has the observation before sending it again.
        attributes["uncertain"] = "true"
        wait_seconds = max(wait_seconds or 0.0, UNCERTAIN_RECHECK_SECONDS)
    return ParkedItem.undelivered(
        sink=SINK_NAME,
        retry=retry,
        detail=detail,
        body=orjson.dumps(generation.to_json(), default=str).decode(),
        item_id=item_id_for(SINK_NAME, generation.event_id),
        log_group=generation.log_group,
        log_stream=generation.log_stream,
        now=now,
        wait_seconds=wait_seconds,
        attributes=attributes,
    )


class LangfuseSink:
    """Delivers LLM-call records to Langfuse over OTLP; Powertools Idempotency keeps a chunk from going twice."""

    name = SINK_NAME
    kind = RecordKind.LLM

    def __init__(  # noqa: PLR0913 - explicit knobs, all with defaults
        self,
        poster: ChunkPoster,
        ledger: DeliveryLedger,
        *,
        encoder: ChunkEncoder | None = None,
        max_spans_per_request: int = DEFAULT_MAX_SPANS_PER_REQUEST,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
        credentials: CredentialsSource | None = None,
    ) -> None:
        """Configure the sink; the OTel SDK loads with the first chunk.

        ``credentials`` (the poster's own) are checked before anything is claimed or sent: without a
        usable configuration every record is counted as not configured, never claimed in the ledger.
        """
        self.poster = poster
        self.credentials = credentials
        self.ledger = ledger
        self.encoder: ChunkEncoder = encoder or SpanEncoder()
        self.max_spans_per_request = max_spans_per_request
        self.max_request_bytes = max_request_bytes
        self.lease_seconds = lease_seconds
        self._clock = clock
        self.stats = SendStats()  # of the last send()

    def send(self, records: Sequence[LogRecord], context: SendContext) -> list[Delivery]:
        """Map, chunk, claim, send, confirm; park or dead-letter what was not accepted."""
        self.stats = SendStats()
        deliveries: list[Delivery] = []
        if self.credentials is not None:
            try:
                self.credentials.load()
            except SecretNotConfiguredError as error:
                return [Delivery(record.event_id, DeliveryOutcome.NOT_CONFIGURED, str(error)) for record in records]
            except SecretUnavailableError:
                pass  # configured, not readable right now: each request is parked as retryable
        now = self._clock()
        generations = self._map(records, context, deliveries)
        for chunk in chunk_generations(generations, self.max_spans_per_request, self.max_request_bytes):
            self._send_chunk(chunk, context, deliveries, now)
        return deliveries

    def _map(self, records: Sequence[LogRecord], context: SendContext, deliveries: list[Delivery]) -> list[Generation]:
        generations: list[Generation] = []
        scrub = context.boundary.generation
        for record in records:
            try:
                generation = to_generation(record)
                if TIME_OUT_OF_RANGE_KEY in generation.metadata:
                    context.counters[f"time_clamped.{SINK_NAME}"] += 1
                generations.append(scrub(generation))
            except MappingError as error:
                self._reject_record(record, f"mapping: {error}", context, deliveries)
            except Exception as error:  # noqa: BLE001 - an unforeseen shape costs one record, never the batch
                self._reject_record(record, f"mapping: unexpected {type(error).__name__}", context, deliveries)
        return generations

    def _reject_record(self, record: LogRecord, reason: str, context: SendContext, deliveries: list[Delivery]) -> None:
        self.stats.counters["mapping_errors"] += 1
        context.parking.park(
            ParkedItem(
                reason=ParkReason.SINK_REJECTED,
                detail=reason,
                body=record.raw,
                item_id=item_id_for(SINK_NAME, record.event_id),
                log_group=record.log_group,
                log_stream=record.log_stream,
                source=SINK_NAME,
                attributes={"sink": SINK_NAME, "service": record.service},
                dead_letter=True,
            ),
        )
        deliveries.append(Delivery(record.event_id, DeliveryOutcome.DEAD_LETTERED, reason))

    def _send_chunk(
        self, chunk: list[Generation], context: SendContext, deliveries: list[Delivery], now: float
    ) -> None:
        counters = self.stats.counters
        try:
            body = self.encoder.encode(chunk)
        except Exception as error:  # noqa: BLE001 - an SDK refusal costs the generation it is about, parked for a human
            if len(chunk) > 1:
                # Find the generation(s) the SDK refuses: halves are encoded (and sent) on their own.
                middle = len(chunk) // 2
                self._send_chunk(chunk[:middle], context, deliveries, now)
                self._send_chunk(chunk[middle:], context, deliveries, now)
                return
            counters["encoding_errors"] += 1
            detail = f"encoding: {type(error).__name__}: {error}"[:300]
            self._park_all(chunk, context, deliveries, now, retry=False, detail=detail, wait=0.0)
            return
        if len(body) > self.max_request_bytes and len(chunk) > 1:
            # The estimate was too low: halve until every request fits (deterministic, so redeliveries match).
            middle = len(chunk) // 2
            counters["chunk_splits"] += 1
            self._send_chunk(chunk[:middle], context, deliveries, now)
            self._send_chunk(chunk[middle:], context, deliveries, now)
            return
        key = chunk_key([generation.observation_id for generation in chunk])
        sent: list[PostResult] = []

        def send() -> dict[str, Any]:
            if time.monotonic() >= context.deadline:
                # Recorded as parked too, so a redelivered batch leaves these to the replay.
                counters["deadline_parked_chunks"] += 1
                sent.append(PostResult(PostOutcome.RETRYABLE, None, 0.0, "deadline reached", attempts=0))
            else:
                counters["requests"] += 1
                sent.append(self.poster.post(body, context.deadline))
            return {"settled": SETTLED_DELIVERED if sent[0].outcome is PostOutcome.ACCEPTED else SETTLED_PARKED}

        try:
            once = self.ledger.run(key, send, lease_seconds=self.lease_seconds)
        except LedgerBusyError:
            # Another invocation is sending this very chunk; replay checks the ledger once its lease is over.
            counters["ledger_in_progress"] += len(chunk)
            self._park_all(
                chunk,
                context,
                deliveries,
                now,
                retry=True,
                detail="in progress elsewhere",
                wait=self.lease_seconds,
                wait_for=key,
            )
            return
        except LedgerError as error:
            counters["ledger_errors"] += 1
            detail = f"ledger unavailable: {error}"
            self._park_all(chunk, context, deliveries, now, retry=True, detail=detail, wait=None)
            return
        if once.duplicate:
            counters["ledger_duplicates"] += len(chunk)
            reason = f"already {once.answer.get('settled', SETTLED_DELIVERED)} (ledger)"
            deliveries.extend(Delivery(g.event_id, DeliveryOutcome.SKIPPED, reason) for g in chunk)
            return
        if not once.recorded:
            # The send itself is settled; only a redelivery after the claim's lease could send it again.
            counters["ledger_errors"] += 1
        elif once.answer.get("settled") == SETTLED_PARKED:
            # Recorded "parked" before the queue has the items: if parking fails, the invocation fails,
            # and its retry must be able to claim (and send) this chunk again, so the record goes.
            context.after_parking.append(partial(self._release_unless_parked, key))
        self._settle(chunk, sent[0], context, deliveries, now)

    def _release_unless_parked(self, key: str, parked: bool) -> None:
        if not parked:
            self._release(key)

    def _release(self, key: str) -> None:
        try:
            self.ledger.release(key)
        except LedgerError:
            # The claim's lease runs out instead: the retry parks the chunk for the replay to check.
            self.stats.counters["ledger_errors"] += 1

    def _settle(
        self,
        chunk: list[Generation],
        result: PostResult,
        context: SendContext,
        deliveries: list[Delivery],
        now: float,
    ) -> None:
        counters = self.stats.counters
        if result.outcome is PostOutcome.ACCEPTED:
            counters["spans_sent"] += len(chunk)
            for generation in chunk:
                totals = self.stats.by_model.setdefault(generation.model, ModelTotals())
                totals.calls += 1
                totals.input_tokens += generation.usage.get("input", 0)
                totals.output_tokens += generation.usage.get("output", 0)
                totals.cost += generation.cost.get("total", 0.0)
                deliveries.append(Delivery(generation.event_id, DeliveryOutcome.DELIVERED))
            return
        counters[f"requests_{result.outcome.value}"] += 1
        retry = result.outcome.should_retry
        detail = f"{result.outcome.value}: {result.reason}"
        if result.rejected_spans:
            # OTLP's partial_success counts rejected spans but never names them, and forbids a retry:
            # the whole chunk is dead-lettered with the reason (a human decides), none counted delivered.
            counters["partial_success_chunks"] += 1
            counters["spans_rejected"] += result.rejected_spans
            detail += f" (of {len(chunk)} sent; which ones is not reported, so all {len(chunk)} are dead-lettered)"
        if result.uncertain:
            counters["uncertain_chunks"] += 1
        wait, uncertain = result.retry_after, result.uncertain
        self._park_all(chunk, context, deliveries, now, retry=retry, detail=detail, wait=wait, uncertain=uncertain)

    def _park_all(  # noqa: PLR0913 - one chunk's whole context
        self,
        chunk: list[Generation],
        context: SendContext,
        deliveries: list[Delivery],
        now: float,
        *,
        retry: bool,
        detail: str,
        wait: float | None,
        wait_for: str | None = None,
        uncertain: bool = False,
    ) -> None:
        outcome = DeliveryOutcome.PARKED if retry else DeliveryOutcome.DEAD_LETTERED
        for generation in chunk:
            item = parked_generation(
                generation,
                retry=retry,
                detail=detail,
                now=now,
                wait_seconds=wait,
                wait_for=wait_for,
                uncertain=uncertain,
            )
            context.parking.park(item)
            deliveries.append(Delivery(generation.event_id, outcome, detail))

    def flush(self) -> None:
        """Every request completed inline; nothing is buffered."""
