"""The Lambda layer ships exactly what the tests run against: every package pinned to uv.lock's version.

``layers/core/requirements.txt`` is what ``sam build`` installs into the layer. It must hold the
runtime dependencies of ``pyproject.toml`` and everything they need, each pinned to the version
uv.lock resolved (the one this suite ran with), and every third-party module the layer's code or a
handler imports must come from it -- the AWS SDK included: the layer bundles boto3/botocore rather
than taking whatever copy the Lambda runtime carries that month.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
_NAME = re.compile(r"[-_.]+")


def _canonical(name: str) -> str:
    return _NAME.sub("-", name).lower()


def _requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (ROOT / "layers/core/requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        assert separator, f"{line!r} is not pinned with =="
        pins[_canonical(name)] = version.strip()
    return pins


def _runtime_closure() -> dict[str, str]:
    """pyproject's runtime dependencies and their dependencies, at uv.lock's versions (Linux, Python 3.12)."""
    lock = {_canonical(p["name"]): p for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    roots = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    closure: dict[str, str] = {}
    pending = [_canonical(re.split(r"[<>=!~\[; ]", root, maxsplit=1)[0]) for root in roots]
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        package = lock[name]
        closure[name] = package["version"]
        for dependency in package.get("dependencies", []):
            marker = dependency.get("marker", "")
            if "win32" in marker or "python_full_version < '3.12" in marker:
                continue  # not on Lambda's Linux Python 3.12
            pending.append(_canonical(dependency["name"]))
    return closure


def _imported_modules(path: Path) -> set[str]:
    """Top-level modules a file imports at run time (not those under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(child) for statement in node.body for child in ast.walk(statement))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def test_the_layer_pins_every_runtime_package_at_the_locked_version() -> None:
    assert _requirements() == _runtime_closure()


def test_the_layer_bundles_the_aws_sdk() -> None:
    pins = _requirements()
    assert {"boto3", "botocore", "s3transfer", "jmespath", "urllib3"} <= set(pins)


def test_every_third_party_import_of_the_layer_and_the_handlers_comes_from_the_layer() -> None:
    sources = [*(ROOT / "layers/core/logpipe").rglob("*.py"), *(ROOT / "functions").glob("*/app.py")]
    imported = set().union(*(_imported_modules(path) for path in sources))
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "logpipe"}
    distributions = packages_distributions()
    pins = _requirements()
    missing = {
        module: distributions.get(module)
        for module in third_party
        if not any(_canonical(dist) in pins for dist in distributions.get(module, []))
    }
    assert missing == {}
    assert {"boto3", "botocore", "orjson", "sentry_sdk", "aws_lambda_powertools", "opentelemetry"} <= third_party
