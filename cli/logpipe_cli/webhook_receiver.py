"""A loopback webhook receiver standing in for Slack and Microsoft Teams (Workflows).

A real HTTP server on 127.0.0.1. A POST to ``/slack/...`` is checked as a Slack incoming-webhook
message, one to ``/teams/...`` as a Teams Workflows message (``chat_payloads``); an invalid payload
gets HTTP 400, as from the real services (Slack answers ``invalid_blocks``). Valid ones are answered
by a per-channel script of answers (status, delay, or hanging up without an answer) or the default:
200 ``ok`` for Slack, 202 for Teams (what a Workflows trigger answers).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from logpipe_cli.chat_payloads import payload_links, slack_problems, slack_text, teams_problems, teams_text

CHANNELS = ("slack", "teams")
_DEFAULT_STATUS = {"slack": 200, "teams": 202}


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """How to answer one valid request."""

    status: int
    body: bytes = b""
    delay: float = 0.0
    hang_up: bool = False  # close the connection without any response


@dataclass(frozen=True, slots=True)
class ReceivedPost:
    """One request as received."""

    channel: str
    path: str
    payload: Any
    problems: tuple[str, ...]
    status: int | None

    @property
    def accepted(self) -> bool:
        """Whether it was answered 2xx."""
        return self.status is not None and 200 <= self.status < 300  # HTTP success range


@dataclass(slots=True)
class WebhookReceiver:
    """The running receiver: its base URL, per-channel scripts, and everything it received."""

    base_url: str
    scripts: dict[str, list[WebhookAnswer]] = field(default_factory=lambda: {channel: [] for channel in CHANNELS})
    received: list[ReceivedPost] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, channel: str, path: str = "T000/B000/local") -> str:
        """The webhook URL of ``channel`` (``path`` stands for the secret part of a real URL)."""
        return f"{self.base_url}/{channel}/{path}"

    def script(self, channel: str, *answers: WebhookAnswer) -> None:
        """Answer the next valid requests of ``channel`` with ``answers``, in order."""
        with self.lock:
            self.scripts[channel].extend(answers)

    def next_answer(self, channel: str) -> WebhookAnswer:
        """The next scripted answer of ``channel``, else its default."""
        with self.lock:
            script = self.scripts[channel]
            if script:
                return script.pop(0)
        status = _DEFAULT_STATUS[channel]
        return WebhookAnswer(status, b"ok" if channel == "slack" else b"")

    def posts(self, channel: str, *, accepted_only: bool = False) -> list[ReceivedPost]:
        """What ``channel`` received (only what it accepted, if asked)."""
        with self.lock:
            return [p for p in self.received if p.channel == channel and (p.accepted or not accepted_only)]


def post_lines(post: ReceivedPost, url_width: int = 110) -> list[str]:
    """What the channel would show for ``post``, its link targets, and any problem found in it."""
    title = "Slack (Block Kit)" if post.channel == "slack" else "Microsoft Teams (Adaptive Card)"
    lines = [f"--- {title}, HTTP {post.status} ---"]
    if post.payload is None:
        return [*lines, "  (not JSON)"]
    if not post.problems:
        rendered = slack_text(post.payload) if post.channel == "slack" else teams_text(post.payload)
        lines.extend(f"  | {line}" for line in rendered.splitlines())
        for label, url in payload_links(post.payload):
            lines.append(f"  {label} -> {url if len(url) <= url_width else url[: url_width - 3] + '...'}")
    lines.extend(f"  problem: {problem}" for problem in post.problems)
    return lines


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            channel = self.path.strip("/").split("/", 1)[0]
            if channel not in CHANNELS:
                self._answer(WebhookAnswer(404, b"no_service"))
                return
            try:
                payload: Any = json.loads(raw)
            except json.JSONDecodeError:
                payload = None
            problems = tuple(slack_problems(payload) if channel == "slack" else teams_problems(payload))
            if problems:
                answer = WebhookAnswer(400, b"invalid_blocks" if channel == "slack" else b'{"error":"BadPayload"}')
            else:
                answer = receiver.next_answer(channel)
            with receiver.lock:
                receiver.received.append(
                    ReceivedPost(channel, self.path, payload, problems, None if answer.hang_up else answer.status)
                )
            if answer.delay:
                time.sleep(answer.delay)
            if answer.hang_up:
                self.close_connection = True
                return
            self._answer(answer)

        def _answer(self, answer: WebhookAnswer) -> None:
            self.send_response(answer.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (slow answer)
                self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            """Quiet: callers read ``received`` instead."""

    return Handler


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """Run a receiver on a free 127.0.0.1 port for the duration of the block."""
    receiver = WebhookReceiver(base_url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
