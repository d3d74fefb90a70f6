"""Single-pass PII and secret scrubbing for log text.

A :class:`Scrubber` compiles every rule into one alternation regex (one named
group per rule) and masks all matches with a single ``re.sub``. Cheap literal
``triggers`` and ``prefilter`` regexes are checked first so that the common
case, a line with no PII, costs a few substring searches and returns the very
same ``str`` object.

Rules file schema (JSON, UTF-8)::

    {
      "version": 1,
      "rules": [
        {
          "name": "email",                       # identifier, unique, no "__"
          "pattern": "...",                      # Python regex, or a list of
                                                 # strings that are concatenated
          "replacement": "[REDACTED:email]",     # no '"', no '\\', no control chars
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
  Triggers of an ``ignore_case`` rule are compared with the lower-cased text,
  other triggers case-sensitively. Triggers and prefilter must be necessary
  conditions for a match, otherwise matches are silently missed.
* Context: named groups ``pre`` / ``pre_<x>`` and ``post`` / ``post_<x>`` are
  kept verbatim; only the text between the participating ``pre*`` group and
  the participating ``post*`` group is replaced. Several alternatives of one
  pattern may therefore use ``pre_a`` / ``pre_b`` and so on.
* Other named groups, named back-references ``(?P=name)`` and conditionals
  ``(?(name)...)`` are allowed (they are renamed per rule internally);
  numbered back-references and global inline flags such as ``(?i)`` are not,
  use scoped flags ``(?i:...)`` or ``ignore_case`` instead.
* A match whose masked part already starts with any rule's replacement is left
  alone, which keeps ``scrub`` idempotent. A match whose masked part is a bare JSON
  value (``"key": 4111...``) gets a quoted replacement so JSON stays valid.
* ``validator`` runs on the masked part; if it rejects, the text is kept.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
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
_RULE_KEYS: Final = frozenset(
    {
        "name",
        "pattern",
        "replacement",
        "triggers",
        "prefilter",
        "ignore_case",
        "validator",
        "description",
    }
)
_TOP_KEYS: Final = frozenset({"version", "rules", "description"})
# Past this many distinct rule subsets the full regex is used; it is always
# correct, only slower, so the cache cannot grow without bound.
_MAX_COMBINED_CACHE: Final = 256
# An unescaped quote right before ':' cannot occur inside a JSON string, so a
# match after it is a bare JSON value (number, literal) and needs quotes.
_JSON_KEY_BEFORE: Final = re.compile(r'(?<!\\)"[ \t]*:[ \t]*\Z')
_JSON_VALUE_AFTER: Final = re.compile(r"[ \t\r\n]*(?:[,}\]]|\Z)")


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


def _luhn_ok(text: str) -> bool:
    """Return True if the digits in ``text`` pass the Luhn checksum."""
    digits = [ord(c) - 48 for c in text if "0" <= c <= "9"]
    if len(digits) < 12:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


VALIDATORS: Final[Mapping[str, Callable[[str], bool]]] = {"luhn": _luhn_ok}


# --------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------


def _default_rules_text() -> tuple[str, str]:
    res = resources.files(__package__ or "logpipe").joinpath("rules", "scrub.json")
    return str(res), res.read_text(encoding="utf-8")


def load_scrub_rules(path: str | os.PathLike[str] | None = None) -> tuple[ScrubRule, ...]:
    """Load and validate rules from ``path``; ``None`` means the bundled defaults."""
    try:
        if path is None:
            source, raw = _default_rules_text()
        else:
            source = os.fspath(path)
            with open(source, encoding="utf-8") as fh:
                raw = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScrubRulesError(f"{path}: cannot read rules file: {exc}") from exc
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
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


def _parse_rule(item: object, source: str, index: int) -> ScrubRule:
    where = f"{source}: rule #{index}"
    if not isinstance(item, dict):
        raise ScrubRulesError(f"{where}: must be a JSON object")
    name = item.get("name")
    if isinstance(name, str):
        where = f"{source}: rule {name!r} (#{index})"

    def fail(problem: str) -> ScrubRulesError:
        return ScrubRulesError(f"{where}: {problem}")

    unknown = sorted(set(item) - _RULE_KEYS)
    if unknown:
        raise fail(f"unknown key(s): {', '.join(unknown)}")
    for key in ("name", "pattern", "replacement"):
        if key not in item:
            raise fail(f"missing required key {key!r}")
    if not isinstance(name, str):
        raise fail("'name' must be a string")
    pattern = item["pattern"]
    if isinstance(pattern, list) and pattern and all(isinstance(p, str) for p in pattern):
        pattern = "".join(pattern)
    if not isinstance(pattern, str):
        raise fail("'pattern' must be a string or a non-empty list of strings")
    replacement = item["replacement"]
    if not isinstance(replacement, str):
        raise fail("'replacement' must be a string")
    triggers = item.get("triggers", [])
    if not isinstance(triggers, list) or not all(isinstance(t, str) for t in triggers):
        raise fail("'triggers' must be a list of strings")
    prefilter = item.get("prefilter")
    if prefilter is not None and not isinstance(prefilter, str):
        raise fail("'prefilter' must be a string or null")
    ignore_case = item.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        raise fail("'ignore_case' must be true or false")
    validator = item.get("validator")
    if validator is not None and not isinstance(validator, str):
        raise fail("'validator' must be a string or null")
    description = item.get("description")
    if description is not None and not isinstance(description, str):
        raise fail("'description' must be a string")
    return ScrubRule(
        name=name,
        pattern=pattern,
        replacement=replacement,
        triggers=tuple(triggers),
        prefilter=prefilter,
        ignore_case=ignore_case,
        validator=validator,
    )


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A validated rule with its regex rewritten for the combined pattern."""

    rule: ScrubRule
    group_pattern: str
    pre_groups: tuple[str, ...]
    post_groups: tuple[str, ...]
    prefilter: re.Pattern[str] | None


def _namespace_groups(pattern: str, prefix: str) -> str:
    """Prefix every group name, back-reference and conditional in ``pattern``.

    Python forbids duplicate group names in one regex, so each rule's groups
    get a ``<rule>__`` prefix before the rules are joined. Numbered references
    would point at the wrong group once rules are combined and are rejected.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt in "123456789" and nxt:
                raise ValueError("numbered back-references are not supported, use (?P=name)")
            out.append(pattern[i : i + 2])
            i += 2
        elif c == "[":
            j = i + 1
            if pattern[j : j + 1] == "^":
                j += 1
            if pattern[j : j + 1] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append(pattern[i : j + 1])
            i = j + 1
        elif pattern.startswith("(?#", i):
            j = pattern.find(")", i)
            j = n if j < 0 else j + 1
            out.append(pattern[i:j])
            i = j
        elif pattern.startswith(("(?P<", "(?P=", "(?("), i):
            head = 4 if pattern[i + 2] == "P" else 3
            close = ">" if pattern[i + 3] == "<" else ")"
            j = pattern.find(close, i + head)
            if j < 0:
                raise ValueError(f"unterminated group reference at position {i}")
            ref = pattern[i + head : j]
            if not ref.isidentifier():
                raise ValueError("numbered group references are not supported, use names")
            out.append(f"{pattern[i : i + head]}{prefix}{ref}{close}")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _prepare(rule: ScrubRule, source: str) -> _Prepared:
    """Validate one rule and rewrite its pattern; raise ScrubRulesError on problems."""

    def fail(problem: str) -> ScrubRulesError:
        return ScrubRulesError(f"{source}: rule {rule.name!r}: {problem}")

    if not isinstance(rule.name, str) or not _NAME_RE.fullmatch(rule.name) or "__" in rule.name:
        raise fail(
            "name must be an identifier of letters, digits and single underscores, "
            "starting with a letter, at most 64 characters"
        )
    if not rule.replacement:
        raise fail("replacement must not be empty")
    if any(c in '"\\' or ord(c) < 0x20 or c == "\x7f" for c in rule.replacement):
        raise fail(
            f"replacement {rule.replacement!r} is not JSON-safe: "
            "no double quotes, backslashes or control characters"
        )
    if rule.validator is not None and rule.validator not in VALIDATORS:
        raise fail(f"unknown validator {rule.validator!r}; known: {', '.join(sorted(VALIDATORS))}")
    if any(not t for t in rule.triggers):
        raise fail("triggers must be non-empty strings")
    flags = re.IGNORECASE if rule.ignore_case else 0
    try:
        own = re.compile(rule.pattern, flags)
    except re.error as exc:
        raise fail(f"bad pattern: {exc}") from exc
    if own.search("") is not None:
        raise fail("pattern matches the empty string")
    try:
        rewritten = _namespace_groups(rule.pattern, f"{rule.name}__")
    except ValueError as exc:
        raise fail(f"bad pattern: {exc}") from exc
    inner = f"(?i:{rewritten})" if rule.ignore_case else f"(?:{rewritten})"
    group_pattern = f"(?P<{rule.name}>{inner})"
    try:
        re.compile(group_pattern)
    except re.error as exc:
        raise fail(f"pattern cannot be combined with other rules: {exc}") from exc
    pre: list[str] = []
    post: list[str] = []
    for group in own.groupindex:
        ctx = _CONTEXT_GROUP_RE.fullmatch(group)
        if ctx is not None:
            (pre if ctx["kind"] == "pre" else post).append(f"{rule.name}__{group}")
    prefilter = None
    if rule.prefilter is not None:
        try:
            prefilter = re.compile(rule.prefilter, flags)
        except re.error as exc:
            raise fail(f"bad prefilter: {exc}") from exc
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


def _make_handler(p: _Prepared, masks: tuple[str, ...]) -> _Handler:
    """Build the per-rule replacement callback used by the combined ``re.sub``.

    ``masks`` holds every rule's replacement: a span that already starts with
    one was masked by an earlier pass (possibly by another rule) and is kept.
    """
    repl = p.rule.replacement
    quoted = f'"{repl}"'
    pre_groups, post_groups = p.pre_groups, p.post_groups
    validator = VALIDATORS[p.rule.validator] if p.rule.validator else None
    key_before = _JSON_KEY_BEFORE.search
    value_after = _JSON_VALUE_AFTER.match

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
        if a == start and b == end and key_before(text, max(0, a - 8), a) and value_after(text, b):
            return quoted
        return f"{text[start:a]}{repl}{text[b:end]}"

    return handle


class Scrubber:
    """Masks PII and secrets in text with one combined regex pass."""

    __slots__ = (
        "_rules",
        "_prepared",
        "_handlers",
        "_names",
        "_always",
        "_cs_triggers",
        "_ci_triggers",
        "_prefilters",
        "_gates",
        "_full_mask",
        "_combined",
        "_dispatch",
    )

    def __init__(self, rules: Sequence[ScrubRule]) -> None:
        """Validate and compile ``rules`` (order matters: earlier rules win ties)."""
        prepared = _check_rules(rules, "<rules>")
        self._rules = tuple(rules)
        self._prepared = prepared
        self._names = tuple(p.rule.name for p in prepared)
        masks = tuple(dict.fromkeys(p.rule.replacement for p in prepared))
        self._handlers = {p.rule.name: _make_handler(p, masks) for p in prepared}
        handlers = self._handlers

        def dispatch(m: re.Match[str]) -> str:
            return handlers[m.lastgroup](m)  # type: ignore[index]

        self._dispatch: _Handler = dispatch
        cs: dict[str, None] = {}
        ci: dict[str, None] = {}
        prefilters: dict[str, Callable[[str], object]] = {}
        gates: list[tuple[int, tuple[str, ...], bool, Callable[[str], object] | None]] = []
        always = False
        for bit, p in ((1 << i, p) for i, p in enumerate(prepared)):
            rule = p.rule
            triggers = tuple(t.lower() for t in rule.triggers) if rule.ignore_case else rule.triggers
            (ci if rule.ignore_case else cs).update(dict.fromkeys(triggers))
            search = p.prefilter.search if p.prefilter is not None else None
            if p.prefilter is not None and search is not None:
                prefilters.setdefault(f"{p.prefilter.flags}:{p.prefilter.pattern}", search)
            if not triggers and search is None:
                always = True
            gates.append((bit, triggers, rule.ignore_case, search))
        # Single-character triggers use memchr and are nearly free; trying them
        # first lets lines with PII leave the clean path early.
        self._cs_triggers = tuple(sorted(cs, key=len))
        self._ci_triggers = tuple(sorted(ci, key=len))
        self._prefilters = tuple(prefilters.values())
        self._gates = tuple(gates)
        self._always = always
        self._full_mask = (1 << len(prepared)) - 1
        self._combined: dict[int, _Sub] = {}

    @classmethod
    def default(cls) -> Scrubber:
        """Return a shared scrubber built from the bundled default rules."""
        return _default_scrubber(cls)

    @property
    def rule_names(self) -> tuple[str, ...]:
        """Names of the active rules, in priority order."""
        return self._names

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rules={list(self._names)!r})"

    def _may_apply(self, text: str) -> bool:
        """Fast check: could any rule match ``text`` at all?"""
        if self._always or any(map(text.__contains__, self._cs_triggers)):
            return True
        if self._ci_triggers and any(map(text.lower().__contains__, self._ci_triggers)):
            return True
        for search in self._prefilters:
            if search(text) is not None:
                return True
        return False

    def _candidate_mask(self, text: str) -> int:
        mask = 0
        lowered: str | None = None
        for bit, triggers, ignore_case, search in self._gates:
            if triggers:
                hay = text
                if ignore_case:
                    if lowered is None:
                        lowered = text.lower()
                    hay = lowered
                if any(map(hay.__contains__, triggers)):
                    mask |= bit
                    continue
            if search is not None:
                if search(text) is not None:
                    mask |= bit
            elif not triggers:
                mask |= bit
        return mask

    def _sub_for(self, mask: int) -> _Sub:
        sub = self._combined.get(mask)
        if sub is None:
            if len(self._combined) >= _MAX_COMBINED_CACHE:
                mask = self._full_mask
                sub = self._combined.get(mask)
            if sub is None:
                alternation = "|".join(
                    p.group_pattern for i, p in enumerate(self._prepared) if mask >> i & 1
                )
                sub = re.compile(alternation).sub
                self._combined[mask] = sub
        return sub

    def scrub(self, text: str) -> str:
        """Return ``text`` with all rule matches masked; the same object if clean."""
        if not self._may_apply(text):
            return text
        mask = self._candidate_mask(text)
        if not mask:
            return text
        out = self._sub_for(mask)(self._dispatch, text)
        return text if out == text else out

    def scrub_value(self, value: object) -> object:
        """Recursively scrub strings in dicts, lists and tuples; same object if clean.

        A dict entry whose key looks sensitive (e.g. ``password``, ``PatientName``)
        is scrubbed as the JSON text ``{"key": value}`` so that key-dependent
        rules still see the key.
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
        if self._may_apply(key):
            try:
                doc = json.dumps({key: item}, ensure_ascii=False)
            except (TypeError, ValueError):
                pass
            else:
                scrubbed = self.scrub(doc)
                if scrubbed is not doc:
                    item = json.loads(scrubbed)[key]
        return self.scrub_value(item)


@functools.cache
def _default_scrubber(cls: type[Scrubber]) -> Scrubber:
    return cls(load_scrub_rules())
