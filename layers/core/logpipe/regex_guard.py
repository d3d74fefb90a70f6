"""Rejecting catastrophic regexes where users supply them: a pattern must run in linear time on hostile text.

Log lines are untrusted, so every regex the pipeline applies to them must stay linear however a line
is built. The bundled patterns are timed by ``tests/unit/test_regex_linear.py``; patterns from a
user's own rules file (``LOGPIPE_SCRUB_RULES``: text rules, prefilters, key patterns) are probed here
when the file loads, and a pattern that is not linear fails the load with a ``SettingsError``-style
message naming it, instead of hanging an invocation on the first hostile line.

The probe: for each of a set of adversarial repeated units (generic troublemakers, and words and
characters taken from the pattern itself), time ``finditer`` over the unit repeated to growing
lengths. Any single probe slower than ``PROBE_BUDGET_SECONDS`` (a linear search of a few KB takes
microseconds) or a growth between 512 and 4096 characters far above 8x means it is rejected. Lengths
grow slowly at first, so an exponential pattern is caught at a few dozen characters, within the budget.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

# Repeated units that make backtracking engines rescan: separators, quotes and escapes, digit runs
# with dashes, key=value shapes, trace lines, the pieces of common PII rules.
GENERIC_UNITS: tuple[str, ...] = (
    "a",
    "0",
    " ",
    "\t",
    "\n",
    "\n ",
    "-",
    ".",
    ":",
    "=",
    '"',
    "'",
    "\\",
    '\\"',
    "@",
    "/",
    "^",
    "(",
    ")",
    "[",
    "{",
    ",",
    ";",
    "%",
    "+",
    "a ",
    "a-",
    "a.",
    "a:",
    "a=",
    "a@",
    'a="',
    'a="b ',
    "0-",
    "0.",
    "0:",
    "00-",
    "010-",
    "900101-",
    "0000-",
    "a0",
    "aA0-",
    "aa.",
    "a.a@",
    "::",
    "0a:",
    "a^",
    "A^a",
    "a'",
    "''a",
    "a (",
    "a (a:1:1",
    " at a (",
    '  File "',
    "\tat a.b(",
    "%40",
    "\\u0040",
    "&#64;",
    "AAAA",
    "AKIA",
    "eyJa",
    "Bearer ",
    "key ",
    "Key (",
    "password=",
    "token: ",
    "1 ",
    "1,",
    "+82",
    "010 ",
    "0x0",
    "fA_",
    "a\u00e9",
    "\ud55c",
)
_WORD = re.compile(r"[A-Za-z\uac00-\ud7a3]{2,}")
_SEPARATORS = ("", " ", "-", ".", "=", ":", "_", "/")
_NOT_LITERAL = frozenset("\\()[]{}?*+|^$")
PROBE_BUDGET_SECONDS = 0.05
_LENGTHS = (8, 12, 16, 20, 24, 28, 32, 48, 64, 128, 256, 512, 4096)
_POISONED_UP_TO = 64
MAX_GROWTH_512_TO_4096 = 24.0  # linear is 8x; quadratic 64x


class NonLinearPatternError(ValueError):
    """A pattern that takes superlinear time on some adversarial input."""


def units_for(pattern: str, *, words: int = 40) -> list[str]:
    """Adversarial repeated units for one pattern: the generic ones and pieces of the pattern itself."""
    units: dict[str, None] = dict.fromkeys(GENERIC_UNITS)
    for word in list(dict.fromkeys(_WORD.findall(pattern)))[:words]:
        for separator in _SEPARATORS:
            units[word + separator] = None
            units[word.lower() + separator] = None
    for char in dict.fromkeys(c for c in pattern if not c.isalnum() and c not in _NOT_LITERAL):
        units[char] = None
        units["a" + char] = None
        units["0" + char] = None
    return list(units)


# After a literal the pattern starts with ("MRN:"), these units repeated reach the pattern's inner loops.
_TAIL_UNITS = ("0", "a", " ", "-", "0-", "a-", ".", "_", "a.", "0.", "aA0")


def attacks_for(pattern: str) -> list[tuple[str, str]]:
    """(prefix, unit) pairs: each unit alone, and the short tail units after each word of the pattern."""
    pairs = [("", unit) for unit in units_for(pattern)]
    for word in list(dict.fromkeys(_WORD.findall(pattern)))[:4]:
        for separator in ("", ":", "=", " ", ": "):
            pairs.extend((word + separator, unit) for unit in _TAIL_UNITS)
    return pairs


def repeated(unit: str, length: int, prefix: str = "") -> str:
    """``prefix``, then ``unit`` repeated to about ``length`` characters."""
    return prefix + unit * max(length // len(unit), 1)


def _seconds(pattern: re.Pattern[str], text: str) -> float:
    started = time.perf_counter()
    for _ in pattern.finditer(text):
        pass
    return time.perf_counter() - started


def check_linear(pattern: re.Pattern[str], attacks: Iterable[tuple[str, str]] | None = None) -> None:
    """Raise ``NonLinearPatternError`` when ``pattern`` is superlinear (or simply too slow) on hostile text."""
    for prefix, unit in attacks if attacks is not None else attacks_for(pattern.pattern):
        timings: dict[int, float] = {}
        for length in _LENGTHS:
            text = repeated(unit, length, prefix)
            seconds = min(_seconds(pattern, text) for _ in range(2 if length >= 512 else 1))
            if length <= _POISONED_UP_TO:
                # A character that fits nowhere at the end makes an anchored or suffixed pattern fail
                # after it has tried every way through the run: where exponential patterns show.
                text += "\x00"
                seconds = max(seconds, _seconds(pattern, text))
            timings[length] = seconds
            if seconds > PROBE_BUDGET_SECONDS:
                msg = (
                    f"takes {seconds * 1000:.0f} ms on {len(text)} characters of {prefix!r} + {unit!r} repeated "
                    "(catastrophic backtracking): bound its repetitions or make them possessive"
                )
                raise NonLinearPatternError(msg)
        small, large = timings[512], timings[4096]
        if large > 0.002 and large / max(small, 1e-7) > MAX_GROWTH_512_TO_4096:
            msg = (
                f"grows {large / max(small, 1e-7):.0f}x from 512 to 4096 characters of {prefix!r} + {unit!r} repeated "
                "(superlinear): make each unbounded run start only where it can succeed, or bound it"
            )
            raise NonLinearPatternError(msg)
