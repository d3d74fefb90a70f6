"""Re-sending one parked Langfuse generation, with the ledger guarding against a second copy.

Each parked generation is claimed under its own observation id before it is sent, so a parked
message SQS delivers twice is sent once. An item parked because another invocation was sending its
chunk (``wait_for``) is dropped once that chunk is done or parked, and sent only if the other
invocation died (its claim's lease ran out). An item parked as *uncertain* (its first request may
have been stored: the response was lost or cut) is looked up in Langfuse first
(``OtlpTransport.observation_exists``) and dropped as a duplicate when Langfuse has it; Langfuse does
not dedupe a re-sent span id itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from logpipe.delivery import DEFAULT_RETRY_SECONDS, ResendOutcome, ResendResult, resend_result
from logpipe.langfuse.ledger import ClaimResult, DeliveryLedger, LedgerError
from logpipe.langfuse.mapping import Generation
from logpipe.langfuse.sink import ChunkEncoder, ChunkPoster, SpanEncoder
from logpipe.langfuse.transport import PostOutcome


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
        try:
            wait_for = attributes.get("wait_for")
            if wait_for:
                state = self.ledger.peek(wait_for)
                if state in {ClaimResult.ALREADY_DONE, ClaimResult.ALREADY_PARKED}:
                    return ResendResult(ResendOutcome.DUPLICATE, f"chunk {state.value} by another invocation")
                if state is ClaimResult.IN_PROGRESS:
                    return ResendResult(ResendOutcome.RETRY_LATER, "chunk still in progress", DEFAULT_RETRY_SECONDS)
            key = replay_key(generation.observation_id)
            claim = self.ledger.claim(key)
        except LedgerError as error:
            return ResendResult(ResendOutcome.RETRY_LATER, str(error), DEFAULT_RETRY_SECONDS)
        if claim in {ClaimResult.ALREADY_DONE, ClaimResult.ALREADY_PARKED}:
            return ResendResult(ResendOutcome.DUPLICATE, f"replay {claim.value}")
        if claim is ClaimResult.IN_PROGRESS:
            return ResendResult(ResendOutcome.RETRY_LATER, "replay in progress elsewhere", DEFAULT_RETRY_SECONDS)
        if attributes.get("uncertain") == "true" and self.lookup is not None:
            exists = self.lookup.observation_exists(generation.observation_id, generation.trace_id, deadline)
            if exists is True:
                self._finish(key, delivered=True)
                return ResendResult(ResendOutcome.DUPLICATE, "already stored in Langfuse (looked up)")
            # None: Langfuse could not say; sending risks a duplicate, not sending risks a loss.
        result = self.poster.post(self.encoder.encode([generation]), deadline)
        delivered = result.outcome is PostOutcome.ACCEPTED
        try:
            if delivered or not result.outcome.should_retry:
                self.ledger.finish(key, delivered=delivered)
            else:
                # The same message comes back from SQS for another attempt: it must be able to claim again.
                self.ledger.release(key)
        except LedgerError:
            pass  # the outcome stands; only a later copy of this same message could act on a stale entry
        return resend_result(result.outcome, result.reason, result.retry_after)

    def _finish(self, key: str, *, delivered: bool) -> None:
        # The outcome stands either way; only a later copy of this same message could act on a stale entry.
        with contextlib.suppress(LedgerError):
            self.ledger.finish(key, delivered=delivered)
