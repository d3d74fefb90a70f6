"""Re-sending one parked Langfuse generation, with the ledger guarding against a second copy.

Each parked generation is sent inside the delivery ledger (Powertools Idempotency) under its own
observation id, so a parked message SQS delivers twice is sent once; an answer that says "later"
is not recorded (the message comes back from SQS and must be able to go then). An item parked
because another invocation was sending its chunk (``wait_for``) is dropped once that chunk is
settled, and sent only if the other invocation died (its claim's lease ran out). An item parked as
*uncertain* (its first request may have been stored: the response was lost or cut) is looked up in
Langfuse first (``OtlpTransport.observation_exists``) and dropped as a duplicate when Langfuse has
it; Langfuse does not dedupe a re-sent span id itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from logpipe.delivery import DEFAULT_RETRY_SECONDS, ResendOutcome, ResendResult, resend_result
from logpipe.idempotency import DEFAULT_LEASE_SECONDS, DeliveryLedger, KeyState, LedgerBusyError, LedgerError, Unsettled
from logpipe.langfuse.mapping import Generation
from logpipe.langfuse.sink import SETTLED_DELIVERED, SETTLED_PARKED, ChunkEncoder, ChunkPoster, SpanEncoder
from logpipe.langfuse.transport import PostOutcome, PostResult


class ObservationLookup(Protocol):
    """Whether Langfuse already stored an observation (``OtlpTransport`` or a test fake)."""

    def observation_exists(self, observation_id: str, trace_id: str, deadline: float) -> bool | None:
        """True, False, or None when it cannot tell."""
        ...


def replay_key(observation_id: str) -> str:
    """The ledger key of one replayed generation."""
    return f"langfuse:replay:{observation_id}"


class LangfuseResender:
    """Re-sends parked generations through the same encoder and transport as the sink."""

    def __init__(
        self,
        poster: ChunkPoster,
        ledger: DeliveryLedger,
        encoder: ChunkEncoder | None = None,
        lookup: ObservationLookup | None = None,
    ) -> None:
        """Wire the resender; the OTel SDK loads on the first re-send; ``lookup`` checks uncertain items."""
        self.poster = poster
        self.ledger = ledger
        self.encoder: ChunkEncoder = encoder or SpanEncoder()
        self.lookup = lookup

    def resend(self, message: Mapping[str, Any], deadline: float) -> ResendResult:  # noqa: PLR0911 - one return per outcome
        """Send one parked message's generation unless the ledger says it went (or is going) already."""
        attributes: Mapping[str, str] = message.get("attributes") or {}
        try:
            generation = Generation.from_json(orjson.loads(message["body"]))
        except (KeyError, TypeError, ValueError) as error:
            return ResendResult(ResendOutcome.REJECTED, f"unreadable parked generation: {type(error).__name__}")
        sent: list[PostResult] = []
        found: list[bool] = []

        def send() -> dict[str, Any]:
            # A lookup answering None (Langfuse could not say) sends: a duplicate is better than a loss.
            lookup = self.lookup if attributes.get("uncertain") == "true" else None
            ids = (generation.observation_id, generation.trace_id)
            if lookup is not None and lookup.observation_exists(*ids, deadline):
                found.append(True)
                return {"settled": SETTLED_DELIVERED, "looked_up": True}
            sent.append(self.poster.post(self.encoder.encode([generation]), deadline))
            if sent[0].outcome is not PostOutcome.ACCEPTED and sent[0].outcome.should_retry:
                raise Unsettled(sent[0].reason)  # SQS brings the message back: it must be able to go then
            return {"settled": SETTLED_DELIVERED if sent[0].outcome is PostOutcome.ACCEPTED else SETTLED_PARKED}

        try:
            wait_for = attributes.get("wait_for")
            if wait_for:
                state, answer = self.ledger.state(wait_for)
                if state is KeyState.SETTLED:
                    settled = (answer or {}).get("settled", SETTLED_DELIVERED)
                    return ResendResult(ResendOutcome.DUPLICATE, f"chunk {settled} by another invocation")
                if state is KeyState.IN_PROGRESS:
                    return ResendResult(ResendOutcome.RETRY_LATER, "chunk still in progress", DEFAULT_RETRY_SECONDS)

            once = self.ledger.run(replay_key(generation.observation_id), send, lease_seconds=DEFAULT_LEASE_SECONDS)
        except Unsettled:
            return resend_result(sent[0].outcome, sent[0].reason, sent[0].retry_after)
        except LedgerBusyError:
            return ResendResult(ResendOutcome.RETRY_LATER, "replay in progress elsewhere", DEFAULT_RETRY_SECONDS)
        except LedgerError as error:
            return ResendResult(ResendOutcome.RETRY_LATER, str(error), DEFAULT_RETRY_SECONDS)
        if found:
            return ResendResult(ResendOutcome.DUPLICATE, "already stored in Langfuse (looked up)")
        if once.duplicate:
            settled = once.answer.get("settled", SETTLED_DELIVERED)
            return ResendResult(ResendOutcome.DUPLICATE, f"replay already {settled}")
        return resend_result(sent[0].outcome, sent[0].reason, sent[0].retry_after)
