"""How many values a received request may hold, counted before it is parsed.

Parsed into Python objects, every JSON object or array, and every protobuf message the
Python path builds, costs 100-700 bytes however few bytes the request spends on it:
an 18 MB OTLP/JSON body of 6,000,000 empty attributes (``{},{},...``) took a decode
worker to 4.3 GB and 27 s, and a 20 MB protobuf body of 10,400,000 empty KeyValues
(two bytes each) to 1.5 GB. The size limit counts bytes, so this counts values.
Exporters' requests spend about 46 bytes of JSON on each object or array and 22 bytes
of protobuf on each message: a 20 MiB request holds about 450,000 or 960,000.

The C fast path flattens protobuf without such objects, but what it stores costs too
(9.5M empty events, 19 MB, took the server to 2.6 GB): it counts the same messages as
it reads them and leaves a request past the limit to the Python path, which refuses
it. It also leaves one whose resources it would copy into more than
``MAX_EXPANDED_BYTES`` of scope groups.
"""

from __future__ import annotations

import json
import re

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.collector.errors import BadRequest, RequestTooLarge
from flowscope.store.table_size import expanded_bound, expanded_bytes

MAX_JSON_CONTAINERS = 1_000_000
MAX_PROTOBUF_MESSAGES = 2_000_000

_ADVICE = "send fewer spans or attributes per request (an SDK's max_export_batch_size)"

# A JSON string: braces and brackets inside one are text, not containers. One left
# open runs to the end (the parser stops there): failing to close it from every quote
# again rescanned the rest of the body each time: 19.6 s for a 1 MB body (review).
# Possessive, so nothing is tried twice.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)


def json_containers(body: bytes) -> int:
    """How many objects and arrays ``body`` holds, counting from its text alone.

    Counting the bytes is an upper bound and costs milliseconds; only a body over the
    limit by that count has its strings taken out to count exactly (braces in string
    values, such as JSON documents captured as attributes, are not containers)."""
    rough = body.count(b"{") + body.count(b"[")
    if rough <= MAX_JSON_CONTAINERS:
        return rough
    bare = _STRING.sub(b"", body)
    return bare.count(b"{") + bare.count(b"[")


def check_json_containers(body: bytes) -> None:
    """RequestTooLarge when ``body`` holds more than ``MAX_JSON_CONTAINERS``; BadRequest
    when it is not UTF-8 (the count reads UTF-8: in UTF-16, an escaped quote's NUL
    byte made it miss 3.5M containers, and RFC 8259 has JSON between systems UTF-8,
    as the Collector reads it)."""
    if json.detect_encoding(body) not in ("utf-8", "utf-8-sig"):
        raise BadRequest("OTLP/JSON body is not UTF-8 text (it is UTF-16 or UTF-32)")
    count = json_containers(body)
    if count > MAX_JSON_CONTAINERS:
        raise RequestTooLarge(
            f"OTLP/JSON body holds {count:,} JSON objects and arrays, more than the "
            f"{MAX_JSON_CONTAINERS:,} a request may; {_ADVICE}"
        )


def check_protobuf_messages(count: int | None) -> None:
    """RequestTooLarge when ``count`` (``fast_flatten.count_messages``: None without the
    C extension, which does not count) is more than ``MAX_PROTOBUF_MESSAGES``."""
    if count is not None and count > MAX_PROTOBUF_MESSAGES:
        raise RequestTooLarge(
            f"OTLP protobuf body holds more than {MAX_PROTOBUF_MESSAGES:,} messages (spans, "
            f"attributes, values, events, links, entity ref keys), more than a request may; {_ADVICE}"
        )


# What a request's spans may come to once each carries its resource and scope, as
# otel_traces stores them (a copy a span): a 2 MB request of 1,000 spans sharing a
# 2 MB resource value stored 2 GB and took the server to 7 GB. Exporters' requests come
# to less: 8,192 spans of a 4 KB resource, 32 MiB, or of a Kubernetes-style resource of
# 61 attributes, 26-33 MiB. The server's memory to store them is ~5 times this count.
MAX_EXPANDED_BYTES = 64 * 1024 * 1024


# A request whose copied groups come to at most this by ``expanded_bound`` is weighed
# by that bound, not counted exactly: the queue's weights then run high by at most this
# a request (its byte limits are 256 MiB and 64 MiB a commit).
SMALL_EXPANSION = 64 * 1024


def check_expansion(table: pa.Table) -> int:
    """RequestTooLarge when ``expanded_bytes`` passes ``MAX_EXPANDED_BYTES``; else that
    size (or, for a small request, ``expanded_bound``, which is at least that size)."""
    bound = expanded_bound(table)
    size = bound if bound <= SMALL_EXPANSION else expanded_bytes(table)
    if size > MAX_EXPANDED_BYTES:
        raise RequestTooLarge(
            f"OTLP request's resource and scope attributes, stored with each of its spans, "
            f"come to {size:,} bytes, more than the {MAX_EXPANDED_BYTES:,} a request may; "
            "send fewer spans per request, or smaller resource attributes"
        )
    return size


def check_copied_resources(request: ExportTraceServiceRequest) -> None:
    """RequestTooLarge when flattening would copy more than ``MAX_EXPANDED_BYTES`` of
    resources: each scope group gets its resource's attributes (200k attributes in
    300 groups, a 2.9 MB request, took 2 GB), before ``check_expansion`` could say no."""
    copied = sum(
        (
            resource_spans.resource.ByteSize()
            + 10 * len(resource_spans.resource.attributes)  # 16 an entry, as the C path counts
            + len(resource_spans.schema_url.encode())  # a 4 MB url in 400 groups: 5 GB
        )
        * len(resource_spans.scope_spans)
        for resource_spans in request.resource_spans
    )
    if copied > MAX_EXPANDED_BYTES:
        raise RequestTooLarge(
            f"OTLP request's resource attributes, copied for each of its scopes, come to "
            f"{copied:,} bytes, more than the {MAX_EXPANDED_BYTES:,} a request may; send "
            "fewer scopes per resource, or smaller resource attributes"
        )
