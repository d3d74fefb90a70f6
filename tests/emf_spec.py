"""The CloudWatch Embedded Metric Format specification as a checker: every rule a document must follow.

Written from the EMF specification (CloudWatch user guide, "Specification: Embedded metric format")
and the limits the brief verified: a document is one JSON object under 256 KB whose ``_aws`` holds
an integer millisecond ``Timestamp`` and a non-empty ``CloudWatchMetrics`` array of directives;
each directive has a ``Namespace`` (1-255 characters), ``Dimensions`` (at least one dimension set,
each at most 30 keys, possibly empty) and ``Metrics`` (at most 100 definitions, each a ``Name``
with an optional CloudWatch ``Unit`` and ``StorageResolution`` 1 or 60); every dimension key names
a root member holding a string, every metric name a root member holding a number or an array of
at most 100 numbers; and CloudWatch only accepts points at most 14 days old and 2 hours ahead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

MAX_DOCUMENT_BYTES = 256 * 1024
MAX_METRICS_PER_DIRECTIVE = 100
MAX_DIMENSIONS_PER_SET = 30
MAX_VALUES_PER_METRIC = 100
MAX_NAME_CHARS = 255
MAX_PAST_MS = 14 * 24 * 3600 * 1000
MAX_FUTURE_MS = 2 * 3600 * 1000
_SIZES = ("Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes")
_BITS = ("Bits", "Kilobits", "Megabits", "Gigabits", "Terabits")
# CloudWatch's MetricDatum units.
UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        *_SIZES,
        *_BITS,
        "Percent",
        "Count",
        *(f"{unit}/Second" for unit in (*_SIZES, *_BITS, "Count")),
        "None",
    }
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _name_problem(value: object, what: str) -> str | None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_CHARS:
        return f"{what} must be a string of 1-{MAX_NAME_CHARS} characters, not {value!r}"
    return None


def _dimension_problems(where: str, dimension_sets: object, root: Mapping[str, Any]) -> list[str]:
    if not isinstance(dimension_sets, list) or not dimension_sets:
        return [f"{where}.Dimensions must be a non-empty array of dimension sets"]
    problems: list[str] = []
    for number, dimension_set in enumerate(dimension_sets):
        if not isinstance(dimension_set, list):
            problems.append(f"{where}.Dimensions[{number}] must be an array")
            continue
        if len(dimension_set) > MAX_DIMENSIONS_PER_SET:
            problems.append(f"{where}.Dimensions[{number}] has {len(dimension_set)} keys (at most 30)")
        for key in dimension_set:
            if (problem := _name_problem(key, f"{where}.Dimensions[{number}] key")) is not None:
                problems.append(problem)
            elif not isinstance(root.get(key), str):
                problems.append(f"dimension {key!r} must be a root member holding a string")
    return problems


def _directive_problems(index: int, directive: object, root: Mapping[str, Any]) -> list[str]:
    where = f"CloudWatchMetrics[{index}]"
    if not isinstance(directive, Mapping):
        return [f"{where} must be an object"]
    missing = [f"{where} lacks {key}" for key in ("Namespace", "Dimensions", "Metrics") if key not in directive]
    if missing:
        return missing
    problems = _dimension_problems(where, directive["Dimensions"], root)
    if (problem := _name_problem(directive["Namespace"], f"{where}.Namespace")) is not None:
        problems.append(problem)
    metrics = directive["Metrics"]
    if not isinstance(metrics, list):
        return [*problems, f"{where}.Metrics must be an array"]
    if len(metrics) > MAX_METRICS_PER_DIRECTIVE:
        problems.append(f"{where}.Metrics has {len(metrics)} definitions (at most 100)")
    for definition in metrics:
        problems.extend(_metric_problems(where, definition, root))
    return problems


def _metric_problems(where: str, definition: object, root: Mapping[str, Any]) -> list[str]:
    if not isinstance(definition, Mapping):
        return [f"{where}.Metrics holds a non-object"]
    name = definition.get("Name")
    if (problem := _name_problem(name, f"{where} metric Name")) is not None:
        return [problem]
    problems: list[str] = []
    unit = definition.get("Unit", "None")
    if unit not in UNITS:
        problems.append(f"metric {name!r} has unit {unit!r}, not a CloudWatch unit")
    if definition.get("StorageResolution", 60) not in {1, 60}:
        problems.append(f"metric {name!r} has StorageResolution {definition['StorageResolution']!r} (1 or 60)")
    value = root.get(str(name))
    if isinstance(value, list):
        if not value or not all(_is_number(item) for item in value):
            problems.append(f"metric {name!r} must hold numbers")
        if len(value) > MAX_VALUES_PER_METRIC:
            problems.append(f"metric {name!r} holds {len(value)} values (at most 100)")
    elif not _is_number(value):
        problems.append(f"metric {name!r} must be a root member holding a number or an array of numbers")
    return problems


def emf_problems(line: bytes | str, now_ms: int) -> list[str]:
    """Every way one written line breaks the EMF specification (empty: a valid document), ``now_ms`` its write time."""
    raw = line.encode() if isinstance(line, str) else line
    if len(raw.rstrip(b"\n")) > MAX_DOCUMENT_BYTES:
        return [f"document is {len(raw)} bytes (at most 256 KB)"]
    try:
        root = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return [f"not one JSON document: {error}"]
    if not isinstance(root, dict):
        return ["the root must be a JSON object"]
    metadata = root.get("_aws")
    if not isinstance(metadata, dict):
        return ["_aws is required and must be an object"]
    problems: list[str] = []
    timestamp = metadata.get("Timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        problems.append(f"_aws.Timestamp must be integer epoch milliseconds, not {timestamp!r}")
    elif not now_ms - MAX_PAST_MS <= timestamp <= now_ms + MAX_FUTURE_MS:
        problems.append(f"_aws.Timestamp {timestamp} is outside 14 days back / 2 hours ahead of {now_ms}")
    directives = metadata.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*problems, "_aws.CloudWatchMetrics must be a non-empty array"]
    for index, directive in enumerate(directives):
        problems.extend(_directive_problems(index, directive, root))
    return problems
