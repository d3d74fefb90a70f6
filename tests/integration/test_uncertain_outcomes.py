"""Lost responses (issue 12, item 9): a request that may have been stored is parked as uncertain, never re-sent blindly.

Over real HTTP on 127.0.0.1: the loopback OTLP receiver stores the spans and then cuts its 200 short
(or answers too late), as a dropped connection after the server stored the data looks to a client.
Like Langfuse for OTel projects (see ``OtlpTransport.observation_exists``), the receiver keeps every
copy of a re-sent span id, so a blind re-send shows up as a duplicate here. Sentry's side uses a small
HTTP server that truncates its answer the same way.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from logpipe.boundary import Boundary
from logpipe.delivery import ResendOutcome
from logpipe.idempotency import DeliveryLedger
from logpipe.langfuse.config import KEY_PREFIX, RECORD_SECONDS
from logpipe.langfuse.replay import LangfuseResender
from logpipe.langfuse.sink import UNCERTAIN_RECHECK_SECONDS, LangfuseSink
from logpipe.langfuse.transport import CredentialsSource, OtlpTransport
from logpipe.parking import MemoryParkingLot
from logpipe.records import LogRecord
from logpipe.sentry.routing import DsnRouter
from logpipe.sentry.sink import SentrySink
from logpipe.sentry.transport import SendOutcome, SentryClient
from logpipe.sinks import DeliveryOutcome, SendContext
from logpipe_cli.otlp_receiver import Answer, OtlpReceiver, otlp_receiver
from payloads import records_of_document

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "events" / "decoded" / "cwl-pacs-backend-llm.json"


def llm_records(count: int = 3) -> list[LogRecord]:
    base = records_of_document(json.loads(SAMPLE.read_text()))[0]
    return [replace(base, event_id=f"{i:056d}") for i in range(count)]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def transport(receiver: OtlpReceiver, timeout: float = 2.0) -> OtlpTransport:
    return OtlpTransport(CredentialsSource.fixed(receiver.host, "pk-lf-t", "sk-lf-t"), timeout=timeout, backoff=0.01)


def context(parking: MemoryParkingLot, seconds: float = 10.0) -> SendContext:
    return SendContext(
        batch_records=[], boundary=Boundary.disabled(), parking=parking, deadline=time.monotonic() + seconds
    )


def parked_messages(parking: MemoryParkingLot) -> list[dict[str, Any]]:
    return [orjson.loads(item.to_message()) for item in parking.items]


def test_a_truncated_200_is_parked_uncertain_and_the_replay_finds_it_stored(receiver: OtlpReceiver) -> None:
    receiver.script = [Answer(truncate=True)]
    records = llm_records(3)
    parking = MemoryParkingLot()
    poster = transport(receiver)
    deliveries = LangfuseSink(
        poster, DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS)
    ).send(records, context(parking))
    assert {delivery.outcome for delivery in deliveries} == {DeliveryOutcome.PARKED}
    # Stored once, and not sent a second time inline: the cut answer may hide a success.
    assert len(receiver.received) == 1
    assert len(receiver.stored_span_ids()) == 3
    messages = parked_messages(parking)
    assert all(message["attributes"]["uncertain"] == "true" for message in messages)
    assert all(item.not_before is not None and item.not_before >= UNCERTAIN_RECHECK_SECONDS for item in parking.items)

    resender = LangfuseResender(
        poster, DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS), lookup=poster
    )
    results = [resender.resend(message, time.monotonic() + 10) for message in messages]
    assert {result.outcome for result in results} == {ResendOutcome.DUPLICATE}
    assert len(receiver.lookups) == 3
    assert len(receiver.received) == 1
    assert sorted(receiver.stored_span_ids()) == sorted(set(receiver.stored_span_ids()))


def test_without_the_lookup_a_resent_span_is_stored_twice(receiver: OtlpReceiver) -> None:
    # Why the lookup exists: the server (like Langfuse for OTel projects) keeps both copies.
    receiver.script = [Answer(truncate=True)]
    parking = MemoryParkingLot()
    poster = transport(receiver)
    LangfuseSink(poster, DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS)).send(
        llm_records(1), context(parking)
    )
    [message] = parked_messages(parking)
    result = LangfuseResender(
        poster, DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS)
    ).resend(message, time.monotonic() + 10)
    assert result.outcome is ResendOutcome.DELIVERED
    [span_id, again] = receiver.stored_span_ids()
    assert span_id == again


def test_an_uncertain_item_langfuse_does_not_have_is_sent_again(receiver: OtlpReceiver) -> None:
    receiver.script = [Answer(hang_up=True)]  # read, then the connection closes unanswered: not stored here
    parking = MemoryParkingLot()
    poster = transport(receiver)
    LangfuseSink(poster, DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS)).send(
        llm_records(1), context(parking)
    )
    assert len(receiver.received) == 1  # no inline retry: the request may have been stored
    [message] = parked_messages(parking)
    assert message["attributes"]["uncertain"] == "true"
    result = LangfuseResender(
        poster, DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS), lookup=poster
    ).resend(message, time.monotonic() + 10)
    assert result.outcome is ResendOutcome.DELIVERED
    assert len(receiver.lookups) == 1
    assert len(receiver.stored_span_ids()) == 1


def test_a_timeout_after_the_body_was_sent_is_uncertain_and_bounded(receiver: OtlpReceiver) -> None:
    receiver.script = [Answer(delay=3.0)]
    parking = MemoryParkingLot()
    started = time.monotonic()
    LangfuseSink(
        transport(receiver, timeout=0.5),
        DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS),
    ).send(llm_records(1), context(parking))
    assert time.monotonic() - started < 2.5
    assert len(receiver.received) == 1
    [message] = parked_messages(parking)
    assert message["attributes"]["uncertain"] == "true"


def test_a_refused_connection_is_certain_and_retried_inline() -> None:
    poster = OtlpTransport(CredentialsSource.fixed("http://127.0.0.1:9", "pk", "sk"), timeout=1.0, backoff=0.01)
    parking = MemoryParkingLot()
    LangfuseSink(poster, DeliveryLedger.in_memory(key_prefix=KEY_PREFIX, expires_after_seconds=RECORD_SECONDS)).send(
        llm_records(1), context(parking)
    )
    [message] = parked_messages(parking)
    assert "uncertain" not in message["attributes"]


class TruncatingSentry(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received: list[bytes] = []  # noqa: RUF012 - shared with the test through the class

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "200")
        self.end_headers()
        self.wfile.write(b'{"id":')
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Quiet."""


def test_a_truncated_sentry_answer_parks_the_event_uncertain() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TruncatingSentry)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dsn = f"http://public@127.0.0.1:{server.server_address[1]}/1"
        client = SentryClient(dsn, "prod", timeout=2.0)
        record = llm_records(1)[0]
        from logpipe.sentry.event import build_event

        result = client.send(build_event(record))
        assert result.outcome is SendOutcome.NETWORK_ERROR
        assert result.uncertain
        parking = MemoryParkingLot()
        sink = SentrySink(DsnRouter.single(dsn), environment="prod", sender_factory=lambda _dsn: client)
        [delivery] = sink.send([record], context(parking))
        assert delivery.outcome is DeliveryOutcome.PARKED
        [item] = parking.items
        assert item.attributes["uncertain"] == "true"
        assert len(TruncatingSentry.received) == 2  # once per send: never re-sent inline
    finally:
        server.shutdown()
        server.server_close()
