"""The Lambda path never imports the langfuse package, and imports the OTel SDK only when it sends."""

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
import json, sys, time
sys.path[:0] = [{ingest!r}, {layer!r}]
import app
from logpipe.runtime import build_sinks
from logpipe.settings import Settings
sinks = build_sinks(Settings.from_env())
after_build = sorted(n for n in ("langfuse", "opentelemetry", "boto3") if n in sys.modules)
from logpipe.langfuse.sink import SpanEncoder
from logpipe.langfuse.mapping import Generation
g = Generation("e", "s", "0" * 31 + "1", "0" * 15 + "1", "n", "m", 1, 2, "i", "o", {{}}, {{}}, None, None, "prod", None, None, None, "svc", "/g", "s")
body = SpanEncoder().encode([g])
print(json.dumps({{"sinks": [s.name for s in sinks], "after_build": after_build, "langfuse_after_send": "langfuse" in sys.modules, "otel_after_send": "opentelemetry.sdk.trace" in sys.modules, "body": len(body)}}))
"""


def test_lambda_path_never_imports_langfuse() -> None:
    code = PROBE.format(ingest=str(ROOT / "functions" / "ingest"), layer=str(ROOT / "layers" / "core"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOGPIPE_"))} | {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "LOGPIPE_LANGFUSE_HOST": "http://127.0.0.1:9",
        "LOGPIPE_LANGFUSE_PUBLIC_KEY": "pk-lf-test",
        "LOGPIPE_LANGFUSE_SECRET_KEY": "sk-lf-test",
    }
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["sinks"] == ["langfuse"]
    assert result["after_build"] == []
    assert result["langfuse_after_send"] is False
    assert result["otel_after_send"] is True
    assert result["body"] > 0
