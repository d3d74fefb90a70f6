"""The Logs Insights query a notification links to: the saved query of a PACS alarm, else the pipeline's logs.

``rules/alarm_queries.json`` maps an alarm's metric to the saved query of the same text (a template
test keeps the two equal) and to the log groups of the service that metric reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from logpipe.notify.alarm import MetricTrigger


class AlarmQueriesError(ValueError):
    """The bundled alarm query mapping is malformed."""


@dataclass(frozen=True, slots=True)
class InsightsQuery:
    """A Logs Insights query and where it runs."""

    title: str
    query: str
    log_groups: tuple[str, ...]
    error_context: bool = False
    saved_query: str | None = None


@dataclass(frozen=True, slots=True)
class AlarmQueries:
    """Metric -> query, and the fallback over the pipeline's own log groups."""

    by_metric: Mapping[tuple[str, str], InsightsQuery]
    pipeline_query: str

    def for_trigger(self, trigger: MetricTrigger, pipeline_log_groups: Sequence[str]) -> InsightsQuery:
        """The saved query of the alarm's metric, or the pipeline query over ``pipeline_log_groups``."""
        found = self.by_metric.get((trigger.namespace or "", trigger.metric_name or ""))
        if found is not None:
            return found
        return InsightsQuery("pipeline logs", self.pipeline_query, tuple(pipeline_log_groups))


def _query(item: object, index: int) -> tuple[tuple[str, str], InsightsQuery]:
    where = f"alarm_queries.json: queries[{index}]"
    if not isinstance(item, Mapping):
        msg = f"{where} must be an object"
        raise AlarmQueriesError(msg)
    fields = {key: item.get(key) for key in ("namespace", "metric", "saved_query", "query")}
    if not all(isinstance(value, str) and value for value in fields.values()):
        msg = f"{where}: namespace, metric, saved_query and query must be non-empty strings"
        raise AlarmQueriesError(msg)
    groups = item.get("log_groups")
    if not isinstance(groups, list) or not groups or not all(isinstance(g, str) and g for g in groups):
        msg = f"{where}: log_groups must be a non-empty list of log group names"
        raise AlarmQueriesError(msg)
    saved = str(fields["saved_query"])
    return (str(fields["namespace"]), str(fields["metric"])), InsightsQuery(
        title=saved,
        query=str(fields["query"]),
        log_groups=tuple(groups),
        error_context=bool(item.get("error_context", False)),
        saved_query=saved,
    )


def load_alarm_queries() -> AlarmQueries:
    """The bundled mapping."""
    raw = resources.files("logpipe").joinpath("rules", "alarm_queries.json").read_text(encoding="utf-8")
    document = json.loads(raw)
    queries = document.get("queries")
    pipeline = document.get("pipeline_query")
    if not isinstance(queries, list) or not isinstance(pipeline, str) or not pipeline:
        msg = "alarm_queries.json: expected queries (a list) and pipeline_query (a string)"
        raise AlarmQueriesError(msg)
    return AlarmQueries(dict(_query(item, index) for index, item in enumerate(queries)), pipeline)
