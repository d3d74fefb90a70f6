"""Run the real tool chain against template.yaml: `sam validate --lint`, cfn-lint and `sam build`.

The SAM CLI is not a project dependency (it is installed as a separate uv tool:
`uv tool install aws-sam-cli`); when it is missing these tests are skipped.
`sam build` needs the network (it downloads manylinux aarch64 wheels for the
layer) and a `python3.12` interpreter on PATH; it never uses a container.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.functional

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"

# pyenv setups (like the dev machines) expose several interpreters at once so
# that `python3.12` resolves; harmless where pyenv is not used.
DEFAULT_PYENV_VERSION = "3.11.7:3.12.1:3.13.0"

EM_AARCH64 = 183  # ELF e_machine value for AArch64


def _find_sam() -> str | None:
    found = shutil.which("sam")
    if found:
        return found
    fallback = Path.home() / ".local" / "bin" / "sam"
    return str(fallback) if fallback.is_file() and os.access(fallback, os.X_OK) else None


@pytest.fixture(scope="module")
def sam() -> str:
    path = _find_sam()
    if path is None:
        pytest.skip(
            "SAM CLI not found (neither `sam` on PATH nor ~/.local/bin/sam); "
            "install it with `uv tool install aws-sam-cli` (CI installs it)"
        )
    return path


@pytest.fixture(scope="module")
def sam_env() -> dict[str, str]:
    env = dict(os.environ)
    env["SAM_CLI_TELEMETRY"] = "0"
    env.setdefault("PYENV_VERSION", DEFAULT_PYENV_VERSION)
    pyenv_shims = Path.home() / ".pyenv" / "shims"
    if pyenv_shims.is_dir() and str(pyenv_shims) not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join([str(pyenv_shims), env.get("PATH", "")])
    # Never let the CLI pick up (or need) real credentials / a profile here.
    env.setdefault("AWS_DEFAULT_REGION", "ap-northeast-2")
    return env


def _run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path = REPO_ROOT,
    timeout: int = 300,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"


def test_sam_validate_lint(sam: str, sam_env: dict[str, str]) -> None:
    result = _run([sam, "validate", "--lint", "--template-file", str(TEMPLATE)], env=sam_env)
    assert result.returncode == 0, _describe(result)
    assert "is a valid SAM Template" in result.stdout + result.stderr, _describe(result)


@pytest.mark.parametrize("config_env", ["default", "dev", "prod"])
def test_samconfig_environments_parse(sam: str, sam_env: dict[str, str], config_env: str) -> None:
    """samconfig.toml is read for every environment (validate has lint = true there)."""
    result = _run([sam, "validate", "--config-env", config_env], env=sam_env)
    assert result.returncode == 0, _describe(result)
    assert "is a valid SAM Template" in result.stdout + result.stderr, _describe(result)


def test_cfn_lint_has_no_findings() -> None:
    sibling = Path(sys.executable).with_name("cfn-lint")
    cmd = [str(sibling)] if sibling.is_file() else [sys.executable, "-m", "cfnlint"]
    result = _run([*cmd, "--", str(TEMPLATE)])
    # cfn-lint exits non-zero for errors *and* warnings; no output means no findings at all.
    assert result.returncode == 0, _describe(result)
    assert result.stdout.strip() == "", _describe(result)


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    # EI_DATA: 1 = little-endian, 2 = big-endian
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def test_sam_build_produces_arm64_layer(sam: str, sam_env: dict[str, str], tmp_path: Path) -> None:
    if shutil.which("python3.12", path=sam_env["PATH"]) is None:
        pytest.skip("`sam build` without a container needs python3.12 on PATH")

    build_dir = tmp_path / "build"
    started = time.monotonic()
    # Run from tmp_path so nothing (.aws-sam/ deps or cache) is written into
    # the working tree; --base-dir keeps CodeUri/ContentUri relative to the repo.
    result = _run(
        [
            sam,
            "build",
            "--template-file",
            str(TEMPLATE),
            "--base-dir",
            str(REPO_ROOT),
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-cached",
        ],
        env=sam_env,
        cwd=tmp_path,
        timeout=900,
    )
    elapsed = time.monotonic() - started
    print(f"sam build took {elapsed:.1f}s")
    assert result.returncode == 0, _describe(result)
    assert "Build Succeeded" in result.stdout + result.stderr, _describe(result)

    assert (build_dir / "template.yaml").is_file()
    assert (build_dir / "IngestFunction" / "app.py").is_file()

    layer = build_dir / "CoreLayer" / "python"
    assert (layer / "logpipe" / "__init__.py").is_file()
    for package in ("aws_lambda_powertools", "orjson", "isal"):
        assert (layer / package).is_dir(), f"{package} missing from the layer"

    orjson_ext = sorted((layer / "orjson").glob("orjson*.so"))
    assert orjson_ext, "orjson extension module missing"
    assert all("aarch64" in so.name for so in orjson_ext), [so.name for so in orjson_ext]
    for so in orjson_ext + sorted((layer / "isal").glob("*.so")):
        assert _elf_machine(so) == EM_AARCH64, f"{so.name} is not an aarch64 binary"
