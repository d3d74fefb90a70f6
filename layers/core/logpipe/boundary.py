r"""The PHI boundary: everything that leaves the function is scrubbed here, where it is serialized.

Nothing else in the pipeline scrubs. A record is read unscrubbed (parsing, classification, metrics
and Sentry grouping need it whole); what leaves AWS or is parked passes through one of:

* :meth:`Boundary.sentry_event` -- the Sentry payload as built: message, exception values and
  frames, breadcrumbs (message and data), contexts, extra, user, fingerprint; tags are an
  allow-list (:data:`SAFE_TAG_KEYS` with bounded, id-shaped values), anything else moves, scrubbed,
  into the ``log_tags`` context;
* :meth:`Boundary.generation` -- what becomes OTLP span attributes: name, model, input, output,
  metadata, user and session (prompts kept only for services listed in
  ``LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES``);
* :meth:`Boundary.parked` -- every parked body, whatever parked it;
* :meth:`Boundary.log_filter` -- the pipeline's own log lines (message, extra fields, tracebacks).

The walk is structure-aware. Dicts, lists and tuples are walked; numbers are checked as text (a
card number or a resident registration number logged as a JSON number); a string that holds JSON
is decoded, walked and re-encoded; ``\uXXXX`` escapes are decoded before the text rules look. A key
of a key group (``PatientName``, ``00100010``, ``(0010,0010)``, ``PID-5``, ``password``, a FHIR
``Patient``'s ``name``...) masks its whole value, whatever its type. Every string then goes through
the text rules (:class:`logpipe.scrub.Scrubber`). Keys are scrubbed as text too. Whatever was masked
in a unit (a payload, or a JSON document inside a string) is then masked wherever else it occurs in
that unit, labelled or not: the patient id under ``PatientID`` also in "bad id P-1" in a traceback,
the address words a key=value parser moved into the message.

Fail closed: a value whose scrubbing raises, is nested deeper than :data:`MAX_DEPTH`, is longer than
:data:`MAX_TEXT_CHARS`, is of a type the walk does not know, or comes after the call's time budget
is spent, leaves as a redaction marker, never raw, and is counted (``scrub_failures``, published as
the ``ScrubFailures`` health metric).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

import orjson

from logpipe.records import LogFormat
from logpipe.scrub import IpAddressPolicy
from logpipe.scrub_rules import (
    FhirRules,
    Hl7Rules,
    KeyGroup,
    ScrubConfig,
    hl7_field_of_key,
    load_scrub_config,
    normalize_key,
)

if TYPE_CHECKING:
    from logpipe.langfuse.mapping import Generation
    from logpipe.parking import ParkedItem
    from logpipe.records import LogRecord

FAILED_MARKER: Final = "[REDACTED:scrub_failed]"
OVER_BUDGET_MARKER: Final = "[REDACTED:scrub_budget]"
UNSUPPORTED_MARKER: Final = "[REDACTED:unsupported_value]"
FAILURE_COUNTER: Final = "scrub_failures"
# Deeper than any log document we have seen (Sentry events nest 6 levels); a deeper value is hostile.
MAX_DEPTH: Final = 64
# Longer than anything a sink accepts (a CloudWatch event is at most 1 MB); the regexes are linear,
# so this also bounds the time one string can take.
MAX_TEXT_CHARS: Final = 4 * 1024 * 1024
# Per payload (one Sentry event, one generation, one parked body, one log line).
DEFAULT_BUDGET_SECONDS: Final = 2.0
# Strings up to this long are memoised per container: frames, categories and logger names repeat.
_MEMO_CHARS: Final = 512
_MEMO_ENTRIES: Final = 50_000
# Integers below this many digits cannot be any identifier a rule knows (the shortest, a landline
# without its leading zero, has 9 digits), so they are not turned into text.
_SMALL_INT: Final = 10**8
_UNICODE_ESCAPE: Final = re.compile(r"\\u([0-9a-fA-F]{4})")
_SURROGATES: Final = range(0xD800, 0xE000)

# Sentry tags are indexed and shown everywhere: only these keys, and only id-shaped values.
SAFE_TAG_KEYS: Final = frozenset(
    {"service", "environment", "request_id", "log_group", "log_stream", "region", "account", "logpipe.format"}
)
_SAFE_TAG_VALUE: Final = re.compile(r"[A-Za-z0-9/][A-Za-z0-9._:/#$\[\]+=-]{0,199}")
# Formats whose raw text is the JSON document the fields were read from.
_STRUCTURED_FORMATS: Final = frozenset(
    {
        LogFormat.JSON,
        LogFormat.POWERTOOLS,
        LogFormat.KEYCLOAK_JSON,
        LogFormat.LAMBDA_ERROR_JSON,
        LogFormat.LAMBDA_PLATFORM,
    }
)
# Event fields the pipeline derives itself (ids, times, enums): nothing from the log reaches them.
_SENTRY_KEPT: Final = frozenset({"event_id", "timestamp", "level", "platform", "sdk"})
_GENERATION_TEXT_FIELDS: Final = ("name", "model", "trace_seed", "user_id", "session_id", "release", "status_message")
_PROMPT_FIELDS: Final = ("input", "output")
# logging.LogRecord's own attributes: everything else on a record came in through ``extra``.
_LOG_RECORD_ATTRS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


Found = list[tuple[str, str]]


class _Walk:
    """State of one top-level call: its deadline, the long strings already scrubbed, what was masked."""

    __slots__ = ("deadline", "found", "long_strings")

    def __init__(self, budget: float) -> None:
        self.deadline = time.monotonic() + budget
        # id -> (the string, its result, what it masked): a payload often holds one long text twice (a
        # traceback as the exception and as a field). Keeping the string keeps its id from being reused.
        self.long_strings: dict[int, tuple[str, object, tuple[tuple[str, str], ...]]] = {}
        # (original, replacement) of everything masked in the unit being walked (see Boundary._walk).
        self.found: Found | None = None


def _unicode_unescaped(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        code = int(match.group(1), 16)
        return match.group() if code in _SURROGATES else chr(code)

    return _UNICODE_ESCAPE.sub(replace, text)


class KeyMatcher:
    """Which key group (if any) a dict key belongs to, alone or under its parent key; memoised."""

    def __init__(self, groups: tuple[KeyGroup, ...], hl7: Hl7Rules | None) -> None:
        """Index the groups' keys by their normal form and compile their key patterns."""
        self._exact: dict[str, KeyGroup] = {}
        for group in groups:
            for spelling in (*group.keys, *group.multiword_keys):
                self._exact.setdefault(normalize_key(spelling), group)
        self._patterns = tuple(
            (re.compile(pattern, re.IGNORECASE), group) for group in groups for pattern in group.key_patterns
        )
        self._hl7 = hl7
        self._hl7_group = None if hl7 is None else KeyGroup("hl7_field", hl7.replacement, keys=("-",))
        self._memo: dict[tuple[str, str | None], KeyGroup | None] = {}

    def group_for(self, key: str, parent: str | None) -> KeyGroup | None:
        """The group whose values ``key`` (nested under ``parent``) holds, or None."""
        memo_key = (key, parent)
        try:
            return self._memo[memo_key]
        except KeyError:
            pass
        group = self._find(key, parent)
        if len(self._memo) >= _MEMO_ENTRIES:
            self._memo.clear()
        self._memo[memo_key] = group
        return group

    def _find(self, key: str, parent: str | None) -> KeyGroup | None:
        normal = normalize_key(key)
        group = self._exact.get(normal)
        if group is None and parent:
            group = self._exact.get(normalize_key(parent) + normal)
        if group is not None:
            return group
        if self._hl7 is not None and self._hl7_group is not None:
            field = hl7_field_of_key(key)
            if field is not None and self._hl7.masks_field(*field):
                return self._hl7_group
        for pattern, candidate in self._patterns:
            if pattern.search(key):
                return candidate
        return None


def _maskable(value: object, group: KeyGroup) -> bool:
    """Whether a value under a sensitive key carries anything (flags, nulls and empties carry nothing)."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return group.numbers
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


class Boundary:
    """Scrubs everything that leaves: Sentry events, span contents, parked bodies, the pipeline's own logs."""

    def __init__(
        self,
        config: ScrubConfig,
        *,
        ip_addresses: IpAddressPolicy = "public",
        prompt_services: frozenset[str] = frozenset(),
        budget_seconds: float = DEFAULT_BUDGET_SECONDS,
        enabled: bool = True,
    ) -> None:
        """Compile the rules; nothing else happens until the first value."""
        self.enabled = enabled
        self.text = config.text_scrubber(ip_addresses)
        self.keys = KeyMatcher(config.key_groups, config.hl7)
        self._fhir: FhirRules | None = config.fhir
        self.prompt_services = prompt_services
        self.budget_seconds = budget_seconds
        self.counters: Counter[str] = Counter()
        self._clean: set[str] = set()
        self._dirty: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}

    @classmethod
    def default(cls) -> Boundary:
        """A shared boundary with the bundled rules and default settings."""
        boundary = _DEFAULT.get(cls)
        if boundary is None:
            boundary = _DEFAULT.setdefault(cls, cls(load_scrub_config()))
        return boundary

    @classmethod
    def disabled(cls) -> Boundary:
        """A boundary that lets everything through unchanged (``LOGPIPE_SCRUB_ENABLED=false``, unit tests)."""
        return cls(load_scrub_config(), enabled=False)

    def clear_memo(self) -> None:
        """Forget which strings were seen (benchmarks; memory is bounded without it)."""
        self._clean.clear()
        self._dirty.clear()

    def take_counters(self) -> Counter[str]:
        """The counters since the last call (fail-closed replacements), and reset them."""
        counters, self.counters = self.counters, Counter()
        return counters

    # -- public entry points ------------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        """One string through the boundary (JSON inside it included); the same object when clean."""
        if not self.enabled:
            return text
        result = self._walk(text, None, 0, _Walk(self.budget_seconds))
        return result if isinstance(result, str) else FAILED_MARKER

    def scrub_value(self, value: object) -> object:
        """Any JSON-like value through the boundary; unchanged containers come back as the same objects."""
        if not self.enabled:
            return value
        return self._walk(value, None, 0, _Walk(self.budget_seconds))

    def sentry_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A Sentry event as it may leave: every field scrubbed, tags reduced to the allow-list."""
        if not self.enabled:
            return dict(event)
        tags = event.get("tags")
        tags = tags if isinstance(tags, Mapping) else {}
        body = {key: value for key, value in event.items() if key not in _SENTRY_KEPT and key != "tags"}
        # One unit, so what is masked in one part (a field) is masked in every other (the exception).
        walked = self._walk({"body": body, "tags": dict(tags)}, None, 0, _Walk(self.budget_seconds))
        if not isinstance(walked, dict) or not isinstance(walked.get("body"), dict):
            self.counters[FAILURE_COUNTER] += 1
            return {key: value for key, value in event.items() if key in _SENTRY_KEPT} | {"message": FAILED_MARKER}
        new_body: dict[str, Any] = walked["body"]
        walked_tags = walked.get("tags")
        new_tags: dict[Any, Any] = walked_tags if isinstance(walked_tags, dict) else {}
        safe: dict[str, str] = {}
        moved: dict[str, Any] = {}
        for key, value in tags.items():
            new_value = new_tags.get(key, FAILED_MARKER)
            if (
                key in SAFE_TAG_KEYS
                and isinstance(value, str)
                and _SAFE_TAG_VALUE.fullmatch(value) is not None
                and new_value is value
            ):
                safe[key] = value
            else:
                moved[str(key) if key in new_tags else f"tag{len(moved)}"] = new_value
        out: dict[str, Any] = {}
        for key, value in event.items():
            if key in _SENTRY_KEPT:
                out[key] = value
            elif key == "tags":
                out[key] = safe
            else:
                out[key] = new_body.get(key)
        if moved:
            contexts = out.get("contexts")
            if not isinstance(contexts, dict):
                contexts = out["contexts"] = {}
            contexts["log_tags"] = moved
        return out

    def record(self, record: LogRecord) -> LogRecord:
        """A record with every text part and field scrubbed, for payloads that are derived from it.

        A Sentry event truncates, normalises (the fingerprint) and parses (the frames) the record's
        text; done on unscrubbed text, that can cut a value in half ("kim@hospit...") or strip the
        context a rule needs ("Patient <str> (ID P-1)") before the event's own walk sees it. So the
        Sentry sink builds its event from this, and then passes the event through
        :meth:`sentry_event` as well. The raw text of a JSON record that has a message is replaced by
        that (scrubbed) message rather than walked: it holds the fields again.
        """
        if not self.enabled:
            return record
        names: tuple[str, ...] = ("message", "exception", "request_id", "logger")
        if not (record.message and record.format in _STRUCTURED_FORMATS):
            # A JSON line's raw text is its fields again (walked below); a text line's raw text is
            # what a multi-word rule can read whole, so its finds reach the parsed parts.
            names += ("raw",)
        parts = {name: value for name in names if (value := getattr(record, name)) is not None}
        # One unit: fields and text parts share what was masked (a value masked under its key, or by a
        # multi-word rule on the raw line, is masked in the message the parser derived from it too).
        walked = self._walk({**parts, "fields": record.fields}, None, 0, _Walk(self.budget_seconds))
        if not isinstance(walked, dict):
            self.counters[FAILURE_COUNTER] += 1
            return dataclasses.replace(
                record, message=FAILED_MARKER, raw=FAILED_MARKER, exception=None, request_id=None, fields={}
            )
        changes: dict[str, Any] = {}
        for name, value in parts.items():
            new = walked.get(name)
            if new is not value:
                changes[name] = new if isinstance(new, str) else FAILED_MARKER
        if "raw" not in parts:
            # Not walked: what leaves in its place is the scrubbed message (payloads read raw only
            # when there is no message).
            changes["raw"] = changes.get("message", record.message)
        fields = walked.get("fields")
        if fields is not record.fields:
            changes["fields"] = fields if isinstance(fields, Mapping) else {"fields": FAILED_MARKER}
        return dataclasses.replace(record, **changes) if changes else record

    def generation(self, generation: Generation) -> Generation:
        """A generation as its span may carry it (prompts as logged for opted-out services)."""
        if not self.enabled:
            return generation
        names: tuple[str, ...] = (*_GENERATION_TEXT_FIELDS, "metadata")
        if generation.service not in self.prompt_services:
            names += _PROMPT_FIELDS
        parts = {name: value for name in names if (value := getattr(generation, name)) is not None}
        walked = self._walk(parts, None, 0, _Walk(self.budget_seconds))
        if not isinstance(walked, dict):
            self.counters[FAILURE_COUNTER] += 1
            walked = dict.fromkeys(parts, FAILED_MARKER)
        changes: dict[str, Any] = {
            name: walked.get(name, FAILED_MARKER) for name, value in parts.items() if walked.get(name) is not value
        }
        if "metadata" in changes and not isinstance(changes["metadata"], dict):
            changes["metadata"] = {"metadata": FAILED_MARKER}
        return dataclasses.replace(generation, **changes) if changes else generation

    def parked(self, item: ParkedItem) -> ParkedItem:
        """A parked item as it may be stored: body, detail and attributes scrubbed."""
        if not self.enabled:
            return item
        walk = _Walk(self.budget_seconds)
        body = self._parked_body(item, walk)
        detail = self._walk(item.detail, "detail", 1, walk)
        attributes = self._walk(item.attributes, "attributes", 1, walk)
        if body is item.body and detail is item.detail and attributes is item.attributes:
            return item
        return dataclasses.replace(
            item,
            body=body if isinstance(body, str) else FAILED_MARKER,
            detail=detail if isinstance(detail, str) else FAILED_MARKER,
            attributes=attributes if isinstance(attributes, dict) else {},
        )

    def log_filter(self) -> logging.Filter:
        """A logging filter that scrubs each record's message, extra fields and traceback."""
        return BoundaryLogFilter(self)

    # -- the walk -------------------------------------------------------------------------------

    def _parked_body(self, item: ParkedItem, walk: _Walk) -> object:
        attributes = item.attributes
        if attributes.get("sink") == "langfuse" and attributes.get("service") in self.prompt_services:
            # The service owner chose to send (and so to park) its prompts as logged.
            try:
                document = orjson.loads(item.body)
            except orjson.JSONDecodeError:
                document = None
            if isinstance(document, dict):
                kept = {key: document[key] for key in _PROMPT_FIELDS if key in document}
                rest = self._walk({k: v for k, v in document.items() if k not in kept}, None, 1, walk)
                if isinstance(rest, dict):
                    return orjson.dumps({**rest, **kept}).decode()
        return self._walk(item.body, "body", 1, walk)

    def _walk(self, value: object, parent: str | None, depth: int, walk: _Walk) -> object:
        """Walk one value that leaves as a unit (a payload, or JSON decoded from a string).

        What was masked anywhere in the unit is then masked everywhere else in it too; an inner
        unit's finds also count for the unit around it.
        """
        outer = walk.found
        found: Found = []
        walk.found = found
        try:
            out = self._value(value, parent, depth, walk)
        finally:
            walk.found = outer
        if found:
            if outer is not None:
                outer.extend(found)
            known = _known_values(found)
            if known is not None:
                out = self._mask_known(out, known, depth)
        return out

    def _mask_known(self, value: object, known: _Known, depth: int) -> object:
        """Replace the unit's known values wherever they occur (strings and keys), labelled or not."""
        if depth > MAX_DEPTH:
            return value
        if isinstance(value, str):
            return known.sub(value)
        if isinstance(value, dict):
            out = {
                (known.sub(key) if isinstance(key, str) else key): self._mask_known(item, known, depth + 1)
                for key, item in value.items()
            }
            same = len(out) == len(value) and all(
                new_key is old_key and out[new_key] is item
                for (new_key, _), (old_key, item) in zip(out.items(), value.items(), strict=True)
            )
            return value if same else out
        if isinstance(value, list | tuple):
            items = [self._mask_known(item, known, depth + 1) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return items if isinstance(value, list) else tuple(items)
        return value

    def _value(self, value: object, parent: str | None, depth: int, walk: _Walk) -> object:  # noqa: PLR0911 - one branch per JSON type
        # Exact type checks first (the common case, and cheap); subclasses (StrEnum values,
        # OrderedDict, ...) are walked as their base type below.
        kind = type(value)
        if kind is str:
            return self._string(cast("str", value), parent, depth, walk)
        if kind is dict:
            return self._dict(cast("dict[Any, Any]", value), parent, depth, walk)
        if kind is list or kind is tuple:
            return self._sequence(cast("list[Any]", value), parent, depth, walk)
        if value is None or kind is bool:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if -_SMALL_INT < value < _SMALL_INT:
                return value
            text = str(value)
        elif isinstance(value, float):
            if not (value.is_integer() and abs(value) >= _SMALL_INT):
                return value
            text = str(int(value))
        elif isinstance(value, str):
            text = str(value)
        elif isinstance(value, Mapping):
            return self._dict(dict(value), parent, depth, walk)
        elif isinstance(value, list | tuple):
            return self._sequence(value, parent, depth, walk)
        else:
            self.counters[FAILURE_COUNTER] += 1
            return UNSUPPORTED_MARKER
        out = self._string(text, parent, depth, walk)
        return value if out is text else out

    def _sequence(self, value: list[Any] | tuple[Any, ...], parent: str | None, depth: int, walk: _Walk) -> object:
        if depth > MAX_DEPTH:
            self.counters[FAILURE_COUNTER] += 1
            return OVER_BUDGET_MARKER
        items = [self._value(item, parent, depth + 1, walk) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)

    def _dict(self, value: dict[Any, Any], parent: str | None, depth: int, walk: _Walk) -> object:
        if depth > MAX_DEPTH:
            self.counters[FAILURE_COUNTER] += 1
            return OVER_BUDGET_MARKER
        fhir = self._fhir
        fhir_keys = fhir.keys if fhir is not None and value.get("resourceType") in fhir.resource_types else None
        qualifier = str(value["resourceType"]) if fhir_keys is not None else parent
        out: dict[Any, Any] = {}
        changed = False
        for key, item in value.items():
            new_key = key
            group = None
            if type(key) is str:
                group = self.keys.group_for(key, qualifier)
                new_key = self._string(key, None, depth, walk)
                if new_key is not key:
                    changed = True
                    while new_key in out or new_key in value:
                        new_key = f"{new_key}#"
            if fhir_keys is not None and fhir is not None and key in fhir_keys and item is not None:
                new: object = fhir.replacement
                _remember(item, fhir.replacement, walk.found)
            elif group is not None and _maskable(item, group):
                new = group.replacement
                _remember(item, group.replacement, walk.found)
            else:
                new = self._value(item, key if type(key) is str else parent, depth + 1, walk)
            changed = changed or new is not item
            out[new_key] = new
        return out if changed else value

    def _string(self, text: str, parent: str | None, depth: int, walk: _Walk) -> object:
        """A string through the boundary: the same object when clean, a scrubbed string or a marker."""
        # Strings that hold JSON are never memoised (their result depends on the parent key), so a
        # hit here is always a plain string.
        if text in self._clean:
            return text
        dirty = self._dirty.get(text)
        if dirty is not None:
            return _reported(dirty[0], dirty[1], walk)
        if time.monotonic() > walk.deadline or len(text) > MAX_TEXT_CHARS or depth > MAX_DEPTH:
            self.counters[FAILURE_COUNTER] += 1
            return OVER_BUDGET_MARKER
        json_like = _looks_like_json(text)
        long_text = not json_like and len(text) > _MEMO_CHARS
        if long_text and (seen := walk.long_strings.get(id(text))) is not None:
            return _reported(seen[1], seen[2], walk)
        try:
            out, found = self._scrub_string(text, parent, depth, walk, json_like=json_like)
        except Exception:  # noqa: BLE001 - fail closed: whatever went wrong, the raw value must not leave
            self.counters[FAILURE_COUNTER] += 1
            return FAILED_MARKER
        if long_text:
            walk.long_strings[id(text)] = (text, out, tuple(found))
        elif not json_like:
            self._memoise(text, out, found)
        return _reported(out, found, walk)

    def _memoise(self, text: str, out: str, found: Found) -> None:
        if len(self._clean) + len(self._dirty) >= _MEMO_ENTRIES:
            self._clean.clear()
            self._dirty.clear()
        if out is text:
            self._clean.add(text)
        else:
            self._dirty[text] = (out, tuple(found))

    def _scrub_string(
        self, text: str, parent: str | None, depth: int, walk: _Walk, *, json_like: bool
    ) -> tuple[str, Found]:
        if json_like:
            try:
                document = orjson.loads(text)
            except orjson.JSONDecodeError:
                document = None
            if isinstance(document, dict | list):
                # The inner unit reports its finds into this walk's list itself (see _walk).
                new = self._walk(document, parent, depth + 1, walk)
                return (text if new is document else orjson.dumps(new).decode()), []
        if "\\u" in text:
            decoded = _unicode_unescaped(text)
            if decoded != text:
                scrubbed, found = self.text.scrub_collecting(decoded)
                return (text if scrubbed is decoded else scrubbed), found
        return self.text.scrub_collecting(text)


# Shorter pieces are too common to mask wherever they occur (and carry little on their own).
_MIN_KNOWN_CHARS: Final = 4
_KNOWN_SPLIT: Final = re.compile(r"""[\s,;|^=()\[\]{}"'<>]+""")
_KNOWN_TRIM: Final = ".:-_/"
_MAX_KNOWN_VALUES: Final = 500


def _reported(out: object, found: Sequence[tuple[str, str]], walk: _Walk) -> object:
    """``out``, after adding what was masked to the walk's unit (see Boundary._walk)."""
    if found and walk.found is not None:
        walk.found.extend(found)
    return out


def _remember(value: object, replacement: str, found: Found | None, depth: int = 0) -> None:
    """Note the text of a value masked under a sensitive key, so it is masked where it recurs."""
    if found is None or depth > MAX_DEPTH:
        return
    if isinstance(value, str):
        found.append((value, replacement))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        found.append((str(int(value)) if isinstance(value, float) and value.is_integer() else str(value), replacement))
    elif isinstance(value, Mapping):
        for item in value.values():
            _remember(item, replacement, found, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _remember(item, replacement, found, depth + 1)


class _Known:
    """One regex over a unit's known values (whole, and their words), with each one's replacement."""

    __slots__ = ("_pattern", "_replacements")

    def __init__(self, replacements: dict[str, str]) -> None:
        self._replacements = replacements
        forms = []
        for value in sorted(replacements, key=len, reverse=True):
            head = "(?<![A-Za-z0-9])" if value[0].isascii() and value[0].isalnum() else ""
            tail = "(?![A-Za-z0-9])" if value[-1].isascii() and value[-1].isalnum() else ""
            forms.append(f"{head}{re.escape(value)}{tail}")
        self._pattern = re.compile("|".join(forms))

    def sub(self, text: str) -> str:
        """``text`` with every known value replaced; the same object when none occurs."""
        if not text:
            return text
        out = self._pattern.sub(lambda m: self._replacements[m.group()], text)
        return text if out == text else out


def _known_values(found: Found) -> _Known | None:
    replacements: dict[str, str] = {}
    for original, replacement in found:
        pieces = [original, *_KNOWN_SPLIT.split(original)] if len(original) < MAX_TEXT_CHARS else []
        for piece in pieces:
            value = piece.strip(_KNOWN_TRIM)
            if len(value) >= _MIN_KNOWN_CHARS and not value.startswith("[REDACTED:"):
                replacements.setdefault(value, replacement)
        if len(replacements) >= _MAX_KNOWN_VALUES:
            break
    return _Known(replacements) if replacements else None


def _looks_like_json(text: str) -> bool:
    first = text[:1]
    if first in ("{", "["):
        return True
    return bool(first) and first.isspace() and text.lstrip()[:1] in ("{", "[")


class BoundaryLogFilter(logging.Filter):
    """Scrubs a log record's message, extra fields and traceback before any handler formats it."""

    def __init__(self, boundary: Boundary) -> None:
        """Filter through ``boundary``."""
        super().__init__()
        self.boundary = boundary

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub in place; always let the record through (scrubbed, or as a marker if scrubbing failed)."""
        boundary = self.boundary
        try:
            message = record.getMessage()
            record.msg, record.args = boundary.scrub_text(message), None
            for key, value in list(vars(record).items()):
                if key not in _LOG_RECORD_ATTRS:
                    setattr(record, key, boundary.scrub_value(value))
            if record.exc_info and record.exc_info[0] is not None:
                text = "".join(traceback.format_exception(*record.exc_info))
                record.exception = boundary.scrub_text(text)
                record.exception_name = record.exc_info[0].__name__
                record.exc_info, record.exc_text = None, None
        except Exception:  # noqa: BLE001 - a log line must never carry what could not be scrubbed
            boundary.counters[FAILURE_COUNTER] += 1
            record.msg, record.args, record.exc_info, record.exc_text = FAILED_MARKER, None, None, None
        return True


_DEFAULT: dict[type[Boundary], Boundary] = {}
