"""Benchmark: building Sentry events from error records (breadcrumb selection included, no network).

The workload is ``synthesize_workload(20_000, seed=7)`` parsed by ``logpipe.assemble`` and routed by
``logpipe.classify``; only the error records are timed. Per error record the timed pass selects its
breadcrumbs from its batch (``select_breadcrumbs``, as the Sentry sink does) and calls
``build_event``; a second timed pass does what the Sentry sink does now: each record (the error and
its breadcrumbs) through the PHI boundary first (``Boundary.record``), the event through it after
(``Boundary.sentry_event``), with the boundary's memo cleared before the pass. The floor, in the same
run, is ``orjson.dumps`` of a small dict of each error
record's raw text: what any forwarder pays to hand a log line on at all. Machines are noisy, so the
ratio is the figure to compare. Best of N runs each, interleaved; no assertions.

    .venv/bin/python bench/sentry_events.py [--events 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Sequence

import orjson

from logpipe.assemble import assemble_records, stream_context
from logpipe.boundary import Boundary
from logpipe.classify import RecordKind, classify
from logpipe.decode import LogBatch
from logpipe.records import LogRecord
from logpipe.scrub_rules import load_scrub_config
from logpipe.sentry.event import build_event, select_breadcrumbs
from logpipe_cli.workload import ACCOUNT_ID, DEFAULT_FILTER_NAME, REGION, synthesize_workload

START_MS = 1_795_309_200_000  # fixed, so every run builds the same workload

Batch = tuple[list[LogRecord], list[LogRecord]]  # (all records of one stream batch, its error records)


def load_batches(total: int) -> list[Batch]:
    """Parse the synthetic workload per stream batch, as the ingest function would."""
    batches: list[Batch] = []
    for stream in synthesize_workload(total, seed=7, start_ms=START_MS):
        batch = LogBatch(
            message_type="DATA_MESSAGE",
            owner=ACCOUNT_ID,
            log_group=stream.log_group,
            log_stream=stream.log_stream,
            subscription_filters=(DEFAULT_FILTER_NAME,),
            events=stream.events,
            policy_level=None,
            payload_id="bench",
            source="bench",
        )
        records, _ = assemble_records(batch, stream_context(batch, REGION, "prod"))
        errors = [record for record in records if classify(record) is RecordKind.ERROR]
        if errors:
            batches.append((records, errors))
    return batches


def build_all(batches: Sequence[Batch]) -> int:
    """The timed pass: breadcrumbs + event for every error record."""
    built = 0
    for records, errors in batches:
        for record in errors:
            build_event(record, breadcrumbs=select_breadcrumbs(record, records))
            built += 1
    return built


def build_and_dump_all(batches: Sequence[Batch]) -> int:
    """As ``build_all`` plus the JSON encoding every sent event needs anyway."""
    size = 0
    for records, errors in batches:
        for record in errors:
            size += len(orjson.dumps(build_event(record, breadcrumbs=select_breadcrumbs(record, records))))
    return size


def build_through_boundary(batches: Sequence[Batch], boundary: Boundary) -> int:
    """As the Sentry sink builds events: from scrubbed records, then the event walked once more."""
    boundary.clear_memo()
    built = 0
    for records, errors in batches:
        scrubbed: dict[int, LogRecord] = {}

        def clean(record: LogRecord, scrubbed: dict[int, LogRecord] = scrubbed) -> LogRecord:
            done = scrubbed.get(id(record))
            if done is None:
                done = scrubbed[id(record)] = boundary.record(record)
            return done

        for record in errors:
            crumbs = [clean(crumb) for crumb in select_breadcrumbs(record, records)]
            boundary.sentry_event(build_event(clean(record), breadcrumbs=crumbs))
            built += 1
    return built


def floor_pass(batches: Sequence[Batch]) -> int:
    """The floor: serialise each error record's raw text and ids, nothing else."""
    size = 0
    dumps = orjson.dumps
    for _, errors in batches:
        for record in errors:
            size += len(dumps({"id": record.event_id, "timestamp": record.timestamp_ms, "message": record.raw}))
    return size


def timed(run: Callable[[], object]) -> float:
    """One run's wall time (after a collection, so garbage from the last run is not billed)."""
    gc.collect()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    """Print events/s of the event build, with and without JSON encoding, next to the floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    batches = load_batches(args.events)
    errors = [record for _, batch_errors in batches for record in batch_errors]
    count = len(errors)
    if not count:
        raise SystemExit("the workload produced no error records")
    with_trace = sum(record.exception is not None for record in errors)

    cold = timed(lambda: build_all(batches))  # first run: regex and path caches still empty
    boundary = Boundary(load_scrub_config())
    build = dump = floor = bounded = float("inf")
    for _ in range(args.repeat):  # interleaved so every pass sees the same machine conditions
        floor = min(floor, timed(lambda: floor_pass(batches)))
        build = min(build, timed(lambda: build_all(batches)))
        dump = min(dump, timed(lambda: build_and_dump_all(batches)))
        bounded = min(bounded, timed(lambda: build_through_boundary(batches, boundary)))

    sizes = [
        len(orjson.dumps(build_event(record, breadcrumbs=select_breadcrumbs(record, records))))
        for records, batch_errors in batches
        for record in batch_errors
    ]
    crumbs = [len(select_breadcrumbs(record, records)) for records, batch_errors in batches for record in batch_errors]
    total_records = sum(len(records) for records, _ in batches)
    print(f"workload: {args.events:,} events -> {total_records:,} records in batches with errors")
    print(f"error records: {count:,} ({with_trace:,} with a stack trace), {len(batches)} batches")
    print(
        f"event JSON size: median {statistics.median(sizes):,.0f} B, max {max(sizes):,} B; "
        f"breadcrumbs per event: mean {statistics.fmean(crumbs):.1f}, max {max(crumbs)}"
    )
    floor_rate = count / floor
    build_rate = count / build
    dump_rate = count / dump
    print(f"floor (orjson of raw text)    : {floor_rate:>10,.0f} events/s")
    print(f"build_event + breadcrumbs     : {build_rate:>10,.0f} events/s  (ratio {build_rate / floor_rate:.3f})")
    print(f"  + orjson.dumps of the event : {dump_rate:>10,.0f} events/s  (ratio {dump_rate / floor_rate:.3f})")
    print(f"  first run, cold caches      : {count / cold:>10,.0f} events/s")
    bounded_rate = count / bounded
    print(
        f"as the sink: records + event through the PHI boundary: {bounded_rate:>10,.0f} events/s "
        f"(ratio {bounded_rate / floor_rate:.3f}, {bounded / count * 1e6:.1f} us per event)"
    )
    print(f"per event: build {build / count * 1e6:.1f} us, floor {floor / count * 1e6:.2f} us")


if __name__ == "__main__":
    main()
