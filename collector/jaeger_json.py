"""Jaeger JSON -> ExportTraceServiceRequest.

Reads what the Jaeger UI downloads ("Download JSON" on a trace) and what Jaeger's
query API returns from ``/api/traces`` and ``/api/traces/{id}``::

    {"data": [{"traceID": "...", "spans": [...], "processes": {"p1": {...}}}], ...}

A bare trace object or a list of traces is accepted too. The mapping is the
OpenTelemetry Collector's Jaeger translator (collector-contrib
``pkg/translator/jaeger``, ``jaegerproto_to_traces.go``) with Jaeger's own model
rules for the parent span:

* ids are hex, left-padded to 16 / 8 bytes (64-bit trace ids have 16 digits);
* the parent is the first CHILD_OF reference within the same trace, else the first
  FOLLOWS_FROM one; every other reference (FOLLOWS_FROM ones included) becomes a
  link with ``opentracing.ref_type`` = ``child_of`` / ``follows_from``;
* ``startTime`` / ``duration`` / log ``timestamp`` are microseconds;
* tags keep their type (string, bool, int64, float64, binary from base64);
* tags the mapping consumes are not copied as attributes: ``span.kind`` -> kind;
  ``error`` = true and ``otel.status_code`` (+ ``otel.status_description``) -> status,
  with ``http.status_code`` as the fallback the translator uses (4xx is an error on a
  client span only, 5xx always); ``otel.scope.name`` / ``otel.scope.version`` (or the
  older ``otel.library.name`` / ``otel.library.version``) -> the scope;
  ``w3c.tracestate`` -> trace state;
* logs -> events: the ``event`` field is the name, the other fields attributes;
* the process -> resource: ``serviceName`` as ``service.name``, its tags as
  attributes (``hostname`` renamed ``host.name``, ``jaeger.version`` to
  ``opencensus.exporterversion`` = ``Jaeger-<version>``, as the translator does);
* the sampled flag (bit 1 of ``flags``) -> the W3C sampled bit of the span flags;
* ``warnings`` -> the attribute ``@jaeger@warnings``, a list of strings, as Jaeger v2
  keeps them.

One deliberate difference: an ``error`` tag with the *string* ``"true"`` marks an
error too (the Jaeger UI reads it so), not only the boolean.

Spans are grouped into one ResourceSpans per distinct process (across traces) and
one ScopeSpans per scope within it. Malformed input raises BadRequest naming the
trace, the span and the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from flowscope.collector.errors import BadRequest
from flowscope.collector.import_formats import (
    NO_SERVICE_NAME,
    AttributeValue,
    as_text,
    hex_id,
    int64,
    integer,
    json_text,
    json_type,
    key_values,
    micros_to_nanos,
    shorten,
)

_SPAN_KINDS = {
    "client": Span.SPAN_KIND_CLIENT,
    "server": Span.SPAN_KIND_SERVER,
    "producer": Span.SPAN_KIND_PRODUCER,
    "consumer": Span.SPAN_KIND_CONSUMER,
    "internal": Span.SPAN_KIND_INTERNAL,
}
_CHILD_OF = "CHILD_OF"
_FOLLOWS_FROM = "FOLLOWS_FROM"
_REF_TYPE_ATTRIBUTE = {_CHILD_OF: "child_of", _FOLLOWS_FROM: "follows_from"}
_JAEGER_SAMPLED = 0x1
# Where Jaeger v2 keeps a span's warnings (its adjusters' and sanitizers' notes, a
# list of strings): the UI shows them on the span, so they are not dropped.
WARNINGS_ATTRIBUTE = "@jaeger@warnings"
_W3C_SAMPLED = 0x1
_ZERO_SPAN = bytes(8)

Attributes = dict[str, AttributeValue]
_ResourceKey = tuple[tuple[str, str, Any], ...]


def jaeger_to_otlp(document: object) -> ExportTraceServiceRequest:
    """Jaeger JSON (already parsed) as one OTLP request; BadRequest if it is malformed."""
    request = ExportTraceServiceRequest()
    groups = _Groups(request)
    for t_number, trace in enumerate(_traces(document), start=1):
        where = f"Jaeger trace {t_number}"
        if not isinstance(trace, dict):
            raise BadRequest(f"{where} is {json_type(trace)}, expected an object with spans")
        spans = trace.get("spans")
        if not isinstance(spans, list):
            raise BadRequest(f'{where}: "spans" is {json_type(spans)}, expected a list')
        processes = trace.get("processes")
        if processes is None:
            processes = {}
        if not isinstance(processes, dict):
            raise BadRequest(f'{where}: "processes" is {json_type(processes)}, expected an object')
        resources: dict[str, tuple[_ResourceKey, Attributes]] = {}
        converted = []
        for s_number, item in enumerate(spans, start=1):
            span_where = f"{where}, span {s_number}"
            if not isinstance(item, dict):
                raise BadRequest(f"{span_where} is {json_type(item)}, expected an object")
            resource = _span_resource(item, processes, resources, span_where)
            span, scope = _span(item, span_where)
            converted.append((resource, span, scope))
        for resource, span, scope in converted:
            groups.scope_spans(resource, scope).spans.append(span)
    return request


def _traces(document: object) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if "data" in document:
            data = document["data"]
            if isinstance(data, list):
                return data
            errors = document.get("errors")
            detail = (
                f" (the file holds errors: {shorten(json.dumps(errors, ensure_ascii=False), 200)})"
                if errors
                else ""
            )
            raise BadRequest(
                f'Jaeger JSON: "data" is {json_type(data)}, expected a list of traces{detail}'
            )
        if "spans" in document:
            return [document]
        raise BadRequest(
            'Jaeger JSON must be {"data": [traces]}, one trace object with "spans", '
            "or a list of traces"
        )
    raise BadRequest(f"Jaeger JSON is {json_type(document)}, expected an object or a list")


class _Groups:
    """ResourceSpans per distinct resource, ScopeSpans per scope within it, in first-seen order."""

    def __init__(self, request: ExportTraceServiceRequest) -> None:
        self._request = request
        self._resources: dict[
            _ResourceKey, tuple[ResourceSpans, dict[tuple[str, str], ScopeSpans]]
        ] = {}

    def scope_spans(
        self, resource: tuple[_ResourceKey, Attributes], scope: tuple[str, str]
    ) -> ScopeSpans:
        key, attributes = resource
        entry = self._resources.get(key)
        if entry is None:
            resource_spans = self._request.resource_spans.add()
            resource_spans.resource.attributes.extend(key_values(attributes))
            entry = (resource_spans, {})
            self._resources[key] = entry
        resource_spans, scopes = entry
        scope_spans = scopes.get(scope)
        if scope_spans is None:
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name, scope_spans.scope.version = scope
            scopes[scope] = scope_spans
        return scope_spans


def _span_resource(
    span: dict[str, Any],
    processes: dict[str, Any],
    resolved: dict[str, tuple[_ResourceKey, Attributes]],
    where: str,
) -> tuple[_ResourceKey, Attributes]:
    embedded = span.get("process")
    if embedded is not None:
        return _resource(embedded, f"{where}: process")
    process_id = span.get("processID")
    if process_id is None:
        return (), {}
    if not isinstance(process_id, str):
        raise BadRequest(f"{where}: processID is {json_type(process_id)}, expected a string")
    if process_id not in resolved:
        if process_id not in processes:
            return (), {}  # as a span with no process: refusing it lost the whole file
        resolved[process_id] = _resource(processes[process_id], f"{where}: process {process_id!r}")
    return resolved[process_id]


def _resource(process: object, where: str) -> tuple[_ResourceKey, Attributes]:
    if not isinstance(process, dict):
        raise BadRequest(f"{where} is {json_type(process)}, expected an object")
    service = process.get("serviceName", "")
    if service is None:
        service = ""
    if not isinstance(service, str):
        raise BadRequest(f"{where}: serviceName is {json_type(service)}, expected a string")
    if service == NO_SERVICE_NAME:
        return (), {}
    attributes: Attributes = {}
    if service:
        attributes["service.name"] = service
    attributes.update(_tags(process.get("tags"), f"{where}: tags"))
    if "hostname" in attributes and "host.name" not in attributes:
        attributes["host.name"] = attributes.pop("hostname")
    if "jaeger.version" in attributes and "opencensus.exporterversion" not in attributes:
        version = attributes.pop("jaeger.version")
        attributes["opencensus.exporterversion"] = "Jaeger-" + as_text(version)
    key = tuple(sorted((k, type(v).__name__, v) for k, v in attributes.items()))
    return key, attributes


def _span(item: dict[str, Any], where: str) -> tuple[Span, tuple[str, str]]:
    trace_id = hex_id(item.get("traceID"), 16, f"{where}: traceID")
    span = Span(trace_id=trace_id, span_id=hex_id(item.get("spanID"), 8, f"{where}: spanID"))
    name = item.get("operationName", "")
    if name is None:
        name = ""
    if not isinstance(name, str):
        raise BadRequest(f"{where}: operationName is {json_type(name)}, expected a string")
    span.name = name
    start = integer(item.get("startTime"), f"{where}: startTime")
    duration = integer(item.get("duration", 0), f"{where}: duration")
    span.start_time_unix_nano = micros_to_nanos(start, f"{where}: startTime")
    span.end_time_unix_nano = micros_to_nanos(start + duration, f"{where}: startTime + duration")
    flags = item.get("flags")
    if flags is not None and integer(flags, f"{where}: flags") & _JAEGER_SAMPLED:
        span.flags = _W3C_SAMPLED

    references = _references(item.get("references"), where)
    parent = _parent(trace_id, span.span_id, references)
    if parent is None and item.get("parentSpanID") is not None:  # deprecated field, old exports
        parent = hex_id(item["parentSpanID"], 8, f"{where}: parentSpanID")
    # The CHILD_OF reference taken for the parent is no link, even when it names span
    # 0, which is no parent: the Collector leaves it out too; it was a link to ''.
    chosen = parent
    # A reference to the span itself is no parent (as the Zipkin mapping has it): kept,
    # the trace had no root and belonged to no flow.
    if parent is not None and parent not in (_ZERO_SPAN, span.span_id):
        span.parent_span_id = parent
    else:
        parent = None

    attributes = _tags(item.get("tags"), f"{where}: tags")
    scope = _pop_scope(attributes)
    if "span.kind" in attributes:
        kind = as_text(attributes.pop("span.kind")).lower()
        span.kind = _SPAN_KINDS.get(kind, Span.SPAN_KIND_UNSPECIFIED)
    _set_status(attributes, span)
    if "w3c.tracestate" in attributes:
        span.trace_state = as_text(attributes.pop("w3c.tracestate"))
    span.attributes.extend(key_values(attributes))
    warnings = _warnings(item.get("warnings"), where)
    if warnings and WARNINGS_ATTRIBUTE not in attributes:
        kept = span.attributes.add(key=WARNINGS_ATTRIBUTE).value.array_value.values
        kept.extend(AnyValue(string_value=warning) for warning in warnings)

    for l_number, log in enumerate(_list(item.get("logs"), f"{where}: logs"), start=1):
        _add_event(span, log, f"{where}, log {l_number}")
    for ref_type, ref_trace, ref_span in references:
        if ref_span == chosen and ref_type == _CHILD_OF:
            continue
        if ref_trace == trace_id and ref_span == span.span_id:
            continue  # to itself: neither parent nor link
        link = span.links.add(trace_id=ref_trace, span_id=ref_span)
        link.attributes.extend(key_values({"opentracing.ref_type": _REF_TYPE_ATTRIBUTE[ref_type]}))
    return span, scope


def _warnings(value: object, where: str) -> list[str]:
    """Jaeger writes strings; anything else is kept as its JSON text rather than failing
    the file over a note (they were ignored before they were kept)."""
    warnings = _list(value, f"{where}: warnings")
    return [w if isinstance(w, str) else json.dumps(w, ensure_ascii=False) for w in warnings]


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{where} is {json_type(value)}, expected a list")
    return value


def _references(value: object, where: str) -> list[tuple[str, bytes, bytes]]:
    references: list[tuple[str, bytes, bytes]] = []
    for number, ref in enumerate(_list(value, f"{where}: references"), start=1):
        ref_where = f"{where}, reference {number}"
        if not isinstance(ref, dict):
            raise BadRequest(f"{ref_where} is {json_type(ref)}, expected an object")
        ref_type = ref.get("refType", _CHILD_OF)
        if not isinstance(ref_type, str) or ref_type.upper() not in _REF_TYPE_ATTRIBUTE:
            raise BadRequest(
                f"{ref_where}: refType {shorten(str(ref_type))!r} is not CHILD_OF or FOLLOWS_FROM"
            )
        references.append(
            (
                ref_type.upper(),
                hex_id(ref.get("traceID"), 16, f"{ref_where}: traceID"),
                hex_id(ref.get("spanID"), 8, f"{ref_where}: spanID"),
            )
        )
    return references


def _parent(
    trace_id: bytes, span_id: bytes, references: list[tuple[str, bytes, bytes]]
) -> bytes | None:
    """Jaeger's Span.ParentSpanID: first same-trace CHILD_OF, else first same-trace
    FOLLOWS_FROM; a reference to the span itself is passed over (taken, the trace had no
    root; ending the search there hid a real parent after it)."""
    follows_from: bytes | None = None
    for ref_type, ref_trace, ref_span in references:
        if ref_trace != trace_id or ref_span == span_id:
            continue
        if ref_type == _CHILD_OF:
            return ref_span
        if follows_from is None:
            follows_from = ref_span
    return follows_from


def _tags(value: object, where: str) -> Attributes:
    attributes: Attributes = {}
    for number, tag in enumerate(_list(value, where), start=1):
        tag_where = f"{where}[{number}]"
        if not isinstance(tag, dict):
            raise BadRequest(
                f"{tag_where} is {json_type(tag)}, expected an object with key/type/value"
            )
        key = tag.get("key")
        if not isinstance(key, str):
            raise BadRequest(f"{tag_where}: key is {json_type(key)}, expected a string")
        attributes[key] = _tag_value(tag, f"{where} {shorten(key)!r}")
    return attributes


def _tag_value(tag: dict[str, Any], where: str) -> AttributeValue:
    value = tag.get("value")
    kind = tag.get("type")
    if kind is None:  # not written by Jaeger, but the value's JSON type says enough
        kind = {bool: "bool", int: "int64", float: "float64", str: "string"}.get(type(value), "")
    if not isinstance(kind, str):
        raise BadRequest(f"{where}: type is {json_type(kind)}, expected a string")
    kind = kind.lower()
    if kind == "string":
        if value is None:
            return ""  # Go's empty string, as Jaeger's own model reads it
        if not isinstance(value, str):
            raise BadRequest(f"{where}: value is {json_type(value)}, expected a string")
        return value
    if kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise BadRequest(f"{where}: value is {json_type(value)}, expected true or false")
        return value
    if kind == "int64":
        try:
            return int64(value, f"{where}: value")
        except BadRequest:
            # The Jaeger UI's "Download Results" passes numbers through JavaScript:
            # 2^63 - 1 (a Long.MAX_VALUE deadline) comes out as 9223372036854776000,
            # just past int64, and the whole file was refused. Such a value (or one
            # that is no integer at all) is kept as text, as other types are.
            return json_text(value)
    if kind == "float64":
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise BadRequest(f"{where}: value {shorten(value)!r} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"{where}: value is {json_type(value)}, expected a number")
        return float(value)
    if kind == "binary":
        if not isinstance(value, str):
            raise BadRequest(f"{where}: value is {json_type(value)}, expected base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"{where}: value {shorten(value)!r} is not base64") from None
    # Another type (int32, say): its value as text, where the Collector writes a
    # placeholder; refusing it lost the whole file.
    return json_text(value)


def _pop_scope(attributes: Attributes) -> tuple[str, str]:
    for name_key, version_key in (
        ("otel.scope.name", "otel.scope.version"),
        ("otel.library.name", "otel.library.version"),
    ):
        if name_key in attributes:
            name = as_text(attributes.pop(name_key))
            version = as_text(attributes.pop(version_key)) if version_key in attributes else ""
            return name, version
    return "", ""


def _set_status(attributes: Attributes, span: Span) -> None:
    """The translator's setInternalSpanStatus; ``span.kind`` must be set already."""
    code: Status.StatusCode.ValueType = Status.STATUS_CODE_UNSET
    message = ""
    exists = False
    error = attributes.get("error")
    if error is True or (isinstance(error, str) and error.lower() == "true"):
        code, exists = Status.STATUS_CODE_ERROR, True
        del attributes["error"]
        if "otel.status_description" in attributes:
            message = as_text(attributes.pop("otel.status_description"))
        elif "http.status_message" in attributes:
            message = as_text(attributes["http.status_message"])
    if "otel.status_code" in attributes:
        if not exists:
            exists = True
            text = as_text(attributes["otel.status_code"]).upper()
            if text == "OK":
                code = Status.STATUS_CODE_OK
            elif text == "ERROR":
                code = Status.STATUS_CODE_ERROR
            if "otel.status_description" in attributes:
                message = as_text(attributes.pop("otel.status_description"))
        del attributes["otel.status_code"]
    elif not exists and "http.status_code" in attributes:
        http_code = _http_code(attributes["http.status_code"])
        if http_code is not None:
            from_http = _status_from_http(http_code, span.kind)
            if from_http != Status.STATUS_CODE_UNSET:
                code, exists = from_http, True
            if "http.status_message" in attributes:
                message = as_text(attributes["http.status_message"])
    if exists:
        span.status.code = code
        span.status.message = message


def _http_code(value: AttributeValue) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 10)
        except ValueError:
            return None
    return None


def _status_from_http(code: int, kind: int) -> Status.StatusCode.ValueType:
    if 400 <= code < 500:
        if kind == Span.SPAN_KIND_CLIENT:
            return Status.STATUS_CODE_ERROR
        if kind == Span.SPAN_KIND_SERVER:
            return Status.STATUS_CODE_UNSET
    if 100 <= code < 400:
        return Status.STATUS_CODE_UNSET
    return Status.STATUS_CODE_ERROR


def _add_event(span: Span, log: object, where: str) -> None:
    if not isinstance(log, dict):
        raise BadRequest(f"{where} is {json_type(log)}, expected an object")
    timestamp = integer(log.get("timestamp"), f"{where}: timestamp")
    event = span.events.add(time_unix_nano=micros_to_nanos(timestamp, f"{where}: timestamp"))
    attributes = _tags(log.get("fields"), f"{where}: fields")
    if "event" in attributes:
        event.name = as_text(attributes.pop("event"))
    event.attributes.extend(key_values(attributes))
