"""The pipeline's own health metrics (Powertools Metrics, a process-wide singleton)."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import pytest

from logpipe.health import HealthMetrics

pytestmark = pytest.mark.unit


def test_a_new_environment_replaces_the_default_dimension_without_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    """Pipelines built one after another in a process (tests, the CLI) must not re-add a dimension."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Powertools' "Dimension 'Environment' has already been added"
        for environment, events in (("dev", 1), ("prod", 2), ("prod", 3), ("stg", 4)):
            HealthMetrics(environment, namespace="LogPipe", service="logpipe-ingest").publish(Counter(events_in=events))
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"CloudWatchMetrics"' in line]
    assert [(d["Environment"], d["EventsIn"]) for d in documents] == [
        ("dev", [1.0]),
        ("prod", [2.0]),
        ("prod", [3.0]),
        ("stg", [4.0]),
    ]
    for document in documents:
        assert [sorted(s) for s in document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]] == [
            ["Environment", "service"]
        ]
