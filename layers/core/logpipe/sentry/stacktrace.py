"""Parse the stack-trace text of a log record into Sentry's ``exception.values`` (plain dicts).

Understood: Python tracebacks (chained ``raise ... from`` / "During handling ...", 3.11+ caret
lines), Java/Keycloak traces (``at ...``, ``Caused by:``, ``Suppressed:``, ``... N more``), Node
traces (``at fn (file:line:col)``, ``[cause]:``), Quarkus JSON exceptions and the Lambda runtime's
error JSON (``errorType``/``errorMessage``/``stackTrace``, see ``lambda_error_trace``). Anything
else becomes one exception without frames. A trace is untrusted input: parsing never raises.

Shape, as Sentry's exception and stack-trace interfaces define it:

* ``exception.values`` is ordered oldest (root cause) first; the last value is the exception that
  was finally raised and titles the issue.
* A chain carries ``mechanism.exception_id`` (0 for the last value, then counting up towards the
  first), ``parent_id`` (the id of the exception it hangs off) and ``source`` (``__cause__``,
  ``__context__``, ``cause``, ``suppressed[i]``, ...), as Relay's mechanism schema describes.
* ``stacktrace.frames`` are ordered oldest call first; the last frame raised. Sentry rejects an
  empty frame list, so ``stacktrace`` is left out when no frame was found.

Size caps (Sentry drops events over 1 MB decompressed; Relay trims long fields anyway): at most
``MAX_EXCEPTIONS`` exceptions per chain (both ends kept), ``MAX_FRAMES`` frames per exception (the
``KEEP_OLDEST_FRAMES`` oldest and the rest newest, the split Relay itself uses), values cut at
``MAX_VALUE_CHARS`` and source lines at ``MAX_CONTEXT_LINE_CHARS``. What was cut is counted in
``mechanism.data``. Worst case is 10 x 250 frames of a few hundred bytes: well under 1 MB.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

MAX_EXCEPTIONS = 10
MAX_FRAMES = 250
KEEP_OLDEST_FRAMES = 50
MAX_VALUE_CHARS = 8192
MAX_CONTEXT_LINE_CHARS = 256
MAX_FUNCTION_CHARS = 256
MAX_PATH_CHARS = 512
MECHANISM_TYPE = "logpipe"
FALLBACK_TYPE = "Error"
ELLIPSIS = "..."

_CAUSE_MARKER = "The above exception was the direct cause of the following exception:"
_CONTEXT_MARKER = "During handling of the above exception, another exception occurred:"
_PY_HEADER = "Traceback (most recent call last)"
_PY_FILE = re.compile(r'\s*File "(?P<path>[^"]*)", line (?P<lineno>\d+)(?:, in (?P<func>.*))?\Z')
# [ \t]*, not \s*: \s would run over newlines from every line start (quadratic on blank lines).
_PY_FILE_SEARCH = re.compile(r'^[ \t]*File "[^"]*", line \d+', re.MULTILINE)
# 3.11+ position markers under a source line: only '~' and '^' (and spaces).
_CARETS = frozenset("~^ ")
_EXC_LINE = re.compile(r"(?P<type>[A-Za-z_$][\w$.]*)(?::[ \t]?(?P<value>.*))?\Z", re.DOTALL)
_TYPE_LIKE = re.compile(r"[A-Za-z_$][\w$.]*\Z")

_JAVA_FRAME = re.compile(r"\s*at (?P<qualified>[^\s()]+)\((?P<source>[^()]*)\)(?:\s.*)?\Z")
_JAVA_FRAME_SEARCH = re.compile(r"^[ \t]*at [^\s()]+\([^()]*\)", re.MULTILINE)
_JAVA_MORE = re.compile(r"\s*\.\.\. (?P<count>\d+) (?:more|common frames omitted)\s*\Z")
_JAVA_HEADER_PREFIXES = (("Caused by: ", "cause"), ("Suppressed: ", "suppressed"))
_JAVA_THREAD_PREFIX = re.compile(r'Exception in thread "[^"]*" ')
_JAVA_RUNTIME_PACKAGES = ("java.", "javax.", "jdk.", "sun.", "com.sun.", "kotlin.", "scala.")

_NODE_FRAME = re.compile(
    # The location is the last parenthesised part and holds no parentheses: a greedy function name
    # backs off to it once per " (", and each try stops at the next parenthesis (linear, where two
    # lazy ".+?" retried every split of the line).
    r"\s*at (?:async )?(?:(?P<func>.+) \((?P<loc>[^()]+):(?P<line>\d+):(?P<col>\d+)\)"
    r"|(?P<aloc>[^\s()]+?):(?P<aline>\d+):(?P<acol>\d+)"
    r"|(?P<nfunc>.+?) \((?P<native>native|<anonymous>|index \d+)\))(?: \{)?\s*\Z"
)
_NODE_FRAME_SEARCH = re.compile(
    r"^[ \t]*at (?:async )?(?:[^\n]+ \([^()\n]+:\d+:\d+\)|\S+:\d+:\d+)(?: \{)?[ \t]*$", re.MULTILINE
)
_NODE_CAUSE = re.compile(r"(?P<indent>\s*)\[cause\]:\s*(?P<header>.*)\Z")
_NODE_NOISE = frozenset({"{", "}", "[", "]", "},", "],"})
_NODE_CODE = re.compile(r"(?P<name>[A-Za-z_$][\w$]*) \[(?P<code>[A-Z0-9_]+)\]\Z")

_APP_ROOTS = ("/var/task/", "/usr/src/app/", "/app/", "/srv/app/", "/srv/", "/code/", "/workspace/", "/opt/app/")
_PY_STDLIB = re.compile(r"/(?:usr/(?:local/)?|var/lang/|opt/python/)?lib(?:64)?/python\d+(?:\.\d+)?/(?P<rel>.*)\Z")
_PY_THIRD_PARTY = ("/site-packages/", "/dist-packages/")
_LAMBDA_RUNTIME_ROOT = "/var/runtime/"
# The Lambda runtime's own code, and Lambda layers (extracted to /opt, libraries shared by functions).
_PY_LIBRARY_ROOTS = (_LAMBDA_RUNTIME_ROOT, "/opt/python/")


class ParsedTrace(NamedTuple):
    """Sentry exception values and the platform the trace was written by (python/java/node/other)."""

    platform: str
    exceptions: list[dict[str, Any]]


class _Exc:
    """One exception while parsing: printed order, parent by index."""

    __slots__ = ("data", "frames", "is_group", "module", "parent", "source", "type", "value")

    def __init__(self, type_: str, value: str, module: str | None) -> None:
        self.type = type_
        self.value = value
        self.module = module
        self.frames: list[dict[str, Any]] = []
        self.parent: int | None = None
        self.source: str | None = None
        self.data: dict[str, Any] = {}
        self.is_group = False


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with '...'."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ELLIPSIS), 0)] + ELLIPSIS


def parse_exceptions(trace: str, *, message: str | None = None) -> list[dict[str, Any]]:
    """Sentry ``exception.values`` for a trace: root cause first, frames oldest call first; never raises.

    ``message`` (the record's message) supplies type and value when the trace itself has no
    ``Type: message`` line, as in the Lambda runtime's ``[ERROR] KeyError: 'x'`` lines.
    """
    return parse_trace(trace, message=message).exceptions


def parse_trace(trace: str, *, message: str | None = None) -> ParsedTrace:
    """Like ``parse_exceptions``, plus which platform wrote the trace (for the event's ``platform``)."""
    text = trace.replace("\r\n", "\n").strip("\n")
    if not text.strip():
        return ParsedTrace("other", [])
    try:
        platform, nodes = _dispatch(text, message)
    except Exception:  # noqa: BLE001 - log text is untrusted; a parser bug must not lose the event
        platform, nodes = "other", []
    if not nodes:
        platform, nodes = "other", [_fallback(text, message)]
    return ParsedTrace(platform, _to_values(nodes))


def _dispatch(text: str, message: str | None) -> tuple[str, list[_Exc]]:
    if _PY_HEADER in text or _PY_FILE_SEARCH.search(text) is not None:
        return "python", _parse_python(text, message)
    if _JAVA_FRAME_SEARCH.search(text) is not None:
        return "java", _parse_java(text, message)
    if _NODE_FRAME_SEARCH.search(text) is not None:
        return "node", _parse_node(text, message)
    if text[0] == "{":
        return "java", _parse_json_exception(text)
    return "other", []


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _split_type(qualified: str) -> tuple[str, str | None]:
    """``a.b.Error`` -> (``Error``, ``a.b``): Sentry shows the bare type, the package is ``module``."""
    module, dot, name = qualified.rpartition(".")
    if dot and module and name:
        return name, module
    return qualified, None


def _exception_from_line(line: str) -> _Exc | None:
    """``Type: value`` (or a bare type name) as an exception; None when the line is not one."""
    match = _EXC_LINE.match(line.strip())
    if match is None:
        return None
    qualified = match.group("type")
    value = match.group("value")
    if value is None and not (
        qualified[:1].isupper() or "." in qualified or qualified.endswith(("Error", "Exception"))
    ):
        return None
    type_, module = _split_type(qualified)
    return _Exc(type_, value or "", module)


def _fallback(text: str, message: str | None) -> _Exc:
    """An unrecognised trace: its ``Type: message`` first line if it has one, else a generic error."""
    first = text.strip().split("\n", 1)[0].strip()
    node = _exception_from_line(first)
    if node is not None and (node.value or _TYPE_LIKE.match(first)):
        return node
    return _Exc(FALLBACK_TYPE, (message or first).strip(), None)


def _from_message(message: str | None) -> _Exc | None:
    if not message:
        return None
    return _exception_from_line(message.split("\n", 1)[0])


def _cap_frames(frames: list[dict[str, Any]], data: dict[str, Any]) -> list[dict[str, Any]]:
    if len(frames) <= MAX_FRAMES:
        return frames
    data["frames_omitted"] = len(frames) - MAX_FRAMES
    newest = MAX_FRAMES - KEEP_OLDEST_FRAMES
    return frames[:KEEP_OLDEST_FRAMES] + frames[-newest:]


def _preorder(nodes: list[_Exc]) -> list[int]:
    """Node indexes from the outermost exception down, children in printed order."""
    root = next((index for index, node in enumerate(nodes) if node.parent is None), 0)
    children: dict[int, list[int]] = {}
    for index, node in enumerate(nodes):
        if node.parent is not None and index != root:
            children.setdefault(node.parent, []).append(index)
    order: list[int] = []
    stack = [root]
    seen: set[int] = set()
    while stack:
        index = stack.pop()
        if index in seen:  # defensive: a malformed parent link must not loop
            continue
        seen.add(index)
        order.append(index)
        stack.extend(reversed(children.get(index, ())))
    return order


def _mechanism(nodes: list[_Exc], index: int, exception_id: int, kept: dict[int, int]) -> dict[str, Any]:
    node = nodes[index]
    mechanism: dict[str, Any] = {"type": MECHANISM_TYPE, "handled": False}
    if len(kept) > 1:
        mechanism["exception_id"] = exception_id
        parent = node.parent
        # A dropped ancestor is skipped: link to the nearest one that was kept.
        while parent is not None and parent not in kept:
            parent = nodes[parent].parent
        if exception_id != 0 and parent is not None:
            mechanism["parent_id"] = kept[parent]
            if node.source:
                mechanism["source"] = node.source
        if node.is_group:
            mechanism["is_exception_group"] = True
    return mechanism


def _to_values(nodes: list[_Exc]) -> list[dict[str, Any]]:
    """Printed-order nodes -> Sentry values: ids in pre-order from the outermost, values root-cause first."""
    order = _preorder(nodes)
    omitted = 0
    if len(order) > MAX_EXCEPTIONS:
        half = MAX_EXCEPTIONS // 2
        omitted = len(order) - MAX_EXCEPTIONS
        order = order[:half] + order[-(MAX_EXCEPTIONS - half) :]
    kept = {index: exception_id for exception_id, index in enumerate(order)}
    values: list[dict[str, Any]] = []
    for exception_id, index in enumerate(order):
        node = nodes[index]
        mechanism = _mechanism(nodes, index, exception_id, kept)
        data = dict(node.data)
        if exception_id == 0 and omitted:
            data["exceptions_omitted"] = omitted
        frames = _cap_frames(node.frames, data)
        if data:
            mechanism["data"] = data
        value: dict[str, Any] = {"type": truncate(node.type, MAX_FUNCTION_CHARS)}
        value["value"] = truncate(node.value.strip(), MAX_VALUE_CHARS)
        if node.module:
            value["module"] = node.module
        if frames:
            value["stacktrace"] = {"frames": frames}
        value["mechanism"] = mechanism
        values.append(value)
    values.reverse()
    return values


def _frame(  # noqa: PLR0913 - the frame's optional attributes, by name
    *,
    filename: str | None,
    abs_path: str | None,
    function: str | None,
    module: str | None,
    lineno: int | None,
    colno: int | None,
    context_line: str | None,
    in_app: bool,
) -> dict[str, Any]:
    frame: dict[str, Any] = {}
    if filename:
        frame["filename"] = truncate(filename, MAX_PATH_CHARS)
    if abs_path:
        frame["abs_path"] = truncate(abs_path, MAX_PATH_CHARS)
    if function:
        frame["function"] = truncate(function, MAX_FUNCTION_CHARS)
    if module:
        frame["module"] = module
    if lineno is not None:
        frame["lineno"] = lineno
    if colno is not None:
        frame["colno"] = colno
    if context_line:
        frame["context_line"] = truncate(context_line, MAX_CONTEXT_LINE_CHARS)
    frame["in_app"] = in_app
    return frame


# ---------------------------------------------------------------------------------------------
# Python
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def _python_path(path: str) -> tuple[str, str | None, bool]:
    """(filename relative to its import root, module, in_app) for a traceback path."""
    if path.startswith("<"):
        # <frozen importlib._bootstrap>, <string>, <stdin>: no file on disk.
        frozen = path[1:-1].split(" ", 1)
        module = frozen[1] if frozen[0] == "frozen" and len(frozen) == 2 else None
        return path, module, False
    for marker in _PY_THIRD_PARTY:
        cut = path.rfind(marker)
        if cut >= 0:
            relative = path[cut + len(marker) :]
            return relative, _module_of(relative), False
    for root in _PY_LIBRARY_ROOTS:
        if path.startswith(root):
            relative = path[len(root) :]
            return relative, _module_of(relative), False
    stdlib = _PY_STDLIB.search(path)
    if stdlib is not None:
        relative = stdlib.group("rel")
        return relative, _module_of(relative), False
    for root in _APP_ROOTS:
        if path.startswith(root):
            relative = path[len(root) :]
            return relative, _module_of(relative), True
    return path, None, True


def _module_of(relative: str) -> str | None:
    if not relative.endswith(".py"):
        return None
    parts = relative[:-3].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(part.isidentifier() for part in parts):
        return None
    return ".".join(parts)


def _parse_python(text: str, message: str | None) -> list[_Exc]:
    segments: list[list[str]] = [[]]
    sources: list[str] = []
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped == _CAUSE_MARKER:
            sources.append("__cause__")
            segments.append([])
        elif stripped == _CONTEXT_MARKER:
            sources.append("__context__")
            segments.append([])
        else:
            segments[-1].append(line)
    nodes: list[_Exc] = []
    for index, lines in enumerate(segments):
        node = _python_segment(lines, message if index == len(segments) - 1 else None)
        if node is not None:
            nodes.append(node)
            # Printed oldest first: each segment is the cause/context of the one after it.
            if index < len(sources):
                node.source = sources[index]
    for index, node in enumerate(nodes[:-1]):
        node.parent = index + 1
    return nodes


def _python_segment(lines: list[str], message: str | None) -> _Exc | None:  # noqa: PLR0912 - one state machine
    frames: list[dict[str, Any]] = []
    header: list[str] = []  # "Type: value" printed before the frames (the Lambda runtime's [ERROR] line)
    exc_lines: list[str] = []
    in_frames = False
    for line in lines:
        if not line.strip():
            if exc_lines:
                exc_lines.append("")
            continue
        if line.startswith(_PY_HEADER):
            in_frames = True
            continue
        match = _PY_FILE.match(line)
        if match is not None:
            filename, module, in_app = _python_path(match.group("path"))
            frames.append(
                _frame(
                    filename=filename,
                    abs_path=match.group("path"),
                    function=match.group("func"),
                    module=module,
                    lineno=int(match.group("lineno")),
                    colno=None,
                    context_line=None,
                    in_app=in_app,
                )
            )
            in_frames = True
            continue
        if line[0] in " \t" and in_frames and not exc_lines:
            stripped = line.strip()
            if (
                frames
                and "context_line" not in frames[-1]
                and not set(stripped) <= _CARETS
                and not stripped.startswith("[Previous line repeated")
            ):
                last = frames[-1]
                last["context_line"] = truncate(stripped, MAX_CONTEXT_LINE_CHARS)
                last["in_app"] = last.pop("in_app")  # keep in_app the last key, as in every other frame
            continue
        if in_frames or exc_lines:
            exc_lines.append(line)
        else:
            header.append(line)
    node = None
    if exc_lines:
        node = _exception_from_line(exc_lines[0])
        if node is not None and len(exc_lines) > 1:
            node.value = "\n".join([node.value, *exc_lines[1:]]).strip("\n")
    if node is None and header:
        node = _exception_from_line(header[0])
    if node is None:
        node = _from_message(message)
    if node is None:
        if not frames:
            return None
        node = _Exc(FALLBACK_TYPE, (exc_lines[0] if exc_lines else message or "").strip(), None)
    node.frames = frames
    return node


# ---------------------------------------------------------------------------------------------
# Java
# ---------------------------------------------------------------------------------------------


def _java_frame(qualified: str, source: str) -> dict[str, Any]:
    # A copy: the cached dict must never be shared by two events (a caller may edit its event).
    return dict(_java_frame_cached(qualified, source))


@lru_cache(maxsize=4096)
def _java_frame_cached(qualified: str, source: str) -> dict[str, Any]:
    if "/" in qualified:
        # Java 9+ prefixes the module and/or class loader: java.base/..., app//...
        qualified = qualified.rsplit("/", 1)[1]
    class_name, _, method = qualified.rpartition(".")
    filename, _, line = source.partition(":")
    lineno = int(line) if line.isdigit() else None
    if filename in {"Native Method", "Unknown Source", "<generated>"} or not filename:
        filename = ""
    return _frame(
        filename=filename or None,
        abs_path=None,
        function=method or qualified,
        module=class_name or None,
        lineno=lineno,
        colno=None,
        context_line=None,
        in_app=not qualified.startswith(_JAVA_RUNTIME_PACKAGES),
    )


def _java_header(text: str) -> _Exc:
    text = _JAVA_THREAD_PREFIX.sub("", text, count=1)
    qualified, separator, value = text.partition(": ")
    if separator and _TYPE_LIKE.match(qualified):
        type_, module = _split_type(qualified)
        return _Exc(type_, value, module)
    stripped = text.strip().rstrip(":")
    if _TYPE_LIKE.match(stripped):
        type_, module = _split_type(stripped)
        return _Exc(type_, "", module)
    return _Exc(FALLBACK_TYPE, text.strip(), None)


def _parse_java(text: str, message: str | None) -> list[_Exc]:
    nodes: list[_Exc] = []
    levels: list[int] = []  # header indentation of each node, for Suppressed:/Caused by: nesting
    suppressed_counts: dict[int, int] = {}
    for line in text.split("\n"):
        if not line.strip():
            continue
        frame = _JAVA_FRAME.match(line)
        if frame is not None:
            if not nodes:
                nodes.append(_from_message(message) or _Exc(FALLBACK_TYPE, message or "", None))
                levels.append(0)
            nodes[-1].frames.append(_java_frame(frame.group("qualified"), frame.group("source")))
            continue
        more = _JAVA_MORE.match(line)
        if more is not None:
            if nodes:
                # Java prints "... N more" for frames shared with the enclosing trace; they are not repeated.
                nodes[-1].data["common_frames_omitted"] = int(more.group("count"))
            continue
        stripped = line.lstrip()
        node = _java_linked_header(stripped, len(line) - len(stripped), nodes, levels, suppressed_counts)
        if node is not None:
            continue
        if not nodes:
            nodes.append(_java_header(stripped))
            levels.append(len(line) - len(stripped))
        elif not nodes[-1].frames:
            # A multi-line exception message continues until the first frame.
            nodes[-1].value = f"{nodes[-1].value}\n{stripped}" if nodes[-1].value else stripped
    for node in nodes:
        node.frames.reverse()  # the JVM prints the newest call first
    return nodes


def _java_linked_header(
    stripped: str, indent: int, nodes: list[_Exc], levels: list[int], suppressed_counts: dict[int, int]
) -> _Exc | None:
    """Append a ``Caused by:``/``Suppressed:`` exception linked to its parent; None for other lines."""
    for prefix, kind in _JAVA_HEADER_PREFIXES:
        if not stripped.startswith(prefix):
            continue
        node = _java_header(stripped[len(prefix) :])
        if kind == "cause":
            # The cause of the latest exception printed at the same level.
            node.parent = _latest(levels, indent, same_level=True)
            node.source = "cause"
        else:
            parent = _latest(levels, indent, same_level=False)
            node.parent = parent
            if parent is not None:
                count = suppressed_counts.get(parent, 0)
                suppressed_counts[parent] = count + 1
                node.source = f"suppressed[{count}]"
                nodes[parent].is_group = True
        if node.parent is None and nodes:
            node.parent = len(nodes) - 1
        nodes.append(node)
        levels.append(indent)
        return node
    return None


def _latest(levels: list[int], indent: int, *, same_level: bool) -> int | None:
    """Index of the latest exception printed at ``indent`` (or, with ``same_level=False``, outside it)."""
    for index in range(len(levels) - 1, -1, -1):
        level = levels[index]
        if (level == indent) if same_level else (level < indent):
            return index
    return None


def _parse_json_exception(text: str) -> list[_Exc]:
    """Quarkus/JBoss JSON console exceptions: ``{"exceptionType", "message", "frames", "causedBy"}``."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    nodes: list[_Exc] = []
    current: Any = document
    while isinstance(current, dict) and len(nodes) < MAX_EXCEPTIONS * 2:
        if "exception" in current and isinstance(current["exception"], dict):
            current = current["exception"]
        exception_type = current.get("exceptionType")
        if not isinstance(exception_type, str):
            break
        type_, module = _split_type(exception_type)
        node = _Exc(type_, str(current.get("message") or ""), module)
        frames = current.get("frames")
        if isinstance(frames, list):
            for item in frames:
                if isinstance(item, dict):
                    line = item.get("line")
                    source = f":{line}" if isinstance(line, int) else ""
                    node.frames.append(_java_frame(f"{item.get('class', '')}.{item.get('method', '')}", source))
        if nodes:
            node.parent = len(nodes) - 1
            node.source = "cause"
        nodes.append(node)
        current = current.get("causedBy")
    for node in nodes:
        node.frames.reverse()
    return nodes


# ---------------------------------------------------------------------------------------------
# Node
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def _node_location(location: str) -> tuple[str, str, bool]:
    """(filename, abs_path, in_app) for a V8 frame location."""
    path = location.removeprefix("file://")
    if path.startswith(("node:", "internal/")) or "/" not in path:
        return path, path, False
    if path.startswith(_LAMBDA_RUNTIME_ROOT):
        return path[len(_LAMBDA_RUNTIME_ROOT) :], path, False
    cut = path.rfind("/node_modules/")
    if cut >= 0:
        return path[cut + len("/node_modules/") :], path, False
    for root in _APP_ROOTS:
        if path.startswith(root):
            return path[len(root) :], path, True
    return path, path, True


def _node_frame(match: re.Match[str]) -> dict[str, Any]:
    if match.group("loc") is not None:
        filename, abs_path, in_app = _node_location(match.group("loc"))
        function: str | None = match.group("func")
        lineno, colno = int(match.group("line")), int(match.group("col"))
    elif match.group("aloc") is not None:
        filename, abs_path, in_app = _node_location(match.group("aloc"))
        function = "?"  # V8 prints no name for anonymous functions; Sentry's JS SDKs use "?"
        lineno, colno = int(match.group("aline")), int(match.group("acol"))
    else:
        return _frame(
            filename=None,
            abs_path=None,
            function=match.group("nfunc"),
            module=None,
            lineno=None,
            colno=None,
            context_line=None,
            in_app=False,
        )
    return _frame(
        filename=filename,
        abs_path=abs_path,
        function=function,
        module=None,
        lineno=lineno,
        colno=colno,
        context_line=None,
        in_app=in_app,
    )


def _node_header(text: str) -> _Exc:
    name, separator, value = text.strip().partition(": ")
    code = _NODE_CODE.match(name)
    if code is not None:
        # "Error [ERR_HTTP_HEADERS_SENT]: ...": the name is the type, the code goes with the mechanism.
        node = _Exc(code.group("name"), value, None)
        node.data["code"] = code.group("code")
        return node
    if separator and _TYPE_LIKE.match(name):
        return _Exc(name, value, None)
    if _TYPE_LIKE.match(text.strip()):
        return _Exc(text.strip(), "", None)
    return _Exc(FALLBACK_TYPE, text.strip(), None)


def _parse_node(text: str, message: str | None) -> list[_Exc]:
    nodes: list[_Exc] = []
    levels: list[int] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        frame = _NODE_FRAME.match(line)
        if frame is not None:
            if not nodes:
                nodes.append(_from_message(message) or _Exc(FALLBACK_TYPE, message or "", None))
                levels.append(0)
            nodes[-1].frames.append(_node_frame(frame))
            continue
        cause = _NODE_CAUSE.match(line)
        if cause is not None:
            node = _node_header(cause.group("header"))
            indent = len(cause.group("indent"))
            node.parent = _latest(levels, indent, same_level=False)
            if node.parent is None and nodes:
                node.parent = len(nodes) - 1
            node.source = "cause"
            nodes.append(node)
            levels.append(indent)
            continue
        stripped = line.strip()
        if stripped in _NODE_NOISE or stripped.startswith("... "):
            continue
        if not nodes:
            nodes.append(_node_header(line))
            levels.append(len(line) - len(line.lstrip()))
        elif not nodes[-1].frames:
            nodes[-1].value = f"{nodes[-1].value}\n{stripped}" if nodes[-1].value else stripped
        # Anything else (util.inspect's "  code: 'ECONNREFUSED'," properties, "}", "... N lines
        # matching cause stack trace ...") is not part of any frame and is left out.
    for node in nodes:
        node.frames.reverse()  # V8 prints the newest call first
    return nodes


# ---------------------------------------------------------------------------------------------
# Lambda runtime error JSON
# ---------------------------------------------------------------------------------------------


def lambda_error_trace(error_type: str, error_message: object, stack_trace: object) -> str:
    """Render the Lambda runtime's error JSON as the trace text its own language would print.

    Python runtimes send ``stackTrace`` as traceback chunks (``  File ..., in f`` plus source line),
    Node as ``error.stack`` split into lines (``TypeError: x``, ``    at f (file:1:2)``), Java as
    frames without ``at`` (``pkg.Cls.m(Cls.java:10)``).
    """
    message = error_message if isinstance(error_message, str) else orjson.dumps(error_message).decode()
    header = f"{error_type}: {message}" if message else error_type
    if isinstance(stack_trace, str):
        entries = stack_trace.split("\n")
    elif isinstance(stack_trace, list):
        entries = [str(item) for item in stack_trace]
    else:
        entries = []
    entries = [entry for entry in entries if entry.strip()]
    if not entries:
        return header
    if any('File "' in entry for entry in entries):
        body = "".join(entry if entry.endswith("\n") else f"{entry}\n" for entry in entries)
        return f"Traceback (most recent call last):\n{body}{header}"
    lines = [entry.rstrip("\n") for entry in entries]
    if any(line.lstrip().startswith("at ") for line in lines):
        if _NODE_FRAME.match(lines[0]) is not None:
            lines.insert(0, header)
        return "\n".join(lines)
    if all(_JAVA_FRAME.match(f"at {line.strip()}") is not None for line in lines):
        return "\n".join([header, *(f"\tat {line.strip()}" for line in lines)])
    return "\n".join([header, *lines])


def frames_of(values: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """All frames of all exception values, in order (for tests and diagnostics)."""
    return [frame for value in values for frame in value.get("stacktrace", {}).get("frames", ())]
