"""OTLP/JSON -> ExportTraceServiceRequest.

OTLP/JSON is protobuf's JSON mapping with the OTLP exceptions: trace and span
ids are hex strings, enums are integers, field names lowerCamelCase (the
original snake_case names are accepted too), 64-bit integers as strings or
numbers, unknown fields ignored. We rewrite the ids to the base64 that
protobuf's JSON parser expects and let it do the rest.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from flowscope.collector.errors import BadRequest
from flowscope.collector.import_formats import json_type
from flowscope.collector.otlp_json_fast import I32, I64, Decline, hex_id, request_from_document

_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _hex_to_base64(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return base64.b64encode(hex_id(value)).decode("ascii")


def _fix_ids(item: Any) -> None:
    if not isinstance(item, dict):
        return
    for name in _ID_FIELDS:
        if name in item:
            value = item[name]
            if value is not None and not isinstance(value, str):
                # protobuf's own words were Python's: "object of type 'int' has no len()"
                raise BadRequest(
                    f"invalid OTLP/JSON: {name} is {json_type(value)}, expected a string of "
                    "hex digits"
                )
            item[name] = _hex_to_base64(value)


def _list(parent: Any, *names: str) -> list[Any]:
    if not isinstance(parent, dict):
        return []
    for name in names:
        value = parent.get(name)
        if isinstance(value, list):
            return value
    return []


def _objects(parent: Any, what: str, *names: str) -> list[dict[str, Any]]:
    """``_list``, each item an object: protobuf's parser takes a string or a list there
    for an empty message, and a span that was not an object was a 500."""
    items = _list(parent, *names)
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest(f"invalid OTLP/JSON: {what} is {json_type(item)}, expected an object")
    return items


def _object_or_null(parent: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A message field holds an object (or null, or nothing): protobuf's parser took
    "x" and [] for an empty one, and a link or event of no ids was stored."""
    value = parent.get(name)
    if value is not None and not isinstance(value, dict):
        raise BadRequest(f"invalid OTLP/JSON: {name} is {json_type(value)}, expected an object")
    return value


def _attributes_of(owner: dict[str, Any] | None) -> None:
    """Each attribute an object: [] was an empty KeyValue, stored as the key ''."""
    if owner is not None:
        _objects(owner, "an attribute", "attributes")


def _rename_instrumentation_library(resource_spans: Any) -> None:
    """OTLP named scopes "instrumentation library" until 0.15 (the old field stayed,
    deprecated, until 0.19), and files the Collector wrote then still do: read them as
    the scopes they are, instead of as unknown fields that drop every span in them."""
    if not isinstance(resource_spans, dict) or _list(resource_spans, "scopeSpans", "scope_spans"):
        return
    for old in ("instrumentationLibrarySpans", "instrumentation_library_spans"):
        libraries = resource_spans.pop(old, None)
        if isinstance(libraries, list):
            for library_spans in libraries:
                if isinstance(library_spans, dict):
                    for name in ("instrumentationLibrary", "instrumentation_library"):
                        if name in library_spans:
                            library_spans["scope"] = library_spans.pop(name)
            resource_spans["scopeSpans"] = libraries
            return


def request_from_json_object(document: Any) -> ExportTraceServiceRequest:
    if not isinstance(document, dict):
        raise BadRequest("OTLP/JSON body must be a JSON object with resourceSpans")
    try:
        return request_from_document(document)  # the usual shape, ~4x faster
    except (Decline, RecursionError, DecodeError):
        # protobuf's generic parser: every other shape, and every error message
        # (DecodeError: a value nested past upb's depth limit, a 500 before)
        pass
    return generic_request(document)


_HALF_PAIR_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def without_half_pairs(document: Any, raw: bytes) -> Any:
    """``document`` (``json.loads(raw)``) with U+FFFD for each half of a surrogate pair
    escaped alone, as the Collector's decoder does: protobuf strings cannot hold one
    (the JS SDK cuts strings to a length limit in UTF-16 units, "ab\\ud83c"), and such
    a request was a 500, every span in it lost. Only a \\uD800-\\uDFFF escape makes one
    (valid UTF-8 cannot encode it), so a document whose raw text has none is not walked."""
    if _HALF_PAIR_ESCAPE.search(raw) is not None:
        replace_lone_surrogates(document)
    return document


_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(document: Any) -> None:
    """Every surrogate code point in the strings (keys too) of a parsed JSON document
    becomes U+FFFD, in place. json.loads joins an escaped pair into one character,
    so any surrogate left is half of one."""
    for node in _containers(document):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        changed = [
            (key, _SURROGATE.sub("\ufffd", value))
            for key, value in items
            if isinstance(value, str) and _SURROGATE.search(value)
        ]
        for key, value in changed:
            node[key] = value
        if isinstance(node, dict):
            for key in [k for k in node if _SURROGATE.search(k)]:
                node[_SURROGATE.sub("\ufffd", key)] = node.pop(key)


def _containers(document: Any) -> Iterator[Any]:
    """Every object and array of a parsed JSON document, the document first; each one's
    own may be changed before the walk goes on into them."""
    stack = [document]
    while stack:
        node = stack.pop()
        yield node
        values = node.values() if isinstance(node, dict) else node
        stack.extend(value for value in values if isinstance(value, dict | list))


def generic_request(document: dict[str, Any]) -> ExportTraceServiceRequest:
    """protobuf's own JSON parser, after the OTLP exceptions (hex ids, old scope names)
    are turned into what it expects. Changes ``document``."""
    for resource_spans in _objects(
        document, "a resourceSpans item", "resourceSpans", "resource_spans"
    ):
        _rename_instrumentation_library(resource_spans)
        _attributes_of(_object_or_null(resource_spans, "resource"))
        for scope_spans in _objects(
            resource_spans, "a scopeSpans item", "scopeSpans", "scope_spans"
        ):
            _attributes_of(_object_or_null(scope_spans, "scope"))
            for span in _objects(scope_spans, "a span", "spans"):
                _fix_ids(span)
                _attributes_of(span)
                for link in _objects(span, "a link", "links"):
                    _fix_ids(link)
                    _attributes_of(link)
                for event in _objects(span, "an event", "events"):
                    _attributes_of(event)
                _check_enum(span, "kind", _SPAN_KINDS)
                if (status := _object_or_null(span, "status")) is not None:
                    _check_enum(status, "code", _STATUS_CODES)
    _check_values(document)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise BadRequest(f"invalid OTLP/JSON: {_shortened(str(exc))}") from exc
    return request


_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _check_values(document: Any) -> None:
    """Every ``bytesValue`` is base64 as proto3's JSON mapping reads it (standard or
    URL-safe, padded or not; the Collector takes the standard padded form only).
    protobuf's parser skips what is not: ``"!!!"`` was stored as empty bytes and
    ``"aGVs!!bG8="`` as ``hello``, where the Collector answers 400.

    An ``intValue`` number past int64 becomes a ``doubleValue``: the JavaScript SDK's
    JSON exporter sends any whole JavaScript number as an int (``1e+21``, and 2^63 - 1
    rounded to ``9223372036854776000``), where its protobuf exporter sends a double,
    and one such value made the whole batch a 400, which exporters do not retry."""
    for node in _containers(document):
        if not isinstance(node, dict):
            continue
        for key in ("intValue", "int_value"):
            if key not in node or len(node) > 1:  # a second value: protobuf refuses it
                continue
            value = node[key]
            if value == _JS_INT64_MIN:  # -2^63 as JavaScript writes it
                node[key] = -I64
            elif (number := _past_int64(value)) is not None:
                del node[key]
                node["doubleValue"] = number
        for key in ("bytesValue", "bytes_value"):
            value = node.get(key)
            if isinstance(value, str) and (
                not _BASE64.fullmatch(value) or len(value.rstrip("=")) % 4 == 1
            ):
                raise BadRequest(
                    f"invalid OTLP/JSON: bytesValue {_shortened(repr(value))} is not base64"
                )


_JS_INT64_MIN = -9223372036854776000


def _past_int64(value: Any) -> float | None:
    """A whole JSON number outside int64 that a double holds, as that double; else
    None. Digits in a string are int64's own JSON form, not JavaScript's: protobuf's
    refusal of one out of range stands."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None  # not whole: protobuf's own refusal says so
    if -I64 <= value < I64:
        return None
    try:
        return float(value)
    except OverflowError:  # past any double (over 308 digits): refused as out of range
        return None


_SPAN_KINDS = frozenset(Span.SpanKind.keys())
_STATUS_CODES = frozenset(Status.StatusCode.keys())


def _check_enum(item: dict[str, Any], key: str, names: frozenset[str]) -> None:
    """An enum as the Collector reads it: an int32 number or one of its names.
    protobuf's parser wraps 4294967298 (and "4294967298", 4294967298.0) to 2, SERVER,
    and takes 2.5 or true; the Collector refuses them all."""
    value = item.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problem = f"is {json_type(value)}"
    elif isinstance(value, str):
        if value in names:
            return
        problem = f"{value[:40]!r} is no name of the enum"
    elif math.isfinite(value) and value == int(value) and -I32 <= value < I32:
        return
    else:
        problem = f"{value!r} is no int32"
    raise BadRequest(f"invalid OTLP/JSON: {key} {problem} (an enum is an int32 or a name)")


_FIELD_STEP = re.compile(r"(?:Failed to parse \w+ field: )")


def _shortened(message: str) -> str:
    """protobuf's message with a long run of "Failed to parse X field: " (one per
    level of a deeply nested value: 5 KB for 50 levels) cut to its first and last."""
    message = re.sub(r"\.{2,}$", ".", message)  # and a dot per level after it
    steps = list(_FIELD_STEP.finditer(message))
    if len(steps) <= 8:
        return message
    first, last = steps[3], steps[-2]
    skipped = len(steps) - 6
    return f"{message[: first.start()]}... ({skipped} more levels) ...{message[last.start() :]}"


def request_from_json(body: bytes) -> ExportTraceServiceRequest:
    return request_from_json_object(without_half_pairs(load_json(body), body))


def load_json(body: bytes) -> Any:
    """An OTLP/JSON body parsed; BadRequest says what is wrong (caused by the
    ValueError when it is not JSON or not UTF-8)."""
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        if exc.encoding.lower().replace("_", "-") not in ("utf-8", "utf-8-sig"):
            # json reads NUL bytes up front as UTF-16 or 32: a NUL-padded line, which
            # was "not valid UTF-8: 'utf-32-be' codec can't decode byte 0x0a".
            raise BadRequest(f"OTLP/JSON body is not JSON text (it starts {body[:12]!r})") from exc
        raise BadRequest(f"OTLP/JSON body is not valid UTF-8: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("OTLP/JSON body is nested too deeply") from exc
    except ValueError as exc:
        raise BadRequest(f"OTLP/JSON body is not valid JSON: {exc}") from exc


def _base64_to_hex(item: Any) -> None:
    if not isinstance(item, dict):
        return
    for name in _ID_FIELDS:
        if isinstance(item.get(name), str):
            item[name] = base64.b64decode(item[name]).hex()


def request_to_json_object(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP/JSON form of a request: hex ids, integer enums, lowerCamelCase names."""
    document: dict[str, Any] = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in _list(document, "resourceSpans"):
        for scope_spans in _list(resource_spans, "scopeSpans"):
            for span in _list(scope_spans, "spans"):
                _base64_to_hex(span)
                for link in _list(span, "links"):
                    _base64_to_hex(link)
    return document


def request_to_json(request: ExportTraceServiceRequest) -> bytes:
    return json.dumps(request_to_json_object(request), separators=(",", ":")).encode()
