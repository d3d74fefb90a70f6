r"""Single-pass PII and secret scrubbing for log text.

A :class:`Scrubber` joins the rules into one alternation regex (one named group
per rule) and masks all matches with a single ``re.sub`` whose callback picks
the replacement by ``match.lastgroup``. Cheap literal ``triggers`` and
``prefilter`` regexes are checked first: a line on which no rule can match
(most lines) costs those searches and is returned as the very same ``str``
object; otherwise only the rules whose gates fired are joined (compiled once
per such subset and cached) and applied in one pass.

Rules file schema (JSON, UTF-8)::

    {
      "version": 1,
      "rules": [
        {
          "name": "email",                       # identifier, unique, no "__"
          "pattern": "...",                      # Python regex, or a list of
                                                 # strings that are concatenated
          "replacement": "[REDACTED:email]",     # no double quote, backslash or
                                                 # control character (JSON-safe)
          "triggers": ["@"],                     # optional, literal substrings
          "prefilter": null,                     # optional, regex
          "ignore_case": false,                  # optional
          "validator": null,                     # optional: "luhn"
          "description": "..."                   # optional, ignored
        }
      ]
    }

Unknown keys, bad regexes, unsafe replacements, unknown validators and
duplicate or invalid names raise :class:`ScrubRulesError`. Point
:func:`load_scrub_rules` at your own file to drop, change or add rules; the
bundled defaults live in ``logpipe/rules/scrub.json``.

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
* Other named groups, named back-references ``(?P=name)`` and conditionals
  ``(?(name)...)`` are allowed (they are renamed per rule internally);
  numbered back-references and global inline flags such as ``(?i)`` are not,
  use scoped flags ``(?i:...)`` or ``ignore_case`` instead.
* A match whose masked part already starts with any rule's replacement is left
  alone, which keeps ``scrub`` idempotent. A whole match that is a bare JSON
  value (``{"card": 4111...}``, ``[4111..., ...]``) gets a quoted replacement,
  so JSON stays valid.
* ``validator`` runs on the masked part; if it rejects, the text is kept.

Known limits of the bundled rules: they find PII by shape or by key, so a name
in free text ("patient Hong Gildong arrived") is not found; resident
registration numbers need their dash; a key-dependent value that is a JSON
number, ``null`` or list (``"password": 1234``) is left alone because masking
it would need quotes the document does not have.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import operator
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

__all__ = [
    "ScrubRule",
    "ScrubRulesError",
    "Scrubber",
    "load_scrub_rules",
]

RULES_VERSION: Final = 1

_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_CONTEXT_GROUP_RE: Final = re.compile(r"(?P<kind>pre|post)(?:_[A-Za-z0-9_]+)?")
_TOP_KEYS: Final = frozenset({"version", "rules", "description"})
# Past this many distinct rule subsets the full regex is used; it is always
# correct, only slower, so the cache cannot grow without bound.
_MAX_COMBINED_CACHE: Final = 256
# A whole match that stands where a JSON value stands (a number such as a card
# number) must become a quoted string, or the document breaks. An unescaped
# quote right before ':' cannot occur inside a JSON string, so after '"key":'
# that is certain; after '[' or ',' the text is scanned to make sure the match
# is not inside a string.
_JSON_KEY_BEFORE: Final = re.compile(r'(?<!\\)"\s*:\s*\Z')
_JSON_ITEM_BEFORE: Final = re.compile(r"[\[,]\s*\Z")
_JSON_VALUE_AFTER: Final = re.compile(r"\s*(?:[,}\]]|\Z)")
_JSON_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_START: Final = re.compile(r"\s*[\[{]")


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


_LUHN_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _luhn_ok(text: str) -> bool:
    """Return True if the digits in ``text`` pass the Luhn checksum."""
    digits = [ord(c) - 48 for c in reversed(text) if "0" <= c <= "9"]
    if len(digits) < 12:
        return False
    return (sum(digits[0::2]) + sum(_LUHN_DOUBLED[d] for d in digits[1::2])) % 10 == 0


VALIDATORS: Final[Mapping[str, Callable[[str], bool]]] = {"luhn": _luhn_ok}


# --------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------


def _default_rules_text() -> tuple[str, str]:
    res = resources.files(__package__ or "logpipe").joinpath("rules", "scrub.json")
    return str(res), res.read_text(encoding="utf-8")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate key(s) {', '.join(map(repr, dupes))} in one object")
    return dict(pairs)


def load_scrub_rules(path: str | os.PathLike[str] | None = None) -> tuple[ScrubRule, ...]:
    """Load and validate rules from ``path``; ``None`` means the bundled defaults."""
    source = "<bundled logpipe/rules/scrub.json>" if path is None else os.fspath(path)
    try:
        if path is None:
            source, raw = _default_rules_text()
        else:
            raw = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScrubRulesError(f"{source}: cannot read rules file: {exc}") from exc
    try:
        doc = json.loads(raw, object_pairs_hook=_reject_duplicate_keys)
    except ValueError as exc:  # JSONDecodeError is a ValueError too
        raise ScrubRulesError(f"{source}: not valid JSON: {exc}") from exc
    rules = _parse_document(doc, source)
    _check_rules(rules, source)
    return rules


def _parse_document(doc: object, source: str) -> tuple[ScrubRule, ...]:
    if not isinstance(doc, dict):
        raise ScrubRulesError(f"{source}: top level must be a JSON object")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ScrubRulesError(f"{source}: unknown top-level key(s): {', '.join(unknown)}")
    version = doc.get("version")
    if version != RULES_VERSION or isinstance(version, bool):
        raise ScrubRulesError(f"{source}: 'version' must be {RULES_VERSION}, got {version!r}")
    items = doc.get("rules")
    if not isinstance(items, list):
        raise ScrubRulesError(f"{source}: 'rules' must be a list")
    return tuple(_parse_rule(item, source, index) for index, item in enumerate(items))


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_opt_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


# key -> (type check, expected type for the message)
_FIELD_CHECKS: Final[Mapping[str, tuple[Callable[[object], bool], str]]] = {
    "name": (_is_str, "a string"),
    "pattern": (_is_str, "a string or a non-empty list of strings"),
    "replacement": (_is_str, "a string"),
    "triggers": (_is_str_list, "a list of strings"),
    "prefilter": (_is_opt_str, "a string or null"),
    "ignore_case": (_is_bool, "true or false"),
    "validator": (_is_opt_str, "a string or null"),
    "description": (_is_opt_str, "a string or null"),
}
_REQUIRED_KEYS: Final = ("name", "pattern", "replacement")


def _parse_rule(item: object, source: str, index: int) -> ScrubRule:
    where = f"{source}: rule #{index}"
    if not isinstance(item, dict):
        raise ScrubRulesError(f"{where}: must be a JSON object")
    if isinstance(item.get("name"), str):
        where = f"{source}: rule {item['name']!r} (#{index})"
    unknown = sorted(set(item) - set(_FIELD_CHECKS))
    if unknown:
        raise ScrubRulesError(f"{where}: unknown key(s): {', '.join(unknown)}")
    missing = [key for key in _REQUIRED_KEYS if key not in item]
    if missing:
        raise ScrubRulesError(f"{where}: missing required key(s): {', '.join(missing)}")
    fields = dict(item)
    if _is_str_list(fields["pattern"]) and fields["pattern"]:
        fields["pattern"] = "".join(fields["pattern"])
    for key, value in fields.items():
        check, expected = _FIELD_CHECKS[key]
        if not check(value):
            raise ScrubRulesError(f"{where}: {key!r} must be {expected}")
    fields.pop("description", None)
    fields["triggers"] = tuple(fields.get("triggers", ()))
    return ScrubRule(**fields)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A validated rule with its regex rewritten for the combined pattern."""

    rule: ScrubRule
    group_pattern: str
    pre_groups: tuple[str, ...]
    post_groups: tuple[str, ...]
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


def _field_problems(rule: ScrubRule) -> Iterator[str]:
    """Yield what is wrong with the plain fields of ``rule``; the first problem matters."""
    types_ok = (
        _is_str(rule.pattern)
        and _is_str(rule.replacement)
        and isinstance(rule.triggers, tuple | list)
        and all(isinstance(t, str) for t in rule.triggers)
        and _is_opt_str(rule.prefilter)
        and _is_bool(rule.ignore_case)
        and _is_opt_str(rule.validator)
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
    if rule.validator is not None and rule.validator not in VALIDATORS:
        yield f"unknown validator {rule.validator!r}; known: {', '.join(sorted(VALIDATORS))}"
    if not all(rule.triggers):
        yield "triggers must be non-empty strings"


def _compile(pattern: str, flags: int, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ValueError(f"bad {what}: {exc}") from exc


def _prepare(rule: ScrubRule, source: str) -> _Prepared:
    """Validate one rule and rewrite its pattern; raise ScrubRulesError on problems."""
    problem = next(_field_problems(rule), None)
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
    pre: list[str] = []
    post: list[str] = []
    for group in own.groupindex:
        ctx = _CONTEXT_GROUP_RE.fullmatch(group)
        if ctx is not None:
            (pre if ctx["kind"] == "pre" else post).append(f"{rule.name}__{group}")
    prefilter = None if rule.prefilter is None else _compile(rule.prefilter, flags, "prefilter")
    return _Prepared(rule, group_pattern, tuple(pre), tuple(post), prefilter)


def _check_rules(rules: Sequence[ScrubRule], source: str) -> tuple[_Prepared, ...]:
    seen: set[str] = set()
    prepared = []
    for rule in rules:
        if rule.name in seen:
            raise ScrubRulesError(f"{source}: rule {rule.name!r}: duplicate rule name")
        seen.add(rule.name)
        prepared.append(_prepare(rule, source))
    return tuple(prepared)


# --------------------------------------------------------------------------
# Scrubbing
# --------------------------------------------------------------------------

_Handler = Callable[["re.Match[str]"], str]
_Sub = Callable[[_Handler, str], str]


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


def _make_handler(p: _Prepared, masks: tuple[str, ...]) -> _Handler:
    """Build the per-rule replacement callback used by the combined ``re.sub``.

    ``masks`` holds every rule's replacement: a span that already starts with
    one was masked by an earlier pass (possibly by another rule) and is kept.
    """
    repl = p.rule.replacement
    quoted = f'"{repl}"'
    pre_groups, post_groups = p.pre_groups, p.post_groups
    validator = VALIDATORS[p.rule.validator] if p.rule.validator else None

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
        if a >= b or text.startswith(masks, a):
            return m.group()
        if validator is not None and not validator(text[a:b]):
            return m.group()
        if a == start and b == end and _is_bare_json_value(text, a, b):
            return quoted
        return f"{text[start:a]}{repl}{text[b:end]}"

    return handle


class Scrubber:
    """Masks PII and secrets in text with one combined regex pass."""

    __slots__ = (
        "_always_bits",
        "_combined",
        "_dispatch",
        "_full_mask",
        "_names",
        "_prefilters",
        "_prepared",
        "_trigger_bits",
        "_triggers",
    )

    def __init__(self, rules: Sequence[ScrubRule]) -> None:
        """Validate and compile ``rules``; at the same position earlier rules win."""
        prepared = _check_rules(rules, "<rules>")
        self._prepared = prepared
        self._names = tuple(p.rule.name for p in prepared)
        masks = tuple(dict.fromkeys(p.rule.replacement for p in prepared))
        handlers = {p.rule.name: _make_handler(p, masks) for p in prepared}

        def dispatch(m: re.Match[str]) -> str:
            return handlers[m.lastgroup](m)  # type: ignore[index]

        self._dispatch: _Handler = dispatch
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
        self._triggers = tuple(trigger_bits)
        self._trigger_bits = tuple(trigger_bits.values())
        self._prefilters = tuple(prefilters.values())
        self._always_bits = always
        self._full_mask = (1 << len(prepared)) - 1
        self._combined: dict[int, _Sub] = {}

    @classmethod
    def default(cls) -> Scrubber:
        """Return a shared scrubber built from the bundled default rules."""
        scrubber = _DEFAULTS.get(cls)
        if scrubber is None:
            # Compiling the rules takes milliseconds; do it once per process
            # (a Lambda cold start), not per invocation.
            scrubber = _DEFAULTS.setdefault(cls, cls(load_scrub_rules()))
        return scrubber

    @property
    def rule_names(self) -> tuple[str, ...]:
        """Names of the active rules, in priority order."""
        return self._names

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rules={list(self._names)!r})"

    def _candidate_mask(self, text: str) -> int:
        """Bit mask of the rules that may match ``text`` (0 for most clean lines)."""
        # list(map(...)) runs every substring search in C without a Python
        # loop; on clean lines all of them have to run anyway.
        hits = list(map(text.lower().__contains__, self._triggers))
        mask = self._always_bits
        if True in hits:
            mask |= functools.reduce(operator.or_, itertools.compress(self._trigger_bits, hits), 0)
        for search, bits in self._prefilters:
            if bits & ~mask and search(text) is not None:
                mask |= bits
        return mask

    def _sub_for(self, mask: int) -> _Sub:
        sub = self._combined.get(mask)
        if sub is None:
            if len(self._combined) >= _MAX_COMBINED_CACHE:
                mask = self._full_mask
                sub = self._combined.get(mask)
            if sub is None:
                pattern = "|".join(p.group_pattern for i, p in enumerate(self._prepared) if mask >> i & 1)
                sub = re.compile(pattern).sub
                self._combined[mask] = sub
        return sub

    def scrub(self, text: str) -> str:
        """Return ``text`` with all rule matches masked; the same object if clean."""
        mask = self._candidate_mask(text)
        if not mask:
            return text
        out = self._sub_for(mask)(self._dispatch, text)
        return text if out == text else out

    def scrub_value(self, value: object) -> object:
        """Recursively scrub strings in dicts, lists and tuples; same object if clean.

        A dict entry whose key could be sensitive (a trigger or prefilter fires
        on it, e.g. ``password`` or ``PatientName``) is scrubbed as the JSON
        text ``{"key": value}`` so that key-dependent rules still see the key.
        Keys are kept as they are; changed containers are new ``dict`` /
        ``list`` / ``tuple`` objects, unchanged ones are returned as given.
        """
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return self._scrub_dict(value)
        if isinstance(value, list | tuple):
            items = [self.scrub_value(v) for v in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return items if isinstance(value, list) else tuple(items)
        return value

    def _scrub_dict(self, value: dict[Any, Any]) -> object:
        out: dict[Any, Any] = {}
        changed = False
        for key, item in value.items():
            new = self._scrub_keyed(key, item) if isinstance(key, str) else self.scrub_value(item)
            changed = changed or new is not item
            out[key] = new
        return out if changed else value

    def _scrub_keyed(self, key: str, item: object) -> object:
        if self._candidate_mask(key):
            try:
                doc = json.dumps({key: item}, ensure_ascii=False)
            except (TypeError, ValueError):
                doc = None  # not JSON-serialisable: strings below are still scrubbed
            if doc is not None and (scrubbed := self.scrub(doc)) is not doc:
                # The key itself may have been masked, so take the only value.
                (item,) = json.loads(scrubbed).values()
        return self.scrub_value(item)


_DEFAULTS: dict[type[Scrubber], Scrubber] = {}
