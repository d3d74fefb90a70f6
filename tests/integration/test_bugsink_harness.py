"""The Bugsink harness against a real Bugsink: hand-built envelopes over plain urllib, read back through its API."""

from __future__ import annotations

import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from logpipe_cli.bugsink import ADMIN_USER, BugsinkError, BugsinkProject, BugsinkServer, start_bugsink

pytestmark = pytest.mark.integration

SENTRY_RATE_LIMITS_ON_429 = "60::key, 86400:transaction;span:organization"


def make_event(
    event_id: str,
    *,
    exc_type: str = "DicomParseError",
    message: str = "cannot parse study 1.2.840.113619.2.55",
    fingerprint: list[str] | None = None,
) -> dict[str, Any]:
    now = datetime.now(UTC).timestamp()
    return {
        "event_id": event_id,
        "timestamp": now,
        "platform": "python",
        "level": "error",
        "logger": "pacs.backend",
        "exception": {
            "values": [
                {
                    "type": exc_type,
                    "value": message,
                    "stacktrace": {"frames": [{"filename": "dicom/parse.py", "function": "parse", "lineno": 42}]},
                },
            ],
        },
        "tags": {"service": "pacs-backend", "log_group": "/aws/ecs/pacs-backend/errors", "request_id": "req-7"},
        "breadcrumbs": {
            "values": [{"timestamp": now, "category": "log", "level": "info", "message": "study received"}]
        },
        "contexts": {"cloudwatch": {"log_group": "/aws/ecs/pacs-backend/errors", "log_stream": "ecs/web/abc"}},
        "fingerprint": fingerprint or ["pacs-backend", exc_type],
    }


def post_envelope(project: BugsinkProject, event: dict[str, Any]) -> tuple[int, Message, bytes]:
    """POST one event envelope, built by hand, the way a Sentry SDK's transport does."""
    payload = json.dumps(event).encode()
    sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    envelope = b"\n".join(
        [
            json.dumps({"event_id": event["event_id"], "sent_at": sent_at, "dsn": project.dsn}).encode(),
            json.dumps({"type": "event", "length": len(payload)}).encode(),
            payload,
        ],
    )
    parts = urllib.parse.urlsplit(project.dsn)
    request = urllib.request.Request(  # noqa: S310 (the DSN is http://...@127.0.0.1)
        f"{parts.scheme}://{parts.hostname}:{parts.port}/api/{project.id}/envelope/",
        data=envelope,
        method="POST",
        headers={
            "Content-Type": "application/x-sentry-envelope",
            "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={parts.username}, sentry_client=logpipe/0.1",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (as above)
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def send(project: BugsinkProject, event: dict[str, Any]) -> int:
    status, _, _ = post_envelope(project, event)
    return status


def test_event_is_stored_with_exception_tags_breadcrumbs_and_contexts(
    bugsink: BugsinkServer, sentry_project: BugsinkProject
) -> None:
    event_id = uuid.uuid4().hex
    status, _, body = post_envelope(sentry_project, make_event(event_id))

    assert status == 200
    assert json.loads(body) == {"id": event_id}
    [stored] = bugsink.events(sentry_project)
    assert stored["event_id"] == event_id
    assert stored["exception"]["values"][0]["type"] == "DicomParseError"
    assert stored["exception"]["values"][0]["stacktrace"]["frames"][0]["lineno"] == 42
    assert stored["tags"] == {
        "service": "pacs-backend",
        "log_group": "/aws/ecs/pacs-backend/errors",
        "request_id": "req-7",
    }
    assert stored["breadcrumbs"]["values"][0]["message"] == "study received"
    assert stored["contexts"]["cloudwatch"]["log_stream"] == "ecs/web/abc"
    assert stored["fingerprint"] == ["pacs-backend", "DicomParseError"]
    assert stored["level"] == "error"
    assert abs(stored["timestamp"] - time.time()) < 60
    [issue] = bugsink.issues(sentry_project)
    assert issue["calculated_type"] == "DicomParseError"
    assert issue["digested_event_count"] == 1


def test_digestion_is_synchronous_so_events_are_readable_right_after_the_200(
    bugsink: BugsinkServer, sentry_project: BugsinkProject
) -> None:
    for count in range(1, 6):
        assert send(sentry_project, make_event(uuid.uuid4().hex, message=f"failure {count}")) == 200
        assert bugsink.event_count(sentry_project) == count


def test_fingerprint_decides_the_issue(bugsink: BugsinkServer, sentry_project: BugsinkProject) -> None:
    for message in ("study 1 unreadable", "study 2 unreadable"):
        assert (
            send(sentry_project, make_event(uuid.uuid4().hex, message=message, fingerprint=["dicom", "parse"])) == 200
        )
    assert send(sentry_project, make_event(uuid.uuid4().hex, fingerprint=["dicom", "store"])) == 200

    issues = bugsink.issues(sentry_project)
    assert [issue["digested_event_count"] for issue in issues] == [2, 1]
    assert len(bugsink.events(sentry_project)) == 3


def test_a_repeated_event_id_is_answered_200_but_stored_once_per_project(bugsink: BugsinkServer) -> None:
    first, second = bugsink.create_project("dedupe-a"), bugsink.create_project("dedupe-b")
    event = make_event(uuid.uuid4().hex)

    answers = [post_envelope(first, event) for _ in range(3)]

    assert [(status, json.loads(body)) for status, _, body in answers] == [(200, {"id": event["event_id"]})] * 3
    assert [stored["event_id"] for stored in bugsink.events(first)] == [event["event_id"]]
    assert [issue["digested_event_count"] for issue in bugsink.issues(first)] == [1]
    assert send(second, event) == 200  # the uniqueness is (project, event_id): another project stores it
    assert len(bugsink.events(second)) == 1


def test_the_rate_limit_answers_429_with_sentry_rate_limits_and_no_retry_after(
    bugsink_rate_limited: BugsinkServer,
) -> None:
    limit = bugsink_rate_limited.max_events_per_project_per_5_minutes
    assert limit is not None
    project = bugsink_rate_limited.create_project("rate-limited", max_events_per_5_minutes=limit)

    accepted = [post_envelope(project, make_event(uuid.uuid4().hex)) for _ in range(limit)]
    status, headers, body = post_envelope(project, make_event(uuid.uuid4().hex))

    assert [answer[0] for answer in accepted] == [200] * limit
    assert all(answer[1]["X-Sentry-Rate-Limits"] == "86400:transaction;span:organization" for answer in accepted)
    assert status == 429
    assert headers["X-Sentry-Rate-Limits"] == SENTRY_RATE_LIMITS_ON_429
    assert headers["Retry-After"] is None
    assert body == b""
    assert bugsink_rate_limited.event_count(project) == limit
    other = bugsink_rate_limited.create_project("rate-limited-other")
    assert send(other, make_event(uuid.uuid4().hex)) == 200  # the limit counts per project


def test_a_per_project_limit_the_server_was_not_started_with_is_refused(bugsink: BugsinkServer) -> None:
    with pytest.raises(BugsinkError, match=r"start_bugsink\(max_events_per_project_per_5_minutes=3\)"):
        bugsink.create_project("wants-a-limit", max_events_per_5_minutes=3)


def test_stop_refuses_connections_and_start_serves_the_stored_data_again(
    bugsink_factory: Callable[..., BugsinkServer],
) -> None:
    server = bugsink_factory()
    project = server.create_project("restart")
    first = make_event(uuid.uuid4().hex)
    assert send(project, first) == 200
    base_url = server.base_url

    server.stop()

    assert not server.is_running
    with pytest.raises(urllib.error.URLError) as refused:
        post_envelope(project, make_event(uuid.uuid4().hex))
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    with pytest.raises(BugsinkError, match="is the server running"):
        server.events(project)

    server.start()

    assert server.base_url == base_url
    assert [event["event_id"] for event in server.events(project)] == [first["event_id"]]
    second = make_event(uuid.uuid4().hex)
    assert send(project, second) == 200
    assert [event["event_id"] for event in server.events(project)] == [first["event_id"], second["event_id"]]


def test_a_data_dir_is_reused_with_its_projects(bugsink_factory: Callable[..., BugsinkServer], tmp_path: Path) -> None:
    server = bugsink_factory(data_dir=tmp_path / "bugsink")
    project = server.create_project("kept")
    event = make_event(uuid.uuid4().hex)
    assert send(project, event) == 200
    server.close()
    assert (tmp_path / "bugsink" / "db.sqlite3").exists()  # a data dir we were given is never deleted

    again = bugsink_factory(data_dir=tmp_path / "bugsink")
    fresh = again.create_project("new")
    assert fresh.dsn.endswith(f"@127.0.0.1:{again.port}/{fresh.id}")  # DSNs follow the new port
    assert [stored["event_id"] for stored in again.events(project)] == [event["event_id"]]


def test_issue_url_shows_the_issues_after_logging_in_as_admin(
    bugsink: BugsinkServer, sentry_project: BugsinkProject
) -> None:
    assert send(sentry_project, make_event(uuid.uuid4().hex, exc_type="StudyNotFoundError")) == 200
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    url = bugsink.issue_url(sentry_project)

    with browser.open(url, timeout=10) as login_page:
        assert urllib.parse.urlsplit(login_page.url).path == "/accounts/login/"
        form = login_page.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token is not None
    credentials = {"username": ADMIN_USER, "password": bugsink.admin_password, "csrfmiddlewaretoken": token[1]}
    with browser.open(login_page.url, data=urllib.parse.urlencode(credentials).encode(), timeout=10) as landed:
        assert urllib.parse.urlsplit(landed.url).path == f"/issues/{sentry_project.id}/"
        assert "StudyNotFoundError" in landed.read().decode()


def test_start_without_an_install_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOGPIPE_BUGSINK_HOME", str(tmp_path))
    with pytest.raises(BugsinkError, match=r"not installed .*run \./scripts/bugsink install"):
        start_bugsink()


def test_building_the_template_database_prints_no_migration_lines(
    bugsink: BugsinkServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`make demo` on a fresh machine builds it: Django's ~130 "Applying ..." lines must not bury the demo."""
    from logpipe_cli.bugsink import _build_template, _install_env  # the install step itself

    (tmp_path / "venv").symlink_to(bugsink.home / "venv")  # the installed Bugsink, a template of our own
    _build_template(tmp_path, _install_env())
    captured = capfd.readouterr()
    assert (tmp_path / "template").is_dir()
    assert "Applying" not in captured.out + captured.err
    assert "migrations" not in (captured.out + captured.err).lower()
