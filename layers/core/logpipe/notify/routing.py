"""Which channels get a notification: a small rules table by severity, environment and state (data, not code).

``rules/notify_routes.json`` is the default (every alarm to every configured channel);
``LOGPIPE_NOTIFY_RULES`` points at a file of the same shape. A bad file fails with a message naming
the file, the entry and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from logpipe.notify.alarm import AlarmNotification, AlarmState, Notification

PLAIN_STATE = "MESSAGE"  # the "state" of a notification that is not an alarm state change
_STATES = frozenset({*AlarmState.__members__, PLAIN_STATE})
_ROUTE_KEYS = frozenset({"name", "environments", "severities", "states", "channels"})


class Channel(StrEnum):
    """A chat destination."""

    SLACK = "slack"
    TEAMS = "teams"


class RoutingRulesError(ValueError):
    """The routing rules file is invalid; the message names the file, the entry and the problem."""


@dataclass(frozen=True, slots=True)
class SeverityRule:
    """Alarms on these namespaces have this severity."""

    severity: str
    namespaces: frozenset[str]


@dataclass(frozen=True, slots=True)
class Route:
    """Notifications matching every given condition go to ``channels``; ``None`` means any."""

    name: str
    channels: tuple[Channel, ...]
    environments: frozenset[str] | None = None
    severities: frozenset[str] | None = None
    states: frozenset[str] | None = None

    def matches(self, environment: str, severity: str, state: str) -> bool:
        """Whether a notification with these properties takes this route."""
        return (
            (self.environments is None or environment in self.environments)
            and (self.severities is None or severity in self.severities)
            and (self.states is None or state in self.states)
        )


@dataclass(frozen=True, slots=True)
class RoutingRules:
    """Severity rules and routes, first match wins."""

    severities: tuple[SeverityRule, ...]
    default_severity: str
    routes: tuple[Route, ...]

    def severity_of(self, notification: Notification) -> str:
        """The severity of an alarm (by its metric's namespace); plain messages get the default."""
        if isinstance(notification, AlarmNotification):
            namespace = notification.trigger.namespace or ""
            for rule in self.severities:
                if namespace in rule.namespaces:
                    return rule.severity
        return self.default_severity

    def route(self, notification: Notification, environment: str) -> Route | None:
        """The first matching route, or None (then nobody is notified in chat)."""
        state = notification.new_state.value if isinstance(notification, AlarmNotification) else PLAIN_STATE
        severity = self.severity_of(notification)
        return next((route for route in self.routes if route.matches(environment, severity, state)), None)


def _strings(value: object, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        msg = f"{where} must be a list of non-empty strings"
        raise RoutingRulesError(msg)
    return frozenset(value)


def _route(item: object, source: str, index: int) -> Route:
    where = f"{source}: routes[{index}]"
    if not isinstance(item, Mapping):
        msg = f"{where} must be an object"
        raise RoutingRulesError(msg)
    unknown = sorted(set(item) - _ROUTE_KEYS)
    if unknown:
        msg = f"{where}: unknown keys {unknown} (allowed: {sorted(_ROUTE_KEYS)})"
        raise RoutingRulesError(msg)
    channels = item.get("channels")
    if not isinstance(channels, list):
        msg = f"{where}: channels must be a list (empty to send nowhere)"
        raise RoutingRulesError(msg)
    known = {channel.value for channel in Channel}
    bad = [channel for channel in channels if channel not in known]
    if bad:
        msg = f"{where}: unknown channels {bad} (known: {sorted(known)})"
        raise RoutingRulesError(msg)
    states = _strings(item.get("states"), f"{where}.states")
    if states is not None and not states <= _STATES:
        msg = f"{where}.states: unknown states {sorted(states - _STATES)} (known: {sorted(_STATES)})"
        raise RoutingRulesError(msg)
    return Route(
        name=str(item.get("name") or f"route {index}"),
        channels=tuple(dict.fromkeys(Channel(channel) for channel in channels)),
        environments=_strings(item.get("environments"), f"{where}.environments"),
        severities=_strings(item.get("severities"), f"{where}.severities"),
        states=states,
    )


def _severity(item: object, source: str, index: int) -> SeverityRule:
    where = f"{source}: severities[{index}]"
    if not isinstance(item, Mapping) or not isinstance(item.get("severity"), str) or not item["severity"]:
        msg = f"{where} must be an object with a severity name"
        raise RoutingRulesError(msg)
    namespaces = _strings(item.get("namespaces"), f"{where}.namespaces")
    return SeverityRule(item["severity"], namespaces or frozenset())


def parse_routing_rules(document: object, source: str) -> RoutingRules:
    """Validate a decoded rules document."""
    if not isinstance(document, Mapping):
        msg = f"{source}: expected a JSON object"
        raise RoutingRulesError(msg)
    routes: Sequence[Any] = document.get("routes") or []
    if not isinstance(routes, list) or not routes:
        msg = f"{source}: routes must be a non-empty list"
        raise RoutingRulesError(msg)
    severities: Sequence[Any] = document.get("severities") or []
    if not isinstance(severities, list):
        msg = f"{source}: severities must be a list"
        raise RoutingRulesError(msg)
    default = document.get("default_severity", "warning")
    if not isinstance(default, str) or not default:
        msg = f"{source}: default_severity must be a non-empty string"
        raise RoutingRulesError(msg)
    return RoutingRules(
        severities=tuple(_severity(item, source, index) for index, item in enumerate(severities)),
        default_severity=default,
        routes=tuple(_route(item, source, index) for index, item in enumerate(routes)),
    )


def load_routing_rules(path: str | None = None) -> RoutingRules:
    """The bundled rules, or the file at ``path``."""
    if path is None:
        resource = resources.files("logpipe").joinpath("rules", "notify_routes.json")
        source, raw = str(resource), resource.read_text(encoding="utf-8")
    else:
        source = path
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            msg = f"{path}: cannot read the routing rules: {error}"
            raise RoutingRulesError(msg) from error
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        msg = f"{source}: not valid JSON: {error}"
        raise RoutingRulesError(msg) from error
    return parse_routing_rules(document, source)
