"""Per-service prompt scrubbing: LLM prompts and responses left as logged, on the way to Langfuse only.

By default every record that leaves the function is scrubbed in full. For the services listed in
``LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES`` the pipeline keeps the prompt and response fields of
their LLM calls as logged (``CONTENT_KEYS``, the fields the Langfuse mapping reads); everything
else in those records is still scrubbed. Other sinks also see LLM records, as context (a Sentry
breadcrumb can cite the LLM call that preceded an error): ``FullyScrubbedContext`` wraps them so
that what they borrow is scrubbed in full, prompts included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from logpipe.langfuse.mapping import CONTENT_KEYS
from logpipe.records import LogRecord
from logpipe.sinks import Delivery, SendContext, Sink

__all__ = ["CONTENT_KEYS", "FullyScrubbedContext"]


class FullyScrubbedContext:
    """A sink whose context records (``SendContext.scrub_record``) are scrubbed in full, prompts included."""

    def __init__(self, sink: Sink, scrub_in_full: Callable[[LogRecord], LogRecord]) -> None:
        """Wrap ``sink``; ``scrub_in_full`` is the pipeline's scrubbing without the prompt exemption."""
        self.inner = sink
        self.name = sink.name
        self.kind = sink.kind
        self._scrub_in_full = scrub_in_full

    def send(self, records: Sequence[LogRecord], context: SendContext) -> Sequence[Delivery]:
        """Send through the wrapped sink with the full scrubber in its context."""
        return self.inner.send(records, replace(context, scrub_record=self._scrub_in_full))

    def flush(self) -> None:
        """Flush the wrapped sink."""
        self.inner.flush()
