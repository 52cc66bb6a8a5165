"""OTLP protobuf whose strings are not all valid UTF-8, made valid: U+FFFD in place of
each bad byte sequence.

Protobuf requires a ``string`` field to hold UTF-8, and the Python library refuses
the whole message otherwise. The OpenTelemetry Collector's receiver does not check,
so SDKs that do not either (C++, Rust, Go through pdata) send such strings, and a
Collector in front of flowscope passed them on: one byte in one attribute made the
request a 400, which OTLP exporters do not retry, and every span of it was lost.
DuckDB's VARCHAR must be UTF-8, so the bad bytes are replaced, as the OTLP/JSON
decoder replaces half a surrogate pair, and the sender is told (``partial_success``).

The repair works on the wire format and goes down only into the parts that protobuf
refuses: a message that parses is kept byte for byte, one that does not is read field
by field, its strings repaired and its sub-messages repaired the same way. So a 20 MB
request with one bad string costs a few parses of the path to it, not a walk of every
message (which took 3.4 s).
"""

from __future__ import annotations

from functools import cache

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_VARINT, _I64, _LEN, _START_GROUP, _END_GROUP, _I32 = 0, 1, 2, 3, 4, 5
_MAX_DEPTH = 100  # protobuf's own limit of message nesting


def is_utf8_error(exc: DecodeError) -> bool:
    return "UTF-8" in str(exc)


def repair_body(body: bytes) -> tuple[bytes, int]:
    """``body`` with its strings' invalid UTF-8 replaced, and how many strings had bytes
    replaced: a body the C fast path and protobuf take. Raises ``DecodeError`` for a
    body that is not the message for another reason."""
    return _repaired(body, ExportTraceServiceRequest.DESCRIPTOR)


def repaired_warning(repaired: int) -> str:
    """What ``partial_success`` and import reports say of the repaired strings."""
    return (
        f"{repaired} string(s) were not valid UTF-8: stored with U+FFFD in place of each "
        "bad byte sequence"
    )


@cache
def _message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


# Parsing a part to see whether it is whole costs its size: along a path of nested
# values (an AnyValue's lists in lists) that is depth times the bytes below. Past this
# depth the parts are read field by field without the check (the request, its
# resources, scopes, spans and their attributes are above it).
CHECKED_DEPTH = 6


def _repaired(data: bytes, descriptor: Descriptor, depth: int = 0) -> tuple[bytes, int]:
    if depth < CHECKED_DEPTH:
        try:
            _message_class(descriptor).FromString(data)
            return data, 0
        except DecodeError as exc:
            if not is_utf8_error(exc):
                raise
    elif depth > _MAX_DEPTH:
        raise DecodeError("nested too deeply")
    out = bytearray()
    repaired = 0
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        wire = tag & 7
        if wire != _LEN:
            pos = _skip(data, pos, wire, tag >> 3)
            out += data[start:pos]
            continue
        length, pos = _varint(data, pos)
        end = pos + length
        if end > len(data):
            raise DecodeError("truncated length-delimited field")
        payload = data[pos:end]
        pos = end
        field = descriptor.fields_by_number.get(tag >> 3)
        if field is not None and field.message_type is not None:
            fixed, count = _repaired(payload, field.message_type, depth + 1)
        elif field is not None and field.type == FieldDescriptor.TYPE_STRING:
            fixed = payload.decode("utf-8", "replace").encode("utf-8")
            count = int(fixed != payload)
        else:
            fixed, count = payload, 0
        if count:
            out += data[start : start + _varint_size(data, start)] + _varint_bytes(len(fixed))
            out += fixed
            repaired += count
        else:
            out += data[start:pos]
    return bytes(out), repaired


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise DecodeError("truncated or overlong varint")


def _varint_size(data: bytes, pos: int) -> int:
    return _varint(data, pos)[1] - pos


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _skip(data: bytes, pos: int, wire: int, number: int) -> int:
    """Past a field that is not length-delimited: kept as it is (protobuf keeps an
    unknown group's bytes unchecked too)."""
    if wire == _VARINT:
        return _varint(data, pos)[1]
    if wire == _START_GROUP:
        while True:  # to its end-group tag, over the fields (and groups) inside
            tag, pos = _varint(data, pos)
            if tag & 7 == _END_GROUP:
                if tag >> 3 != number:
                    raise DecodeError("a group ends with another field's number")
                return pos
            if tag & 7 == _LEN:
                length, pos = _varint(data, pos)
                pos += length
            else:
                pos = _skip(data, pos, tag & 7, tag >> 3)
            if pos > len(data):
                raise DecodeError("truncated group")
    size = {_I64: 8, _I32: 4}.get(wire)
    if size is None or pos + size > len(data):
        raise DecodeError(f"wire type {wire} cut short or unknown")
    return pos + size
