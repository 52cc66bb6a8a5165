"""Zipkin v2 JSON -> ExportTraceServiceRequest.

Reads a list of Zipkin v2 spans (what ``POST /api/v2/spans`` takes and
``/api/v2/trace/{id}`` returns), a list of such lists (``/api/v2/traces``) or one
span on its own. The
mapping is the OpenTelemetry Collector's Zipkin v2 translator (collector-contrib
``pkg/translator/zipkin/zipkinv2``, ``to_translator.go``) with its network
conventions feature gates (``pkg.translator.zipkin.EmitV1NetworkConventions`` and
``DontEmitV0NetworkConventions``, alpha since v0.147.0) off, their default:

* ``traceId`` (16 or 32 hex digits) / ``id`` / ``parentId`` -> ids, left-padded; a
  ``parentId`` equal to ``id`` is no parent;
* ``kind`` CLIENT / SERVER / PRODUCER / CONSUMER -> span kind; without one, a
  ``span.kind`` tag of ``internal`` -> INTERNAL;
* ``timestamp`` / ``duration`` (µs) -> start / end; a span without a timestamp gets
  ``otel.zipkin.absentField.startTime`` = true, as in the translator, and starts at its
  earliest annotation (at 0, as there, when it has none);
* ``localEndpoint.serviceName`` -> resource ``service.name`` (as given, case kept);
  tags named like resource attributes (``host.name``, ``service.version``,
  ``telemetry.sdk.*``, ...) -> resource attributes;
* ``localEndpoint`` ipv4/ipv6 -> ``net.host.ip``, port -> ``net.host.port``;
  ``remoteEndpoint`` serviceName -> ``peer.service``, ipv4/ipv6 ->
  ``net.peer.ip``, port -> ``net.peer.port`` (IPv6 wins over IPv4);
* ``otel.scope.name`` / ``otel.scope.version`` (or ``otel.library.*``) tags -> scope;
* ``w3c.tracestate`` tag -> trace state; ``otlp.link.N`` tags -> links;
* ``otel.status_code`` / ``otel.status_description`` / ``error`` tags -> status;
* annotations -> events (``name|{json attributes}|dropped count`` as the Collector's
  Zipkin exporter writes them is split up; any other value is the event name);
* other tags -> string attributes.

Deliberate differences from the translator, because they lose information in real
Zipkin data: ``otel.status_code`` may be ``OK`` / ``ERROR`` (what OpenTelemetry SDKs
write) as well as ``STATUS_CODE_*``; an ``error`` tag marks an error whatever its value
(Zipkin's rule; only ``"false"`` does not) and a value other than ``"true"`` becomes
the status message. A server half of a shared span (``shared: true``) is stored as
sent, under its client's id, as the translator passes it on over OTLP: the dedup key
tells a SERVER span from its client, and analysis puts it under the client
(``analyzer/shared_ids.py``), so the same trace imported and received over OTLP is
stored once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from flowscope.collector.errors import BadRequest
from flowscope.collector.import_formats import (
    NO_SERVICE_NAME,
    AttributeValue,
    hex_id,
    integer,
    json_text,
    json_type,
    key_values,
    micros_to_nanos,
    shorten,
)

_KINDS = {
    "CLIENT": Span.SPAN_KIND_CLIENT,
    "SERVER": Span.SPAN_KIND_SERVER,
    "PRODUCER": Span.SPAN_KIND_PRODUCER,
    "CONSUMER": Span.SPAN_KIND_CONSUMER,
}
_STATUS_CODES = {
    "STATUS_CODE_UNSET": Status.STATUS_CODE_UNSET,
    "STATUS_CODE_OK": Status.STATUS_CODE_OK,
    "STATUS_CODE_ERROR": Status.STATUS_CODE_ERROR,
    "UNSET": Status.STATUS_CODE_UNSET,
    "OK": Status.STATUS_CODE_OK,
    "ERROR": Status.STATUS_CODE_ERROR,
}
_START_TIME_ABSENT = "otel.zipkin.absentField.startTime"
_SERVICE_NAME_SOURCE = "otlp.service.name.source"
_MAX_LINKS = 128
_ZERO_SPAN = bytes(8)

# Tags that are resource attributes (the semantic-convention resource attributes the
# translator lists, plus the OpenCensus ones it moves to the resource).
_RESOURCE_KEYS = frozenset(
    """
    cloud.provider cloud.account.id cloud.region cloud.availability_zone cloud.platform
    cloud.resource_id aws.ecs.container.arn aws.ecs.cluster.arn aws.ecs.launchtype
    aws.ecs.task.arn aws.ecs.task.family aws.ecs.task.revision aws.eks.cluster.arn
    aws.log.group.names aws.log.group.arns aws.log.stream.names aws.log.stream.arns
    container.name container.id container.runtime container.image.name container.image.tag
    deployment.environment deployment.environment.name device.id device.model.identifier
    device.model.name device.manufacturer faas.name faas.id faas.version faas.instance
    faas.max_memory host.id host.name host.type host.arch host.image.name host.image.id
    host.image.version k8s.cluster.name k8s.node.name k8s.node.uid k8s.namespace.name
    k8s.pod.uid k8s.pod.name k8s.container.name k8s.replicaset.uid k8s.replicaset.name
    k8s.deployment.uid k8s.deployment.name k8s.statefulset.uid k8s.statefulset.name
    k8s.daemonset.uid k8s.daemonset.name k8s.job.uid k8s.job.name k8s.cronjob.uid
    k8s.cronjob.name os.type os.description os.name os.version process.pid
    process.executable.name process.executable.path process.command process.command_line
    process.command_args process.owner process.runtime.name process.runtime.version
    process.runtime.description service.name service.namespace service.instance.id
    service.version telemetry.sdk.name telemetry.sdk.language telemetry.sdk.version
    telemetry.auto.version telemetry.distro.name telemetry.distro.version webengine.name
    webengine.version webengine.description opencensus.starttime opencensus.exporterversion
    opencensus.resourcetype
    """.split()
)
_SCOPE_KEYS = (
    ("otel.scope.name", "otel.scope.version"),
    ("otel.library.name", "otel.library.version"),
)

Attributes = dict[str, AttributeValue]


@dataclass
class _Endpoint:
    service: str = ""
    ipv4: str = ""
    ipv6: str = ""
    port: int = 0


@dataclass
class _ZipkinSpan:
    where: str
    trace_id: bytes
    span_id: bytes
    parent_id: bytes
    name: str
    kind: str
    timestamp: int | None
    duration: int
    local: _Endpoint | None
    remote: _Endpoint | None
    tags: dict[str, str]
    annotations: list[tuple[int, str]]
    shared: bool


def zipkin_to_otlp(document: object) -> ExportTraceServiceRequest:
    """Zipkin v2 JSON (already parsed) as one OTLP request; BadRequest if it is malformed."""
    spans = _merge_parts([_parse_span(item, where) for item, where in _items(document)])
    ids = [
        (z.span_id, z.parent_id if z.parent_id not in (z.span_id, _ZERO_SPAN) else b"")
        for z in spans
    ]
    request = ExportTraceServiceRequest()
    resources: dict[tuple[Any, ...], tuple[ResourceSpans, dict[tuple[str, str], ScopeSpans]]] = {}
    for zspan, (span_id, parent_id) in zip(spans, ids, strict=True):
        tags = dict(zspan.tags)
        resource = _pop_resource(zspan, tags)
        scope = _pop_scope(tags)
        key = tuple(sorted(resource.items()))
        entry = resources.get(key)
        if entry is None:
            resource_spans = request.resource_spans.add()
            resource_spans.resource.attributes.extend(key_values(resource))
            entry = resources[key] = (resource_spans, {})
        scopes = entry[1]
        scope_spans = scopes.get(scope)
        if scope_spans is None:
            scope_spans = scopes[scope] = entry[0].scope_spans.add()
            scope_spans.scope.name, scope_spans.scope.version = scope
        scope_spans.spans.append(_span(zspan, tags, span_id, parent_id))
    return request


def _merge_parts(spans: list[_ZipkinSpan]) -> list[_ZipkinSpan]:
    """Spans reported in parts joined, as Zipkin joins them when it reads a trace
    (``zipkin2.internal.Trace.merge``): a client that sent its start and annotations
    first and its duration and error tag later. Parts are records of one trace and
    span id, one ``shared`` flag, a kind and local endpoint that do not disagree
    (Zipkin does not compare kinds: a CLIENT and a PRODUCER record of one id stay
    two spans here).
    Before, the later part was stored as a duplicate of the first and dropped (its
    duration and error with it)."""
    merged: list[_ZipkinSpan] = []
    by_id: dict[tuple[bytes, bytes, bool], list[_ZipkinSpan]] = {}
    for zspan in spans:
        key = (zspan.trace_id, zspan.span_id, zspan.shared)
        same = by_id.setdefault(key, [])
        into = next((m for m in same if _parts_of_one(m, zspan)), None)
        if into is None:
            same.append(zspan)
            merged.append(zspan)
        else:
            _merge_into(into, zspan)
    return merged


def _parts_of_one(one: _ZipkinSpan, other: _ZipkinSpan) -> bool:
    if one.kind and other.kind and one.kind != other.kind:
        return False
    return _endpoints_agree(one.local, other.local)


def _endpoints_agree(one: _Endpoint | None, other: _Endpoint | None) -> bool:
    if one is None or other is None:
        return True
    return all(
        not a or not b or a == b
        for a, b in (
            (one.service, other.service),
            (one.ipv4, other.ipv4),
            (one.ipv6, other.ipv6),
            (one.port, other.port),
        )
    )


def _merge_into(into: _ZipkinSpan, part: _ZipkinSpan) -> None:
    """``part``'s fields where ``into`` has none; tags from both (the later part's value
    for a tag in both, as Zipkin has it); annotations from both, once each."""
    into.parent_id = into.parent_id or part.parent_id
    into.kind = into.kind or part.kind
    into.name = into.name or part.name
    if not into.timestamp:
        into.timestamp = part.timestamp
    into.duration = into.duration or part.duration
    into.local = _merged_endpoint(into.local, part.local)
    into.remote = _merged_endpoint(into.remote, part.remote)
    into.tags = {**into.tags, **part.tags}
    into.annotations = sorted(set(into.annotations) | set(part.annotations))


def _merged_endpoint(one: _Endpoint | None, other: _Endpoint | None) -> _Endpoint | None:
    if one is None or other is None:
        return one or other
    return _Endpoint(
        service=one.service or other.service,
        ipv4=one.ipv4 or other.ipv4,
        ipv6=one.ipv6 or other.ipv6,
        port=one.port or other.port,
    )


def _service(zspan: _ZipkinSpan) -> str:
    return zspan.local.service if zspan.local is not None else ""


def _items(document: object) -> list[tuple[object, str]]:
    if isinstance(document, dict):
        return [(document, "Zipkin span 1")]  # one span on its own
    if not isinstance(document, list):
        raise BadRequest(
            f"Zipkin v2 JSON is {json_type(document)}, expected a list of spans "
            "(or a list of traces, each a list of spans)"
        )
    items: list[tuple[object, str]] = []
    for number, element in enumerate(document, start=1):
        if isinstance(element, list):
            for inner, item in enumerate(element, start=1):
                items.append((item, f"Zipkin trace {number}, span {inner}"))
        else:
            items.append((element, f"Zipkin span {number}"))
    return items


def _string(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{where}: {name} is {json_type(value)}, expected a string")
    return value


def _endpoint(value: object, where: str) -> _Endpoint | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"{where} is {json_type(value)}, expected an object")
    port = value.get("port")
    return _Endpoint(
        service=_string(value, "serviceName", where),
        ipv4=_string(value, "ipv4", where),
        ipv6=_string(value, "ipv6", where),
        port=0 if port is None else _zipkin_integer(port, f"{where}: port", maximum=65535),
    )


_DIGITS = re.compile(r"[+-]?[0-9]+")  # Java's Long.parseLong takes a "+"
_JSON_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _zipkin_integer(value: object, what: str, maximum: int | None = None) -> int:
    """A number as Zipkin's server reads it: also in quotes (Gson's nextLong), and a
    negative one as 0 (its Span and Endpoint builders clamp them); each refused the
    whole file."""
    if isinstance(value, str):
        text = value.strip()
        if not _JSON_NUMBER.fullmatch(text):  # int() took "1_000" and "١٠٠٠"
            raise BadRequest(f"{what} {shorten(value)!r} is not an integer")
        try:
            value = int(text) if _DIGITS.fullmatch(text) else float(text)  # "1000.0" as Gson
        except ValueError:  # over Python's 4,300 digits
            raise BadRequest(f"{what} {shorten(text)!r} is out of range") from None
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        value = 0
    if maximum is None:
        return integer(value, what)
    return integer(value, what, maximum=maximum)


def _parse_span(item: object, where: str) -> _ZipkinSpan:
    if not isinstance(item, dict):
        raise BadRequest(f"{where} is {json_type(item)}, expected a span object")
    name = _string(item, "name", where)
    if name:
        where = f"{where} ({shorten(name)!r})"
    trace_id = hex_id(item.get("traceId"), 16, f"{where}: traceId")
    span_id = hex_id(item.get("id"), 8, f"{where}: id")
    parent = item.get("parentId")
    parent_id = b"" if parent is None else hex_id(parent, 8, f"{where}: parentId")
    timestamp = item.get("timestamp")
    duration = item.get("duration")
    tags = item.get("tags")
    if tags is None:
        tags = {}
    if not isinstance(tags, dict):
        raise BadRequest(f"{where}: tags is {json_type(tags)}, expected an object of strings")
    for key, value in list(tags.items()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            # Zipkin's server takes a number as a tag value (Gson's nextString, its
            # literal text): one `"http.status_code": 200` refused the whole file. The
            # text is the parsed number's, as the Jaeger import writes one.
            tags[key] = json_text(value)
        elif not isinstance(value, str):
            raise BadRequest(
                f"{where}: tag {shorten(key)!r} is {json_type(value)}; Zipkin tag values are strings"
            )
    annotations = item.get("annotations")
    if annotations is None:
        annotations = []
    if not isinstance(annotations, list):
        raise BadRequest(f"{where}: annotations is {json_type(annotations)}, expected a list")
    if "binaryAnnotations" in item or any(
        isinstance(a, dict) and "endpoint" in a for a in annotations
    ):
        # v1's service names, kinds and tags live there: read as v2 they were all lost.
        raise BadRequest(
            f"{where}: Zipkin v1 JSON (binaryAnnotations, annotation endpoints); "
            "flowscope imports Zipkin v2 JSON, as /api/v2/spans and /api/v2/trace/{id} answer"
        )
    parsed: list[tuple[int, str]] = []
    for number, annotation in enumerate(annotations, start=1):
        a_where = f"{where}, annotation {number}"
        if not isinstance(annotation, dict):
            raise BadRequest(f"{a_where} is {json_type(annotation)}, expected an object")
        a_time = _zipkin_integer(annotation.get("timestamp"), f"{a_where}: timestamp")
        parsed.append(
            (
                micros_to_nanos(a_time, f"{a_where}: timestamp"),
                _string(annotation, "value", a_where),
            )
        )
    shared = item.get("shared", False)
    if shared is None:
        shared = False
    if not isinstance(shared, bool):
        raise BadRequest(f"{where}: shared is {json_type(shared)}, expected true or false")
    return _ZipkinSpan(
        where=where,
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=name,
        kind=_string(item, "kind", where).upper(),
        timestamp=None if timestamp is None else _zipkin_integer(timestamp, f"{where}: timestamp"),
        duration=0 if duration is None else _zipkin_integer(duration, f"{where}: duration"),
        local=_endpoint(item.get("localEndpoint"), f"{where}: localEndpoint"),
        remote=_endpoint(item.get("remoteEndpoint"), f"{where}: remoteEndpoint"),
        tags=tags,
        annotations=parsed,
        shared=shared,
    )


def _pop_resource(zspan: _ZipkinSpan, tags: dict[str, str]) -> Attributes:
    resource: Attributes = {}
    source = tags.pop(_SERVICE_NAME_SOURCE, "")
    # The Collector's Zipkin exporter's name for a resource without service.name is
    # none, as its receiver reads it: it was a service of that name on the map.
    if zspan.local is not None and zspan.local.service not in ("", NO_SERVICE_NAME):
        resource[source or "service.name"] = zspan.local.service
    for key in [k for k in tags if k in _RESOURCE_KEYS]:
        resource[key] = tags.pop(key)
    return resource


def _pop_scope(tags: dict[str, str]) -> tuple[str, str]:
    """The first named scope pair; the tags of the other (and a version without its
    name) stay attributes, where they were dropped."""
    for name_key, version_key in _SCOPE_KEYS:
        if name_key in tags:
            return tags.pop(name_key), tags.pop(version_key, "")
    return "", ""


def _span(zspan: _ZipkinSpan, tags: dict[str, str], span_id: bytes, parent_id: bytes) -> Span:
    where = zspan.where
    span = Span(trace_id=zspan.trace_id, span_id=span_id, parent_span_id=parent_id)
    span.name = zspan.name
    if "w3c.tracestate" in tags:
        span.trace_state = tags.pop("w3c.tracestate")
    if zspan.kind in _KINDS:
        span.kind = _KINDS[zspan.kind]
    elif "span.kind" in tags:
        if tags.pop("span.kind") == "internal":
            span.kind = Span.SPAN_KIND_INTERNAL
    _set_status(tags, span)
    _add_links(tags, span, where)

    attributes: Attributes = dict(tags)
    local, remote = zspan.local, zspan.remote
    if local is not None:
        if local.ipv4 or local.ipv6:
            attributes["net.host.ip"] = local.ipv6 or local.ipv4
        if local.port > 0:
            attributes["net.host.port"] = local.port
    if remote is not None:
        if remote.service:
            attributes["peer.service"] = remote.service
        if remote.ipv4 or remote.ipv6:
            attributes["net.peer.ip"] = remote.ipv6 or remote.ipv4
        if remote.port > 0:
            attributes["net.peer.port"] = remote.port
    start = zspan.timestamp or 0
    if start:
        span.start_time_unix_nano = micros_to_nanos(start, f"{where}: timestamp")
    else:
        attributes[_START_TIME_ABSENT] = True
        # Placed by its earliest annotation, as Zipkin placed spans before v2 had a
        # timestamp: at 0 (the translator's choice) one such span moved its whole
        # trace view to 1970, and retention deleted it from a trace of today.
        span.start_time_unix_nano = min((t for t, _ in zspan.annotations), default=0)
    end = span.start_time_unix_nano + zspan.duration * 1000
    if end >= 1 << 64:
        raise BadRequest(f"{where}: timestamp + duration {end // 1000} µs is too far in the future")
    span.end_time_unix_nano = end
    span.attributes.extend(key_values(attributes))

    for time_ns, value in zspan.annotations:
        _add_event(span, time_ns, value)
    return span


def _set_status(tags: dict[str, str], span: Span) -> None:
    if "otel.status_code" in tags:
        value = tags.pop("otel.status_code")
        span.status.code = _STATUS_CODES.get(value.upper(), Status.STATUS_CODE_UNSET)
        if "otel.status_description" in tags:
            span.status.message = tags.pop("otel.status_description")
    error = tags.get("error")
    if error is not None and error.lower() != "false":
        del tags["error"]
        span.status.code = Status.STATUS_CODE_ERROR
        if not span.status.message and error.lower() != "true":
            span.status.message = error


def _add_links(tags: dict[str, str], span: Span, where: str) -> None:
    """``otlp.link.N`` tags: ``traceid|spanid|tracestate|{json attributes}|dropped``."""
    for number in range(_MAX_LINKS):
        key = f"otlp.link.{number}"
        value = tags.pop(key, None)
        if value is None:
            return
        parts = value.split("|")
        if len(parts) < 5:
            continue
        link_where = f"{where}: tag {key}"
        # An empty id is the zero id, as the Collector reads it (its Zipkin exporter
        # writes one for a link without ids): refusing it refused the whole file.
        link = span.links.add(
            trace_id=hex_id(parts[0], 16, f"{link_where} trace id") if parts[0] else b"",
            span_id=hex_id(parts[1], 8, f"{link_where} span id") if parts[1] else b"",
            trace_state=parts[2],
        )
        attributes = _json_attributes("|".join(parts[3:-1]))
        if attributes is None:
            raise BadRequest(f"{link_where}: attributes are not a JSON object")
        link.attributes.extend(key_values(attributes))
        dropped = _count(parts[-1])
        if dropped is None:
            raise BadRequest(f"{link_where}: dropped attributes count {parts[-1]!r} is not a count")
        link.dropped_attributes_count = dropped


def _add_event(span: Span, time_ns: int, value: str) -> None:
    event = span.events.add(time_unix_nano=time_ns, name=value)
    parts = value.split("|")
    if len(parts) < 3:
        return
    attributes = _json_attributes("|".join(parts[1:-1]))
    dropped = _count(parts[-1])
    if attributes is None or dropped is None:
        return  # not the exporter's encoding: the whole value is the name
    event.name = parts[0]
    event.attributes.extend(key_values(attributes))
    event.dropped_attributes_count = dropped


def _json_attributes(text: str) -> Attributes | None:
    """The translator's jsonMapToAttributeMap: strings, numbers (whole ones as ints), booleans."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    attributes: Attributes = {}
    for key, value in document.items():
        if isinstance(value, str | bool):
            attributes[key] = value
        elif isinstance(value, int):
            attributes[key] = value if -(1 << 63) <= value < (1 << 63) else float(value)
        elif isinstance(value, float):
            attributes[key] = int(value) if value.is_integer() and abs(value) < 2**63 else value
    return attributes


def _count(text: str) -> int | None:
    if not text.isdigit() or not text.isascii():
        return None
    value = int(text)
    return value if value < (1 << 32) else None
