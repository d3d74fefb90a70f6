"""The one small Protocol every destination implements (Sentry, Langfuse, ... in later routes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from logpipe.classify import RecordKind
from logpipe.parking import ParkingLot
from logpipe.records import LogRecord

if TYPE_CHECKING:
    from logpipe.boundary import Boundary


class DeliveryOutcome(StrEnum):
    """What happened to one record at one sink."""

    DELIVERED = "delivered"
    PARKED = "parked"
    DEAD_LETTERED = "dead_lettered"
    SKIPPED = "skipped"
    # The sink has no usable configuration (its secret is missing, empty, malformed or not readable):
    # counted and alarmed on (``<Sink>NotConfigured``); the record stays in its log group.
    NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One record's outcome at a sink, with the reason when it was not delivered."""

    event_id: str
    outcome: DeliveryOutcome
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SendContext:
    """What a sink may use besides its own records."""

    # Every record of this invocation, in batch order, unscrubbed: only for context (breadcrumbs).
    batch_records: Sequence[LogRecord]
    # What leaves passes through this where it is serialized (the sink's payload, parked bodies).
    boundary: Boundary
    parking: ParkingLot
    # time.monotonic() value by which sending must stop; what is not sent by then is parked.
    deadline: float
    # Called once parking is settled, with True when everything parked was stored: a sink whose own
    # bookkeeping (the Langfuse ledger) must not say "parked" before the queue has it registers here.
    after_parking: list[Callable[[bool], None]] = field(default_factory=list)
    # Counters a sink reports beyond per-record outcomes (times clamped, ...): added to the run's.
    counters: Counter[str] = field(default_factory=Counter)


class Sink(Protocol):
    """A destination for one kind of record; it must confirm every record's outcome."""

    name: str
    kind: RecordKind

    def send(self, records: Sequence[LogRecord], context: SendContext) -> Sequence[Delivery]:
        """Deliver records (parking what cannot go now) and report one outcome per record."""
        ...

    def flush(self) -> None:
        """Finish any outstanding work before the invocation returns."""
        ...
