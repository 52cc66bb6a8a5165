"""The one decode function behind every transport: body bytes -> SpanBatch."""

from __future__ import annotations

import zlib

import cramjam
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.collector.decode_budget import (
    check_copied_resources,
    check_json_containers,
    check_protobuf_messages,
)
from flowscope.collector.errors import BadRequest, RequestTooLarge
from flowscope.collector.fast_flatten import count_messages, flatten_body
from flowscope.collector.flatten import FlattenResult, flatten_request
from flowscope.collector.otlp_json import request_from_json
from flowscope.collector.utf8_repair import is_utf8_error, repair_body, repaired_warning

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


# The encodings the OpenTelemetry Collector's OTLP receiver takes (its confighttp),
# which its exporters' ``compression:`` setting sends: zstd, snappy and lz4 as well as
# gzip and deflate/zlib.
ENCODINGS = ("gzip", "deflate", "zlib", "zstd", "snappy", "x-snappy-framed", "lz4", "identity")
_ALIASES = {"x-gzip": "gzip", "zlib": "deflate"}  # x-gzip: gzip's old name (RFC 9110)
# The first bytes of a framed snappy stream (its stream identifier chunk): "snappy"
# may be framed or a raw block, told apart by them as the Collector does.
_SNAPPY_FRAMED = b"\xff\x06\x00\x00sNaPpY"


def decompress(body: bytes, encoding: str | None, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Undo Content-Encoding, refusing output past ``max_bytes`` (a bomb guard)."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    name = _ALIASES.get(name, name)
    if name in ("zstd", "snappy", "x-snappy-framed", "lz4"):
        return _decompress_other(body, name, max_bytes)
    if name not in ("gzip", "deflate"):
        raise BadRequest(
            f"unsupported Content-Encoding {encoding!r}; use one of {', '.join(ENCODINGS)}"
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


def _decompress_other(body: bytes, name: str, max_bytes: int) -> bytes:
    """zstd, snappy (framed or a raw block) and lz4 (frame) bodies, decoded into a
    buffer that doubles, from 8 times the body, up to ``max_bytes`` + 1: decoding
    stops at its end, so a bomb costs no more memory than that, and an ordinary body
    no more than a few times its decoded size (a buffer of the whole limit, zeroed,
    cost every 1 KB request 20 MB and 1.5 ms)."""
    if name == "snappy" and not body.startswith(_SNAPPY_FRAMED):
        decode, shown = cramjam.snappy.decompress_raw_into, "snappy (raw block)"
    elif name in ("snappy", "x-snappy-framed"):
        decode, shown = cramjam.snappy.decompress_into, "snappy (framed)"
    else:
        decode, shown = getattr(cramjam, name).decompress_into, name
    if not body:  # as for gzip: an empty body is no zstd, snappy or lz4 data
        raise BadRequest(f"body is empty, not {shown} data")
    capacity = min(max_bytes + 1, max(_FIRST_BUFFER, 8 * len(body)))
    while True:
        out = bytearray(capacity)
        try:
            size = decode(body, out)
        except cramjam.DecompressionError as exc:
            text = str(exc)
            # More than the buffer holds (as cramjam 2.14's decoders word it).
            if "failed to write whole buffer" not in text and "smaller than required" not in text:
                raise BadRequest(f"body is not valid {shown}: {text}") from exc
            if capacity > max_bytes:
                raise RequestTooLarge(f"decompressed body exceeds {max_bytes} bytes") from exc
            capacity = min(max_bytes + 1, 2 * capacity)
            continue
        if size > max_bytes:
            raise RequestTooLarge(f"decompressed body exceeds {max_bytes} bytes")
        return bytes(memoryview(out)[:size])


_FIRST_BUFFER = 64 * 1024


def parse_request(body: bytes, content_type: str) -> tuple[ExportTraceServiceRequest, int]:
    """The request, and how many of its strings had invalid UTF-8 replaced
    (``utf8_repair``)."""
    kind = media_type(content_type)
    if kind == PROTOBUF:
        request, fixed, repaired = _parse_protobuf(body)
        return request or _strict(fixed), repaired
    if kind == JSON:
        return request_from_json(body), 0
    raise BadRequest(f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}")


def _parse_protobuf(body: bytes) -> tuple[ExportTraceServiceRequest | None, bytes, int]:
    """The request when its strings are UTF-8; else None, the body with them repaired
    (``utf8_repair``, which the fast path takes), and how many strings were."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
        return request, body, 0
    except DecodeError as exc:
        if not is_utf8_error(exc):
            raise BadRequest(f"invalid OTLP protobuf: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest(f"invalid OTLP protobuf: {exc}") from exc
    try:
        fixed, repaired = repair_body(body)
    except (DecodeError, RecursionError) as exc:
        raise BadRequest(f"invalid OTLP protobuf: {exc}") from exc
    return None, fixed, repaired


def _strict(body: bytes) -> ExportTraceServiceRequest:
    """A body ``utf8_repair`` made: one protobuf can still refuse (nested too deep)."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise BadRequest(f"invalid OTLP protobuf: {exc}") from exc
    return request


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
    """The Python path alone: protobuf objects, then ``flatten_request``; a protobuf
    body whose strings had to be repaired goes on to the fast path (a 20 MB request
    took 4.9 s to decode otherwise, past the Collector's 5 s timeout)."""
    if media_type(content_type) != PROTOBUF:
        if media_type(content_type) == JSON:
            check_json_containers(body)
        return _flattened(parse_request(body, content_type)[0])
    check_protobuf_messages(count_messages(body))
    parsed, fixed, repaired = _parse_protobuf(body)
    if parsed is not None:
        return _flattened(parsed)
    result = decode_fast(fixed) or _flattened(_strict(fixed))
    result.warning = repaired_warning(repaired)
    return result


def _flattened(request: ExportTraceServiceRequest) -> FlattenResult:
    check_copied_resources(request)
    return flatten_request(request)


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
