"""Every `logpipe` failure is one line on stderr (cause and fix) with a non-zero exit; the README's examples run.

Each case runs the real command in a fresh process, as a person would type it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[2]
MISSING_BUCKET_SOURCE = "s3://missing-bucket/exports/aws/ecs/pacs-backend/application/2026-11-20..2026-11-21"
LOCAL_SOURCE = "s3://logpipe-local-exports/exports/aws/ecs/pacs-backend/application/2026-11-20..2026-11-21"


def _base_env() -> dict[str, str]:
    """The caller's environment without an endpoint: commands start embedded AWS unless told otherwise."""
    return {key: value for key, value in os.environ.items() if key not in {"AWS_ENDPOINT_URL", "LOGPIPE_DEBUG"}}


def _no_credentials_env() -> dict[str, str]:
    env = {key: value for key, value in _base_env().items() if not key.startswith("AWS_")}
    return env | {
        "AWS_CONFIG_FILE": "/nonexistent/aws/config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws/credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": "ap-northeast-2",
    }


def _logpipe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logpipe_cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], command: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result
    assert result.stdout == "", result
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert lines[0].startswith(f"logpipe {command}: "), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def refused_endpoint() -> str:
    """A loopback URL where nothing listens (port 9, discard): connections are refused at once."""
    return "http://127.0.0.1:9"


@pytest.mark.parametrize("command", [("export", "plan"), ("export", "run"), ("replay", LOCAL_SOURCE)])
def test_unreachable_endpoint_is_one_line_with_the_fix(command: tuple[str, str], refused_endpoint: str) -> None:
    started = time.monotonic()
    result = _logpipe(*command, env=_base_env() | {"AWS_ENDPOINT_URL": refused_endpoint})
    line = _one_line_error(result, command[0] if command[0] == "replay" else " ".join(command))
    assert refused_endpoint in line
    assert "unset AWS_ENDPOINT_URL to use embedded AWS" in line
    assert time.monotonic() - started < 30  # no botocore retry storm first


def test_endpoint_that_is_not_a_url_is_one_line() -> None:
    result = _logpipe("export", "plan", env=_base_env() | {"AWS_ENDPOINT_URL": "not-a-url"})
    line = _one_line_error(result, "export plan")
    assert "AWS_ENDPOINT_URL is not a URL ('not-a-url')" in line
    assert "http://host:port" in line


def test_no_credentials_with_an_endpoint_is_one_line(moto_endpoint: str) -> None:
    env = _no_credentials_env() | {"AWS_ENDPOINT_URL": moto_endpoint}
    result = _logpipe("export", "plan", "--bucket", "pacs-logpipe-exports", env=env)
    line = _one_line_error(result, "export plan")
    assert line.endswith(
        "no AWS credentials: set AWS_PROFILE (or the AWS_* keys), or unset AWS_ENDPOINT_URL to use embedded AWS"
    )


def test_no_credentials_for_the_account_is_one_line() -> None:
    result = _logpipe("export", "plan", "--aws", "--bucket", "pacs-logpipe-exports", env=_no_credentials_env())
    line = _one_line_error(result, "export plan")
    assert "no AWS credentials: set AWS_PROFILE" in line
    assert "drop --aws to use embedded AWS" in line


def test_export_for_the_account_without_a_bucket_says_where_to_find_it() -> None:
    env = {key: value for key, value in _no_credentials_env().items() if key != "LOGPIPE_EXPORT_BUCKET"}
    line = _one_line_error(_logpipe("export", "run", "--aws", env=env), "export run")
    assert "--bucket" in line
    assert "ExportBucketName" in line


def test_replay_of_a_missing_bucket_is_one_line() -> None:
    line = _one_line_error(_logpipe("replay", MISSING_BUCKET_SOURCE, env=_base_env()), "replay")
    assert "bucket missing-bucket does not exist in embedded AWS" in line
    assert "--aws" in line


@pytest.mark.parametrize("command", [("export", "plan"), ("export", "run"), ("replay", LOCAL_SOURCE)])
def test_the_readmes_export_and_replay_examples_run_as_written(command: tuple[str, str]) -> None:
    """`uv run logpipe export plan|run` and `logpipe replay s3://...` start embedded AWS, as `invoke` does."""
    env = {key: value for key, value in _base_env().items() if key != "LOGPIPE_EXPORT_BUCKET"}
    result = _logpipe(*command, env=env)
    assert result.returncode == 0, result
    assert "Traceback" not in result.stderr
    assert result.stdout.strip()


def test_invoke_accepts_the_sam_logical_id() -> None:
    result = _logpipe("invoke", "IngestFunction", "--event", "events/cwl-keycloak.json", env=_base_env())
    assert result.returncode == 0, result
    assert '"AuthenticationFailures"' in result.stderr


def test_invoke_rejects_an_unknown_function_before_starting_anything() -> None:
    # An endpoint that would make the run fail if anything were started: the name is checked first.
    env = _base_env() | {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    line = _one_line_error(_logpipe("invoke", "IngestFn", "--event", "events/cwl-keycloak.json", env=env), "invoke")
    assert "no function 'IngestFn'" in line
    assert "ingest (IngestFunction)" in line
    assert "127.0.0.1:9" not in line


@pytest.mark.parametrize(
    ("event", "expected"),
    [("events/nope.json", "cannot read event events/nope.json"), ("README.md", "not JSON")],
)
def test_invoke_with_an_unreadable_event_is_one_line(event: str, expected: str) -> None:
    line = _one_line_error(_logpipe("invoke", "ingest", "--event", event, env=_base_env()), "invoke")
    assert expected in line
    assert "events/cwl-keycloak.json" in line  # the fix names a file that works


def test_a_missing_template_is_one_line(tmp_path: Path) -> None:
    result = _logpipe("--template", str(tmp_path / "template.yaml"), "functions", env=_base_env())
    line = _one_line_error(result, "functions")
    assert "cannot read" in line
    assert "--template" in line


def test_the_readmes_generator_check_runs_as_written() -> None:
    command = "uv run python events/generate.py --check"
    assert command in (ROOT / "README.md").read_text(encoding="utf-8")
    assert command in (ROOT / "events" / "README.md").read_text(encoding="utf-8")
    # `uv run python` is this interpreter: the project's environment.
    result = subprocess.run(
        [sys.executable, "events/generate.py", "--check"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result
    assert "up to date" in result.stdout


def test_the_generator_outside_the_projects_environment_says_how_to_run_it() -> None:
    # -S: no site-packages, like a bare system python without the project's dependencies.
    result = subprocess.run(
        [sys.executable, "-S", "events/generate.py", "--check"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "uv run python events/generate.py --check" in line
