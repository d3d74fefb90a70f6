"""The PHI corpus (tests/phi_corpus.py) through the boundary, as text and inside the JSON a service logs."""

from __future__ import annotations

import json

import pytest

from logpipe.boundary import Boundary
from phi_corpus import CLEAN_LINES, CORPUS, PhiSample

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def boundary() -> Boundary:
    return Boundary.default()


def _check(out: str, sample: PhiSample) -> None:
    leaked = [secret for secret in sample.must_not_survive if secret in out]
    assert leaked == [], f"{sample.name}: {leaked} survived in {out!r}"
    lost = [part for part in sample.must_survive if part not in out]
    assert lost == [], f"{sample.name}: {lost} was masked in {out!r}"


@pytest.mark.parametrize("sample", CORPUS, ids=[sample.name for sample in CORPUS])
def test_as_logged_text(boundary: Boundary, sample: PhiSample) -> None:
    _check(boundary.scrub_text(sample.text), sample)


@pytest.mark.parametrize("sample", CORPUS, ids=[sample.name for sample in CORPUS])
def test_inside_a_json_log_record(boundary: Boundary, sample: PhiSample) -> None:
    # A structured logger puts the text in a field; the boundary must find it there too, including
    # when that field's value is itself JSON, and when the whole record arrives as escaped JSON.
    record = {"level": "ERROR", "message": "see detail", "detail": sample.text}
    out = boundary.scrub_value(record)
    _check(json.dumps(out, ensure_ascii=False), sample)
    escaped = boundary.scrub_value({"payload": json.dumps(record, ensure_ascii=False)})
    _check(json.dumps(escaped, ensure_ascii=False), sample)


@pytest.mark.parametrize("line", CLEAN_LINES)
def test_clean_lines_do_not_change(boundary: Boundary, line: str) -> None:
    assert boundary.scrub_text(line) is line
    assert boundary.scrub_value({"message": line}) == {"message": line}
