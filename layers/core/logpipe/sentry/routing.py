"""Which Sentry DSN a service's errors go to.

In AWS the DSNs live in one Secrets Manager JSON secret, ``{"default": "...", "<service>": "..."}``,
read through Powertools Parameters (``logpipe.secret_store``: cached for five minutes, so a rotated
DSN is picked up without a redeploy). A secret that is missing, empty, malformed or not readable
makes ``dsn_for`` raise ``SecretNotConfiguredError`` (the sink counts the record as not configured);
a throttled or unreachable Secrets Manager raises ``SecretUnavailableError`` (the sink parks it).
Locally ``LOGPIPE_SENTRY_DSN`` gives a single DSN for every service. Only the secret's *name* is
ever logged, never its value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from logpipe.secret_store import JsonSecret, SecretNotConfiguredError, SecretState


class DsnRoutingError(SecretNotConfiguredError):
    """The DSNs are not a JSON object of service -> DSN, or hold something that is not a DSN."""


def _validated(dsns: object, source: str) -> dict[str, str]:
    if not isinstance(dsns, Mapping):
        raise DsnRoutingError(source, SecretState.MALFORMED, "expected a JSON object of service -> DSN")
    if not dsns:
        raise DsnRoutingError(source, SecretState.EMPTY, 'no DSN: put {"default": "<dsn>"}')
    checked: dict[str, str] = {}
    for service, dsn in dsns.items():
        if not isinstance(dsn, str) or not dsn.startswith(("http://", "https://")) or "@" not in dsn:
            raise DsnRoutingError(source, SecretState.MALFORMED, f"the value for {service!r} is not a Sentry DSN")
        checked[str(service)] = dsn
    return checked


@dataclass(frozen=True, slots=True)
class DsnRouter:
    """Resolves a service to its DSN (the service's own, else ``default``, else none)."""

    load: Callable[[], Mapping[str, str]]
    source: str

    def dsn_for(self, service: str) -> str | None:
        """The DSN for ``service``; None when neither it nor ``default`` is configured."""
        dsns = self.load()
        return dsns.get(service) or dsns.get("default")

    @classmethod
    def single(cls, dsn: str) -> DsnRouter:
        """Every service to one DSN (``LOGPIPE_SENTRY_DSN``, local runs)."""
        dsns = _validated({"default": dsn}, "LOGPIPE_SENTRY_DSN")
        return cls(load=lambda: dsns, source="LOGPIPE_SENTRY_DSN")

    @classmethod
    def from_secret(cls, secret_id: str, secret: JsonSecret | None = None) -> DsnRouter:
        """DSNs from a Secrets Manager JSON secret, through Powertools Parameters' cache."""
        store = secret if secret is not None else JsonSecret(secret_id)

        def load() -> Mapping[str, str]:
            return _validated(store.value(), store.source)

        return cls(load=load, source=store.source)
