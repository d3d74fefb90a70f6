"""Derive the service and log type from a CloudWatch log group name.

The design's naming rule is ``/aws/{service}/{resource}/{log-type}``; the older monitoring guide
uses ``/aws/ecs/{svc}`` with no log-type suffix. Both must resolve to the same service.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

# Suffixes the naming rule defines; anything else is treated as part of the resource name.
KNOWN_LOG_TYPES = frozenset(
    {
        "application",
        "errors",
        "llm",
        "access-logs",
        "error-logs",
        "error",
        "general",
        "slowquery",
        "postgresql",
        "upgrade",
        "audit",
    },
)


@dataclass(frozen=True, slots=True)
class LogGroupInfo:
    """What a log group name says about its source."""

    platform: str
    service: str
    log_type: str


@lru_cache(maxsize=4096)
def parse_log_group(log_group: str) -> LogGroupInfo:
    """Split a log group name into platform, service and log type."""
    parts = [part for part in log_group.split("/") if part]
    if parts and parts[0] == "aws":
        parts = parts[1:]
    if not parts:
        return LogGroupInfo(platform="unknown", service="unknown", log_type="application")
    platform = parts[0]
    rest = parts[1:]
    if platform in {"rds", "docdb", "neptune"} and rest and rest[0] in {"instance", "cluster"}:
        # RDS's own export path: /aws/rds/instance/{db}/{log}
        rest = rest[1:]
    if platform == "applicationloadbalancer":
        platform = "alb"
    if not rest:
        # e.g. /ecs/pacs-backend (ECS console default): the platform segment is the service.
        return LogGroupInfo(platform="unknown", service=platform, log_type="application")
    if len(rest) >= 2 and rest[-1] in KNOWN_LOG_TYPES:
        return LogGroupInfo(platform=platform, service="/".join(rest[:-1]), log_type=rest[-1])
    default_type = "lambda" if platform == "lambda" else "application"
    return LogGroupInfo(platform=platform, service="/".join(rest), log_type=default_type)
