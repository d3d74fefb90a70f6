"""Every regex the pipeline applies to log text, and adversarial inputs to time them on (issue 12, item 2).

``log_text_patterns()`` collects them: the module-level patterns of every module that reads log text
(parsers, reassembly, Sentry normalisation and trace parsing, the PHI boundary), every rule and
prefilter of the bundled scrub rules (the ones generated from key groups included) and the key
patterns. Metric rules hold no regex (literal prefix/contains/equals only), so they need no entry.

``worst_units()`` finds, per pattern, the repeated units that cost it the most on a small input: a
mix of generic troublemakers (separators, quotes, escapes, digit runs with dashes, the shapes that
made ``normalize_message`` quadratic) and pieces taken from the pattern itself (its literal words and
characters, each repeated, with and without a separator): ``logpipe.regex_guard.units_for``, the same
units the guard probes a user's own patterns with. ``seconds_for()`` then times one pattern
on one input the way the code uses it (search-all, or match at the start).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType

from logpipe.regex_guard import repeated, units_for


@dataclass(frozen=True, slots=True)
class Subject:
    """One pattern, where it comes from, and how the code applies it."""

    name: str
    pattern: re.Pattern[str]
    match_only: bool = False  # applied with match/fullmatch at the start only


# Patterns the code only ever applies with .match / .fullmatch (at one position): timed that way.
MATCH_ONLY = frozenset(
    {
        "logpipe.formats._SPACE_DELIMITED",
        "logpipe.formats._TEXT_HEAD",
        "logpipe.formats._POSTGRES",
        "logpipe.formats._POSTGRES_DURATION",
        "logpipe.formats._LAMBDA_TIMEOUT",
        "logpipe.formats._LAMBDA_RUNTIME",
        "logpipe.formats._LAMBDA_RUNTIME_NOTAB",
        "logpipe.formats._KEY_NAME",
        "logpipe.formats._KEY_VALUE_LIST_START",
        "logpipe.formats._LOGFMT_HINT",
        "logpipe.assemble._PYTHON_EXCEPTION_LINE",
        "logpipe.assemble._JAVA_EXCEPTION_LINE",
        "logpipe.assemble._POSTGRES_CONTINUATION",
        "logpipe.sentry.stacktrace._PY_FILE",
        "logpipe.sentry.stacktrace._EXC_LINE",
        "logpipe.sentry.stacktrace._TYPE_LIKE",
        "logpipe.sentry.stacktrace._JAVA_FRAME",
        "logpipe.sentry.stacktrace._JAVA_MORE",
        "logpipe.sentry.stacktrace._NODE_FRAME",
        "logpipe.sentry.stacktrace._NODE_CAUSE",
        "logpipe.sentry.stacktrace._NODE_CODE",
        "logpipe.scrub._JSON_VALUE_AFTER",
        "logpipe.scrub._JSON_START",
        "logpipe.boundary._SAFE_TAG_VALUE",
        "logpipe.langfuse.mapping._ENVIRONMENT_RE",
        "logpipe.scrub_rules._TAG",
        "logpipe.scrub_rules._HL7_FIELD_KEY",
        "logpipe.s3replay._LINE",
    }
)
# Patterns that never see log text (configuration and names the pipeline builds itself).
NOT_LOG_TEXT = frozenset(
    {
        "logpipe.scrub._NAME_RE",
        "logpipe.scrub._CONTEXT_GROUP_RE",
        "logpipe.scrub_rules._HL7_SEGMENT_NAME",
        "logpipe.s3replay._KEY",
    }
)


def _modules() -> list[ModuleType]:
    import logpipe.assemble
    import logpipe.boundary
    import logpipe.formats
    import logpipe.langfuse.mapping
    import logpipe.s3replay
    import logpipe.scrub
    import logpipe.scrub_rules
    import logpipe.sentry.event
    import logpipe.sentry.stacktrace

    return [
        logpipe.formats,
        logpipe.assemble,
        logpipe.sentry.event,
        logpipe.sentry.stacktrace,
        logpipe.scrub,
        logpipe.scrub_rules,
        logpipe.boundary,
        logpipe.langfuse.mapping,
        logpipe.s3replay,
    ]


def log_text_patterns() -> list[Subject]:
    """Every regex applied to log text, with a stable name for reports."""
    from logpipe.scrub_rules import load_scrub_config

    subjects: list[Subject] = []
    for module in _modules():
        for attribute, value in sorted(vars(module).items()):
            name = f"{module.__name__}.{attribute}"
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str) and name not in NOT_LOG_TEXT:
                subjects.append(Subject(name, value, name in MATCH_ONLY))
    config = load_scrub_config()
    scrubber = config.text_scrubber()
    for rule, search in zip(config.text_rules, scrubber._searches, strict=True):
        compiled = getattr(search, "__self__", None)  # the engine keeps each rule's bound .search
        assert isinstance(compiled, re.Pattern)
        subjects.append(Subject(f"scrub rule {rule.name}", compiled))
        if rule.prefilter is not None:
            subjects.append(Subject(f"scrub prefilter {rule.name}", re.compile(rule.prefilter)))
    triggers = getattr(scrubber._trigger_search, "__self__", None)
    if isinstance(triggers, re.Pattern):
        subjects.append(Subject("scrub triggers", triggers))
    for group in config.key_groups:
        for index, pattern in enumerate(group.key_patterns):
            subjects.append(Subject(f"key pattern {group.name}[{index}]", re.compile(pattern, re.IGNORECASE)))
    return subjects


def _apply(subject: Subject) -> Callable[[str], object]:
    if subject.match_only:
        return subject.pattern.match
    finditer = subject.pattern.finditer
    return lambda text: sum(1 for _ in finditer(text))


def seconds_for(subject: Subject, text: str, *, min_total: float = 0.01, repeats: int = 3) -> float:
    """The best per-call time of applying the pattern to ``text`` (looped until measurable)."""
    apply = _apply(subject)
    best = float("inf")
    for _ in range(repeats):
        calls = 0
        started = time.perf_counter()
        elapsed = 0.0
        while elapsed < min_total or calls == 0:
            apply(text)
            calls += 1
            elapsed = time.perf_counter() - started
            if elapsed > 2.0:  # a clearly superlinear case: one call is enough
                break
        best = min(best, elapsed / calls)
    return best


def worst_units(subject: Subject, *, size: int = 4000, keep: int = 3) -> list[str]:
    """The ``keep`` units on which the pattern spends the most time at ``size`` characters."""
    timed = [
        (seconds_for(subject, repeated(unit, size), min_total=0.0, repeats=1), unit)
        for unit in units_for(subject.pattern.pattern)
    ]
    timed.sort(reverse=True)
    return [unit for _, unit in timed[:keep]]


def growth(subject: Subject, unit: str, small: int = 10_000, large: int = 100_000) -> tuple[float, float, float]:
    """(seconds at ``small``, seconds at ``large``, their ratio) for ``unit`` repeated."""
    short = seconds_for(subject, repeated(unit, small))
    long = seconds_for(subject, repeated(unit, large), repeats=2)
    return short, long, long / max(short, 1e-9)


def report() -> Iterator[str]:
    """One line per pattern: its worst unit and growth (for ``python tests/regex_attacks.py``)."""
    for subject in log_text_patterns():
        unit = worst_units(subject, keep=1)[0]
        short, long, ratio = growth(subject, unit)
        yield f"{ratio:7.1f}x  {short * 1e3:8.3f} ms -> {long * 1e3:9.3f} ms  {unit!r:>16}  {subject.name}"


if __name__ == "__main__":
    for line in report():
        print(line)
