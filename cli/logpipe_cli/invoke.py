"""Run a function's handler in this process, the way `sam local invoke` would, without Docker.

The function gets the environment the template gives it (process environment wins), its log
output (including EMF) goes to stderr, and the handler's return value is the result.
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TextIO

from logpipe_cli.template_env import FunctionSpec


class SwitchableStream(io.TextIOBase):
    """A stdout stand-in whose target can change; loggers that cached ``sys.stdout`` follow it."""

    def __init__(self, target: TextIO) -> None:
        """Write to ``target`` until switched."""
        self.target: TextIO = target

    def write(self, text: str) -> int:
        """Forward to the current target."""
        return self.target.write(text)

    def flush(self) -> None:
        """Flush the current target."""
        self.target.flush()

    def writable(self) -> bool:
        """Always writable."""
        return True


class Tee(io.StringIO):
    """Keeps a copy of everything written and forwards it to another stream."""

    def __init__(self, forward: TextIO | None) -> None:
        """Forward to ``forward`` (or nowhere) while capturing."""
        super().__init__()
        self.forward = forward

    def write(self, text: str) -> int:
        """Capture and forward."""
        if self.forward is not None:
            self.forward.write(text)
        return super().write(text)


@dataclass(slots=True)
class FakeLambdaContext:
    """The attributes of the Lambda context object handlers commonly read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        """Start the invocation clock."""
        self._deadline = time.monotonic() + self.timeout_seconds
        self.invoked_function_arn = f"arn:aws:lambda:ap-northeast-2:000000000000:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the configured timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Temporarily set environment variables."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_handler(spec: FunctionSpec, *, cold: bool = False) -> Callable[[dict[str, Any], Any], Any]:
    """Import the function's module from its code directory and return the handler callable.

    The module is cached like a warm Lambda container; ``cold`` loads it afresh (a new container).
    """
    module_name, _, attribute = spec.handler.rpartition(".")
    path = spec.code_dir / f"{module_name.replace('.', '/')}.py"
    unique_name = f"logpipe_function_{spec.name}_{module_name}"
    module: ModuleType | None = None if cold else sys.modules.get(unique_name)
    if module is None:
        module_spec = importlib.util.spec_from_file_location(unique_name, path)
        if module_spec is None or module_spec.loader is None:
            msg = f"cannot load {path}"
            raise ImportError(msg)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[unique_name] = module
        module_spec.loader.exec_module(module)
    handler = getattr(module, attribute)
    if not callable(handler):
        msg = f"{spec.handler} is not callable"
        raise TypeError(msg)
    return handler  # type: ignore[no-any-return]


def function_environment(spec: FunctionSpec, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The template's environment for the function, overridden by the process environment."""
    environment = dict(spec.environment)
    for key in list(environment):
        if key in os.environ:
            environment[key] = os.environ[key]
    environment.setdefault("AWS_LAMBDA_FUNCTION_NAME", spec.name)
    environment.setdefault("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(spec.memory_mb))
    if overrides:
        environment.update(overrides)
    return environment


# One switch per process: loggers created during an invocation cache it as their stream, so later
# invocations redirect them by retargeting the switch rather than replacing sys.stdout again.
_STDOUT_SWITCH = SwitchableStream(sys.stdout)


@dataclass(slots=True)
class Invocation:
    """One in-process invocation's result and everything it printed."""

    result: Any
    output: str
    seconds: float


def invoke(
    spec: FunctionSpec,
    event: dict[str, Any],
    *,
    echo: TextIO | None,
    environment: Mapping[str, str] | None = None,
    cold: bool = False,
) -> Invocation:
    """Invoke the handler once; what it prints is captured (and echoed to ``echo``, e.g. stderr)."""
    switch = _STDOUT_SWITCH
    capture = Tee(echo)
    previous_target, previous_stdout = switch.target, sys.stdout
    switch.target = capture
    sys.stdout = switch
    env = dict(environment) if environment is not None else function_environment(spec)
    started = time.perf_counter()
    try:
        with patched_environ(env):
            handler = load_handler(spec, cold=cold)
            context = FakeLambdaContext(spec.name, spec.memory_mb, spec.timeout_seconds)
            result = handler(event, context)
    finally:
        switch.target = previous_target
        sys.stdout = previous_stdout
    return Invocation(result=result, output=capture.getvalue(), seconds=time.perf_counter() - started)
