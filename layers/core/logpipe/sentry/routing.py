"""Which Sentry DSN a service's errors go to.

In AWS the DSNs live in one Secrets Manager JSON secret, ``{"default": "...", "<service>": "..."}``,
read with Powertools Parameters (cached for ``max_age`` seconds, so a rotated DSN is picked up
without a redeploy). Locally ``LOGPIPE_SENTRY_DSN`` gives a single DSN for every service.
Only the secret's *name* is ever logged, never its value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

SECRET_MAX_AGE_SECONDS = 300


class DsnRoutingError(ValueError):
    """The DSN secret is missing, not JSON, or holds something that is not a DSN."""


def _validated(dsns: object, source: str) -> dict[str, str]:
    if not isinstance(dsns, Mapping):
        msg = f"{source}: expected a JSON object of service -> DSN"
        raise DsnRoutingError(msg)
    checked: dict[str, str] = {}
    for service, dsn in dsns.items():
        if not isinstance(dsn, str) or not dsn.startswith(("http://", "https://")) or "@" not in dsn:
            msg = f"{source}: the value for {service!r} is not a Sentry DSN"
            raise DsnRoutingError(msg)
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
    def from_secret(cls, secret_id: str) -> DsnRouter:
        """DSNs from a Secrets Manager JSON secret, through Powertools Parameters' cache."""

        def load() -> Mapping[str, str]:
            from aws_lambda_powertools.utilities import parameters  # Sentry path only

            try:
                value = parameters.get_secret(secret_id, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
            except parameters.exceptions.TransformParameterError as error:
                msg = f"secret {secret_id}: not valid JSON"
                raise DsnRoutingError(msg) from error
            return _validated(value, f"secret {secret_id}")

        return cls(load=load, source=f"secret {secret_id}")
