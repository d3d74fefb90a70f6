"""A real local Bugsink (a Sentry-protocol server) for the tests, CI and the demo: install, start, stop, inspect.

Bugsink never goes into the project's ``.venv`` (it pins Django and friends). It lives in its own virtualenv:

    <repo>/.cache/bugsink/            (override with LOGPIPE_BUGSINK_HOME; gitignored)
        venv/                         bugsink==BUGSINK_VERSION, installed by ``./scripts/bugsink install``
        template/                     a config (``bugsink-create-conf --template=local`` plus our overrides) and the
                                      migrated SQLite databases, made once
        installed.json                what was installed, for the idempotency check

Every server copies the template into a fresh data dir (about a second from copy to first answer), rotates the API
token to a fresh random one, and runs gunicorn on 127.0.0.1 only. Servers are stopped by ``close()``/``stop()``, at
exit, and (Linux PR_SET_PDEATHSIG) when the thread that started them dies: start them from a long-lived thread.
Facts verified against bugsink 2.6.1:

* Digestion is synchronous: the config sets ``SNAPPEA["TASK_ALWAYS_EAGER"] = True``, so the envelope request only
  answers 200 after the event is digested and stored; ``events()`` right after a 200 sees it, no polling needed.
* A repeated ``event_id`` (per project) is answered 200 with the same ``{"id": ...}``, and is not stored again:
  ``(project, event_id)`` is unique in the database, with no time window (Sentry's is about an hour).
* Rate limits are installation-wide *settings*, not per-project attributes: ``MAX_EVENTS_PER_PROJECT_PER_5_MINUTES``
  applies to every project of a server. So the limit is chosen at start, ``start_bugsink(
  max_events_per_project_per_5_minutes=N)``: each project then gets N events per 5 minutes (the N-th is accepted), and
  the next envelope is answered ``429`` with ``X-Sentry-Rate-Limits: 60::key, 86400:transaction;span:organization`` and
  no ``Retry-After`` header. Without it, every limit is set to 1,000,000 so tests never trip one by accident.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

BUGSINK_VERSION = "2.6.1"
"""The pinned, verified release. (2.6.2 needs certifi>=2026.10.19, which the package index here does not serve.)"""

HOME_ENV = "LOGPIPE_BUGSINK_HOME"
ADMIN_USER = "admin"
GENEROUS_LIMIT = 1_000_000
"""Every rate limit when none is asked for: high enough that no test trips one by accident."""

API = "/api/canonical/0"
HTTP_TIMEOUT = 10.0
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_PYENV_VERSIONS = "3.11.7:3.12.1:3.13.0"
_INSTALL_STAMP = "installed.json"
_TEMPLATE_STAMP = "logpipe-template.json"
_INSTANCE_FILE = "logpipe_instance.json"
_ADMIN_LOGIN_FILE = "admin-password"
_LOG_FILE = "gunicorn.log"
_MAX_PAGES = 1_000
_WORKERS = 2
_TEMP_PREFIX = "logpipe-bugsink-"
_OWNER_FILE = "owner.pid"

_CONF_OVERRIDES = """

# ---- appended by logpipe_cli.bugsink: relocatable paths, synchronous digestion, no phone-home, limits ----
import json as _logpipe_json
from pathlib import Path as _LogpipePath

_LOGPIPE_DIR = _LogpipePath(__file__).resolve().parent
_LOGPIPE_FILE = _LOGPIPE_DIR / "logpipe_instance.json"
_LOGPIPE = _logpipe_json.loads(_LOGPIPE_FILE.read_text()) if _LOGPIPE_FILE.exists() else {}

DATABASES["default"]["NAME"] = str(_LOGPIPE_DIR / "db.sqlite3")
DATABASES["default"]["TEST"]["NAME"] = str(_LOGPIPE_DIR / "test.sqlite3")
DATABASES["snappea"]["NAME"] = str(_LOGPIPE_DIR / "snappea.sqlite3")
SNAPPEA = {"TASK_ALWAYS_EAGER": True, "WAKEUP_CALLS_DIR": str(_LOGPIPE_DIR / "snappea.wakeup")}
BUGSINK["BASE_URL"] = _LOGPIPE.get("base_url", "http://127.0.0.1:8000")
BUGSINK["PHONEHOME"] = False
BUGSINK["INGEST_STORE_BASE_DIR"] = str(_LOGPIPE_DIR / "ingestion")
BUGSINK.update(_LOGPIPE.get("limits", {}))
"""

# gunicorn's config. The app is preloaded in the master and warmed up there (URL conf, views, the user-agent parser:
# about 1.3 s that every worker would otherwise pay on its first envelope), so forked workers answer fast at once.
# PR_SET_PDEATHSIG stops the server when the process that started it dies without cleaning up (SIGKILL, a crashed
# pytest), so no orphan keeps a port; it is set here, in the exec'd master, not in a fork-time preexec_fn.
_GUNICORN_CONF = """
import ctypes, os, signal

bind = ["127.0.0.1:{port}"]
workers = {workers}
preload_app = True
timeout = 60
graceful_timeout = 5
accesslog = "-"
errorlog = "-"
control_socket_disable = True
chdir = {data_dir!r}
pythonpath = {data_dir!r}
proc_name = "logpipe-bugsink-{port}"
pidfile = {pidfile!r}

_PARENT = int(os.environ.get("LOGPIPE_BUGSINK_PARENT_PID", "0"))
if _PARENT > 1:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != _PARENT:  # the parent died before prctl took effect
        raise SystemExit("logpipe-bugsink: the process that started this server is gone")


def _walk(patterns):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            _walk(pattern.url_patterns)


def when_ready(server):
    from django.db import connections
    from django.urls import get_resolver
    import user_agents

    _walk(get_resolver().url_patterns)
    user_agents.parse("logpipe-warmup/1.0")
    connections.close_all()
"""


class BugsinkError(RuntimeError):
    """Bugsink is missing, failed to start, or answered an API call with an error."""


@dataclass(frozen=True)
class BugsinkProject:
    """A project on a local Bugsink: the id in its ingest URL, and the DSN to give a Sentry client."""

    id: int
    name: str
    dsn: str

    @property
    def public_key(self) -> str:
        """The DSN's public key, for ``X-Sentry-Auth: Sentry sentry_key=...``."""
        return urllib.parse.urlsplit(self.dsn).username or ""

    @property
    def envelope_url(self) -> str:
        """The envelope endpoint this project's DSN points at."""
        parts = urllib.parse.urlsplit(self.dsn)
        return f"{parts.scheme}://{parts.hostname}:{parts.port}/api/{self.id}/envelope/"


def bugsink_home() -> Path:
    """Where the venv and the template live: ``$LOGPIPE_BUGSINK_HOME`` or ``<repo>/.cache/bugsink``."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).resolve()
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "pyproject.toml").exists():  # installed outside the work tree: fall back to the current dir
        repo = Path.cwd()
    return repo / ".cache" / "bugsink"


def installation_problem(home: Path | None = None) -> str | None:
    """Why Bugsink cannot start here (a sentence naming the fix), or None when it is installed and ready."""
    home = home or bugsink_home()
    fix = "run ./scripts/bugsink install"
    stamp = _read_json(home / _INSTALL_STAMP)
    if stamp is None:
        return f"Bugsink is not installed under {home}: {fix}"
    if stamp.get("version") != BUGSINK_VERSION:
        return f"Bugsink {stamp.get('version')} is installed under {home}, {BUGSINK_VERSION} is pinned: {fix}"
    if not (home / "venv" / "bin" / "gunicorn").exists():
        return f"Bugsink's virtualenv under {home / 'venv'} is incomplete: {fix}"
    template = _read_json(home / "template" / _TEMPLATE_STAMP)
    if template is None or template.get("version") != BUGSINK_VERSION:
        return f"Bugsink's template database under {home / 'template'} is missing or stale: {fix}"
    return None


def is_installed() -> bool:
    """True when ``start_bugsink()`` can run without installing anything."""
    return installation_problem() is None


class BugsinkServer:
    """One local Bugsink (gunicorn on 127.0.0.1) with its own data dir, driven through the canonical API."""

    def __init__(self, *, home: Path, data_dir: Path, token: str, owns_data_dir: bool = False) -> None:
        instance = _read_json(data_dir / _INSTANCE_FILE)
        if instance is None:
            raise BugsinkError(f"{data_dir / _INSTANCE_FILE} is missing: use start_bugsink()")
        self.home = home
        self.data_dir = data_dir
        self.port = int(instance["port"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        limit = instance.get("max_events_per_project_per_5_minutes")
        self.max_events_per_project_per_5_minutes: int | None = None if limit is None else int(limit)
        self.log_path = data_dir / _LOG_FILE
        self._token = token
        self._owns_data_dir = owns_data_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._team_id: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        """Show where it runs, never the token."""
        state = "running" if self.is_running else "stopped"
        return f"BugsinkServer({self.base_url}, {state}, data_dir={self.data_dir})"

    def __enter__(self) -> BugsinkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_running(self) -> bool:
        """True while the gunicorn master is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def admin_password(self) -> str:
        """The UI password of ``ADMIN_USER`` (random, made at install time), for a human opening ``issue_url``."""
        return (self.data_dir / _ADMIN_LOGIN_FILE).read_text().strip()

    def start(self, *, timeout: float = STARTUP_TIMEOUT) -> None:
        """Start gunicorn on this server's port with its data dir (again, after ``stop()``); returns once it answers."""
        with self._lock:
            if self.is_running:
                return
            (self.data_dir / "gunicorn_conf.py").write_text(
                _GUNICORN_CONF.format(
                    port=self.port,
                    workers=_WORKERS,
                    data_dir=str(self.data_dir),
                    pidfile=str(self.data_dir / "gunicorn.pid"),
                ),
            )
            env = _server_env()
            env["LOGPIPE_BUGSINK_PARENT_PID"] = str(os.getpid())
            gunicorn = self.home / "venv" / "bin" / "gunicorn"
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(  # noqa: S603 (fixed argv: our venv's gunicorn, our config)
                    [str(gunicorn), "--config", str(self.data_dir / "gunicorn_conf.py"), "bugsink.wsgi"],
                    cwd=self.data_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            _LIVE.add(self)
            try:
                self._wait_until_ready(timeout)
            except BaseException:
                self._terminate()
                raise

    def stop(self) -> None:
        """Stop gunicorn (graceful, then forced after a bound); the data dir stays for ``start()``."""
        with self._lock:
            self._terminate()

    def close(self) -> None:
        """Stop, and delete the data dir if this harness created it."""
        self.stop()
        _LIVE.discard(self)
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def create_project(self, name: str, *, max_events_per_5_minutes: int | None = None) -> BugsinkProject:
        """Create a project (in the one team, made on first use) and return it with its DSN.

        Bugsink's rate limit is per server, not per project: ``max_events_per_5_minutes`` is only accepted when it
        equals the limit this server was started with (``start_bugsink(max_events_per_project_per_5_minutes=...)``),
        and raises ``BugsinkError`` otherwise, so a test never silently runs without the limit it asked for.
        """
        if (
            max_events_per_5_minutes is not None
            and max_events_per_5_minutes != self.max_events_per_project_per_5_minutes
        ):
            raise BugsinkError(
                f"Bugsink's rate limit is a server setting, not a project one: this server allows "
                f"{self.max_events_per_project_per_5_minutes or GENEROUS_LIMIT} events per project per 5 minutes. "
                f"Start one with start_bugsink(max_events_per_project_per_5_minutes={max_events_per_5_minutes}) "
                f"(or use the bugsink_rate_limited fixture).",
            )
        created = self._api("POST", "/projects/", {"team": self._ensure_team(), "name": name})
        project_id = int(created["id"])
        detail = self._api("GET", f"/projects/{project_id}/")
        return BugsinkProject(id=project_id, name=str(detail["name"]), dsn=str(detail["dsn"]))

    def issues(self, project: BugsinkProject) -> list[dict[str, Any]]:
        """The project's issues (one per grouping, e.g. per fingerprint), oldest first, as the API returns them."""
        query = urllib.parse.urlencode({"project": project.id, "sort": "digest_order", "order": "asc"})
        return self._paged(f"/issues/?{query}")

    def events(self, project: BugsinkProject) -> list[dict[str, Any]]:
        """Every stored event of the project, oldest first: the full event JSON as Bugsink stored it."""
        summaries: list[dict[str, Any]] = []
        for issue in self.issues(project):
            query = urllib.parse.urlencode({"issue": issue["id"], "order": "asc"})
            summaries.extend(self._paged(f"/events/?{query}"))
        summaries.sort(key=lambda event: (str(event["digested_at"]), str(event["id"])))
        return [cast("dict[str, Any]", self._api("GET", f"/events/{event['id']}/")["data"]) for event in summaries]

    def event_count(self, project: BugsinkProject) -> int:
        """How many events the project has stored (one API call, for large batches)."""
        return int(self._api("GET", f"/projects/{project.id}/")["stored_event_count"])

    def issue_url(self, project: BugsinkProject) -> str:
        """The page listing the project's issues (log in as ``ADMIN_USER`` with ``admin_password``)."""
        return f"{self.base_url}/issues/{project.id}/"

    def _ensure_team(self) -> str:
        if self._team_id is None:
            teams = self._paged("/teams/")
            team = teams[0] if teams else self._api("POST", "/teams/", {"name": "logpipe"})
            self._team_id = str(team["id"])
        return self._team_id

    def _paged(self, path: str) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        url: str | None = self.base_url + API + path
        for _ in range(_MAX_PAGES):
            if url is None:
                return results
            page = self._request("GET", url)
            results.extend(page["results"])
            url = page.get("next")
        raise BugsinkError(f"more than {_MAX_PAGES} pages at {path}")

    def _api(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._request(method, self.base_url + API + path, body)

    def _request(self, method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if not url.startswith(self.base_url + "/"):
            raise BugsinkError(f"refusing a URL outside this server: {url}")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 (http loopback)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310 (checked above)
                return cast("dict[str, Any]", json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as error:
            detail = error.read()[:500].decode(errors="replace")
            raise BugsinkError(f"{method} {url} answered {error.code}: {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            raise BugsinkError(
                f"{method} {url} failed: {error} (is the server running? log: {self.log_path})"
            ) from error

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        probe = urllib.request.Request(  # noqa: S310 (http loopback)
            f"{self.base_url}{API}/teams/",
            headers={"Authorization": f"Bearer {self._token}"},
        )
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise BugsinkError(f"gunicorn exited with {self._process.returncode} on start:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(probe, timeout=2.0):  # noqa: S310 (http loopback)
                    return
            except urllib.error.HTTPError as error:
                raise BugsinkError(
                    f"{self.base_url} answered {error.code} to our token: another server holds port {self.port}?\n"
                    f"{self._log_tail()}",
                ) from error
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise BugsinkError(
                        f"Bugsink did not answer on {self.base_url} within {timeout:.0f}s:\n{self._log_tail()}",
                    ) from None
                time.sleep(0.05)

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()  # gunicorn's graceful stop: in-flight requests finish (graceful_timeout = 5 s)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # any worker the master left behind

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


_LIVE: set[BugsinkServer] = set()


@atexit.register
def _close_all() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.close()


def start_bugsink(
    *,
    port: int | None = None,
    data_dir: Path | None = None,
    max_events_per_project_per_5_minutes: int | None = None,
    timeout: float = STARTUP_TIMEOUT,
) -> BugsinkServer:
    """Start a local Bugsink on 127.0.0.1 from a copy of the template DB; raise BugsinkError if not installed.

    ``data_dir``: None makes a temporary one (deleted by ``close()``); an empty or new dir gets a template copy; a dir
    that already holds a Bugsink database is started as it is (its projects and events kept).
    ``max_events_per_project_per_5_minutes``: Bugsink's per-project rate limit, which is a server-wide setting.
    """
    home = bugsink_home()
    problem = installation_problem(home)
    if problem is not None:
        raise BugsinkError(problem)
    owns = data_dir is None
    if owns:
        _remove_orphaned_temp_dirs()
    target = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX)) if data_dir is None else data_dir.resolve()
    try:
        if not (target / "db.sqlite3").exists():
            shutil.copytree(home / "template", target, dirs_exist_ok=True)
        chosen_port = port or _free_port()
        limit = max_events_per_project_per_5_minutes
        instance = {
            "port": chosen_port,
            "base_url": f"http://127.0.0.1:{chosen_port}",
            "limits": _limits(limit),
            "max_events_per_project_per_5_minutes": limit,
        }
        (target / _INSTANCE_FILE).write_text(json.dumps(instance, indent=2) + "\n")
        if owns:
            (target / _OWNER_FILE).write_text(f"{os.getpid()}\n")
        server = BugsinkServer(
            home=home, data_dir=target, token=_rotate_token(target / "db.sqlite3"), owns_data_dir=owns
        )
        server.start(timeout=timeout)
    except BaseException:
        if owns:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return server


def _remove_orphaned_temp_dirs() -> None:
    """Delete temp data dirs whose starter died without ``close()`` (its server died with it, by PDEATHSIG)."""
    for candidate in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*"):
        pids = [_read_pid(candidate / _OWNER_FILE), _read_pid(candidate / "gunicorn.pid")]
        if pids[0] is not None and not any(pid is not None and _alive(pid) for pid in pids):
            shutil.rmtree(candidate, ignore_errors=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _limits(per_project_per_5_minutes: int | None) -> dict[str, int]:
    if per_project_per_5_minutes is not None and per_project_per_5_minutes < 1:
        raise BugsinkError("max_events_per_project_per_5_minutes must be at least 1")
    return {
        "MAX_EVENTS_PER_PROJECT_PER_5_MINUTES": per_project_per_5_minutes or GENEROUS_LIMIT,
        "MAX_EVENTS_PER_PROJECT_PER_HOUR": GENEROUS_LIMIT,
        "MAX_EVENTS_PER_PROJECT_PER_MONTH": GENEROUS_LIMIT * 100,
        "MAX_EVENTS_PER_5_MINUTES": GENEROUS_LIMIT,
        "MAX_EVENTS_PER_HOUR": GENEROUS_LIMIT,
        "MAX_EVENTS_PER_MONTH": GENEROUS_LIMIT * 100,
    }


def _rotate_token(database: Path) -> str:
    """Give the template's full-access API token (made by ``create_auth_token``) a fresh random value."""
    token = secrets.token_hex(20)
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as connection, connection:
        changed = connection.execute(
            "UPDATE bsmain_authtoken SET token = ? WHERE id = (SELECT MIN(id) FROM bsmain_authtoken)",
            (token,),
        ).rowcount
    if changed != 1:
        raise BugsinkError(f"no API token in {database}: rebuild the template with ./scripts/bugsink install --force")
    return token


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE", "SENTRY_DSN"}
    }
    env["DJANGO_SETTINGS_MODULE"] = "bugsink_conf"
    return env


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return cast("dict[str, Any]", json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------------------------
# Installation (./scripts/bugsink install)


class _Steps:
    """Numbered progress lines with timings on stderr."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.number = 0
        self.stream = stream
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        self.stream.write(f"[bugsink] {message}\n")
        self.stream.flush()

    @contextlib.contextmanager
    def step(self, message: str) -> Iterator[None]:
        self.number += 1
        begun = time.monotonic()
        self.say(f"({self.number}/{self.total}) {message} ...")
        yield
        self.say(f"({self.number}/{self.total}) done in {time.monotonic() - begun:.1f}s")


def install(*, force: bool = False, stream: TextIO | None = None) -> None:
    """Install the pinned Bugsink into its own venv and build the template DB; a second run only checks."""
    out = stream or sys.stderr
    home = bugsink_home()
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and installation_problem(home) is None and _venv_version(home) == BUGSINK_VERSION:
            out.write(f"[bugsink] bugsink {BUGSINK_VERSION} is installed and its template is ready ({home})\n")
            return
        steps = _Steps(4, out)
        steps.say(f"installing bugsink {BUGSINK_VERSION} under {home} (its own venv, not the project's)")
        (home / _INSTALL_STAMP).unlink(missing_ok=True)
        env = _install_env()
        with steps.step("virtualenv with the machine's Python 3.12"):
            _make_venv(home, env, force=force)
        with steps.step(f"uv pip install bugsink=={BUGSINK_VERSION} (compiled to bytecode, for fast starts)"):
            if force or _venv_version(home) != BUGSINK_VERSION:
                _run([_uv(env), "pip", "install", "--python", str(home / "venv" / "bin" / "python"),
                      "--compile-bytecode", f"bugsink=={BUGSINK_VERSION}"], env=env)  # fmt: skip
            if _venv_version(home) != BUGSINK_VERSION:
                raise BugsinkError(f"bugsink {BUGSINK_VERSION} did not install into {home / 'venv'}")
        (home / _INSTALL_STAMP).write_text(json.dumps({"version": BUGSINK_VERSION}) + "\n")
        with steps.step("template: bugsink-create-conf --template=local, migrate both databases, token, admin user"):
            _build_template(home, env)
        with steps.step("smoke test: start a server from the template and stop it"), start_bugsink() as server:
            steps.say(f"answered on {server.base_url}")
        steps.say(f"ready in {time.monotonic() - steps.started:.1f}s")


def _install_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYENV_VERSION", _PYENV_VERSIONS)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["PATH"] = f"{Path.home() / '.local' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "DJANGO_SETTINGS_MODULE"):
        env.pop(key, None)
    return env


def _uv(env: dict[str, str]) -> str:
    uv = shutil.which("uv", path=env["PATH"])
    if uv is None:
        raise BugsinkError("uv is not on PATH: run ./scripts/bootstrap first")
    return uv


def _python312(env: dict[str, str]) -> str:
    found = shutil.which("python3.12", path=env["PATH"])
    candidates = [found] if found else []
    candidates += [str(path) for path in sorted((Path.home() / ".pyenv" / "versions").glob("3.12.*/bin/python3.12"))]
    for candidate in candidates:
        result = subprocess.run(  # noqa: S603 (a python3.12 found on PATH or in pyenv)
            [candidate, "-c", "import sys; print(sys.executable)"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    raise BugsinkError("python3.12 not found (pyenv's 3.12, never downloaded): install it and re-run")


def _make_venv(home: Path, env: dict[str, str], *, force: bool) -> None:
    python = home / "venv" / "bin" / "python"
    if not force and python.exists():
        probe = subprocess.run([str(python), "-V"], capture_output=True, check=False)  # noqa: S603 (our venv)
        if probe.returncode == 0:
            return
    shutil.rmtree(home / "venv", ignore_errors=True)
    _run([_uv(env), "venv", "--quiet", "--python", _python312(env), str(home / "venv")], env=env)


def _venv_version(home: Path) -> str | None:
    python = home / "venv" / "bin" / "python"
    if not python.exists():
        return None
    result = subprocess.run(  # noqa: S603 (our venv's python)
        [str(python), "-c", "import importlib.metadata as m; print(m.version('bugsink'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def _build_template(home: Path, env: dict[str, str]) -> None:
    bin_dir = home / "venv" / "bin"
    partial = Path(tempfile.mkdtemp(prefix="template.partial-", dir=home))
    try:
        _run([str(bin_dir / "bugsink-create-conf"), "--template=local", "--host=127.0.0.1",
              "--output-file", str(partial / "bugsink_conf.py")], env=env, cwd=partial)  # fmt: skip
        with (partial / "bugsink_conf.py").open("a") as conf:
            conf.write(_CONF_OVERRIDES)
        manage_env = {**env, "DJANGO_SETTINGS_MODULE": "bugsink_conf"}
        manage = str(bin_dir / "bugsink-manage")
        # Quiet: ~130 "Applying ..." lines would bury the demo's own output; shown only if a migration fails.
        _run([manage, "migrate", "--verbosity=1"], env=manage_env, cwd=partial, quiet=True)
        _run(
            [manage, "migrate", "snappea", "--database=snappea", "--verbosity=1"],
            env=manage_env,
            cwd=partial,
            quiet=True,
        )
        _run([manage, "create_auth_token"], env=manage_env, cwd=partial, quiet=True)  # rotated on every start
        password = secrets.token_urlsafe(18)
        (partial / _ADMIN_LOGIN_FILE).write_text(password + "\n")
        (partial / _ADMIN_LOGIN_FILE).chmod(0o600)
        user_env = {**manage_env, "DJANGO_SUPERUSER_USERNAME": ADMIN_USER, "DJANGO_SUPERUSER_PASSWORD": password,
                    "DJANGO_SUPERUSER_EMAIL": "admin@example.invalid"}  # fmt: skip
        _run([manage, "createsuperuser", "--noinput"], env=user_env, cwd=partial, quiet=True)
        (partial / _TEMPLATE_STAMP).write_text(json.dumps({"version": BUGSINK_VERSION}) + "\n")
        shutil.rmtree(home / "template", ignore_errors=True)
        partial.rename(home / "template")
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _run(argv: list[str], *, env: dict[str, str], cwd: Path | None = None, quiet: bool = False) -> None:
    result = subprocess.run(  # noqa: S603 (fixed argv: uv and our venv's bugsink scripts)
        argv,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE if quiet else 2,  # progress goes to our stderr (fd 2)
        stderr=subprocess.STDOUT,
        check=False,
    )
    if result.returncode != 0:
        output = result.stdout.decode(errors="replace")[-2000:] if quiet and result.stdout else ""
        raise BugsinkError(f"{Path(argv[0]).name} {' '.join(argv[1:3])} failed ({result.returncode}) {output}")


# ---------------------------------------------------------------------------------------------------------------------
# Command line (./scripts/bugsink)


def _serve(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else None
    server = start_bugsink(port=args.port, data_dir=data_dir, max_events_per_project_per_5_minutes=args.rate_limit)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        sys.stdout.write(f"Bugsink {BUGSINK_VERSION} on {server.base_url} (data: {server.data_dir})\n")
        sys.stdout.write(f"UI login: {ADMIN_USER}, password in {server.data_dir / _ADMIN_LOGIN_FILE}\n")
        for name in args.project:
            project = server.create_project(name)
            sys.stdout.write(f"project {name}: SENTRY_DSN={project.dsn}\n  issues: {server.issue_url(project)}\n")
        sys.stdout.write("Ctrl-C stops it.\n")
        sys.stdout.flush()
        while not stopping.wait(1.0):
            if not server.is_running:
                sys.stderr.write(f"gunicorn stopped; log: {server.log_path}\n")
                return 1
        return 0
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    """``install`` | ``check`` | ``serve`` | ``uninstall``: the local Bugsink for tests, CI and the demo."""
    parser = argparse.ArgumentParser(prog="scripts/bugsink", description=__doc__.split("\n", 1)[0] if __doc__ else "")
    commands = parser.add_subparsers(dest="command", required=True)
    install_cmd = commands.add_parser("install", help="idempotent: own venv, pinned bugsink, migrated template DB")
    install_cmd.add_argument("--force", action="store_true", help="reinstall and rebuild the template")
    commands.add_parser("check", help="exit 0 if installed and ready, else say why")
    serve = commands.add_parser("serve", help="run a fresh server until Ctrl-C (for the demo)")
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--data-dir", default=None, help="keep data here (reused if it already holds a database)")
    serve.add_argument("--project", action="append", default=[], help="create a project and print its DSN")
    serve.add_argument("--rate-limit", type=int, default=None, help="MAX_EVENTS_PER_PROJECT_PER_5_MINUTES")
    commands.add_parser("uninstall", help=f"delete {bugsink_home()}")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            install(force=args.force)
        elif args.command == "check":
            problem = installation_problem()
            sys.stdout.write(f"{problem or f'bugsink {BUGSINK_VERSION} is installed and ready ({bugsink_home()})'}\n")
            return 1 if problem else 0
        elif args.command == "serve":
            return _serve(args)
        else:
            shutil.rmtree(bugsink_home(), ignore_errors=True)
    except BugsinkError as error:
        sys.stderr.write(f"[bugsink] error: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
