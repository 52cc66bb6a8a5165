"""Which trace format a file holds, and small helpers the Jaeger and Zipkin converters share.

``detect_format`` looks only at the start of the file (``flowscope import`` passes
the first 64 KiB), so it must not need the whole document: it scans the JSON
tokens it has, remembers which keys appear where, and stops at the end of the
bytes or at an unterminated string. (When that head shows a single OTLP object,
``file_import.sniff`` reads on to the end of the first line to tell JSON lines
with long lines apart.)

=================  =======================================================================
format             recognised by
=================  =======================================================================
``otlp-protobuf``  a ``.pb`` / ``.binpb`` / ``.proto`` name, or binary content: bytes JSON
                   cannot contain, or not UTF-8 (text that is not JSON is refused)
``otlp-protobuf-   decided by ``file_import.sniff`` on the whole file: protobuf whose
framed``           messages each follow their length (``proto_frames``)
``otlp-json``      one JSON object with ``resourceSpans`` (or ``resource_spans``)
``otlp-jsonl``     a first line that is a whole OTLP JSON object, and more lines after it
                   (the Collector's file exporter); that first line may hold logs or
                   metrics (one exporter in several pipelines), read past as the
                   import goes
``jaeger-v3-json`` ``{"result": {"resourceSpans": ...}}``: Jaeger v2's API v3 answer, OTLP JSON
                   under ``result`` (one answer, or one per line; ``{"error": ...}``
                   when Jaeger answered an error)
``tempo-json``     ``{"batches": [...]}`` (Grafana Tempo's ``/api/traces/<id>`` answer and
                   Grafana's trace export: OTLP JSON's resource spans under another
                   name) or ``{"trace": {...}}`` (Tempo's ``/api/v2/traces/<id>``)
``jaeger-json``    ``{"data": [...]}`` whose traces have ``traceID`` / ``spans`` /
                   ``processes`` (or ``{"data": ..., "errors": ...}``, the query API's
                   envelope), a single trace object with ``traceID`` and ``spans``, or a
                   list of such traces
``zipkin-json``    a list of objects with ``traceId`` and ``id`` (Zipkin v2 spans), or a list
                   of such lists (``/api/v2/traces``); an empty list too; one such object
=================  =======================================================================
"""

from __future__ import annotations

import base64
import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from flowscope.collector.attributes import format_double
from flowscope.collector.errors import BadRequest

OTLP_JSON = "otlp-json"
OTLP_JSONL = "otlp-jsonl"
OTLP_PROTOBUF = "otlp-protobuf"
OTLP_PROTOBUF_FRAMED = "otlp-protobuf-framed"  # the Collector's file exporter, format: proto
# ... with its compression: zstd: each message (protobuf or JSON) compressed on its own
OTLP_ZSTD_FRAMED = "otlp-zstd-framed"
JAEGER_JSON = "jaeger-json"
JAEGER_V3_JSON = "jaeger-v3-json"  # Jaeger v2's /api/v3 answers: OTLP JSON under "result"
ZIPKIN_JSON = "zipkin-json"
# Grafana Tempo's trace answers and Grafana's trace export: OTLP JSON whose resource
# spans are "batches", or under "trace" (Tempo's /api/v2/traces/<id>)
TEMPO_JSON = "tempo-json"
FORMATS = (
    OTLP_JSON,
    OTLP_JSONL,
    OTLP_PROTOBUF,
    OTLP_PROTOBUF_FRAMED,
    OTLP_ZSTD_FRAMED,
    JAEGER_JSON,
    JAEGER_V3_JSON,
    TEMPO_JSON,
    ZIPKIN_JSON,
)
EMPTY = "empty"  # not a format: a file with nothing (or only blank space) in it
ACCEPTED_FORMATS = (
    "OTLP protobuf (ExportTraceServiceRequest), OTLP JSON, OTLP JSON lines, "
    "Jaeger JSON (and Jaeger's API v3 answers), Grafana Tempo's trace JSON and Zipkin v2 "
    "JSON"
)

# The other OTLP signals: flowscope stores none of them, the Collector's file exporter
# writes them into the same file as traces when one exporter is in several pipelines.
OTHER_SIGNALS = {
    "resourceLogs": "logs",
    "resource_logs": "logs",
    "resourceMetrics": "metrics",
    "resource_metrics": "metrics",
    "resourceProfiles": "profiles",
    "resource_profiles": "profiles",
}


class OtherSignal(BadRequest):
    """A single OTLP JSON object of logs, metrics or profiles: no traces in it (unless
    it is the first of several lines, which only the reader of the whole file can tell)."""


class Undecided(BadRequest):
    """JSON of no known kind so far, in a head that is not the whole file: the keys that
    would tell (a Zipkin span's ``traceId``, last with its keys sorted) may come after
    a long first value."""


_PROTOBUF_SUFFIXES = (".pb", ".binpb", ".proto")
BOM = b"\xef\xbb\xbf"
BLANK = b" \t\r\n"  # the blank space JSON allows between values
# Bytes below 0x20 other than tab, LF and CR never occur in JSON text; in protobuf they
# are everywhere (tags and lengths), including after a first byte that happens to be
# 0x0A (whitespace) followed by a length of 91 or 123 (``[`` or ``{``).
_NOT_JSON_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# A UTF-16 byte order mark, or JSON's first character as UTF-16 without one.
_UTF16 = re.compile(rb"\xff\xfe|\xfe\xff|(?:[ \t\r\n]\x00)*[{\[]\x00|(?:\x00[ \t\r\n])*\x00[{\[]")
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_COMPRESSED = {GZIP_MAGIC: "gzip", ZSTD_MAGIC: "zstd"}
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"|[{}\[\]:,]|[^"{}\[\]:,]+', re.S)
_MAX_PATH = 4  # deepest key path remembered: data[].spans is 3 long


def _starts_with_a_json_line(body: bytes) -> bool:
    """Whether ``body`` starts with a line that is a whole JSON object: JSON lines, whose
    control bytes come later (a NUL-padded tail a crash left, which the reader passes
    over). Such a file was refused as corrupt protobuf. A protobuf request's first line
    is no JSON: its first bytes are a tag and a length, then control bytes."""
    line, newline, _ = body.partition(b"\n")
    if not newline or not line.startswith(b"{") or _NOT_JSON_BYTES.search(line):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


# A DuckDB file's magic number, at bytes 8 to 11 (after its header's checksum).
DUCKDB_MAGIC = b"DUCK"


def detect_format(first_bytes: bytes, path_name: str, *, whole: bool = False) -> str:
    """One of ``FORMATS`` for a file starting with ``first_bytes``; BadRequest if JSON of no known kind.

    An empty file is protobuf (an empty request), a whitespace-only one JSON lines
    (no lines): both import nothing, without an error. (``file_import.sniff`` reports
    such files as ``EMPTY`` before asking.) ``whole``: ``first_bytes`` is the whole file.
    """
    if first_bytes[8:12] == DUCKDB_MAGIC:
        # `flowscope import *` where the database lies: read whole, then refused as
        # a corrupt protobuf, and a multi-GB file was read into memory first (review).
        raise BadRequest(
            f"{path_name}: a DuckDB database, not a trace file; query it with "
            f"flowscope sql --db {path_name}"
        )
    if path_name.lower().endswith(_PROTOBUF_SUFFIXES):
        return OTLP_PROTOBUF
    for magic, kind in _COMPRESSED.items():
        if first_bytes.startswith(magic):
            raise BadRequest(
                f"{path_name}: {kind}-compressed; decompress it first, then import the result"
            )
    if _UTF16.match(first_bytes):
        # Windows PowerShell's `>` writes UTF-16: taken for protobuf, it was refused as
        # a corrupt wire format.
        raise BadRequest(
            f"{path_name}: UTF-16 text; save it as UTF-8 (PowerShell: "
            "Out-File -Encoding utf8), then import that"
        )
    head = first_bytes.removeprefix(BOM)
    body = head.lstrip(BLANK)
    if not body:
        return OTLP_JSONL if head else OTLP_PROTOBUF
    # A request's first byte is a tag, never "{" or "[" (a group, fields 15 and 11):
    # JSON first, however damaged later, is JSON (one object with a NUL tail was
    # "invalid OTLP protobuf"). After blank space it may be a tag and a length of 123.
    json_first = head[:1] in (b"{", b"[")
    if _NOT_JSON_BYTES.search(body) and not json_first and not _starts_with_a_json_line(body):
        return OTLP_PROTOBUF
    try:
        # Incremental: a multi-byte character cut off at the end of the head is fine.
        text = codecs.getincrementaldecoder("utf-8")().decode(body, final=False)
    except UnicodeDecodeError:
        if body[:1] not in (b"{", b"["):  # protobuf never starts so (a group, field 15/11)
            return OTLP_PROTOBUF
        # JSON with a byte that is not UTF-8 (a Latin-1 name): one such byte in the head
        # made the file "invalid OTLP protobuf", where the readers pass over its line or
        # name it.
        text = body.decode("utf-8", errors="replace")
    if body[:1] not in (b"{", b"["):
        # Protobuf requests hold control bytes (tags, short lengths) from their first
        # few bytes on, so clean UTF-8 without them is text: README, CSV, logs.
        first_line = shorten(text.strip().partition("\n")[0].strip())
        raise BadRequest(
            f"{path_name}: not a recognised trace format: text, neither JSON nor protobuf "
            f"(it starts {first_line!r}); flowscope imports {ACCEPTED_FORMATS}"
        )
    shape = _scan(text)
    signal = _other_signal(shape)
    v3 = _is_jaeger_v3(shape)
    if shape.top_values > 1:
        if v3:
            return JAEGER_V3_JSON  # one answer a line, or pretty-printed one after another
        follows = text[shape.second_at :].lstrip()
        if not (_is_otlp(shape) or signal) and not follows.startswith(_VALUE_STARTS):
            # A document with bytes after it (a CR and junk, NUL padding) was "several
            # JSON values", and JSON lines were named, of a Jaeger file (import review).
            raise BadRequest(f"{path_name}: {trailing_bytes(text, shape.second_at)}")
        if not (_is_otlp(shape) or signal):
            raise BadRequest(
                f"{path_name}: several JSON values one after another, but the first is not an "
                "OTLP JSON object; only OTLP JSON lines (one request per line) can be imported so"
            )
        if "\n" in text[: shape.first_end]:
            raise BadRequest(
                f"{path_name}: several OTLP JSON objects, but not one per line; "
                "JSON lines need each request on a line of its own"
            )
        return OTLP_JSONL
    if _is_otlp(shape):
        return OTLP_JSON
    if v3:
        return JAEGER_V3_JSON
    if _is_tempo(shape):
        return TEMPO_JSON
    if signal:
        key = next(key for key in OTHER_SIGNALS if (key,) in shape.keys)
        raise OtherSignal(
            f"{path_name}: OTLP {signal} (an object with {key}), not traces; "
            "flowscope stores traces only"
        )
    if _is_jaeger(shape):
        return JAEGER_JSON
    if _is_zipkin(shape, text):
        return ZIPKIN_JSON
    if whole:  # the whole file: say so if it is no JSON at all (`{bad` read as "{}")
        try:
            json.loads(text)
        except ValueError as exc:
            raise BadRequest(
                f"{path_name}: not valid JSON ({exc}); flowscope imports {ACCEPTED_FORMATS}"
            ) from exc
    # Not decided while the first span or trace is cut off by the head: its telling key
    # may come last (sorted keys). One whole in the head decides: a 73 MB list of
    # other objects took 42 s to refuse, read on to 64 MiB.
    undecided = not whole and shape.items_ended == 0
    raise (Undecided if undecided else BadRequest)(
        f"{path_name}: JSON, but not trace data flowscope can import ({shape.describe()}); "
        "expected OTLP JSON (an object with resourceSpans), OTLP JSON lines, Jaeger JSON "
        '({"data": [traces with traceID, spans, processes]}), Jaeger\'s API v3 answers '
        '({"result": OTLP JSON} and nothing else), Grafana Tempo\'s trace JSON '
        '({"batches": [...]} or {"trace": OTLP JSON}) or Zipkin v2 JSON '
        "(a list of spans with traceId and id)"
    )


def trailing_bytes(text: str, at: int) -> str:
    """The error for a JSON document followed by bytes that are no JSON (``at``: where,
    in characters of ``text``)."""
    rest = text[at:]
    at += len(rest) - len(rest.lstrip())
    return (
        f"not valid JSON: other bytes follow the JSON document, from byte "
        f"{len(text[:at].encode()):,} ({text[at : at + 16]!r}); remove them, then import "
        "the file again"
    )


# How a JSON value starts: what can follow one JSON value in a file of several.
_VALUE_STARTS = ("{", "[", '"', "-", *"0123456789", "true", "false", "null")


@dataclass
class _Shape:
    """What the scanned head of a JSON text contains."""

    containers: dict[tuple[str, ...], str] = field(default_factory=dict)  # path -> "{" / "["
    keys: set[tuple[str, ...]] = field(default_factory=set)  # path of every object key
    top_values: int = 0
    first_end: int = 0  # where the first top-level value ended (0: not within the head)
    second_at: int = 0  # where what follows the first top-level value starts
    # Objects closed where spans or traces sit (``_ITEM_PATHS``): once one is whole in
    # the head, reading on cannot show it keys it lacks.
    items_ended: int = 0

    def describe(self) -> str:
        root = self.containers.get(())
        if root == "{":
            names = sorted(path[0] for path in self.keys if len(path) == 1)
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            return f"an object with keys {shown}" if names else "an empty object"
        element = self.containers.get(("[]",))
        if element == "{":
            names = sorted(path[1] for path in self.keys if len(path) == 2)
            return "a list of objects with keys " + ", ".join(names[:8])
        return "a list of lists" if element == "[" else "a list of plain values"


@dataclass
class _Open:
    """A container being scanned."""

    kind: str  # "{" or "["
    path: tuple[str, ...]
    expecting_key: bool = True
    key: str = ""


def _scan(text: str) -> _Shape:
    shape = _Shape()
    stack: list[_Open] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        first = token[0]
        if first == '"' and len(token) == 1:
            break  # a string cut off by the end of the head
        if not stack:
            if token.strip():
                shape.top_values += 1
                if shape.top_values > 1:
                    shape.second_at = match.start()
                    break
                if first in "{[":
                    shape.containers[()] = first
                    stack.append(_Open(first, ()))
            continue
        frame = stack[-1]
        if first in "}]":
            stack.pop()
            if not stack:
                shape.first_end = match.end()
            elif frame.kind == "{" and frame.path in _ITEM_PATHS:
                shape.items_ended += 1
            continue
        if frame.kind == "{":
            if first == '"' and frame.expecting_key:
                frame.key, frame.expecting_key = _json_string(token), False
                if len(frame.path) < _MAX_PATH:
                    shape.keys.add((*frame.path, frame.key))
                continue
            if first == ",":
                frame.expecting_key = True
                continue
        if first in "{[":
            # Past the deepest path any format looks at, the path stops growing: copying
            # ever longer tuples made 64 KiB of '[' take 45 s to refuse.
            child = (
                frame.path
                if len(frame.path) >= _MAX_PATH
                else (*frame.path, frame.key if frame.kind == "{" else "[]")
            )
            if len(child) <= _MAX_PATH:
                shape.containers.setdefault(child, first)
            stack.append(_Open(first, child))
    return shape


# Where a Zipkin span (in a list, or a list of lists) or a Jaeger trace (in a list, or
# under "data") sits.
_ITEM_PATHS = frozenset({("[]",), ("[]", "[]"), ("data", "[]")})


def _json_string(token: str) -> str:
    try:
        value = json.loads(token)
    except ValueError:
        return token[1:-1]
    return value if isinstance(value, str) else token[1:-1]


def _is_otlp(shape: _Shape) -> bool:
    return shape.containers.get(()) == "{" and bool(
        {("resourceSpans",), ("resource_spans",)} & shape.keys
    )


def _other_signal(shape: _Shape) -> str:
    """The signal (logs, metrics, profiles) of an OTLP object of another signal, else ""."""
    if shape.containers.get(()) != "{" or _is_otlp(shape):
        return ""
    return next((kind for key, kind in OTHER_SIGNALS.items() if (key,) in shape.keys), "")


def _is_jaeger_v3(shape: _Shape) -> bool:
    """Jaeger v2's API v3 answer: ``{"result": <OTLP JSON>}``, or ``{"error": {...}}``
    (grpc-gateway's envelope of a stream's items and of a failure)."""
    if shape.containers.get(()) != "{":
        return False
    top = {path[0] for path in shape.keys if len(path) == 1}
    if top == {"result"}:
        # Spans, or another signal's answer, which the reader refuses by name.
        signals = ("resourceSpans", "resource_spans", *OTHER_SIGNALS)
        return shape.containers.get(("result",)) == "{" and any(
            ("result", key) in shape.keys for key in signals
        )
    return top == {"error"} and ("error", "message") in shape.keys


def _is_tempo(shape: _Shape) -> bool:
    """Grafana Tempo's trace JSON: ``{"batches": [...]}``, or the trace under ``trace``
    (with its own ``resourceSpans`` or ``batches``) beside other keys of the answer."""
    if shape.containers.get(()) != "{":
        return False
    if ("batches",) in shape.keys and shape.containers.get(("batches",)) == "[":
        return True
    return shape.containers.get(("trace",)) == "{" and any(
        ("trace", key) in shape.keys for key in ("batches", "resourceSpans", "resource_spans")
    )


def tempo_to_otlp_json(document: object) -> object:
    """The OTLP JSON object a Tempo answer holds (anything else is returned as it is,
    for the OTLP reader to refuse by its shape), its ids in hex."""
    if isinstance(document, dict) and isinstance(document.get("trace"), dict):
        document = document["trace"]
    if isinstance(document, dict) and "batches" in document and "resourceSpans" not in document:
        document = {"resourceSpans": document["batches"]}
    if isinstance(document, dict):
        for span in _otlp_json_spans(document):
            _ids_in_hex(span)
            for link in span.get("links") or ():
                if isinstance(link, dict):
                    _ids_in_hex(link)
    return document


# Tempo's trace answers write ids in base64, protobuf's generic JSON for bytes (its
# /api/traces/<id> calls jsonpb on the OTLP messages; grafana/tempo#5437): every span of
# a `curl .../api/traces/ID > t.json` was refused as not hex. A 16-byte id is 24 such
# characters, an 8-byte one 12, padding included: never a hex id's 32 or 16.
_BASE64_ID = re.compile(r"[A-Za-z0-9+/]{22}==|[A-Za-z0-9+/]{11}=")
_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _otlp_json_spans(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The span objects of an OTLP JSON document, under any of the names it may use."""
    for resource in _objects(document.get("resourceSpans") or document.get("resource_spans")):
        for key in ("scopeSpans", "scope_spans", "instrumentationLibrarySpans"):
            for scope in _objects(resource.get(key)):
                yield from _objects(scope.get("spans"))


def _objects(value: object) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _ids_in_hex(item: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = item.get(key)
        if isinstance(value, str) and _BASE64_ID.fullmatch(value):
            item[key] = base64.b64decode(value).hex()


def _is_jaeger_trace(shape: _Shape, path: tuple[str, ...]) -> bool:
    has = {key[-1] for key in shape.keys if key[:-1] == path}
    return bool({"spans", "processes", "traceID"} & has)


def _is_jaeger(shape: _Shape) -> bool:
    root = shape.containers.get(())
    if root == "{":
        if ("data",) in shape.keys and ("errors",) in shape.keys:
            return True  # the query API's envelope; the converter reports what "errors" says
        if shape.containers.get(("data",)) == "[":
            element = shape.containers.get(("data", "[]"))
            return element is None or (element == "{" and _is_jaeger_trace(shape, ("data", "[]")))
        return ("traceID",) in shape.keys and ("spans",) in shape.keys
    if root == "[" and shape.containers.get(("[]",)) == "{":
        return ("[]", "traceID") in shape.keys and ("[]", "spans") in shape.keys
    return False


def _is_zipkin(shape: _Shape, text: str) -> bool:
    if shape.containers.get(()) == "{":
        # One span on its own, as a Jaeger trace may be: refused, it said only that
        # an object with traceId and id was not trace data.
        return ("traceId",) in shape.keys and ("id",) in shape.keys
    if shape.containers.get(()) != "[":
        return False
    element = shape.containers.get(("[]",))
    if element == "{":
        return ("[]", "traceId") in shape.keys and ("[]", "id") in shape.keys
    if element == "[":
        inner = shape.containers.get(("[]", "[]"))
        if inner is None:
            return re.fullmatch(r"\[(\s*\[\s*\]\s*,?)*\s*\]?\s*", text) is not None
        return (
            inner == "{"
            and ("[]", "[]", "traceId") in shape.keys
            and ("[]", "[]", "id") in shape.keys
        )
    return re.fullmatch(r"\[\s*\]?\s*", text) is not None  # an empty list


# --- helpers for the converters ------------------------------------------------------------

AttributeValue = str | bool | int | float | bytes

_HEX = re.compile(r"[0-9a-fA-F]+")
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1


def json_type(value: object) -> str:
    """How a JSON value is named in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# The service name the Collector's Jaeger and Zipkin exporters write for a resource
# without service.name; their receivers read it back as no resource.
NO_SERVICE_NAME = "OTLPResourceNoServiceName"


def hex_id(value: object, size: int, what: str) -> bytes:
    """A hex id of at most ``size`` bytes, left-padded with zeros to exactly ``size``.

    Jaeger and Zipkin write 64-bit trace ids as 16 hex digits and older clients drop
    leading zeros; OTLP ids are 16 (trace) and 8 (span) bytes.
    """
    if not isinstance(value, str):
        raise BadRequest(f"{what} is {json_type(value)}, expected a hex string")
    if not value or len(value) > 2 * size:
        raise BadRequest(f"{what} {shorten(value)!r} must be 1 to {2 * size} hex digits")
    if _HEX.fullmatch(value) is None:
        raise BadRequest(f"{what} {shorten(value)!r} is not hex")
    return bytes.fromhex(value.rjust(2 * size, "0"))


def integer(value: object, what: str, *, minimum: int = 0, maximum: int = _UINT64_MAX) -> int:
    """A JSON number that is a whole number within bounds (``1e3`` and ``1000.0`` are fine)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{what} is {json_type(value)}, expected an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise BadRequest(f"{what} {value!r} is not a whole number")
        value = int(value)
    if not minimum <= value <= maximum:
        raise BadRequest(f"{what} {value} is out of range ({minimum} to {maximum})")
    return value


def micros_to_nanos(value: int, what: str) -> int:
    nanos = value * 1000
    if nanos > _UINT64_MAX:
        raise BadRequest(f"{what} {value} µs is too far in the future")
    return nanos


def int64(value: object, what: str) -> int:
    """An int64 attribute value: a JSON integer, or a decimal string (as 64-bit values
    are sometimes written so JavaScript does not round them)."""
    if isinstance(value, str):
        try:
            number: object = int(value, 10)
        except ValueError:
            raise BadRequest(f"{what} {shorten(value)!r} is not an integer") from None
    else:
        number = value
    return integer(number, what, minimum=_INT64_MIN, maximum=_INT64_MAX)


def any_value(value: AttributeValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    return AnyValue(string_value=value)


def key_values(attributes: dict[str, AttributeValue]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def json_text(value: object) -> str:
    """A raw JSON value kept as text (``as_text`` takes typed ones): a string as it is;
    a whole number in digits when its double is exactly the number its shortest text
    says (``9.3e18`` as ``9300000000000000000``, but ``1e23`` as ``1e+23``: its double
    is 99999999999999991611392); another number as a double attribute is stored
    (``format_double``: ``1e-7``, not Python's ``1e-07``, so a Zipkin number tag reads as a
    Jaeger float64 tag of that value does; import review); anything else as JSON
    writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and Decimal(repr(value)) == int(value):
        return str(int(value))
    if isinstance(value, float):
        return format_double(value)
    return json.dumps(value, ensure_ascii=False)


def as_text(value: AttributeValue) -> str:
    """A value as the string a text-only field (event name, status message) takes."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_double(value)
    return base64.b64encode(value).decode("ascii")
