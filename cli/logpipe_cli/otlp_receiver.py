"""A loopback OTLP/HTTP traces receiver standing in for Langfuse (no Langfuse server runs without Docker).

A real HTTP server on 127.0.0.1 that decodes each body with ``opentelemetry-proto`` and answers by a
script: 200, 429 with Retry-After, 500, slowly, or not at all (the connection is closed unanswered),
or a 200 cut short (the spans are stored, the client sees a truncated response). A 200 may carry an
OTLP ``partial_success`` (rejected spans and an error message), as protobuf or, like Langfuse's own
answers, as JSON. Like Langfuse for OTel projects, it keeps every copy of a re-sent span id, and it
answers ``GET /api/public/observations/{id}`` (200 when it stored that span id, else 404).
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True, slots=True)
class Answer:
    """How to answer one request."""

    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    hang_up: bool = False  # close the connection without any response
    rejected_spans: int = 0  # with a 2xx: an ExportTraceServiceResponse.partial_success
    error_message: str = ""
    json_body: bool = False  # answer a 2xx in JSON (as Langfuse does) instead of protobuf
    truncate: bool = False  # store the spans, send a 200 whose body is cut short, close the connection

    def body(self) -> tuple[bytes, str]:
        """The response body and its content type."""
        if not 200 <= self.status < 300:  # HTTP success range
            return b'{"message":"scripted"}', "application/json"
        partial = bool(self.rejected_spans or self.error_message)
        if self.json_body:
            # The protobuf JSON mapping: lowerCamelCase names, int64 as a decimal string.
            document = (
                {"partialSuccess": {"rejectedSpans": str(self.rejected_spans), "errorMessage": self.error_message}}
                if partial
                else {}
            )
            return json.dumps(document).encode(), "application/json"
        response = ExportTraceServiceResponse()
        if partial:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=self.rejected_spans, error_message=self.error_message)
            )
        return response.SerializeToString(), "application/x-protobuf"


@dataclass(slots=True)
class ReceivedRequest:
    """One request as received: headers and the decoded OTLP message."""

    path: str
    headers: dict[str, str]
    request: ExportTraceServiceRequest
    status: int | None

    def spans(self) -> list[Any]:
        """Every span of the request."""
        return [span for rs in self.request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def attribute_value(value: AnyValue) -> object:
    """A protobuf AnyValue as a plain Python value."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [attribute_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def span_attributes(span: Any) -> dict[str, object]:
    """A decoded span's attributes as a dict."""
    return {item.key: attribute_value(item.value) for item in span.attributes}


@dataclass(slots=True)
class OtlpReceiver:
    """The running receiver: its URL, the script of answers, and what it received."""

    host: str
    script: list[Answer] = field(default_factory=list)
    default: Answer = field(default_factory=Answer)
    received: list[ReceivedRequest] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> Answer:
        """The next scripted answer, else the default."""
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def accepted_spans(self) -> list[Any]:
        """Spans of requests answered 2xx."""
        return [
            span
            for item in self.received
            if item.status is not None and 200 <= item.status < 300
            for span in item.spans()
        ]

    def stored_span_ids(self) -> list[str]:
        """Span ids (hex) of every stored copy, duplicates included, as Langfuse keeps them for OTel projects."""
        return [span.span_id.hex() for span in self.accepted_spans()]

    def basic_auth(self) -> tuple[str, str] | None:
        """The (public, secret) key pair of the last request's Basic auth header."""
        if not self.received:
            return None
        header = self.received[-1].headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Basic":
            return None
        public, _, secret = base64.b64decode(token).decode().partition(":")
        return public, secret


def _handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            answer = receiver.next_answer()
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            headers = {key.lower(): value for key, value in self.headers.items()}
            status = None if answer.hang_up else answer.status
            with receiver.lock:
                receiver.received.append(ReceivedRequest(self.path, headers, request, status))
            if answer.delay:
                time.sleep(answer.delay)
            if answer.hang_up:
                self.close_connection = True
                return
            payload, content_type = answer.body()
            self.send_response(answer.status)
            if answer.retry_after is not None:
                self.send_header("Retry-After", answer.retry_after)
            self.send_header("Content-Type", content_type)
            if answer.truncate:
                # A 200 that promises more than it sends: the client reads a cut response.
                self.send_header("Content-Length", str(len(payload) + 64))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)
                    self.wfile.flush()
                self.close_connection = True
                return
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (slow answer)
                self.wfile.write(payload)

        def do_GET(self) -> None:
            prefix = "/api/public/observations/"
            observation_id = self.path.removeprefix(prefix) if self.path.startswith(prefix) else None
            with receiver.lock:
                receiver.lookups.append(self.path)
                found = observation_id is not None and observation_id in receiver.stored_span_ids()
            if found:
                status, body = 200, json.dumps({"id": observation_id, "type": "GENERATION"}).encode()
            else:
                status, body = 404, b'{"message":"Observation not found within authorized project"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            """Quiet: tests read ``received`` instead."""

    return Handler


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """Run a receiver on a free 127.0.0.1 port for the duration of the block."""
    receiver = OtlpReceiver(host="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.host = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
