"""Integration fixtures: a real Bugsink (Sentry-protocol server) on 127.0.0.1, and fresh projects with their DSNs.

Bugsink is installed by ``./scripts/bugsink install`` (``./scripts/bootstrap`` runs it). Without it these fixtures
skip, except in CI (``CI`` set), where a missing Bugsink is an error.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from logpipe_cli.bugsink import BugsinkProject, BugsinkServer, installation_problem, start_bugsink

RATE_LIMITED_EVENTS_PER_5_MINUTES = 3
"""The per-project limit of the ``bugsink_rate_limited`` server: the 4th event of a project in 5 minutes gets 429."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def _require_bugsink() -> None:
    problem = installation_problem()
    if problem is None:
        return
    if _in_ci():
        pytest.fail(f"Bugsink is required in CI and is not ready: {problem}", pytrace=False)
    pytest.skip(f"Bugsink is not available here: {problem}")


@pytest.fixture(scope="session")
def bugsink() -> Iterator[BugsinkServer]:
    """One Bugsink for the session, from a fresh copy of the template DB, with no rate limit in reach."""
    _require_bugsink()
    server = start_bugsink()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def bugsink_rate_limited() -> Iterator[BugsinkServer]:
    """A second Bugsink whose projects each get RATE_LIMITED_EVENTS_PER_5_MINUTES events, then real 429s."""
    _require_bugsink()
    server = start_bugsink(max_events_per_project_per_5_minutes=RATE_LIMITED_EVENTS_PER_5_MINUTES)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def bugsink_factory() -> Iterator[Callable[..., BugsinkServer]]:
    """Start extra servers (``start_bugsink`` keywords) that this test may stop and restart; all closed after it."""
    _require_bugsink()
    servers: list[BugsinkServer] = []

    def start(
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        max_events_per_project_per_5_minutes: int | None = None,
    ) -> BugsinkServer:
        server = start_bugsink(
            port=port,
            data_dir=data_dir,
            max_events_per_project_per_5_minutes=max_events_per_project_per_5_minutes,
        )
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def sentry_project(bugsink: BugsinkServer, request: pytest.FixtureRequest) -> BugsinkProject:
    """A fresh project on the session's Bugsink, named after the test; ``.dsn`` is what a Sentry client needs."""
    return bugsink.create_project(f"{request.node.name[:60]}-{uuid.uuid4().hex[:8]}")
