"""Every regex applied to log text runs in linear time on adversarial input (issue 12, item 2).

Each pattern (parsers, reassembly, Sentry normalisation and trace parsing, the PHI boundary, every
bundled scrub rule and prefilter, key patterns: ``regex_attacks.log_text_patterns``) is timed in one
run on 10 KB and 100 KB of the repeated units it likes least. Linear is 10x; the assertion allows
up to 30x (noise on a shared machine), where the quadratic patterns this replaced grew ~100x.
No absolute times are asserted.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from logpipe.regex_guard import NonLinearPatternError, check_linear, repeated
from logpipe.scrub import ScrubRulesError
from logpipe.scrub_rules import load_scrub_config
from regex_attacks import Subject, growth, log_text_patterns, worst_units

pytestmark = pytest.mark.unit

MAX_GROWTH = 30.0  # 10x the input; linear is 10x, quadratic 100x
SUBJECTS = log_text_patterns()


def test_the_audit_covers_every_module_that_reads_log_text() -> None:
    names = {subject.name for subject in SUBJECTS}
    for expected in (
        "logpipe.sentry.event._NORMALIZE",
        "logpipe.formats._KEY_VALUE",
        "logpipe.assemble._POSTGRES_CONTINUATION",
        "logpipe.sentry.stacktrace._NODE_FRAME",
        "logpipe.scrub._JSON_STRING",
        "logpipe.boundary._UNICODE_ESCAPE",
        "scrub rule email",
        "scrub rule dicom_person_name",
        "scrub prefilter card",
        "scrub triggers",
    ):
        assert expected in names
    # The generated key-group rules are in too (their names come from the rules file).
    assert sum(name.startswith("scrub rule ") for name in names) == len(load_scrub_config().text_rules)


@pytest.mark.parametrize("subject", SUBJECTS, ids=[subject.name for subject in SUBJECTS])
def test_pattern_grows_linearly_on_its_worst_input(subject: Subject) -> None:
    for unit in worst_units(subject, keep=2):
        short, long, ratio = growth(subject, unit)
        assert ratio <= MAX_GROWTH, (
            f"{subject.name} on {unit!r} repeated: {short * 1e3:.2f} ms at 10 KB, {long * 1e3:.2f} ms at 100 KB"
        )


@pytest.mark.parametrize("unit", ["900101-", "010-", "a.b-", "fA_"])
def test_normalize_message_is_linear_on_the_lines_that_made_it_quadratic(unit: str) -> None:
    from logpipe.sentry import event

    normalize = event.normalize_message.__wrapped__  # past the lru_cache: time the work, not the memo

    def seconds(size: int) -> float:
        text = repeated(unit, size)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            normalize(text)
            best = min(best, time.perf_counter() - started)
        return best

    assert seconds(100_000) / seconds(10_000) <= MAX_GROWTH


@pytest.mark.parametrize(
    "pattern",
    [
        r"(a+)+b",  # exponential
        r"(?:\w+\s?)*x",  # exponential on words
        r"[\w.+-]+@example\.org",  # quadratic: the shape normalize_message had
        r"\s*=\s*$",  # quadratic on spaces
    ],
)
def test_the_guard_rejects_catastrophic_patterns(pattern: str) -> None:
    with pytest.raises(NonLinearPatternError):
        check_linear(re.compile(pattern))


@pytest.mark.parametrize("pattern", [r"(?<![\w.+-])[\w.+-]++@example\.org", r"[a-z]{1,40}+=\d+", r"password=\S+"])
def test_the_guard_accepts_linear_patterns(pattern: str) -> None:
    check_linear(re.compile(pattern))


def write_rules(tmp_path: Path, rule: Mapping[str, object], key_patterns: list[str] | None = None) -> Path:
    document: dict[str, object] = {"version": 2, "rules": [rule]}
    if key_patterns is not None:
        document["key_groups"] = [{"name": "custom", "replacement": "[REDACTED:custom]", "key_patterns": key_patterns}]
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    return path


def test_a_users_catastrophic_scrub_rule_fails_the_load_with_its_name(tmp_path: Path) -> None:
    rule = {"name": "mrn", "pattern": r"MRN[:=](\d+-?)+X", "replacement": "[REDACTED:mrn]"}
    with pytest.raises(ScrubRulesError, match=r"rule 'mrn': pattern .*(catastrophic|superlinear)"):
        load_scrub_config(write_rules(tmp_path, rule))


def test_a_users_catastrophic_key_pattern_fails_the_load(tmp_path: Path) -> None:
    rule = {"name": "mrn", "pattern": r"MRN[:=]\d{4,12}", "replacement": "[REDACTED:mrn]"}
    with pytest.raises(ScrubRulesError, match=r"key group 'custom': key pattern"):
        load_scrub_config(write_rules(tmp_path, rule, key_patterns=[r"^(a|aa)+$"]))


def test_a_users_linear_rules_load(tmp_path: Path) -> None:
    rule = {"name": "mrn", "pattern": r"MRN[:=]\d{4,12}+(?!\d)", "replacement": "[REDACTED:mrn]"}
    config = load_scrub_config(write_rules(tmp_path, rule, key_patterns=[r"mrn"]))
    assert config.text_scrubber().scrub("MRN=123456 seen") == "[REDACTED:mrn] seen"


def test_the_bundled_rules_pass_the_guard_a_users_file_meets() -> None:
    from logpipe.scrub_rules import check_linear_rules

    check_linear_rules(load_scrub_config())
