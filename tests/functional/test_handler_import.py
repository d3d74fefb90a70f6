"""Lambda hygiene: importing the handler makes no AWS call and loads no heavy SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
sys.path[:0] = [{ingest!r}, {layer!r}]
import app
heavy = sorted(name for name in ("boto3", "botocore", "sentry_sdk", "langfuse", "moto", "opentelemetry") if name in sys.modules)
print(json.dumps({{"heavy": heavy, "has_handler": callable(getattr(app, "lambda_handler", None))}}))
"""


@pytest.mark.parametrize("function", sorted(path.name for path in (ROOT / "functions").iterdir() if path.is_dir()))
def test_handler_import_loads_no_sdk_and_touches_no_network(function: str) -> None:
    code = PROBE.format(ingest=str(ROOT / "functions" / function), layer=str(ROOT / "layers" / "core"))
    # An unroutable endpoint and no credentials: an import-time AWS call would hang or fail loudly.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_LAMBDA_FUNCTION_NAME": function,
    }
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == {"heavy": [], "has_handler": True}
