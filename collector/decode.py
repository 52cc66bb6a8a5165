"""The one decode function behind every transport: body bytes -> SpanBatch."""

from __future__ import annotations

import zlib

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.collector.errors import BadRequest, RequestTooLarge
from flowscope.collector.fast_flatten import flatten_body
from flowscope.collector.flatten import FlattenResult, flatten_request
from flowscope.collector.otlp_json import request_from_json

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decompress(body: bytes, encoding: str | None, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Undo Content-Encoding, refusing output past ``max_bytes`` (a gzip bomb guard)."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    if name == "x-gzip":  # gzip's old name, which HTTP recipients take as gzip (RFC 9110)
        name = "gzip"
    if name not in ("gzip", "deflate"):
        raise BadRequest(
            f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or identity"
        )
    wbits = 16 + zlib.MAX_WBITS if name == "gzip" else zlib.MAX_WBITS
    view = memoryview(body)
    parts: list[bytes] = []
    size = position = 0
    # A gzip body may hold several members one after another (RFC 1952 2.2); they
    # decompress to their concatenation, as Go's gzip reader (the Collector's) reads them.
    # The input goes in slices: handing each member the whole rest of the body copied
    # it once per member (minutes of CPU for a body of tiny members).
    for _ in range(MAX_GZIP_MEMBERS):
        inflater = zlib.decompressobj(wbits)
        while not inflater.eof:
            if position >= len(view):
                raise BadRequest(f"body is truncated {name} data")
            piece = view[position : position + _SLICE_BYTES]
            position += len(piece)
            try:
                out = inflater.decompress(piece, max_bytes + 1 - size)
            except zlib.error as exc:
                raise BadRequest(f"body is not valid {name}: {exc}") from exc
            parts.append(out)
            size += len(out)
            if size > max_bytes:
                raise RequestTooLarge(f"decompressed body exceeds {max_bytes} bytes")
        position -= len(inflater.unused_data)  # the next member's start, in this slice
        if name != "gzip" or position >= len(view):
            return b"".join(parts)
    raise BadRequest(f"body has more than {MAX_GZIP_MEMBERS} gzip members")


MAX_GZIP_MEMBERS = 1_000
_SLICE_BYTES = 256 * 1024


def parse_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    kind = media_type(content_type)
    if kind == PROTOBUF:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise BadRequest(f"invalid OTLP protobuf: {exc}") from exc
        return request
    if kind == JSON:
        return request_from_json(body)
    raise BadRequest(f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}")


def decode(body: bytes, content_type: str = PROTOBUF) -> FlattenResult:
    """Decode an uncompressed OTLP trace export body into spans for the writer.

    Protobuf bodies take the C fast path when it is built and the request is an
    ordinary one; everything else (and every error) comes from the Python path.
    """
    return decode_fast(body, content_type) or decode_python(body, content_type)


def decode_fast(body: bytes, content_type: str = PROTOBUF) -> FlattenResult | None:
    """The C fast path, or None when the body is not for it (JSON, unusual, not built)."""
    return flatten_body(body) if media_type(content_type) == PROTOBUF else None


def decode_python(body: bytes, content_type: str = PROTOBUF) -> FlattenResult:
    """The Python path alone: protobuf objects, then ``flatten_request``."""
    return flatten_request(parse_request(body, content_type))


__all__ = [
    "decode",
    "decode_fast",
    "decode_python",
    "decompress",
    "media_type",
    "parse_request",
    "PROTOBUF",
    "JSON",
]
