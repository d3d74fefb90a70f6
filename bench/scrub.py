"""Benchmark ``Scrubber.default().scrub`` on realistic mixed PACS log lines.

Run: ``.venv/bin/python bench/scrub.py [--lines N] [--pii-rate R] [--seed S] [--per-rule]``

Prints throughput for clean lines, lines with PII and the whole mix, next to
a floor loop (``'\\x00' in line`` over the same lines) so numbers from
different machines can be compared by their ratio. No assertions.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
import uuid
from collections.abc import Callable, Sequence

from logpipe.scrub import Scrubber
from logpipe.scrub_rules import load_scrub_config

SERVICES = ("pacs-store", "pacs-query", "dicomweb-gw", "worklist", "router", "viewer-api")
MESSAGES = (
    "stored instance",
    "study received",
    "C-FIND completed",
    "series complete, forwarding",
    "thumbnail rendered",
    "cache miss, fetching from S3",
    "association released",
)
AE_TITLES = ("STORESCU", "CT_SCANNER_1", "MR3T_B", "PACS_ARCHIVE", "US_ROOM4")


def _uid(rng: random.Random) -> str:
    """A DICOM UID like the ones vendors emit (digits and dots, long components)."""
    roots = ("1.2.840.113619.2.55.3", "1.3.12.2.1107.5.1.4", "1.2.826.0.1.3680043.8.498", "2.25")
    root = rng.choice(roots)
    if root == "2.25":
        return f"{root}.{rng.getrandbits(128)}"
    parts = [str(rng.randint(1, 10 ** rng.randint(3, 10))) for _ in range(rng.randint(3, 5))]
    return ".".join([root, *parts])


def _ts(rng: random.Random) -> str:
    day, hour, minute, second, ms = (
        rng.randint(1, 28),
        rng.randint(0, 23),
        rng.randint(0, 59),
        rng.randint(0, 59),
        rng.randint(0, 999),
    )
    return f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z"


def _clean_line(rng: random.Random) -> str:
    kind = rng.random()
    rid = str(uuid.UUID(int=rng.getrandbits(128)))
    if kind < 0.40:
        return json.dumps(
            {
                "level": rng.choice(("INFO", "INFO", "DEBUG", "WARNING")),
                "location": f"handler:{rng.randint(10, 400)}",
                "message": rng.choice(MESSAGES),
                "timestamp": f"2026-11-22 01:{rng.randint(0, 59):02d}:03,{rng.randint(0, 999):03d}+0000",
                "service": rng.choice(SERVICES),
                "cold_start": False,
                "function_request_id": rid,
                "xray_trace_id": f"1-{rng.getrandbits(32):08x}-{rng.getrandbits(96):024x}",
                "studyInstanceUid": _uid(rng),
                "sopInstanceUid": _uid(rng),
                "duration_ms": round(rng.uniform(1, 900), 2),
                "bytes": rng.randint(1000, 50_000_000),
            },
            separators=(",", ":"),
        )
    if kind < 0.55:
        return rng.choice(
            (
                f"START RequestId: {rid} Version: $LATEST",
                f"END RequestId: {rid}",
                (
                    f"REPORT RequestId: {rid}\tDuration: {rng.uniform(1, 900):.2f} ms\t"
                    f"Billed Duration: {rng.randint(1, 900)} ms\tMemory Size: 512 MB\t"
                    f"Max Memory Used: {rng.randint(60, 500)} MB"
                ),
            )
        )
    if kind < 0.75:
        return (
            f"2026-11-22 01:{rng.randint(0, 59):02d}:03,{rng.randint(0, 999):03d} INFO  "
            f"[storescp-{rng.randint(1, 8)}] C-STORE-RQ from {rng.choice(AE_TITLES)} "
            f"(10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}:104) "
            f"SOPClassUID=1.2.840.10008.5.1.4.1.1.{rng.randint(1, 12)} "
            f"SOPInstanceUID={_uid(rng)} status=0x0000 bytes={rng.randint(1000, 9_000_000)} "
            f"duration={rng.randint(1, 5000)}ms"
        )
    if kind < 0.88:
        return json.dumps(
            {
                "ts": _ts(rng),
                "method": rng.choice(("GET", "GET", "POST")),
                "path": f"/dicomweb/studies/{_uid(rng)}/series",
                "status": rng.choice((200, 200, 200, 204, 404)),
                "latency_ms": rng.randint(1, 400),
                "ip": f"10.1.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                "trace_id": f"{rng.getrandbits(128):032x}",
                "ts_ms": 1763773323456 + rng.randint(0, 10**8),
            },
            separators=(",", ":"),
        )
    if kind < 0.95:
        # LLM usage logs trip the "token" trigger without holding any secret.
        return json.dumps(
            {
                "event": "llm.generation",
                "model": "report-summarizer-v3",
                "usage": {
                    "input_tokens": rng.randint(100, 9000),
                    "output_tokens": rng.randint(10, 900),
                    "total_tokens": rng.randint(200, 9900),
                },
                "latency_ms": rng.randint(200, 9000),
                "trace_id": rid,
            }
        )
    return rng.choice(
        (
            "Traceback (most recent call last):",
            f'  File "/var/task/pacs/store.py", line {rng.randint(1, 900)}, in handle',
            "botocore.exceptions.ClientError: An error occurred (ThrottlingException)",
        )
    )


def _pii_line(rng: random.Random) -> str:
    rid = str(uuid.UUID(int=rng.getrandbits(128)))
    patient_id = f"P{rng.randint(10000, 99999)}"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"
    aws = "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    dicom_json = (
        f'{{"00100010":{{"vr":"PN","Value":[{{"Alphabetic":"KIM^MINSU"}}]}},'
        f'"00100020":{{"vr":"LO","Value":["{patient_id}"]}}}}'
    )
    return rng.choice(
        (
            json.dumps({"level": "INFO", "message": "share link sent", "to": f"kim{rng.randint(1, 99)}@hospital.kr"}),
            json.dumps({"level": "INFO", "message": "SMS queued", "phone": f"010-{rng.randint(1000, 9999)}-5678"}),
            f"2026-11-22 01:02:03,456 WARN  [ris] patient lookup rrn=900101-1{rng.randint(100000, 999999)} failed",
            json.dumps({"level": "DEBUG", "message": "payment", "card": "4111 1111 1111 1111", "request_id": rid}),
            json.dumps({"level": "DEBUG", "headers": {"Authorization": f"Bearer {jwt}"}}),
            f"connecting to postgres://pacs:S3cret{rng.randint(1, 99)}@db.internal:5432/pacs",
            json.dumps(
                {"level": "INFO", "message": "login", "user": "rad1", "password": f"hunter{rng.randint(1, 99)}"}
            ),
            f"2026-11-22 01:02:03,456 INFO  [scp] C-STORE PatientName=KIM^MINSU PatientID={patient_id} uid={_uid(rng)}",
            dicom_json,
            f"export {aws}",
        )
    )


def build_lines(n: int, pii_rate: float, seed: int) -> tuple[list[str], list[str]]:
    """Return (clean, pii) line lists, about ``pii_rate`` of ``n`` with PII."""
    rng = random.Random(seed)
    clean: list[str] = []
    pii: list[str] = []
    for _ in range(n):
        if rng.random() < pii_rate:
            pii.append(_pii_line(rng))
        else:
            clean.append(_clean_line(rng))
    return clean, pii


def best_of(repeat: int, fn: Callable[[str], object], lines: Sequence[str]) -> float:
    """Best wall time in seconds of ``repeat`` passes of ``fn`` over ``lines``."""
    best = float("inf")
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection landing in one pass is noise, not scrub cost
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            for line in lines:
                fn(line)
            best = min(best, time.perf_counter() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print a small report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--pii-rate", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--per-rule", action="store_true", help="also time clean lines with each rule left out")
    args = ap.parse_args(argv)

    clean, pii = build_lines(args.lines, args.pii_rate, args.seed)
    mixed = clean + pii
    random.Random(args.seed).shuffle(mixed)
    scrubber = Scrubber.default()

    changed = sum(scrubber.scrub(line) is not line for line in mixed)
    clean_changed = sum(scrubber.scrub(line) is not line for line in clean)
    pii_missed = sum(scrubber.scrub(line) is line for line in pii)
    for line in mixed:  # warm the per-subset regex cache before timing
        scrubber.scrub(line)

    floor_fn = "\x00".__contains__
    avg_len = sum(map(len, mixed)) / len(mixed)
    print(f"lines: {len(mixed)} ({len(clean)} clean, {len(pii)} with PII), avg {avg_len:.0f} chars")
    print(f"changed by scrub: {changed}; clean lines changed: {clean_changed}; PII lines untouched: {pii_missed}")
    print(f"{'set':<8}{'scrub us/line':>15}{'lines/s':>12}{'floor us/line':>15}{'ratio':>8}")
    for label, lines in (("clean", clean), ("pii", pii), ("mixed", mixed)):
        if not lines:
            continue
        t = best_of(args.repeat, scrubber.scrub, lines)
        f = best_of(args.repeat, floor_fn, lines)
        per = t / len(lines) * 1e6
        print(f"{label:<8}{per:>15.2f}{len(lines) / t:>12,.0f}{f / len(lines) * 1e6:>15.3f}{t / f:>8.1f}")

    if args.per_rule:
        # Clean-line cost is about the sum of each rule's triggers and
        # prefilter plus one lower() and the call; a scrubber holding a single
        # rule shows what that rule adds (the shared part is in "no rules").
        config = load_scrub_config()
        single = {"no rules": Scrubber([])}
        single.update({rule.name: Scrubber([rule], transforms=config.transforms) for rule in config.text_rules})
        print("\nclean lines, scrubber with one rule only (us/line)")
        for name, one in single.items():
            t = best_of(args.repeat, one.scrub, clean) / len(clean) * 1e6
            print(f"  {name:<16}{t:>7.2f}")


if __name__ == "__main__":
    main()
