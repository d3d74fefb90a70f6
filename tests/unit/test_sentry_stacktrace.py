"""Stack-trace text -> Sentry exception values: Python, Java/Keycloak, Node, Lambda error JSON, fallbacks."""

from __future__ import annotations

import random
from typing import Any

import pytest

from logpipe.sentry.stacktrace import (
    KEEP_OLDEST_FRAMES,
    MAX_CONTEXT_LINE_CHARS,
    MAX_EXCEPTIONS,
    MAX_FRAMES,
    MAX_VALUE_CHARS,
    frames_of,
    lambda_error_trace,
    parse_exceptions,
    parse_trace,
)

pytestmark = pytest.mark.unit


def _frames(value: dict[str, Any]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = value["stacktrace"]["frames"]
    return frames


# --------------------------------------------------------------------------------------------
# Python
# --------------------------------------------------------------------------------------------

PY_SIMPLE = """Traceback (most recent call last):
  File "/app/pacs/api/views.py", line 120, in get_study
    return repo.get(uid)
  File "/usr/local/lib/python3.12/site-packages/psycopg/cursor.py", line 732, in execute
    raise ex.with_traceback(None)
  File "/usr/local/lib/python3.12/json/decoder.py", line 337, in decode
    obj, end = self.raw_decode(s, idx=_w(s, 0).end())
  File "/var/runtime/bootstrap.py", line 60, in handle
    response = request_handler(event, lambda_context)
ValueError: study not found"""


def test_python_frames_are_oldest_first_with_lines_modules_and_in_app() -> None:
    parsed = parse_trace(PY_SIMPLE)
    assert parsed.platform == "python"
    [value] = parsed.exceptions
    assert (value["type"], value["value"]) == ("ValueError", "study not found")
    assert "module" not in value  # a builtin: no package
    frames = _frames(value)
    assert [frame["function"] for frame in frames] == ["get_study", "execute", "decode", "handle"]
    assert [frame["lineno"] for frame in frames] == [120, 732, 337, 60]
    assert [frame["in_app"] for frame in frames] == [True, False, False, False]
    assert frames[0]["filename"] == "pacs/api/views.py"
    assert frames[0]["abs_path"] == "/app/pacs/api/views.py"
    assert frames[0]["module"] == "pacs.api.views"
    assert frames[0]["context_line"] == "return repo.get(uid)"
    assert frames[1]["filename"] == "psycopg/cursor.py"
    assert frames[1]["module"] == "psycopg.cursor"
    assert frames[2]["module"] == "json.decoder"
    assert frames[3]["filename"] == "bootstrap.py"
    assert value["mechanism"] == {"type": "logpipe", "handled": False}


def test_python_caret_lines_are_skipped_without_breaking_frames() -> None:
    trace = """Traceback (most recent call last):
  File "/var/task/app.py", line 20, in lambda_handler
    uid = ds["SeriesInstanceUID"]
          ~~^^^^^^^^^^^^^^^^^^^^^
  File "/var/task/pacs/dicom.py", line 9, in __getitem__
    return self._tags[key]
           ~~~~~~~~~~^^^^^
KeyError: 'SeriesInstanceUID'"""
    [value] = parse_exceptions(trace)
    frames = _frames(value)
    assert [frame["context_line"] for frame in frames] == ['uid = ds["SeriesInstanceUID"]', "return self._tags[key]"]
    assert [frame["module"] for frame in frames] == ["app", "pacs.dicom"]
    assert value["value"] == "'SeriesInstanceUID'"


def test_python_direct_cause_chain_is_root_cause_first_with_links() -> None:
    trace = """Traceback (most recent call last):
  File "/app/pacs/repo/studies.py", line 41, in get
    row = cur.fetchone()
psycopg.OperationalError: consuming input failed

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/app/pacs/api/views.py", line 120, in get_study
    return repo.get(uid)
  File "/app/pacs/repo/studies.py", line 43, in get
    raise StudyUnavailable(uid) from exc
pacs.repo.errors.StudyUnavailable: study temporarily unavailable"""
    cause, effect = parse_exceptions(trace)
    assert (cause["module"], cause["type"]) == ("psycopg", "OperationalError")
    assert (effect["module"], effect["type"]) == ("pacs.repo.errors", "StudyUnavailable")
    assert cause["mechanism"] == {
        "type": "logpipe",
        "handled": False,
        "exception_id": 1,
        "parent_id": 0,
        "source": "__cause__",
    }
    assert effect["mechanism"] == {"type": "logpipe", "handled": False, "exception_id": 0}
    assert [frame["lineno"] for frame in _frames(effect)] == [120, 43]


def test_python_chain_without_blank_lines_and_with_context_marker() -> None:
    trace = "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "/app/a.py", line 1, in a',
            "KeyError: 'x'",
            "During handling of the above exception, another exception occurred:",
            "Traceback (most recent call last):",
            '  File "/app/b.py", line 2, in b',
            "TypeError: bad",
            "The above exception was the direct cause of the following exception:",
            "Traceback (most recent call last):",
            '  File "/app/c.py", line 3, in c',
            "RuntimeError: wrapped",
        ]
    )
    values = parse_exceptions(trace)
    assert [value["type"] for value in values] == ["KeyError", "TypeError", "RuntimeError"]
    assert [value["mechanism"]["exception_id"] for value in values] == [2, 1, 0]
    assert [value["mechanism"].get("parent_id") for value in values] == [1, 0, None]
    assert [value["mechanism"].get("source") for value in values] == ["__context__", "__cause__", None]


def test_lambda_error_line_takes_the_type_from_the_header_or_the_message() -> None:
    header_first = 'KeyError: \'SeriesInstanceUID\'\n  File "/var/task/app.py", line 20, in lambda_handler\n    uid = ds["SeriesInstanceUID"]'
    [value] = parse_exceptions(header_first)
    assert (value["type"], value["value"]) == ("KeyError", "'SeriesInstanceUID'")
    assert _frames(value)[0]["function"] == "lambda_handler"
    no_exception_line = (
        'Traceback (most recent call last):\n  File "/var/task/app.py", line 20, in lambda_handler\n    uid = ds["x"]'
    )
    [value] = parse_exceptions(no_exception_line, message="KeyError: 'x'")
    assert (value["type"], value["value"]) == ("KeyError", "'x'")
    [value] = parse_exceptions(no_exception_line)
    assert value["type"] == "Error"
    assert len(_frames(value)) == 1


def test_python_multiline_value_and_syntax_error_frame() -> None:
    trace = """Traceback (most recent call last):
  File "/app/pacs/dicom/store.py", line 88, in store
    conn.execute(sql)
psycopg.errors.UniqueViolation: duplicate key value violates unique constraint "instances_pkey"
DETAIL:  Key (sop_uid)=(1.2.3) already exists."""
    [value] = parse_exceptions(trace)
    assert value["type"] == "UniqueViolation"
    assert value["module"] == "psycopg.errors"
    assert value["value"].splitlines() == [
        'duplicate key value violates unique constraint "instances_pkey"',
        "DETAIL:  Key (sop_uid)=(1.2.3) already exists.",
    ]
    syntax = "  File \"/app/pacs/settings.py\", line 3\n    x = (\n        ^\nSyntaxError: '(' was never closed"
    [value] = parse_exceptions(syntax)
    assert value["type"] == "SyntaxError"
    [frame] = _frames(value)
    assert "function" not in frame
    assert (frame["lineno"], frame["context_line"]) == (3, "x = (")


# --------------------------------------------------------------------------------------------
# Java / Keycloak
# --------------------------------------------------------------------------------------------

JAVA = """Exception in thread "executor-thread-1" java.lang.IllegalStateException: login failed
\tat org.keycloak.services.resources.LoginActionsService.authenticate(LoginActionsService.java:312)
\tat java.base/java.lang.reflect.Method.invoke(Method.java:568)
\tat jdk.internal.reflect.GeneratedMethodAccessor41.invoke(Unknown Source)
\tat io.netty.channel.nio.NioEventLoop.run(NioEventLoop.java:569) ~[netty-transport-4.1.jar:4.1.100]
\tSuppressed: java.io.IOException: close failed
\t\tat org.keycloak.connections.jpa.JpaConnection.close(JpaConnection.java:88)
\t\t... 3 more
Caused by: org.postgresql.util.PSQLException: Connection to keycloak-db:5432 refused.
\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:346)
\tat java.base/sun.nio.ch.Net.connect0(Native Method)
\t... 42 more
Caused by: java.net.ConnectException: Connection refused
\tat java.base/sun.nio.ch.Net.pollConnect(Native Method)
\t... 12 common frames omitted"""


def test_java_chain_types_order_and_links() -> None:
    parsed = parse_trace(JAVA)
    assert parsed.platform == "java"
    values = parsed.exceptions
    assert [(value["module"], value["type"]) for value in values] == [
        ("java.net", "ConnectException"),
        ("org.postgresql.util", "PSQLException"),
        ("java.io", "IOException"),
        ("java.lang", "IllegalStateException"),
    ]
    mechanisms = [value["mechanism"] for value in values]
    assert [m["exception_id"] for m in mechanisms] == [3, 2, 1, 0]
    assert [m.get("parent_id") for m in mechanisms] == [2, 0, 0, None]
    assert [m.get("source") for m in mechanisms] == ["cause", "cause", "suppressed[0]", None]
    assert mechanisms[3]["is_exception_group"] is True
    assert mechanisms[1]["data"] == {"common_frames_omitted": 42}
    assert mechanisms[0]["data"] == {"common_frames_omitted": 12}
    assert values[3]["value"] == "login failed"


def test_java_frames_are_reversed_and_runtime_frames_not_in_app() -> None:
    outer = parse_exceptions(JAVA)[-1]
    frames = _frames(outer)
    assert [frame["function"] for frame in frames] == ["run", "invoke", "invoke", "authenticate"]
    assert [frame["in_app"] for frame in frames] == [True, False, False, True]
    assert frames[0] == {
        "filename": "NioEventLoop.java",
        "function": "run",
        "module": "io.netty.channel.nio.NioEventLoop",
        "lineno": 569,
        "in_app": True,
    }
    # "java.base/" is the JDK module, not part of the class name; Unknown Source has no line.
    assert frames[2]["module"] == "java.lang.reflect.Method"
    assert frames[1]["module"] == "jdk.internal.reflect.GeneratedMethodAccessor41"
    assert "lineno" not in frames[1]
    assert "filename" not in frames[1]
    native = _frames(parse_exceptions(JAVA)[1])[0]
    assert (native["module"], native["function"], native["in_app"]) == ("sun.nio.ch.Net", "connect0", False)


def test_java_multiline_message_and_headerless_trace() -> None:
    trace = "org.hibernate.exception.SQLGrammarException: could not execute\n  column x does not exist\n\tat org.hibernate.Foo.bar(Foo.java:1)"
    [value] = parse_exceptions(trace)
    assert value["value"] == "could not execute\ncolumn x does not exist"
    frames_only = "\tat org.keycloak.Foo.bar(Foo.java:10)\n\tat org.keycloak.Foo.main(Foo.java:3)"
    [value] = parse_exceptions(frames_only, message="java.lang.RuntimeException: boom")
    assert (value["module"], value["type"], value["value"]) == ("java.lang", "RuntimeException", "boom")
    assert [frame["lineno"] for frame in _frames(value)] == [3, 10]


def test_quarkus_json_exception() -> None:
    document = (
        '{"refId":1,"exceptionType":"java.lang.RuntimeException","message":"boom",'
        '"frames":[{"class":"org.acme.Foo","method":"bar","line":12},{"class":"org.acme.Main","method":"main","line":3}],'
        '"causedBy":{"exception":{"refId":2,"exceptionType":"java.io.IOException","message":"disk full","frames":[]}}}'
    )
    parsed = parse_trace(document)
    assert parsed.platform == "java"
    cause, outer = parsed.exceptions
    assert (cause["type"], cause["value"], cause["mechanism"]["source"]) == ("IOException", "disk full", "cause")
    assert [frame["function"] for frame in _frames(outer)] == ["main", "bar"]
    assert "stacktrace" not in cause  # Sentry rejects an empty frame list


# --------------------------------------------------------------------------------------------
# Node
# --------------------------------------------------------------------------------------------

NODE = """TypeError: Cannot read properties of undefined (reading 'StudyInstanceUID')
    at buildThumbnailKey (/usr/src/app/src/thumbnails/keys.js:18:35)
    at new ThumbnailJob (/usr/src/app/src/thumbnails/job.js:5:11)
    at async Promise.all (index 0)
    at async renderStudy (file:///usr/src/app/src/routes/studies.mjs:41:5)
    at /usr/src/app/node_modules/express/lib/router/layer.js:95:5
    at process.processTicksAndRejections (node:internal/process/task_queues:95:5) {
  [cause]: Error [ERR_SOCKET_CLOSED]: Socket is closed
      at Socket._writeGeneric (node:net:952:8)
      at Object.fetchSeries (/usr/src/app/src/dicomweb.js:77:9) {
    code: 'ERR_SOCKET_CLOSED'
  }
}"""


def test_node_frames_columns_in_app_and_order() -> None:
    parsed = parse_trace(NODE)
    assert parsed.platform == "node"
    _cause, outer = parsed.exceptions
    frames = _frames(outer)
    assert [frame["function"] for frame in frames] == [
        "process.processTicksAndRejections",
        "?",
        "renderStudy",
        "Promise.all",
        "new ThumbnailJob",
        "buildThumbnailKey",
    ]
    assert [frame["in_app"] for frame in frames] == [False, False, True, False, True, True]
    assert frames[-1] == {
        "filename": "src/thumbnails/keys.js",
        "abs_path": "/usr/src/app/src/thumbnails/keys.js",
        "function": "buildThumbnailKey",
        "lineno": 18,
        "colno": 35,
        "in_app": True,
    }
    assert frames[2]["abs_path"] == "/usr/src/app/src/routes/studies.mjs"
    assert frames[1]["filename"] == "express/lib/router/layer.js"
    assert (outer["type"], outer["value"]) == (
        "TypeError",
        "Cannot read properties of undefined (reading 'StudyInstanceUID')",
    )


def test_node_cause_and_error_code() -> None:
    cause, outer = parse_exceptions(NODE)
    assert (cause["type"], cause["value"]) == ("Error", "Socket is closed")
    assert cause["mechanism"]["source"] == "cause"
    assert cause["mechanism"]["parent_id"] == 0
    assert cause["mechanism"]["data"] == {"code": "ERR_SOCKET_CLOSED"}
    assert [frame["function"] for frame in _frames(cause)] == ["Object.fetchSeries", "Socket._writeGeneric"]
    assert outer["mechanism"]["exception_id"] == 0


# --------------------------------------------------------------------------------------------
# Lambda runtime error JSON
# --------------------------------------------------------------------------------------------


def test_lambda_error_trace_python_node_java() -> None:
    python = lambda_error_trace(
        "KeyError",
        "'SeriesInstanceUID'",
        ['  File "/var/task/app.py", line 20, in lambda_handler\n    uid = ds["x"]\n'],
    )
    [value] = parse_exceptions(python)
    assert (value["type"], value["value"], _frames(value)[0]["lineno"]) == ("KeyError", "'SeriesInstanceUID'", 20)
    node = lambda_error_trace(
        "TypeError",
        "x is undefined",
        ["TypeError: x is undefined", "    at Runtime.handler (file:///var/task/index.mjs:12:31)"],
    )
    parsed = parse_trace(node)
    assert parsed.platform == "node"
    assert _frames(parsed.exceptions[0])[0]["filename"] == "index.mjs"
    java = lambda_error_trace(
        "java.lang.IllegalArgumentException",
        "bad study",
        [
            "com.pacs.Handler.handleRequest(Handler.java:22)",
            "java.base/jdk.internal.reflect.Method.invoke(Method.java:1)",
        ],
    )
    [value] = parse_exceptions(java)
    assert value["type"] == "IllegalArgumentException"
    assert [frame["function"] for frame in _frames(value)] == ["invoke", "handleRequest"]
    assert lambda_error_trace("Runtime.ExitError", {"code": 1}, None) == 'Runtime.ExitError: {"code":1}'


# --------------------------------------------------------------------------------------------
# Fallbacks, limits, robustness
# --------------------------------------------------------------------------------------------


def test_unrecognised_text_becomes_one_frameless_exception() -> None:
    assert parse_exceptions("") == []
    [value] = parse_exceptions("panic: runtime error: index out of range [5] with length 3\n\ngoroutine 1 [running]:")
    assert (value["type"], value["value"]) == ("panic", "runtime error: index out of range [5] with length 3")
    assert "stacktrace" not in value
    [value] = parse_exceptions("something went badly", message="Upstream PACS node unreachable")
    assert (value["type"], value["value"]) == ("Error", "Upstream PACS node unreachable")
    [value] = parse_exceptions("ConnectTimeout")
    assert (value["type"], value["value"]) == ("ConnectTimeout", "")
    assert parse_trace("something went badly").platform == "other"


def test_frames_are_capped_keeping_both_ends() -> None:
    count = MAX_FRAMES + 100
    lines = ["Traceback (most recent call last):"]
    lines += [f'  File "/app/deep.py", line {n}, in f{n}\n    recurse()' for n in range(count)]
    lines.append("RecursionError: maximum recursion depth exceeded")
    [value] = parse_exceptions("\n".join(lines))
    frames = _frames(value)
    assert len(frames) == MAX_FRAMES
    assert [frame["lineno"] for frame in frames[:KEEP_OLDEST_FRAMES]] == list(range(KEEP_OLDEST_FRAMES))
    assert frames[-1]["lineno"] == count - 1
    assert frames[KEEP_OLDEST_FRAMES]["lineno"] == count - (MAX_FRAMES - KEEP_OLDEST_FRAMES)
    assert value["mechanism"]["data"] == {"frames_omitted": 100}


def test_exception_chain_is_capped_and_links_stay_valid() -> None:
    parts = [
        f'Traceback (most recent call last):\n  File "/app/x.py", line {index}, in f\nE{index}Error: n{index}'
        for index in range(MAX_EXCEPTIONS + 5)
    ]
    trace = "\n\nThe above exception was the direct cause of the following exception:\n\n".join(parts)
    values = parse_exceptions(trace)
    assert len(values) == MAX_EXCEPTIONS
    assert values[-1]["type"] == f"E{MAX_EXCEPTIONS + 4}Error"
    assert values[0]["type"] == "E0Error"  # the root cause is kept
    assert values[-1]["mechanism"]["data"] == {"exceptions_omitted": 5}
    ids = {value["mechanism"]["exception_id"] for value in values}
    assert ids == set(range(MAX_EXCEPTIONS))
    assert all(value["mechanism"]["parent_id"] in ids for value in values[:-1])


def test_long_values_and_source_lines_are_truncated() -> None:
    trace = f'Traceback (most recent call last):\n  File "/app/x.py", line 1, in f\n    {"y" * 1000}\nValueError: {"v" * 20000}'
    [value] = parse_exceptions(trace)
    assert len(value["value"]) == MAX_VALUE_CHARS
    assert value["value"].endswith("...")
    assert len(_frames(value)[0]["context_line"]) == MAX_CONTEXT_LINE_CHARS


@pytest.mark.parametrize("seed", range(5))
def test_garbage_never_raises(seed: int) -> None:
    rng = random.Random(seed)
    pieces = [
        "Traceback (most recent call last):",
        '  File "',
        '  File "/app/x.py", line 9, in',
        "\tat ",
        "\tat a.b(",
        "Caused by: ",
        "\t... x more",
        "    at (",
        "    at f (x:1:2)",
        "  [cause]: ",
        "{",
        '{"exceptionType": 3, "causedBy": [1]}',
        "The above exception was the direct cause of the following exception:",
        "~~~^^^",
        "\x00\ud800",
        ": : :",
        "",
    ]
    for _ in range(200):
        text = "\n".join(
            rng.choice(pieces) + "".join(rng.choice(":()[]{}\"' \t.x1") for _ in range(rng.randint(0, 8)))
            for _ in range(rng.randint(1, 12))
        )
        values = parse_exceptions(text)
        assert isinstance(values, list)
        for value in values:
            assert isinstance(value["type"], str)
            assert value["mechanism"]["type"] == "logpipe"
            assert all(isinstance(frame["in_app"], bool) for frame in value.get("stacktrace", {}).get("frames", ()))


def test_frames_of_collects_all_frames_in_order() -> None:
    values = parse_exceptions(JAVA)
    assert len(frames_of(values)) == sum(len(value.get("stacktrace", {}).get("frames", ())) for value in values) == 8
