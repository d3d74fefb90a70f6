"""A parking queue that accepts connections and never answers: the handler still ends before Lambda's deadline.

The endpoint is a real TCP listener on 127.0.0.1 that accepts and then stays silent, the way a
blackholed route or a hung proxy looks to botocore. The handler must fail (parking is impossible, the
one case it raises) at least a second before the deadline its Lambda context reports.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from logpipe.deadline import RETURN_MARGIN_SECONDS
from logpipe.parking import ParkingError

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 6.0


class SilentEndpoint:
    """Accepts TCP connections and never sends a byte (bounded: closes everything when stopped)."""

    def __init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(connection)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for connection in self.connections:
            connection.close()
        self.server.close()


@pytest.fixture
def silent_endpoint() -> Iterator[SilentEndpoint]:
    endpoint = SilentEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.stop()


class LambdaContext:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.deadline - time.monotonic()) * 1000), 0)


def test_a_blackholed_parking_queue_fails_the_invocation_before_the_deadline(
    silent_endpoint: SilentEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    from logpipe.runtime import build_ingest_pipeline
    from logpipe.settings import Settings

    endpoint = f"http://127.0.0.1:{silent_endpoint.port}"
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-2",
        "LOGPIPE_PARKING_QUEUE_URL": f"{endpoint}/123456789012/logpipe-parking",
        "LOGPIPE_DEAD_LETTER_QUEUE_URL": f"{endpoint}/123456789012/logpipe-parking-dlq",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("LOGPIPE_SENTRY_DSN", "LOGPIPE_SENTRY_SECRET", "LOGPIPE_LANGFUSE_SECRET", "LOGPIPE_LANGFUSE_HOST"):
        monkeypatch.delenv(key, raising=False)
    pipeline = build_ingest_pipeline(Settings.from_env())
    context = LambdaContext(DEADLINE_SECONDS)
    outcome: dict[str, Any] = {}

    def invoke() -> None:
        try:
            outcome["result"] = pipeline.run(
                {"awslogs": {"data": "%%% not base64 %%%"}}, context.get_remaining_time_in_millis
            )
        except Exception as error:
            outcome["error"] = error
        outcome["seconds_left"] = context.deadline - time.monotonic()

    # A thread, so that a regression (botocore's 60 s timeouts and retries) fails this test instead of hanging it.
    worker = threading.Thread(target=invoke, daemon=True)
    worker.start()
    worker.join(timeout=DEADLINE_SECONDS + 2)
    assert not worker.is_alive(), "the invocation ran past Lambda's deadline"
    assert isinstance(outcome.get("error"), ParkingError)
    assert outcome["seconds_left"] >= RETURN_MARGIN_SECONDS
    assert silent_endpoint.connections, "botocore never reached the silent endpoint"
