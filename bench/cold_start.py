"""Benchmark: cold start of the ingest handler, against a bare interpreter start in the same run.

Reports (best of N fresh processes): interpreter start alone (the floor), the interpreter plus
``import app`` (the handler module), and the interpreter plus import plus the first invocation on a
small sample batch (where the lazily imported Powertools, scrub rules and metric rules load).
The issue's target is the handler module import: 150 ms or less.

    uv run python bench/cold_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = f"import sys; sys.path[:0] = [{str(ROOT / 'functions' / 'ingest')!r}, {str(ROOT / 'layers' / 'core')!r}]"
IMPORT_ONLY = PATHS + "\nimport time; t = time.perf_counter(); import app; print((time.perf_counter() - t) * 1000)"
FIRST_INVOKE = (
    PATHS
    + "\nimport json, time; t = time.perf_counter(); import app"
    + f"\nevent = json.load(open({str(ROOT / 'events' / 'cwl-pacs-backend-application.json')!r}))"
    + "\napp.lambda_handler(event, None); print((time.perf_counter() - t) * 1000)"
)
TARGET_IMPORT_MS = 150.0


def run(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall time of the whole process and the in-process figure it printed, in ms."""
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    wall = (time.perf_counter() - started) * 1000
    inner = float(completed.stdout.strip().splitlines()[-1]) if completed.stdout.strip() else 0.0
    return wall, inner


def main() -> None:
    """Time each variant in fresh processes and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"LOGPIPE_ENVIRONMENT": "prod", "POWERTOOLS_METRICS_NAMESPACE": "LogPipe"}
    floor = importing = first = float("inf")
    import_inner = first_inner = float("inf")
    for _ in range(args.runs):
        floor = min(floor, run("print(0)", env)[0])
        wall, inner = run(IMPORT_ONLY, env)
        importing, import_inner = min(importing, wall), min(import_inner, inner)
        wall, inner = run(FIRST_INVOKE, env)
        first, first_inner = min(first, wall), min(first_inner, inner)
    print(f"interpreter start (floor)        : {floor:7.1f} ms")
    print(f"start + import app               : {importing:7.1f} ms  (import itself {import_inner:.1f} ms)")
    print(f"start + import + first invocation: {first:7.1f} ms  (import + invoke {first_inner:.1f} ms)")
    print(f"ratio (start + import) / floor   : {importing / floor:.2f}")
    verdict = "meets" if import_inner <= TARGET_IMPORT_MS else "EXCEEDS"
    print(f"handler import {import_inner:.1f} ms {verdict} the {TARGET_IMPORT_MS:.0f} ms target")


if __name__ == "__main__":
    main()
