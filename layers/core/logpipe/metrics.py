"""PACS business metrics from log records, written as CloudWatch Embedded Metric Format (EMF).

The rules are data (``rules/pacs_metrics.json`` by default; ``LOGPIPE_METRIC_RULES`` points to a
user's own file), so a metric is added without touching Python. Each rule says which records it
counts (service, level, message, fields) and what value each contributes.

Values are aggregated per batch and per minute of *log* time: count metrics become one summed
number per minute, sample metrics (response time) keep every per-request value as EMF value arrays
(at most 100 per document), so CloudWatch's Average and percentiles stay exact.

This is the project's one hand-written EMF writer, kept because Powertools Metrics cannot express
these documents: two dimension sets, one of them empty (the seed's alarms read the dimensionless
series), the log's own minute as the timestamp, and value arrays split at 100. Every other EMF
document goes through Powertools (``logpipe.health``); ``tests/emf_spec.py`` checks them all.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from logpipe.records import Level, LogFormat, LogRecord, normalize_level

MAX_VALUES_PER_METRIC = 100
MAX_METRICS_PER_DIRECTIVE = 100
MAX_PAST_MS = 14 * 24 * 3600 * 1000
MAX_FUTURE_MS = 2 * 3600 * 1000
_MINUTE_MS = 60_000
_UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Count/Second",
        "None",
    },
)
_RULE_KEYS = frozenset(
    {
        "name",
        "namespace",
        "unit",
        "services",
        "log_types",
        "when",
        "value",
        "positional_fields",
        "seed_filter",
        "description",
    }
)
_MATCHER_KEYS = frozenset({"levels", "message", "message_prefix", "message_contains", "has_fields", "fields"})


class MetricRulesError(ValueError):
    """The metric rules file is invalid; the message names the file, the rule and the problem."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """One alternative way a record can match a rule; every given condition must hold."""

    levels: frozenset[Level] | None = None
    message: str | None = None
    message_prefix: str | None = None
    message_contains: str | None = None
    has_fields: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class MetricRule:
    """How one metric is computed from records."""

    name: str
    namespace: str
    unit: str
    services: frozenset[str] | None
    log_types: frozenset[str] | None
    when: tuple[Matcher, ...]
    value_field: str | None
    constant: float
    positional_fields: tuple[str, ...] = ()

    @property
    def is_count(self) -> bool:
        """Count metrics add a constant per match; the others keep each sample."""
        return self.value_field is None


@dataclass(frozen=True, slots=True)
class MetricRuleSet:
    """All rules plus the dimensions every metric is published with."""

    rules: tuple[MetricRule, ...]
    dimensions: tuple[str, ...] = ("Service", "Environment")
    publish_dimensionless: bool = True
    by_service: Mapping[str, tuple[MetricRule, ...]] = field(default_factory=dict)
    any_service: tuple[MetricRule, ...] = ()

    def rules_for(self, service: str) -> tuple[MetricRule, ...]:
        """The rules that can apply to a service (indexed so most records check few rules)."""
        return self.by_service.get(service, self.any_service)


def _fail(source: str, where: str, problem: str) -> MetricRulesError:
    return MetricRulesError(f"{source}: {where}: {problem}")


def _matcher(raw: object, source: str, where: str) -> Matcher:
    if not isinstance(raw, dict):
        raise _fail(source, where, "each 'when' entry must be an object")
    unknown = set(raw) - _MATCHER_KEYS
    if unknown:
        raise _fail(source, where, f"unknown keys {sorted(unknown)}")
    levels = None
    if "levels" in raw:
        names = raw["levels"]
        if not isinstance(names, list) or not names:
            raise _fail(source, where, "'levels' must be a non-empty list")
        parsed = [normalize_level(name) for name in names]
        if any(level is None for level in parsed):
            raise _fail(source, where, f"unknown level in {names}")
        levels = frozenset(level for level in parsed if level is not None)
    fields = raw.get("fields", {})
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise _fail(source, where, "'fields' must map names to string values")
    has_fields = raw.get("has_fields", [])
    if not isinstance(has_fields, list) or not all(isinstance(name, str) for name in has_fields):
        raise _fail(source, where, "'has_fields' must be a list of names")
    matcher = Matcher(
        levels=levels,
        message=raw.get("message"),
        message_prefix=raw.get("message_prefix"),
        message_contains=raw.get("message_contains"),
        has_fields=tuple(has_fields),
        fields=tuple(sorted(fields.items())),
    )
    if matcher == Matcher():
        raise _fail(source, where, "a 'when' entry needs at least one condition")
    return matcher


def _rule(raw: object, source: str, index: int) -> MetricRule:
    where = f"metrics[{index}]"
    if not isinstance(raw, dict):
        raise _fail(source, where, "must be an object")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise _fail(source, where, f"unknown keys {sorted(unknown)}")
    for key in ("name", "namespace"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise _fail(source, where, f"'{key}' is required")
    where = f"metric {raw['name']!r}"
    unit = raw.get("unit", "None")
    if unit not in _UNITS:
        raise _fail(source, where, f"unit {unit!r} is not a CloudWatch unit")
    when = raw.get("when")
    if not isinstance(when, list) or not when:
        raise _fail(source, where, "'when' must be a non-empty list of matchers")
    value = raw.get("value", 1)
    value_field = None
    constant = 1.0
    if isinstance(value, str):
        if not value.startswith("$") or len(value) < 2:
            raise _fail(source, where, "a string 'value' must be '$field'")
        value_field = value[1:]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        constant = float(value)
    else:
        raise _fail(source, where, "'value' must be a number or '$field'")
    services = raw.get("services")
    log_types = raw.get("log_types")
    return MetricRule(
        name=raw["name"],
        namespace=raw["namespace"],
        unit=unit,
        services=None if services is None else frozenset(services),
        log_types=None if log_types is None else frozenset(log_types),
        when=tuple(_matcher(item, source, f"{where} when[{i}]") for i, item in enumerate(when)),
        value_field=value_field,
        constant=constant,
        positional_fields=tuple(raw.get("positional_fields", ())),
    )


def build_rule_set(document: object, source: str = "<rules>") -> MetricRuleSet:
    """Validate a rules document and index its rules by service."""
    if not isinstance(document, dict) or document.get("version") != 1:
        raise _fail(source, "top level", 'expected an object with "version": 1')
    metrics = document.get("metrics")
    if not isinstance(metrics, list):
        raise _fail(source, "top level", "'metrics' must be a list")
    rules = tuple(_rule(raw, source, index) for index, raw in enumerate(metrics))
    names = [(rule.namespace, rule.name) for rule in rules]
    if len(set(names)) != len(names):
        raise _fail(source, "metrics", "duplicate metric name within a namespace")
    dimensions = tuple(document.get("dimensions", ("Service", "Environment")))
    if not set(dimensions) <= {"Service", "Environment"}:
        raise _fail(source, "dimensions", "supported dimensions are Service and Environment")
    any_service = tuple(rule for rule in rules if rule.services is None)
    services = {service for rule in rules if rule.services for service in rule.services}
    by_service = {
        service: tuple(rule for rule in rules if rule.services is None or service in rule.services)
        for service in services
    }
    return MetricRuleSet(
        rules=rules,
        dimensions=dimensions,
        publish_dimensionless=bool(document.get("publish_dimensionless", True)),
        by_service=by_service,
        any_service=any_service,
    )


def load_metric_rules(path: str | os.PathLike[str] | None = None) -> MetricRuleSet:
    """Load a rules file; None loads the bundled seed rules."""
    if path is None:
        text = resources.files("logpipe").joinpath("rules/pacs_metrics.json").read_bytes()
        source = "logpipe/rules/pacs_metrics.json"
    else:
        source = os.fspath(path)
        try:
            text = Path(source).read_bytes()
        except OSError as error:
            msg = f"{source}: cannot read metric rules: {error.strerror}"
            raise MetricRulesError(msg) from error
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        msg = f"{source}: not valid JSON: {error}"
        raise MetricRulesError(msg) from error
    return build_rule_set(document, source)


def _field(record: LogRecord, name: str, rule: MetricRule) -> Any:
    value = record.fields.get(name)
    if value is None and record.format is LogFormat.SPACE_DELIMITED and name in rule.positional_fields:
        # Space-delimited lines carry values by position, as in the seed's filter patterns.
        values = record.fields.get("values") or ()
        position = rule.positional_fields.index(name)
        if position < len(values):
            return values[position]
    return value


def _matches(record: LogRecord, matcher: Matcher, rule: MetricRule) -> bool:
    if matcher.levels is not None and record.level not in matcher.levels:
        return False
    if matcher.message is not None and record.message != matcher.message:
        return False
    if matcher.message_prefix is not None and not record.message.startswith(matcher.message_prefix):
        return False
    if matcher.message_contains is not None and matcher.message_contains not in record.message:
        return False
    for name in matcher.has_fields:
        if _field(record, name, rule) in (None, ""):
            return False
    return all(record.fields.get(name) == expected for name, expected in matcher.fields)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.removesuffix("ms"))
        except ValueError:
            return None
    return None


@dataclass(slots=True)
class MetricTotals:
    """What one aggregation saw: per-metric sums and sample counts, plus what it refused."""

    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    samples: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bad_values: int = 0
    out_of_window: int = 0


class MetricAggregator:
    """Accumulates rule matches per (namespace, service, environment, minute) and renders EMF."""

    def __init__(self, rule_set: MetricRuleSet) -> None:
        """Start an empty aggregation for one batch (or one invocation)."""
        self.rule_set = rule_set
        # key -> metric name -> list of samples (sample metrics) or [sum] (count metrics)
        self._buckets: dict[tuple[str, str, str, int], dict[str, list[float]]] = {}
        self._units: dict[str, str] = {rule.name: rule.unit for rule in rule_set.rules}
        self.totals = MetricTotals()

    def observe(self, record: LogRecord) -> None:
        """Apply every rule to one record."""
        # rules_for() already holds only the rules that apply to this service.
        for rule in self.rule_set.rules_for(record.service):
            if rule.log_types is not None and record.stream.log_type not in rule.log_types:
                continue
            for matcher in rule.when:
                if _matches(record, matcher, rule):
                    self._add(record, rule)
                    break

    def _add(self, record: LogRecord, rule: MetricRule) -> None:
        if rule.value_field is None:
            value = rule.constant
        else:
            parsed = _number(_field(record, rule.value_field, rule))
            if parsed is None:
                self.totals.bad_values += 1
                return
            value = parsed
        minute = record.timestamp_ms - record.timestamp_ms % _MINUTE_MS
        key = (rule.namespace, record.service, record.environment, minute)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = {}
        values = bucket.get(rule.name)
        if values is None:
            values = bucket[rule.name] = [0.0] if rule.is_count else []
        if rule.is_count:
            values[0] += value
        else:
            values.append(value)
        self.totals.sums[rule.name] += value
        self.totals.samples[rule.name] += 1

    def documents(self, now_ms: int) -> Iterator[dict[str, Any]]:
        """Render EMF documents; data points outside CloudWatch's accepted window are counted, not sent."""
        dimension_sets: list[list[str]] = [list(self.rule_set.dimensions)]
        if self.rule_set.publish_dimensionless:
            dimension_sets.append([])
        for (namespace, service, environment, minute), metrics in sorted(self._buckets.items()):
            if minute < now_ms - MAX_PAST_MS or minute > now_ms + MAX_FUTURE_MS:
                self.totals.out_of_window += sum(len(v) for v in metrics.values())
                continue
            yield from self._documents_for(namespace, service, environment, minute, metrics, dimension_sets)

    def _documents_for(  # noqa: PLR0913, PLR0917 - one bucket's identity
        self,
        namespace: str,
        service: str,
        environment: str,
        minute: int,
        metrics: dict[str, list[float]],
        dimension_sets: list[list[str]],
    ) -> Iterator[dict[str, Any]]:
        names = sorted(metrics)
        longest = max(len(values) for values in metrics.values())
        for offset in range(0, longest, MAX_VALUES_PER_METRIC):
            for start in range(0, len(names), MAX_METRICS_PER_DIRECTIVE):
                document: dict[str, Any] = {}
                definitions = []
                for name in names[start : start + MAX_METRICS_PER_DIRECTIVE]:
                    chunk = metrics[name][offset : offset + MAX_VALUES_PER_METRIC]
                    if not chunk:
                        continue
                    document[name] = chunk[0] if len(chunk) == 1 else chunk
                    definitions.append({"Name": name, "Unit": self._units[name]})
                if not definitions:
                    continue
                document["_aws"] = {
                    "Timestamp": minute,
                    "CloudWatchMetrics": [
                        {"Namespace": namespace, "Dimensions": dimension_sets, "Metrics": definitions},
                    ],
                }
                if "Service" in self.rule_set.dimensions:
                    document["Service"] = service
                if "Environment" in self.rule_set.dimensions:
                    document["Environment"] = environment
                yield document

    def write(self, now_ms: int, writer: Callable[[bytes], object]) -> int:
        """Write each EMF document as one JSON line via ``writer``; return how many were written."""
        count = 0
        for document in self.documents(now_ms):
            writer(orjson.dumps(document) + b"\n")
            count += 1
        return count


def summarize(documents: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Sum and count what EMF documents carry, per metric name (what CloudWatch would ingest)."""
    totals: dict[str, dict[str, float]] = {}
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for definition in directive["Metrics"]:
                name = definition["Name"]
                value = document[name]
                values = value if isinstance(value, list) else [value]
                entry = totals.setdefault(name, {"sum": 0.0, "values": 0})
                entry["sum"] += sum(values)
                entry["values"] += len(values)
    return totals
