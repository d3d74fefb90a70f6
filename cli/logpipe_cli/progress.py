"""A dependency-free progress bar: redraws in place on a terminal, prints milestones otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Progress over a known total, with a rate and a caller-supplied status line."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 28) -> None:
        """Prepare a bar for ``total`` units."""
        self.total = max(total, 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.started = time.perf_counter()
        self._interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._next_milestone = 0.25

    def advance(self, units: int, status: str = "") -> None:
        """Record progress and redraw (or print a milestone at each quarter when not a terminal)."""
        self.done = min(self.total, self.done + units)
        fraction = self.done / self.total
        if self._interactive:
            self.stream.write("\r" + self._line(fraction, status))
            self.stream.flush()
        elif fraction >= self._next_milestone or self.done == self.total:
            self.stream.write(self._line(fraction, status) + "\n")
            while self._next_milestone <= fraction:
                self._next_milestone += 0.25

    def finish(self, status: str = "") -> None:
        """Draw the final state and end the line."""
        if self._interactive:
            self.stream.write("\r" + self._line(self.done / self.total, status) + "\n")
            self.stream.flush()

    def _line(self, fraction: float, status: str) -> str:
        filled = int(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return f"{self.label} [{bar}] {self.done:,}/{self.total:,} {self.done / elapsed:,.0f}/s {status}".rstrip()
