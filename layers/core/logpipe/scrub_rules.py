r"""The scrub rules file: text rules, key groups, HL7 and FHIR tables, all data.

Schema (JSON, UTF-8; ``version`` 2; a version 1 file has only ``rules``)::

    {
      "version": 2,
      "key_groups": [                            # key-aware rules
        {
          "name": "dicom_patient",               # also the name of its text rule
          "replacement": "[REDACTED:dicom]",
          "keys": ["PatientID", "00100020"],     # values are one token in text
          "multiword_keys": ["PatientName"],     # values run on to the next key
          "key_patterns": [],                    # regexes on the whole key (structured values only)
          "numbers": true,                       # also mask numbers under these keys
          "text": true,                          # also generate the text rule
          "description": "..."
        }
      ],
      "hl7": {"replacement": "[REDACTED:hl7]", "segments": {"PID": {"keep": [1]}, "PV1": {"mask": [7, 8]}}},
      "fhir": {"replacement": "[REDACTED:fhir]", "resource_types": ["Patient"], "keys": ["name"]},
      "rules": [ ...text rules, see logpipe.scrub... ]
    }

A key is compared in a normalised form: lower case, ``'s`` dropped, only letters and digits kept, so
``PatientName``, ``patient_name``, ``Patient's Name`` and ``PATIENT-NAME`` are one key, and the DICOM
tag ``(0010,0010)``, ``0010,0010``, ``0010|0010`` and ``00100010`` another. A key nested under a
parent also matches as parent + key (``{"patient": {"name": ...}}`` is ``patientname``).

Each key group with ``text`` also becomes one text rule, generated here, that finds its keys in log
text: ``key=value``, ``key: value``, ``"key": "value"`` (escaped too), ``key is "value"``, the DICOM
JSON model and Orthanc's tags as text, the DCMTK, dcm4che and pydicom dump layouts for tags, and
Korean labels followed by a name. Adding a key to a group therefore covers structured fields and
every text form at once, without Python.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

from logpipe.scrub import TRANSFORM_NAMES, VALIDATORS, IpAddressPolicy, Scrubber, ScrubRule, ScrubRulesError, check_rule

SUPPORTED_VERSIONS: Final = (1, 2)
_TOP_KEYS: Final = frozenset({"version", "rules", "description", "key_groups", "hl7", "fhir"})
_RULE_KEYS: Final = frozenset(
    {"name", "pattern", "replacement", "triggers", "prefilter", "ignore_case", "validator", "transform", "description"}
)
_GROUP_KEYS: Final = frozenset(
    {"name", "replacement", "keys", "multiword_keys", "key_patterns", "numbers", "text", "description"}
)
_TAG: Final = re.compile(r"\(?([0-9A-Fa-f]{4})[,| ]?[ ]?([0-9A-Fa-f]{4})\)?")
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_SEPARATORS: Final = re.compile(r"[\s_.\-]+")
_HANGUL: Final = re.compile(r"[\uac00-\ud7a3]")
_HL7_SEGMENT_NAME: Final = re.compile(r"[A-Z][A-Z0-9]{2}")
_HL7_FIELD_KEY: Final = re.compile(r"([A-Za-z][A-Za-z0-9]{2})[-_. ]?([0-9]{1,3})(?:[-_. ][0-9]{1,3})*")
HL7_RULE_NAME: Final = "hl7_segments"


def normalize_key(key: str) -> str:
    """A key as the key groups compare it: lower case, no ``'s``, letters and digits only."""
    lowered = key.lower().replace("'s", "").replace("\u2019s", "")
    tag = _TAG.fullmatch(lowered)
    if tag is not None:
        return tag.group(1) + tag.group(2)
    return "".join(ch for ch in lowered if ch.isalnum())


@dataclass(frozen=True, slots=True)
class KeyGroup:
    """Keys whose values are masked whole, whatever the value's shape or type."""

    name: str
    replacement: str
    keys: tuple[str, ...] = ()
    multiword_keys: tuple[str, ...] = ()
    key_patterns: tuple[str, ...] = ()
    numbers: bool = True
    text: bool = True


@dataclass(frozen=True, slots=True)
class SegmentPolicy:
    """Which fields of one HL7 segment are masked: all but ``keep``, or exactly ``mask``."""

    keep: frozenset[int] | None = None
    mask: frozenset[int] | None = None

    def masks(self, index: int) -> bool:
        """Whether field ``index`` (PID-5 is 5) is masked."""
        if self.keep is not None:
            return index not in self.keep
        return self.mask is not None and index in self.mask


@dataclass(frozen=True, slots=True)
class Hl7Rules:
    """HL7 v2 segments whose fields identify a person, by field position."""

    replacement: str
    segments: Mapping[str, SegmentPolicy]

    def masks_field(self, segment: str, index: int) -> bool:
        """Whether ``<segment>-<index>`` is masked."""
        policy = self.segments.get(segment.upper())
        return policy is not None and policy.masks(index)

    def mask_segment(self, text: str, replacement: str) -> str:
        """One segment (``PID|1||...``) with its identifying fields replaced; unchanged when there are none."""
        policy = self.segments.get(text[:3])
        if policy is None:
            return text
        fields = text.split("|")
        changed = False
        for index in range(1, len(fields)):
            value = fields[index]
            if value and value != replacement and policy.masks(index):
                fields[index] = replacement
                changed = True
        return "|".join(fields) if changed else text


_SQL_LITERAL: Final = re.compile(r"'(?:[^'\n]|'')*+'")


def mask_sql_literals(text: str, replacement: str) -> str:
    """A logged SQL statement with every quoted literal replaced (``'...'`` -> ``'<replacement>'``)."""
    masked = f"'{replacement}'"
    return _SQL_LITERAL.sub(lambda m: m.group() if m.group() == masked else masked, text)


@dataclass(frozen=True, slots=True)
class FhirRules:
    """FHIR resources about a person, and the elements of them that identify the person."""

    replacement: str
    resource_types: frozenset[str]
    keys: frozenset[str]


@dataclass(frozen=True, slots=True)
class ScrubConfig:
    """Everything the rules file says; ``text_rules`` includes the rules generated from key groups."""

    text_rules: tuple[ScrubRule, ...]
    key_groups: tuple[KeyGroup, ...] = ()
    hl7: Hl7Rules | None = None
    fhir: FhirRules | None = None
    source: str = "<rules>"
    transforms: Mapping[str, Callable[[str, str], str]] = field(default_factory=dict)

    def text_scrubber(self, ip_addresses: IpAddressPolicy = "public") -> Scrubber:
        """The text engine for these rules."""
        return Scrubber(self.text_rules, ip_addresses=ip_addresses, transforms=self.transforms)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

_BUNDLED: dict[str, ScrubConfig] = {}


def load_scrub_config(path: str | os.PathLike[str] | None = None) -> ScrubConfig:
    """Load and validate a rules file; ``None`` means the bundled ``logpipe/rules/scrub.json`` (cached)."""
    if path is None:
        cached = _BUNDLED.get("default")
        if cached is None:
            cached = _BUNDLED.setdefault("default", _load(None))
        return cached
    return _load(path)


def _load(path: str | os.PathLike[str] | None) -> ScrubConfig:
    source = "<bundled logpipe/rules/scrub.json>" if path is None else os.fspath(path)
    try:
        if path is None:
            res = resources.files(__package__ or "logpipe").joinpath("rules", "scrub.json")
            source, raw = str(res), res.read_text(encoding="utf-8")
        else:
            raw = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScrubRulesError(f"{source}: cannot read rules file: {exc}") from exc
    try:
        doc = json.loads(raw, object_pairs_hook=_reject_duplicate_keys)
    except ValueError as exc:  # JSONDecodeError is a ValueError too
        raise ScrubRulesError(f"{source}: not valid JSON: {exc}") from exc
    config = parse_scrub_config(doc, source)
    if path is not None:
        # A user's own patterns meet hostile log lines too: a catastrophic one fails the load here
        # (the bundled ones are timed by tests/unit/test_regex_linear.py).
        check_linear_rules(config)
    return config


def check_linear_rules(config: ScrubConfig) -> None:
    """Raise ``ScrubRulesError`` naming the first rule, prefilter or key pattern that is not linear-time."""
    from logpipe.regex_guard import NonLinearPatternError, check_linear

    checks: list[tuple[str, str, int]] = []
    for rule in config.text_rules:
        flags = re.IGNORECASE if rule.ignore_case else 0
        checks.append((f"rule {rule.name!r}: pattern", rule.pattern, flags))
        if rule.prefilter is not None:
            checks.append((f"rule {rule.name!r}: prefilter", rule.prefilter, flags))
    for group in config.key_groups:
        checks.extend(
            (f"key group {group.name!r}: key pattern", pattern, re.IGNORECASE) for pattern in group.key_patterns
        )
    for what, pattern, flags in checks:
        try:
            check_linear(re.compile(pattern, flags))
        except NonLinearPatternError as exc:
            raise ScrubRulesError(f"{config.source}: {what} {exc}") from exc


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate key(s) {', '.join(map(repr, dupes))} in one object")
    return dict(pairs)


def parse_scrub_config(doc: object, source: str = "<rules>") -> ScrubConfig:
    """Validate a decoded rules document and build the configuration (text rules generated and checked)."""
    if not isinstance(doc, dict):
        raise ScrubRulesError(f"{source}: top level must be a JSON object")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ScrubRulesError(f"{source}: unknown top-level key(s): {', '.join(unknown)}")
    version = doc.get("version")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise ScrubRulesError(f"{source}: 'version' must be 1 or 2, got {version!r}")
    if version == 1 and set(doc) - {"version", "rules", "description"}:
        raise ScrubRulesError(f"{source}: key_groups, hl7 and fhir need 'version': 2")
    items = doc.get("rules")
    if not isinstance(items, list):
        raise ScrubRulesError(f"{source}: 'rules' must be a list")
    file_rules = tuple(_parse_rule(item, source, index) for index, item in enumerate(items))
    groups = tuple(_parse_group(item, source, index) for index, item in enumerate(_list(doc, "key_groups", source)))
    hl7 = _parse_hl7(doc.get("hl7"), source)
    fhir = _parse_fhir(doc.get("fhir"), source)
    generated = [group_text_rule(group) for group in groups if group.text and (group.keys or group.multiword_keys)]
    transforms: dict[str, Callable[[str, str], str]] = {"sql": mask_sql_literals}
    if hl7 is not None:
        generated.append(hl7_text_rule(hl7))
        transforms["hl7"] = hl7.mask_segment
    rules = (*generated, *file_rules)
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ScrubRulesError(f"{source}: rule {rule.name!r}: duplicate rule name (key groups name rules too)")
        seen.add(rule.name)
        check_rule(rule, source)
    if any(rule.transform == "hl7" for rule in file_rules) and hl7 is None:
        raise ScrubRulesError(f"{source}: the 'hl7' transform needs an 'hl7' table")
    return ScrubConfig(rules, groups, hl7, fhir, source, transforms)


def _list(doc: Mapping[str, Any], key: str, source: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise ScrubRulesError(f"{source}: {key!r} must be a list")
    return value


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _parse_rule(item: object, source: str, index: int) -> ScrubRule:
    where = f"{source}: rule #{index}"
    if not isinstance(item, dict):
        raise ScrubRulesError(f"{where}: must be a JSON object")
    if isinstance(item.get("name"), str):
        where = f"{source}: rule {item['name']!r} (#{index})"
    unknown = sorted(set(item) - _RULE_KEYS)
    if unknown:
        raise ScrubRulesError(f"{where}: unknown key(s): {', '.join(unknown)}")
    missing = [key for key in ("name", "pattern", "replacement") if key not in item]
    if missing:
        raise ScrubRulesError(f"{where}: missing required key(s): {', '.join(missing)}")
    fields = dict(item)
    pattern = fields["pattern"]
    if isinstance(pattern, list) and pattern and all(isinstance(p, str) for p in pattern):
        fields["pattern"] = "".join(pattern)
    checks: dict[str, tuple[Callable[[object], bool], str]] = {
        "name": (lambda v: isinstance(v, str), "a string"),
        "pattern": (lambda v: isinstance(v, str), "a string or a non-empty list of strings"),
        "replacement": (lambda v: isinstance(v, str), "a string"),
        "triggers": (lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v), "a list of strings"),
        "prefilter": (lambda v: v is None or isinstance(v, str), "a string or null"),
        "ignore_case": (lambda v: isinstance(v, bool), "true or false"),
        "validator": (lambda v: v is None or isinstance(v, str), "a string or null"),
        "transform": (lambda v: v is None or isinstance(v, str), "a string or null"),
        "description": (lambda v: v is None or isinstance(v, str), "a string or null"),
    }
    for key, value in fields.items():
        check, expected = checks[key]
        if not check(value):
            raise ScrubRulesError(f"{where}: {key!r} must be {expected}")
    fields.pop("description", None)
    fields["triggers"] = tuple(fields.get("triggers", ()))
    if fields.get("validator") not in (None, *VALIDATORS):
        raise ScrubRulesError(
            f"{where}: unknown validator {fields['validator']!r}; known: {', '.join(sorted(VALIDATORS))}"
        )
    if fields.get("transform") not in (None, *TRANSFORM_NAMES):
        raise ScrubRulesError(
            f"{where}: unknown transform {fields['transform']!r}; known: {', '.join(sorted(TRANSFORM_NAMES))}"
        )
    return ScrubRule(**fields)


def _parse_group(item: object, source: str, index: int) -> KeyGroup:
    where = f"{source}: key group #{index}"
    if not isinstance(item, dict):
        raise ScrubRulesError(f"{where}: must be a JSON object")
    if isinstance(item.get("name"), str):
        where = f"{source}: key group {item['name']!r} (#{index})"
    unknown = sorted(set(item) - _GROUP_KEYS)
    if unknown:
        raise ScrubRulesError(f"{where}: unknown key(s): {', '.join(unknown)}")
    name, replacement = item.get("name"), item.get("replacement")
    if not isinstance(name, str) or not isinstance(replacement, str):
        raise ScrubRulesError(f"{where}: 'name' and 'replacement' are required strings")
    lists = {key: item.get(key, []) for key in ("keys", "multiword_keys", "key_patterns")}
    for key, value in lists.items():
        if not _strings(value):
            raise ScrubRulesError(f"{where}: {key!r} must be a list of non-empty strings")
    for key in ("numbers", "text"):
        if not isinstance(item.get(key, True), bool):
            raise ScrubRulesError(f"{where}: {key!r} must be true or false")
    if not any(lists.values()):
        raise ScrubRulesError(f"{where}: needs at least one of keys, multiword_keys, key_patterns")
    for pattern in lists["key_patterns"]:
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ScrubRulesError(f"{where}: bad key pattern {pattern!r}: {exc}") from exc
    return KeyGroup(
        name=name,
        replacement=replacement,
        keys=tuple(lists["keys"]),
        multiword_keys=tuple(lists["multiword_keys"]),
        key_patterns=tuple(lists["key_patterns"]),
        numbers=item.get("numbers", True),
        text=item.get("text", True),
    )


def _positions(value: object, where: str, key: str) -> frozenset[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ScrubRulesError(f"{where}: {key!r} must be a list of positive field numbers")
    return frozenset(value)


def _parse_hl7(value: object, source: str) -> Hl7Rules | None:
    if value is None:
        return None
    where = f"{source}: hl7"
    if not isinstance(value, dict) or set(value) - {"replacement", "segments", "description"}:
        raise ScrubRulesError(f"{where}: must be an object with 'replacement' and 'segments'")
    replacement, segments = value.get("replacement"), value.get("segments")
    if not isinstance(replacement, str) or not isinstance(segments, dict) or not segments:
        raise ScrubRulesError(f"{where}: 'replacement' must be a string and 'segments' a non-empty object")
    policies: dict[str, SegmentPolicy] = {}
    for name, spec in segments.items():
        here = f"{where}: segment {name!r}"
        if not _HL7_SEGMENT_NAME.fullmatch(name):
            raise ScrubRulesError(f"{here}: a segment name is three upper-case letters or digits")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in {"keep", "mask"}:
            raise ScrubRulesError(f"{here}: must be {{'keep': [...]}} or {{'mask': [...]}}")
        ((kind, positions),) = spec.items()
        fields = _positions(positions, here, kind)
        policies[name] = SegmentPolicy(keep=fields) if kind == "keep" else SegmentPolicy(mask=fields)
    return Hl7Rules(replacement, policies)


def _parse_fhir(value: object, source: str) -> FhirRules | None:
    if value is None:
        return None
    where = f"{source}: fhir"
    if not isinstance(value, dict) or set(value) - {"replacement", "resource_types", "keys", "description"}:
        raise ScrubRulesError(f"{where}: must be an object with 'replacement', 'resource_types' and 'keys'")
    replacement = value.get("replacement")
    if not isinstance(replacement, str) or not _strings(value.get("resource_types")) or not _strings(value.get("keys")):
        raise ScrubRulesError(f"{where}: 'replacement' is a string, 'resource_types' and 'keys' lists of strings")
    return FhirRules(replacement, frozenset(value["resource_types"]), frozenset(value["keys"]))


# --------------------------------------------------------------------------
# Text rules generated from the tables
# --------------------------------------------------------------------------


def _words(spelling: str) -> list[str]:
    text = spelling.replace("'s", " ").replace("\u2019s", " ").replace("'", "").replace("\u2019", "")
    return [word for word in _WORD_SEPARATORS.split(_CAMEL.sub(" ", text)) if word]


def _hex(text: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in text)


def _split_spellings(spellings: Sequence[str]) -> tuple[list[tuple[str, str]], list[list[str]], list[list[str]]]:
    """(tags as (group, element), word spellings, Hangul spellings as their words), each deduplicated."""
    tags: dict[tuple[str, str], None] = {}
    words: dict[tuple[str, ...], None] = {}
    hangul: dict[tuple[str, ...], None] = {}
    for spelling in spellings:
        tag = _TAG.fullmatch(spelling)
        if tag is not None:
            tags[(tag.group(1).upper(), tag.group(2).upper())] = None
            continue
        parts = _words(spelling)
        if _HANGUL.search(spelling):
            hangul[tuple(parts)] = None
        else:
            words[tuple(part.lower() for part in parts)] = None
    return list(tags), [list(w) for w in words], [list(h) for h in hangul]


_WORD_SEPARATOR = r"(?:'s|\u2019s)?[ _.\-]?"
# Characters that must not stand right before a key (it would be the end of a longer word).
_KEY_BOUNDARY = "[A-Za-z0-9_]"


def _cls(chars: Sequence[str]) -> str:
    return "[" + "".join(re.escape(c) for c in dict.fromkeys(chars)) + "]"


def _dispatch(forms: Sequence[tuple[str, str, bool]]) -> tuple[list[str], str]:
    """Key forms -> (their first characters, one alternation that assumes the first character consumed).

    ``forms`` are (first character, regex for the rest, case-insensitive). Each branch re-checks the
    consumed character with a lookbehind (and that no word character stands before it), so the
    whole rule can start with one character class: Python's ``re`` then skips straight to positions
    where a key can start, where an alternation at the front makes it try every branch everywhere.
    """
    by_first: dict[tuple[str, ...], list[str]] = {}
    for first, rest, fold in forms:
        chars = tuple(dict.fromkeys((first.lower(), first.upper()) if fold else (first,)))
        by_first.setdefault(chars, []).append(f"(?i:{rest})" if fold else rest)
    branches = []
    leads: list[str] = []
    for chars, rests in by_first.items():
        cls = _cls(chars)
        leads.extend(chars)
        boundary = f"(?<!{_KEY_BOUNDARY}{cls})" if chars[0].isalnum() else ""
        branches.append(f"(?<={cls}){boundary}(?:{'|'.join(rests)})")
    return leads, "|".join(branches)


def _key_forms(
    tags: Sequence[tuple[str, str]], words: Sequence[list[str]], hangul: Sequence[list[str]]
) -> list[tuple[str, str, bool]]:
    """(first character, rest, case-insensitive) of every text spelling of these keys."""
    forms = [
        (parts[0][0], re.escape(parts[0][1:]) + "".join(_WORD_SEPARATOR + re.escape(part) for part in parts[1:]), True)
        for parts in words
    ]
    forms += [
        (parts[0][0], re.escape(parts[0][1:]) + "".join(r"[ \t]?" + re.escape(part) for part in parts[1:]), False)
        for parts in hangul
    ]
    for group, element in tags:
        # (0010,0010), [0010,0010], and bare 0010,0010 / 0010|0010 / 00100010.
        forms.append(("(", rf"{_hex(group)},[ \t]?{_hex(element)}\)", False))
        forms.append(("[", rf"{_hex(group)},{_hex(element)}\]", False))
        forms.append((group[0], rf"{_hex(group[1:])}[,|]?{_hex(element)}", True))
    return forms


def _tag_forms(tags: Sequence[tuple[str, str]], style: str) -> str:
    if style == "comma":
        forms = [rf"{_hex(g)},[ \t]?{_hex(e)}" for g, e in tags]
    else:
        forms = [f"{_hex(g)}{_hex(e)}" for g, e in tags]
    return "(?:" + "|".join(forms) + ")"


# Quoted values: up to the closing quote (escapes allowed). Unquoted: one token, or for multiword
# keys the words that follow, across spaces and commas, as long as each starts like a part of a name
# or an address does (a capital, a digit, a non-Latin letter, or a lower-case name particle such as
# "van" or "de") and is not the next "key=" / "key:". So a five-part name or an address with commas
# is masked whole, while "Patient Name: John Doe, age 42" keeps ", age 42". Possessive quantifiers
# keep every branch linear.
_ONE_WORD_VALUE = r"""(?:[^\s"'\\,;&<>()\[\]{}|]|\\(?!["']))++"""
_NAME_WORD_START = r"(?=[A-Z0-9\u00c0-\uffff]|(?:van|von|der|den|de|da|del|di|du|la|le|bin|al|el)[ \t])"
_MORE_WORDS = (
    rf"""(?:,?[ \t]++(?![^\s=:,]{{1,40}}[=:]){_NAME_WORD_START}(?:[^\s"'\\,;&<>()\[\]{{}}|=:]|\\(?!["']))++)*+"""
)
_JSON_BARE = r"(?:-?[0-9][0-9.eE+\-]*+|\[(?:[^\[\]]|\[[^\[\]]*+\])*+\]|\{(?:[^{}]|\{[^{}]*+\})*+\})"
_VALUE = (
    r"(?(vq)(?:(?!(?P=vq))(?:[^\\\n]|\\.))++"
    rf"|(?(kq){_JSON_BARE}|(?!(?i:null|none|true|false)(?![\w]))(?(multi){_ONE_WORD_VALUE}{_MORE_WORDS}|{_ONE_WORD_VALUE})))"
)
_SEPARATOR = r"""(?:[ \t]*[:=]|[ \t]+(?i:is|was)(?=[ \t]+\\?["'])|[ \t]+(?i:value)[ \t]*[:=])"""


def group_text_rule(group: KeyGroup) -> ScrubRule:
    """The text rule that finds a key group's keys (and DICOM tags) in log text and masks their values."""
    token_tags, token_words, token_hangul = _split_spellings(group.keys)
    multi_tags, multi_words, multi_hangul = _split_spellings(group.multiword_keys)
    all_tags = token_tags + multi_tags
    leads: list[str] = []
    alternatives: list[str] = []
    if all_tags:
        plain, comma = _tag_forms(all_tags, "plain"), _tag_forms(all_tags, "comma")
        leads += ['"', "("]
        alternatives += [
            # DICOM JSON model (PS3.18 F.2) as text: "00100010": {"vr": "PN", "Value": [...]}
            (
                rf'(?<="){plain}"\s*+:\s*+\{{\s*+(?:"vr"\s*+:\s*+"[A-Z]{{2}}"\s*+,\s*+)?"Value"\s*+:\s*+\[\s*+'
                r'(?:\{\s*+"[A-Za-z]+"\s*+:\s*+)?"(?P<pre_json>)(?:\[REDACTED:[a-z_]++\]|[^\\\]]|\\.)+?(?P<post_json>)"'
                r"(?=\s*\}?\s*\])"
            ),
            # Orthanc /tags as text: "0010,0010": {"Name": "PatientName", "Type": "String", "Value": "..."}
            (
                rf'(?<="){comma}"\s*+:\s*+\{{[^{{}}]{{0,200}}?"Value"\s*+:\s*+"(?P<pre_orth>)(?:[^"\\\n]|\\.)*+'
                r'(?P<post_orth>)"'
            ),
            # DCMTK "(0010,0010) PN [X]  # 8, 1 PatientName"; dcm4che "(0010,0010) PN #8 [X] PatientName",
            # "0018 (0010,0010) PN #22 *1 [X] //Patient's Name"
            (
                rf"(?<=\(){comma}\)[ \t]++[A-Z]{{2}}[ \t]++(?:\#[ \t]*+\d++[ \t]++(?:\*\d++[ \t]++)?)?"
                r"\[(?P<pre_dump>)[^\]\n]++(?P<post_dump>)\]"
            ),
            # pydicom "(0010, 0010) Patient's Name   PN: 'X'"
            (
                rf"(?<=\(){comma}\)[ \t]++[^\n\[\]=:]{{1,64}}?[ \t][A-Z]{{2}}:[ \t]*+(?P<pq>['\"])(?P<pre_py>)"
                r"(?:(?!(?P=pq))[^\\\n])++(?P<post_py>)(?P=pq)"
            ),
        ]
    multi_leads, multi = _dispatch(_key_forms(multi_tags, multi_words, multi_hangul))
    token_leads, token = _dispatch(_key_forms(token_tags, token_words, token_hangul))
    leads += multi_leads + token_leads
    keys = "|".join(part for part in (f"(?:{multi})(?P<multi>)" if multi else "", token) if part)
    alternatives.append(
        rf"(?:{keys})(?![A-Za-z0-9_])(?P<kq>\\?\")?'?{_SEPARATOR}[ \t]*+"
        rf"(?P<vq>\\?[\"'])?(?P<pre>){_VALUE}(?P<post>)(?(vq)(?P=vq))"
    )
    hangul = token_hangul + multi_hangul
    if hangul:
        # Korean labels are often followed by the name with no separator: "환자명 홍길동", "이름은 홍길동".
        labels_leads, labels = _dispatch(
            [
                (parts[0][0], re.escape(parts[0][1:]) + "".join(r"[ \t]?" + re.escape(p) for p in parts[1:]), False)
                for parts in hangul
            ]
        )
        leads += labels_leads
        alternatives.append(
            rf"(?:{labels})(?:은|는|이|가)?[ \t]*+[:=]?[ \t]*+(?P<pre_ko>)"
            r"(?:[\uac00-\ud7a3]{2,4}|[A-Za-z0-9][A-Za-z0-9-]{3,}+)(?P<post_ko>)"
        )
    triggers, prefilter = _gates(group.keys + group.multiword_keys)
    # One leading class, consumed; every alternative looks back at it (see _dispatch).
    return ScrubRule(
        name=group.name,
        pattern=f"{_cls(leads)}(?:{'|'.join(alternatives)})",
        replacement=group.replacement,
        triggers=triggers,
        prefilter=prefilter,
    )


# Words too common in logs to be worth a substring search as a trigger.
_COMMON_WORDS: Final = frozenset(
    {"name", "names", "number", "numbers", "date", "time", "group", "code", "record", "id"}
)


def _gates(spellings: Sequence[str]) -> tuple[tuple[str, ...], str | None]:
    """(triggers, prefilter): every text form of these keys contains a trigger or matches the prefilter.

    Every spelling of a word key contains each of its words literally (case aside), so any of its
    words is a valid trigger. Few triggers keep the gate cheap (each is one substring search over
    every line that leaves), so the words are chosen greedily to cover as many keys as possible
    ("patient" covers PatientName, PatientID, OtherPatientIDs...), skipping words too common to be
    selective. Tags are written with or without separators, so they get a prefilter instead: group
    and element with at most two separator characters between them.
    """
    tags: dict[tuple[str, str], None] = {}
    word_sets: list[set[str]] = []
    for spelling in spellings:
        tag = _TAG.fullmatch(spelling)
        if tag is not None:
            tags[(tag.group(1).upper(), tag.group(2).upper())] = None
            continue
        words = {word.lower() for word in _words(spelling)}
        selective = {word for word in words if len(word) >= 3 and word not in _COMMON_WORDS}
        word_sets.append(selective or words)
    triggers: list[str] = []
    while word_sets:
        counts: dict[str, int] = {}
        for words in word_sets:
            for word in words:
                counts[word] = counts.get(word, 0) + 1
        best = max(sorted(counts), key=lambda word: (counts[word], len(word)))
        triggers.append(best)
        word_sets = [words for words in word_sets if best not in words]
    prefilters: list[str] = []
    if tags:
        by_group: dict[str, list[str]] = {}
        for group, element in tags:
            by_group.setdefault(group, []).append(_hex(element))
        # Every tag group starts with "0" here ((0008,...), (0010,...)): a literal first character lets
        # the regex engine skip to candidates instead of trying every position.
        if all(group.startswith("0") for group in by_group):
            forms = "|".join(
                f"{_hex(group[1:])}[,| ]{{0,2}}(?:{'|'.join(elements)})" for group, elements in by_group.items()
            )
            prefilters.append(f"0(?<![0-9A-Fa-f]0)(?:{forms})(?![0-9A-Fa-f])")
        else:
            forms = "|".join(
                f"{_hex(group)}[,| ]{{0,2}}(?:{'|'.join(elements)})" for group, elements in by_group.items()
            )
            prefilters.append(f"(?<![0-9A-Fa-f])(?:{forms})(?![0-9A-Fa-f])")
    return tuple(sorted(triggers)), "|".join(prefilters) or None


def hl7_text_rule(hl7: Hl7Rules) -> ScrubRule:
    """The text rule that finds HL7 v2 segments of the table and masks their fields by position."""
    names = sorted(hl7.segments)
    # A segment runs to the end of the line, a carriage return, or an escaped \r or \n (HL7 logged inside
    # JSON text); a double quote followed by JSON punctuation ends it too.
    segment = r"""(?:[^\r\n\\"]|\\[^rn]|"(?!\s*+[,}\]:]))*+"""
    return ScrubRule(
        name=HL7_RULE_NAME,
        pattern=rf"(?<![A-Za-z0-9])(?:{'|'.join(names)})\|{segment}",
        replacement=hl7.replacement,
        # Every segment has a "|"; one substring search instead of one per segment name.
        triggers=("|",),
        transform="hl7",
    )


def hl7_field_of_key(key: str) -> tuple[str, int] | None:
    """``("PID", 5)`` for keys such as ``PID-5``, ``pid.5.1`` or ``PID_5``; None otherwise."""
    match = _HL7_FIELD_KEY.fullmatch(key)
    if match is None:
        return None
    return match.group(1).upper(), int(match.group(2))
