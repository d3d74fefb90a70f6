"""Benchmark: peak RSS of one invocation on a 1 MB (compressed) batch, against the same process idle.

A child process imports everything, measures its peak RSS (the floor), then decodes and processes
one ~1 MB compressed subscription payload through the full ingest path and measures again.
Target: under 200 MB peak.

    uv run python bench/memory.py [--compressed-mb 1.0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
from logpipe.metrics import load_metric_rules
from logpipe.parking import MemoryParkingLot
from logpipe.pipeline import IngestPipeline
from logpipe.boundary import Boundary
from logpipe.settings import Settings
from logpipe_cli.workload import SyntheticStream, encode_subscription_payload, subscription_message, synthesize_workload

target = int(float(sys.argv[1]) * 1024 * 1024)
now = int(time.time() * 1000)
events, group, stream = [], None, None
seed = 1
while True:
    for s in synthesize_workload(5000, seed=seed, start_ms=now - 20 * 60_000):
        if s.log_group.endswith("/application") and "pacs-backend" in s.log_group:
            group, stream = s.log_group, s.log_stream
            events.extend(s.events)
    seed += 1
    data = encode_subscription_payload(subscription_message(SyntheticStream(group, stream, events)))
    if len(data) * 3 // 4 >= target:
        break
pipeline = IngestPipeline(Settings(environment="prod"), rules=load_metric_rules(), parking=MemoryParkingLot(),
                          boundary=Boundary.default(), emf_writer=lambda line: None, keep_records=True)
event = {"awslogs": {"data": data}}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
summary = pipeline.run(event).to_dict()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"compressed_mb": len(data) * 3 / 4 / 1024 / 1024, "events": summary["events_in"],
                  "before_mb": before, "after_mb": after}))
"""
TARGET_MB = 200.0


def main() -> None:
    """Run the child and print peak RSS before and after the batch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compressed-mb", type=float, default=1.0)
    args = parser.parse_args()
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(args.compressed_mb)], capture_output=True, text=True, check=True
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    print(f"batch: {result['compressed_mb']:.2f} MB compressed, {result['events']:,} events")
    print(f"peak RSS idle (floor, incl. the test data): {result['before_mb']:7.1f} MB")
    print(f"peak RSS after processing the batch      : {result['after_mb']:7.1f} MB")
    print(f"ratio after/floor                        : {result['after_mb'] / result['before_mb']:.2f}")
    verdict = "meets" if result["after_mb"] < TARGET_MB else "EXCEEDS"
    print(f"peak {result['after_mb']:.1f} MB {verdict} the {TARGET_MB:.0f} MB target")


if __name__ == "__main__":
    main()
