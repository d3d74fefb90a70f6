"""Run the real tool chain against template.yaml: `sam validate --lint`, cfn-lint, checkov and `sam build`.

The SAM CLI and checkov are not project dependencies (each is a separate uv tool, installed by
scripts/bootstrap: their pins conflict with the runtime venv); when one is missing its tests are
skipped. `sam build` needs the network (it downloads manylinux aarch64 wheels for the layer) and a
`python3.12` interpreter on PATH; it never uses a container.

template.yaml uses AWS::LanguageExtensions (Fn::ForEach over ServiceNames): the SAM CLI expands it
locally only with `--language-extensions` (samconfig.toml sets it; these tests pass it explicitly
where they run outside the repository). A test also checks the offline expansion the template tests
use against the SAM CLI's own, and checkov runs on the expanded view too, since it skips
Fn::ForEach blocks of the raw template.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from unit.test_template import (
    DEPLOY_PARAMETERS,
    expand_language_extensions,
    load_cfn_yaml,
    resolve,
    sam_transform,
)

pytestmark = pytest.mark.functional

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
SAMCONFIG = REPO_ROOT / "samconfig.toml"
# The SAM CLI commands that read template.yaml and take --language-extensions (samconfig sections).
TEMPLATE_READING_COMMANDS = (
    "build",
    "validate",
    "package",
    "deploy",
    "sync",
    "local_invoke",
    "local_start_api",
    "local_start_lambda",
)

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


def test_sam_validate_translates_the_expanded_template(sam: str, sam_env: dict[str, str], tmp_path: Path) -> None:
    """Without --lint, `sam validate` runs the SAM translator itself, which needs the local expansion."""
    result = _run(
        [sam, "validate", "--language-extensions", "--template-file", str(TEMPLATE)], env=sam_env, cwd=tmp_path
    )
    assert result.returncode == 0, _describe(result)
    assert "is a valid SAM Template" in result.stdout + result.stderr, _describe(result)


@pytest.mark.parametrize("config_env", ["default", "dev", "prod"])
def test_samconfig_environments_parse(sam: str, sam_env: dict[str, str], config_env: str) -> None:
    """samconfig.toml is read for every environment (validate has lint = true there)."""
    result = _run([sam, "validate", "--config-env", config_env], env=sam_env)
    assert result.returncode == 0, _describe(result)
    assert "is a valid SAM Template" in result.stdout + result.stderr, _describe(result)


@pytest.mark.parametrize("config_env", ["default", "dev", "prod"])
def test_samconfig_turns_on_language_extensions_for_every_command_that_reads_the_template(config_env: str) -> None:
    environment = tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))[config_env]
    shared = environment["global"]["parameters"].get("language_extensions")
    for command in TEMPLATE_READING_COMMANDS:
        own = environment.get(command, {}).get("parameters", {}).get("language_extensions", shared)
        assert own is True, f"{config_env}: `sam {command.replace('_', ' ')}` runs without --language-extensions"


def test_sam_local_invoke_without_docker_says_so_instead_of_crashing(sam: str, sam_env: dict[str, str]) -> None:
    """With the repository's samconfig.toml, `sam local invoke` gets as far as looking for a container runtime."""
    env = sam_env | {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # no container runtime, even where one runs
    result = _run([sam, "local", "invoke", "IngestFunction", "-e", "events/cwl-keycloak.json"], env=env, timeout=180)
    output = result.stdout + result.stderr
    assert "requires a container runtime" in output, _describe(result)
    assert "unexpected error" not in output.lower(), _describe(result)
    assert "Traceback" not in output, _describe(result)
    assert result.returncode == 1, _describe(result)


def test_sam_local_generate_event_works_with_the_repositorys_samconfig(sam: str, sam_env: dict[str, str]) -> None:
    result = _run([sam, "local", "generate-event", "cloudwatch", "logs"], env=sam_env, timeout=120)
    assert result.returncode == 0, _describe(result)
    assert "data" in json.loads(result.stdout)["awslogs"]


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
            "--language-extensions",
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
    # The built template keeps the loops: CloudFormation expands them with the deployed parameters.
    built = load_cfn_yaml((build_dir / "template.yaml").read_text(encoding="utf-8"))
    assert "Fn::ForEach::ServiceLogGroups" in built["Resources"]
    assert built["Resources"]["IngestFunction"]["Properties"]["CodeUri"] == "IngestFunction"

    layer = build_dir / "CoreLayer" / "python"
    assert (layer / "logpipe" / "__init__.py").is_file()
    for package in ("aws_lambda_powertools", "orjson", "isal"):
        assert (layer / package).is_dir(), f"{package} missing from the layer"

    orjson_ext = sorted((layer / "orjson").glob("orjson*.so"))
    assert orjson_ext, "orjson extension module missing"
    assert all("aarch64" in so.name for so in orjson_ext), [so.name for so in orjson_ext]
    for so in orjson_ext + sorted((layer / "isal").glob("*.so")):
        assert _elf_machine(so) == EM_AARCH64, f"{so.name} is not an aarch64 binary"


# ---------------------------------------------------------------------------
# The offline expansion used by the template tests, against the SAM CLI's own
# ---------------------------------------------------------------------------
SAM_CLI_EXPANSION = """
import json, sys
from samcli.lib.cfn_language_extensions.api import process_template
from samcli.yamlhelper import yaml_parse
template = yaml_parse(open(sys.argv[1], encoding="utf-8").read())
print(json.dumps(process_template(template, parameter_values=json.loads(sys.argv[2])), default=str))
"""


def test_offline_expansion_matches_the_sam_clis(sam: str, sam_env: dict[str, str], tmp_path: Path) -> None:
    interpreter = Path(sam).resolve().parent / "python"
    if not interpreter.is_file():
        pytest.skip(f"the SAM CLI's interpreter is not at {interpreter}")
    script = tmp_path / "expand.py"
    script.write_text(SAM_CLI_EXPANSION, encoding="utf-8")
    result = _run([str(interpreter), str(script), str(TEMPLATE), json.dumps(DEPLOY_PARAMETERS)], env=sam_env)
    if result.returncode != 0 and "ModuleNotFoundError" in result.stderr:
        pytest.skip("this SAM CLI has no cfn_language_extensions module")
    assert result.returncode == 0, _describe(result)
    theirs = json.loads(result.stdout)["Resources"]
    template = load_cfn_yaml(TEMPLATE.read_text(encoding="utf-8"))
    ours = expand_language_extensions(template, DEPLOY_PARAMETERS)["Resources"]
    assert {name: r["Type"] for name, r in ours.items()} == {name: r["Type"] for name, r in theirs.items()}
    # The SAM CLI also resolves Refs to parameters (to their defaults): compare resolved values.
    parameters = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    parameters |= DEPLOY_PARAMETERS | {"AWS::StackName": "${AWS::StackName}"}
    compared = 0
    for name, resource in ours.items():
        logs = resource["Type"].startswith("AWS::Logs::") or resource["Type"] == "Custom::ServiceLogGroup"
        for key in ("LogGroupName", "FilterPattern"):
            if logs and key in resource["Properties"]:
                mine = resolve(resource["Properties"][key], parameters)
                assert mine == resolve(theirs[name]["Properties"][key], parameters), f"{name}.{key}"
                compared += 1
    assert compared == 3 * 2 + 5 + 3 * 2 * 2  # log groups (services + 5 functions), filters x 2 keys


# ---------------------------------------------------------------------------
# checkov
# ---------------------------------------------------------------------------
def _find_checkov() -> str | None:
    found = shutil.which("checkov")
    if found:
        return found
    fallback = Path.home() / ".local" / "bin" / "checkov"
    return str(fallback) if fallback.is_file() and os.access(fallback, os.X_OK) else None


def _checkov(path: Path) -> dict[str, Any]:
    checkov = _find_checkov()
    if checkov is None:
        pytest.skip("checkov not found; scripts/bootstrap installs it (`uv tool install checkov`)")
    result = _run(
        [checkov, "--file", str(path), "--framework", "cloudformation", "--skip-download", "--output", "json"],
        timeout=600,
    )
    assert result.returncode == 0, _describe(result)
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_checkov_passes_on_the_template_with_every_skip_justified() -> None:
    report = _checkov(TEMPLATE)
    summary = report["summary"]
    assert summary["failed"] == 0, report["results"]["failed_checks"]
    assert summary["passed"] > 10
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) > 40, f"{skipped['check_id']} on {skipped['resource']} is skipped without a reason"


def test_checkov_passes_on_the_expanded_template(tmp_path: Path) -> None:
    """checkov does not look inside Fn::ForEach: scan what CloudFormation will create."""
    deployed = sam_transform(
        expand_language_extensions(load_cfn_yaml(TEMPLATE.read_text(encoding="utf-8")), DEPLOY_PARAMETERS),
        DEPLOY_PARAMETERS,
    )
    path = tmp_path / "deployed.yaml"
    path.write_text(yaml.safe_dump(deployed), encoding="utf-8")
    report = _checkov(path)
    assert report["summary"]["failed"] == 0, report["results"]["failed_checks"]
    checked = {(c["check_id"], c["resource"]) for c in report["results"]["passed_checks"]}
    # The service groups are Custom::ServiceLogGroup (created or adopted), which checkov cannot read: their
    # key and retention are checked by the template tests and against moto (test_service_log_groups.py).
    assert ("CKV_AWS_158", "AWS::Logs::LogGroup.IngestFunctionLogGroup") in checked
    assert ("CKV_AWS_66", "AWS::Logs::LogGroup.ServiceLogGroupsFunctionLogGroup") in checked
