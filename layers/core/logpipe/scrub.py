r"""Single-pass PII and secret scrubbing for log text.

A :class:`Scrubber` checks cheap literal ``triggers`` and ``prefilter`` regexes
first: a line on which no rule can match (most lines) costs those searches and
is returned as the very same ``str`` object. Otherwise each rule whose gate
opened searches the text with its own compiled regex, and the matches are
merged left to right -- the leftmost match wins, at the same position the
earlier rule, and scanning resumes after it -- which is exactly what one
alternation of those rules would do. Separate searches are used because
Python's ``re`` skips quickly to positions where a pattern's first character
class can match only when the pattern does not start with an alternation.

Rules come from the rules file (``logpipe/rules/scrub.json``; schema, key
groups and loading in :mod:`logpipe.scrub_rules`). One text rule::

    {
      "name": "email",                       # identifier, unique, no "__"
      "pattern": "...",                      # Python regex, or a list of
                                             # strings that are concatenated
      "replacement": "[REDACTED:email]",     # no double quote, backslash or
                                             # control character (JSON-safe)
      "triggers": ["@"],                     # optional, literal substrings
      "prefilter": null,                     # optional, regex
      "ignore_case": false,                  # optional
      "validator": null,                     # optional: luhn, rrn, ip_address
      "transform": null,                     # optional: hl7, sql (rewrites the match)
      "description": "..."                   # optional, ignored
    }

Rule semantics:

* Gate: a rule is tried only if one of its ``triggers`` occurs in the text or
  its ``prefilter`` matches somewhere; a rule with neither is always tried.
  Triggers are case-insensitive (compared with the lower-cased text). Together
  they must be a necessary condition for a match, or matches are missed.
  Rules sharing the same prefilter string share one search.
* ``ignore_case`` compiles the pattern and prefilter case-insensitively. That is
  convenient but slow in ``re``; the bundled rules instead start with a
  character class such as ``[pP]`` and use scoped ``(?i:...)`` after it, which
  lets the engine skip positions that cannot start a match.
* Context: named groups ``pre`` / ``pre_<x>`` and ``post`` / ``post_<x>`` mark
  what is kept. Only the text between the end of the participating ``pre*``
  group and the start of the participating ``post*`` group is replaced; the
  rest of the match stays as is. Empty groups work as plain position markers,
  e.g. ``password=(?P<pre>)[^ ]+``. Alternatives of one pattern can use their
  own ``pre_a`` / ``post_a`` and so on.
* Several spans: when a rule has groups named ``mask`` / ``mask_<x>``, each of
  them that participates is replaced instead (``pre``/``post`` are then
  ignored), e.g. a key id and the secret that stands beside it.
* Other named groups, named back-references ``(?P=name)`` and conditionals
  ``(?(name)...)`` are allowed (they are renamed per rule internally);
  numbered back-references and global inline flags such as ``(?i)`` are not,
  use scoped flags ``(?i:...)`` or ``ignore_case`` instead.
* A match whose masked part already starts with any rule's replacement is left
  alone, which keeps ``scrub`` idempotent. A masked part that is a bare JSON
  value (``{"card": 4111...}``, ``[4111..., ...]``) gets a quoted replacement,
  so JSON stays valid.
* ``validator`` runs on the masked part; if it rejects, the text is kept.
* ``transform`` rewrites the whole match instead of replacing a span (``hl7``:
  a segment's fields masked by position; ``sql``: every quoted literal of a
  logged statement); it must be idempotent.
* Every pattern must run in linear time on adversarial input: bounded or
  possessive repetition, no nested unbounded quantifiers over overlapping
  classes. ``tests/unit/test_regex_linear.py`` times every bundled pattern.

This module is the text engine. Structured values (dicts, lists, numbers, JSON
inside strings) go through :class:`logpipe.boundary.Boundary`, which applies
key-aware and format-aware rules and calls this engine for every string.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import ipaddress
import itertools
import operator
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    import os

__all__ = [
    "IP_ADDRESS_POLICIES",
    "ScrubRule",
    "ScrubRulesError",
    "Scrubber",
    "load_scrub_rules",
]

_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_CONTEXT_GROUP_RE: Final = re.compile(r"(?P<kind>pre|post|mask)(?:_[A-Za-z0-9_]+)?")
# Up to this length one regex finds the triggers faster than one substring search per trigger.
_SHORT_TEXT: Final = 32
# A masked span that stands where a JSON value stands (a number such as a card
# number) must become a quoted string, or the document breaks. An unescaped
# quote right before ':' cannot occur inside a JSON string, so after '"key":'
# that is certain; after '[' or ',' the text is scanned to make sure the match
# is not inside a string.
_JSON_KEY_BEFORE: Final = re.compile(r'(?<!\\)"\s*:\s*\Z')
_JSON_ITEM_BEFORE: Final = re.compile(r"[\[,]\s*\Z")
_JSON_VALUE_AFTER: Final = re.compile(r"\s*(?:[,}\]]|\Z)")
# A string that never closes runs to the end of the text (it is inside a string from there on); without
# the \Z, every later quote of an unclosed escaped run ('\"\"\"...') would rescan it: quadratic.
_JSON_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\Z)')
_JSON_START: Final = re.compile(r"\s*[\[{]")

IpAddressPolicy = Literal["public", "all", "none"]
IP_ADDRESS_POLICIES: Final[tuple[IpAddressPolicy, ...]] = ("public", "all", "none")


class ScrubRulesError(ValueError):
    """A scrub rule or rules file is invalid."""


@dataclass(frozen=True, slots=True)
class ScrubRule:
    """One masking rule: a regex plus its replacement and cheap gates."""

    name: str
    pattern: str
    replacement: str
    triggers: tuple[str, ...] = ()
    prefilter: str | None = None
    ignore_case: bool = False
    validator: str | None = None
    transform: str | None = None


# --------------------------------------------------------------------------
# Validators: run on the span a rule would mask; False keeps the text
# --------------------------------------------------------------------------

_LUHN_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_RRN_WEIGHTS: Final = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
_DIGITS_IN_RRN: Final = 13


def _luhn_ok(text: str) -> bool:
    """Return True if the digits in ``text`` pass the Luhn checksum."""
    digits = [ord(c) - 48 for c in reversed(text) if "0" <= c <= "9"]
    if len(digits) < 12:
        return False
    return (sum(digits[0::2]) + sum(_LUHN_DOUBLED[d] for d in digits[1::2])) % 10 == 0


def _rrn_ok(text: str) -> bool:
    """A resident registration number: with a separator any; without one only with a valid check digit.

    Numbers issued since October 2020 no longer carry a check digit, so a separated form is masked
    on its shape (the pattern already checks the birth date and the sex digit). Thirteen bare digits
    are far more often something else (ids, epoch milliseconds), so there the check digit decides.
    """
    digits = [ord(c) - 48 for c in text if "0" <= c <= "9"]
    if len(digits) != _DIGITS_IN_RRN:
        return False
    if len(text) > _DIGITS_IN_RRN:
        return True
    total = sum(d * w for d, w in zip(digits, _RRN_WEIGHTS, strict=False))
    return (11 - total % 11) % 10 == digits[12]


# RFC 1918 and RFC 6598 (shared address space) for IPv4, RFC 4193 (ULA) for IPv6, plus loopback,
# link-local and unspecified: addresses operators need to see and that identify no person.
_PRIVATE_NETWORKS: Final = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/32",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
        "::/128",
    )
)


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_private_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address.version == net.version and address in net for net in _PRIVATE_NETWORKS)


def ip_address_validator(policy: IpAddressPolicy) -> Callable[[str], bool]:
    """The ``ip_address`` validator for a policy: mask public addresses only, or all, or none."""

    def validate(text: str) -> bool:
        address = _ip_address(text)
        if address is None or policy == "none":
            return False
        return policy == "all" or not _is_private_address(address)

    return validate


VALIDATORS: Final[Mapping[str, Callable[[str], bool]]] = {
    "luhn": _luhn_ok,
    "rrn": _rrn_ok,
    "ip_address": ip_address_validator("public"),
}
# Transforms are supplied by whoever builds the scrubber (the HL7 one needs the rules file's
# segment table); these names are the ones a rules file may use.
TRANSFORM_NAMES: Final = frozenset({"hl7", "sql"})


# --------------------------------------------------------------------------
# Validation of one rule
# --------------------------------------------------------------------------


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_opt_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A validated rule with its regex rewritten for the combined pattern."""

    rule: ScrubRule
    group_pattern: str
    pre_groups: tuple[str, ...]
    post_groups: tuple[str, ...]
    mask_groups: tuple[str, ...]
    prefilter: re.Pattern[str] | None


def _class_end(pattern: str, i: int) -> int:
    """Index just past the character class that starts at ``pattern[i] == "["``."""
    j = i + 1
    if pattern[j : j + 1] == "^":
        j += 1
    if pattern[j : j + 1] == "]":
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1


def _namespace_groups(pattern: str, prefix: str) -> tuple[str, bool]:
    """Prefix every group name, back-reference and conditional in ``pattern``.

    Python forbids duplicate group names in one regex, so each rule's groups
    get a ``<rule>__`` prefix before the rules are joined. Numbered references
    would point at the wrong group once rules are combined and are rejected.
    Also reports whether the pattern has a top-level ``|`` (needs wrapping).
    """
    out: list[str] = []
    depth = 0
    top_level_alternation = False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt and nxt in "123456789":
                raise ValueError("bad pattern: numbered back-references are not supported, use (?P=name)")
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[":
            j = _class_end(pattern, i)
            out.append(pattern[i:j])
            i = j
            continue
        if pattern.startswith("(?#", i):
            j = pattern.find(")", i)
            j = n if j < 0 else j + 1
            out.append(pattern[i:j])
            i = j
            continue
        if pattern.startswith(("(?P<", "(?P=", "(?("), i):
            head = 4 if pattern[i + 2] == "P" else 3
            close = ">" if pattern[i + 3] == "<" else ")"
            j = pattern.find(close, i + head)
            if j < 0:
                raise ValueError(f"bad pattern: unterminated group reference at position {i}")
            ref = pattern[i + head : j]
            if not ref.isidentifier():
                raise ValueError("bad pattern: numbered group references are not supported, use names")
            out.append(f"{pattern[i : i + head]}{prefix}{ref}{close}")
            # A conditional's "(?(" opens a group whose ")" comes later.
            depth += pattern[i + 2] != "P" or pattern[i + 3] == "<"
            i = j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            top_level_alternation = True
        out.append(c)
        i += 1
    return "".join(out), top_level_alternation


def _field_problems(rule: ScrubRule, validators: Mapping[str, object]) -> Iterator[str]:
    """Yield what is wrong with the plain fields of ``rule``; the first problem matters."""
    types_ok = (
        _is_str(rule.pattern)
        and _is_str(rule.replacement)
        and isinstance(rule.triggers, tuple | list)
        and all(isinstance(t, str) for t in rule.triggers)
        and _is_opt_str(rule.prefilter)
        and _is_bool(rule.ignore_case)
        and _is_opt_str(rule.validator)
        and _is_opt_str(rule.transform)
    )
    if not types_ok:
        yield "fields have the wrong types (see ScrubRule)"
        return
    if not _is_str(rule.name) or not _NAME_RE.fullmatch(rule.name) or "__" in rule.name:
        yield (
            "name must be letters, digits and single underscores, start with a letter "
            "and be at most 64 characters (it becomes a regex group name)"
        )
    if not rule.replacement:
        yield "replacement must not be empty"
    if any(c in '"\\' or ord(c) < 0x20 or c == "\x7f" for c in rule.replacement):
        yield f"replacement {rule.replacement!r} is not JSON-safe: no double quotes, backslashes or control characters"
    if rule.validator is not None and rule.validator not in validators:
        yield f"unknown validator {rule.validator!r}; known: {', '.join(sorted(validators))}"
    if rule.transform is not None and rule.transform not in TRANSFORM_NAMES:
        yield f"unknown transform {rule.transform!r}; known: {', '.join(sorted(TRANSFORM_NAMES))}"
    if not all(rule.triggers):
        yield "triggers must be non-empty strings"


def _compile(pattern: str, flags: int, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ValueError(f"bad {what}: {exc}") from exc


def check_rule(rule: ScrubRule, source: str, validators: Mapping[str, object] = VALIDATORS) -> None:
    """Raise ``ScrubRulesError`` (prefixed with ``source``) if ``rule`` cannot be used."""
    _prepare(rule, source, validators)


def _prepare(rule: ScrubRule, source: str, validators: Mapping[str, object]) -> _Prepared:
    """Validate one rule and rewrite its pattern; raise ScrubRulesError on problems."""
    problem = next(_field_problems(rule, validators), None)
    if problem is not None:
        raise ScrubRulesError(f"{source}: rule {rule.name!r}: {problem}")
    try:
        return _prepare_pattern(rule)
    except ValueError as exc:
        raise ScrubRulesError(f"{source}: rule {rule.name!r}: {exc}") from exc


def _prepare_pattern(rule: ScrubRule) -> _Prepared:
    flags = re.IGNORECASE if rule.ignore_case else 0
    own = _compile(rule.pattern, flags, "pattern")
    if own.search("") is not None:
        raise ValueError("pattern matches the empty string")
    rewritten, alternation = _namespace_groups(rule.pattern, f"{rule.name}__")
    if rule.ignore_case:
        rewritten = f"(?i:{rewritten})"
    elif alternation:
        rewritten = f"(?:{rewritten})"
    # The rule's marker group goes last, not around the pattern: it closes
    # last so ``match.lastgroup`` still names the rule, while the branch keeps
    # starting with the pattern's own first literal or class, which lets the
    # regex engine skip non-starting positions cheaply.
    group_pattern = f"{rewritten}(?P<{rule.name}>)"
    _compile(f"x|{group_pattern}", 0, "pattern (cannot be combined with other rules)")
    groups: dict[str, list[str]] = {"pre": [], "post": [], "mask": []}
    for group in own.groupindex:
        ctx = _CONTEXT_GROUP_RE.fullmatch(group)
        if ctx is not None:
            groups[ctx["kind"]].append(f"{rule.name}__{group}")
    prefilter = None if rule.prefilter is None else _compile(rule.prefilter, flags, "prefilter")
    return _Prepared(rule, group_pattern, tuple(groups["pre"]), tuple(groups["post"]), tuple(groups["mask"]), prefilter)


def _check_rules(
    rules: Sequence[ScrubRule], source: str, validators: Mapping[str, object] = VALIDATORS
) -> tuple[_Prepared, ...]:
    seen: set[str] = set()
    prepared = []
    for rule in rules:
        if rule.name in seen:
            raise ScrubRulesError(f"{source}: rule {rule.name!r}: duplicate rule name")
        seen.add(rule.name)
        prepared.append(_prepare(rule, source, validators))
    return tuple(prepared)


def load_scrub_rules(path: str | os.PathLike[str] | None = None) -> tuple[ScrubRule, ...]:
    """The text rules of a rules file (its key groups' rules included); ``None`` means the bundled file."""
    from logpipe.scrub_rules import load_scrub_config

    return load_scrub_config(path).text_rules


# --------------------------------------------------------------------------
# Scrubbing
# --------------------------------------------------------------------------

_Handler = Callable[["re.Match[str]"], str]


def _merge_superstrings(trigger_bits: dict[str, int]) -> dict[str, int]:
    """Fold each trigger into a shorter one it contains: fewer substring searches, the same gates opened.

    A text containing "username" contains "user", so "user" can open the rules of both; gates only
    have to be necessary conditions, and a shorter trigger is a weaker (still necessary) one.
    """
    kept: dict[str, int] = {}
    for trigger in sorted(trigger_bits, key=len):
        into = next((short for short in kept if short in trigger), None)
        if into is None:
            kept[trigger] = trigger_bits[trigger]
        else:
            kept[into] |= trigger_bits[trigger]
    return kept


class _StringSpans(threading.local):
    """Per-thread cache of where the JSON strings of the text being scrubbed are.

    One ``re.sub`` can call the handler for many bare numbers in the same
    document; scanning the strings once per text keeps that linear.
    """

    text: str | None = None
    starts: list[int]
    ends: list[int]

    def inside(self, text: str, pos: int) -> bool:
        """Tell whether ``pos`` lies inside a JSON string of ``text``."""
        if self.text is not text:
            spans = [m.span() for m in _JSON_STRING.finditer(text)]
            self.starts = [start for start, _ in spans]
            self.ends = [end for _, end in spans]
            self.text = text
        i = bisect.bisect_right(self.starts, pos) - 1
        return i >= 0 and self.ends[i] > pos


_STRING_SPANS: Final = _StringSpans()


class _FoundSpans(threading.local):
    """Where :meth:`Scrubber.scrub_collecting` gathers what was masked (None: nobody is asking)."""

    spans: list[tuple[str, str]] | None = None


_FOUND: Final = _FoundSpans()


def _is_bare_json_value(text: str, a: int, b: int) -> bool:
    """Tell whether ``text[a:b]`` is a whole JSON value outside any JSON string."""
    if _JSON_VALUE_AFTER.match(text, b) is None:
        return False
    window = max(0, a - 16)
    if _JSON_KEY_BEFORE.search(text, window, a) is not None:
        return True
    if _JSON_ITEM_BEFORE.search(text, window, a) is None or _JSON_START.match(text) is None:
        return False
    return not _STRING_SPANS.inside(text, a)


def _make_handler(
    p: _Prepared,
    masks: tuple[str, ...],
    validators: Mapping[str, Callable[[str], bool]],
    transforms: Mapping[str, Callable[[str, str], str]],
) -> _Handler:
    """Build the per-rule replacement callback used by the combined ``re.sub``.

    ``masks`` holds every rule's replacement: a span that already starts with
    one was masked by an earlier pass (possibly by another rule) and is kept.
    """
    repl = p.rule.replacement
    quoted = f'"{repl}"'
    pre_groups, post_groups, mask_groups = p.pre_groups, p.post_groups, p.mask_groups
    validator = validators[p.rule.validator] if p.rule.validator else None
    if p.rule.transform is not None:
        transform = transforms[p.rule.transform]

        def rewrite(m: re.Match[str]) -> str:
            return transform(m.group(), repl)

        return rewrite

    def masked(text: str, a: int, b: int) -> str | None:
        """The replacement for ``text[a:b]``, or None to keep it."""
        if a >= b or text.startswith(masks, a):
            return None
        if validator is not None and not validator(text[a:b]):
            return None
        found = _FOUND.spans
        if found is not None:
            found.append((text[a:b], repl))
        return quoted if _is_bare_json_value(text, a, b) else repl

    if mask_groups:

        def handle_spans(m: re.Match[str]) -> str:
            text, start, end = m.string, m.start(), m.end()
            spans = sorted((m.start(g), m.end(g)) for g in mask_groups if m.start(g) >= 0)
            out: list[str] = []
            cursor = start
            for a, b in spans:
                replacement = masked(text, a, b)
                if replacement is not None and a >= cursor:
                    out.extend((text[cursor:a], replacement))
                    cursor = b
            out.append(text[cursor:end])
            return "".join(out)

        return handle_spans

    def handle(m: re.Match[str]) -> str:
        start, end = m.span()
        a, b = start, end
        for g in pre_groups:
            if (ge := m.end(g)) >= 0:
                a = ge
                break
        for g in post_groups:
            if (gs := m.start(g)) >= 0:
                b = gs
                break
        text = m.string
        replacement = masked(text, a, b)
        if replacement is None:
            return m.group()
        return f"{text[start:a]}{replacement}{text[b:end]}"

    return handle


class Scrubber:
    """Masks PII and secrets in text with one combined regex pass."""

    __slots__ = (
        "_always_bits",
        "_ascii_trigger_bits",
        "_ascii_triggers",
        "_bits_of",
        "_handlers",
        "_names",
        "_prefilters",
        "_prepared",
        "_searches",
        "_trigger_bits",
        "_trigger_search",
        "_triggers",
    )

    def __init__(
        self,
        rules: Sequence[ScrubRule],
        *,
        ip_addresses: IpAddressPolicy = "public",
        transforms: Mapping[str, Callable[[str, str], str]] | None = None,
    ) -> None:
        """Validate and compile ``rules``; at the same position earlier rules win.

        ``ip_addresses`` sets what the ``ip_address`` validator masks (public addresses by default;
        ``none`` drops those rules). ``transforms`` supplies the rewrite functions rules may name.
        """
        if ip_addresses not in IP_ADDRESS_POLICIES:
            msg = f"ip_addresses must be one of {', '.join(IP_ADDRESS_POLICIES)}, got {ip_addresses!r}"
            raise ScrubRulesError(msg)
        validators = {**VALIDATORS, "ip_address": ip_address_validator(ip_addresses)}
        if ip_addresses == "none":
            rules = [rule for rule in rules if rule.validator != "ip_address"]
        all_transforms = dict(transforms or {})
        missing = sorted({r.transform for r in rules if r.transform is not None} - set(all_transforms))
        if missing:
            msg = f"<rules>: no implementation given for transform(s) {', '.join(map(repr, missing))}"
            raise ScrubRulesError(msg)
        prepared = _check_rules(rules, "<rules>", validators)
        self._prepared = prepared
        self._names = tuple(p.rule.name for p in prepared)
        masks = tuple(dict.fromkeys(p.rule.replacement for p in prepared))
        self._handlers = tuple(_make_handler(p, masks, validators, all_transforms) for p in prepared)
        self._searches = tuple(re.compile(p.group_pattern).search for p in prepared)
        # Gates are inverted into "trigger -> rules it opens" and "prefilter ->
        # rules it opens" so each trigger is searched once per line and rules
        # sharing a prefilter share one regex search.
        trigger_bits: dict[str, int] = {}
        prefilters: dict[tuple[str, int], tuple[Callable[[str], object], int]] = {}
        always = 0
        for i, p in enumerate(prepared):
            bit = 1 << i
            for trigger in p.rule.triggers:
                key = trigger.lower()
                trigger_bits[key] = trigger_bits.get(key, 0) | bit
            if p.prefilter is not None:
                pf_key = (p.prefilter.pattern, p.prefilter.flags)
                search, bits = prefilters.get(pf_key, (p.prefilter.search, 0))
                prefilters[pf_key] = (search, bits | bit)
            elif not p.rule.triggers:
                always |= bit
        trigger_bits = _merge_superstrings(trigger_bits)
        self._triggers = tuple(trigger_bits)
        self._trigger_bits = tuple(trigger_bits.values())
        self._ascii_triggers = tuple(t for t in trigger_bits if t.isascii())
        self._ascii_trigger_bits = tuple(b for t, b in trigger_bits.items() if t.isascii())
        self._bits_of = trigger_bits
        alternation = "|".join(re.escape(t) for t in sorted(trigger_bits, key=len, reverse=True))
        self._trigger_search: Callable[[str], list[str]] = (
            re.compile(f"(?=({alternation}))").findall if trigger_bits else (lambda _text: [])
        )
        self._prefilters = tuple(prefilters.values())
        self._always_bits = always

    @classmethod
    def default(cls) -> Scrubber:
        """Return a shared scrubber built from the bundled default rules."""
        scrubber = _DEFAULTS.get(cls)
        if scrubber is None:
            # Compiling the rules takes milliseconds; do it once per process
            # (a Lambda cold start), not per invocation.
            from logpipe.scrub_rules import load_scrub_config

            scrubber = _DEFAULTS.setdefault(cls, load_scrub_config().text_scrubber())
        return scrubber

    @property
    def rule_names(self) -> tuple[str, ...]:
        """Names of the active rules, in priority order."""
        return self._names

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rules={list(self._names)!r})"

    def _candidate_mask(self, text: str) -> int:
        """Bit mask of the rules that may match ``text`` (0 for most clean lines)."""
        mask = self._always_bits
        if len(text) <= _SHORT_TEXT:
            # One regex over a short text costs less than a substring search per trigger; it looks
            # ahead at every position, so overlapping triggers are all found.
            found = self._trigger_search(text.lower())
            if found:
                bits_of = self._bits_of
                mask |= functools.reduce(operator.or_, (bits_of[trigger] for trigger in found), 0)
        else:
            # list(map(...)) runs every substring search in C without a Python loop; on clean
            # lines all of them have to run anyway. An ASCII text (a flag CPython keeps, no scan)
            # cannot contain the Korean triggers, so they are left out for it.
            triggers, trigger_bits = (
                (self._ascii_triggers, self._ascii_trigger_bits)
                if text.isascii()
                else (
                    self._triggers,
                    self._trigger_bits,
                )
            )
            hits = list(map(text.lower().__contains__, triggers))
            if True in hits:
                mask |= functools.reduce(operator.or_, itertools.compress(trigger_bits, hits), 0)
        for search, bits in self._prefilters:
            if bits & ~mask and search(text) is not None:
                mask |= bits
        return mask

    def _apply(self, text: str, mask: int) -> str:
        """Mask the matches of the rules in ``mask``: leftmost first, earlier rule on ties, no overlaps."""
        searches, handlers = self._searches, self._handlers
        pending: list[tuple[int, int, re.Match[str]]] = []
        index = 0
        while mask:
            if mask & 1 and (found := searches[index](text)) is not None:
                pending.append((found.start(), index, found))
            mask >>= 1
            index += 1
        if not pending:
            return text
        heapq.heapify(pending)
        out: list[str] = []
        done = 0
        while pending:
            start, index, found = heapq.heappop(pending)
            if start < done:
                # It overlaps a match taken before it: this rule looks again from where that one ended.
                again = searches[index](text, done)
                if again is not None:
                    heapq.heappush(pending, (again.start(), index, again))
                continue
            out.append(text[done:start])
            out.append(handlers[index](found))
            done = found.end()
            again = searches[index](text, done)
            if again is not None:
                heapq.heappush(pending, (again.start(), index, again))
        out.append(text[done:])
        return "".join(out)

    def scrub_collecting(self, text: str) -> tuple[str, list[tuple[str, str]]]:
        """Like :meth:`scrub`, and also return each masked original with its replacement."""
        found: list[tuple[str, str]] = []
        previous, _FOUND.spans = _FOUND.spans, found
        try:
            return self.scrub(text), found
        finally:
            _FOUND.spans = previous

    def scrub(self, text: str) -> str:
        """Return ``text`` with all rule matches masked; the same object if clean."""
        mask = self._candidate_mask(text)
        if not mask:
            return text
        out = self._apply(text, mask)
        return text if out == text else out


_DEFAULTS: dict[type[Scrubber], Scrubber] = {}
