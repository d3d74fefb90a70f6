"""Langfuse span building: LLM records -> generations -> OTel SDK spans -> OTLP protobuf, no network.

Mixed shapes (flat, OpenAI, Anthropic, OTel GenAI) from ``logpipe_cli.workload``; best of N runs.

    .venv/bin/python bench/langfuse_spans.py [events] [repeats]
"""

from __future__ import annotations

import json
import random
import sys
import time

from logpipe.assemble import assemble_records, stream_context
from logpipe.decode import LogBatch
from logpipe.langfuse.mapping import to_generation
from logpipe.langfuse.sink import chunk_generations
from logpipe.langfuse.spans import SpanBuilder, encode_spans_body
from logpipe.records import LogRecord
from logpipe_cli.workload import LlmCall, llm_call_anthropic, llm_call_flat, llm_call_openai, llm_call_otel

SHAPES = (llm_call_flat, llm_call_openai, llm_call_anthropic, llm_call_otel)


def records(count: int) -> list[LogRecord]:
    rng = random.Random(7)
    start = 1_795_309_200_000
    lines = []
    for i in range(count):
        call = LlmCall(
            name="report-draft",
            provider="openai",
            model=rng.choice(("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5")),
            prompt="Draft a structured CT report for study 1.2.840.113619.2.55.3."
            + str(i)
            + " "
            + "x" * rng.randint(100, 800),
            completion="Impression: " + "y" * rng.randint(50, 400),
            input_tokens=rng.randint(100, 2000),
            output_tokens=rng.randint(10, 500),
            cost_usd=rng.random() / 100,
            latency_ms=rng.randint(200, 6000),
            trace_id=f"{rng.getrandbits(128):032x}",
            span_id=f"{rng.getrandbits(64):016x}",
            session_id=f"sess-{i % 50}",
            user_id=f"radiologist-{i % 20}",
            study_uid=f"1.2.3.{i}",
        )
        lines.append({"id": f"{i:056d}", "timestamp": start + i * 10, "message": SHAPES[i % 4](start + i * 10, call)})
    batch = LogBatch("DATA_MESSAGE", "1", "/aws/ecs/pacs-backend/llm", "s", (), lines, None, "p", "awslogs")
    return assemble_records(batch, stream_context(batch, "ap-northeast-2", "prod"))[0]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    batch = records(count)
    builder = SpanBuilder()
    best: dict[str, float] = {}
    total_bytes = 0
    for _ in range(repeats):
        started = time.perf_counter()
        generations = [to_generation(record) for record in batch]
        mapped = time.perf_counter()
        total_bytes = 0
        for chunk in chunk_generations(generations, 200, 2 * 1024 * 1024):
            total_bytes += len(encode_spans_body(builder.build(chunk)))
        done = time.perf_counter()
        for key, value in (("map", mapped - started), ("spans+encode", done - mapped), ("total", done - started)):
            best[key] = min(best.get(key, value), value)
    print(
        json.dumps(
            {
                "events": count,
                "events_per_second": {key: round(count / value) for key, value in best.items()},
                "otlp_bytes": total_bytes,
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
