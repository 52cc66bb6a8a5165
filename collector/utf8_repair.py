"""OTLP protobuf whose strings are not all valid UTF-8, parsed with U+FFFD in place of
each bad sequence.

Protobuf requires a ``string`` field to hold UTF-8, and the Python library refuses
the whole message otherwise. The OpenTelemetry Collector's receiver does not check,
so SDKs that do not either (C++, Rust, Go through pdata) send such strings, and a
Collector in front of flowscope passed them on: one byte in one attribute made the
request a 400, which OTLP exporters do not retry, and every span of it was lost.
DuckDB's VARCHAR must be UTF-8, so the bad bytes are replaced, as the OTLP/JSON
decoder replaces half a surrogate pair, and the sender is told (``partial_success``).

The message is parsed with classes built from the same descriptors with every
``string`` field made ``bytes`` (the same wire type), which take any bytes; the
strings are repaired there and the message parsed again by the real classes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor, FileDescriptor
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_BYTES = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
_LABEL_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED


def is_utf8_error(exc: DecodeError) -> bool:
    return "UTF-8" in str(exc)


def _files(file: FileDescriptor, into: list[FileDescriptor]) -> list[FileDescriptor]:
    """``file`` and its dependencies, each after what it depends on."""
    for dependency in file.dependencies:
        _files(dependency, into)
    if all(f.name != file.name for f in into):
        into.append(file)
    return into


@cache
def _lenient() -> tuple[type[Message], frozenset[tuple[str, str]]]:
    """The request's class with bytes for strings, and the (message, field) names that
    were strings."""
    pool = descriptor_pool.DescriptorPool()
    strings: set[tuple[str, str]] = set()

    def loosen(messages: Any, scope: str) -> None:
        for message in messages:
            name = f"{scope}.{message.name}"
            for field in message.field:
                if field.type == _STRING:
                    field.type = _BYTES
                    strings.add((name, field.name))
            loosen(message.nested_type, name)

    for file in _files(ExportTraceServiceRequest.DESCRIPTOR.file, []):
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        loosen(proto.message_type, proto.package)
        pool.Add(proto)
    name = ExportTraceServiceRequest.DESCRIPTOR.full_name
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name)), frozenset(strings)


def parse_repairing(body: bytes) -> tuple[ExportTraceServiceRequest, int]:
    """The request in ``body``, with how many of its strings had bytes replaced.
    Raises ``DecodeError`` for a body that is not the message for another reason."""
    lenient_class, strings = _lenient()
    lenient = lenient_class()
    lenient.ParseFromString(body)
    repaired = _repair(lenient, strings)
    request = ExportTraceServiceRequest()
    request.ParseFromString(lenient.SerializeToString())
    return request, repaired


def _repair(message: Message, strings: frozenset[tuple[str, str]]) -> int:
    descriptor = message.DESCRIPTOR
    repaired = 0
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            values = value if _repeated(field) else [value]
            repaired += sum(_repair(item, strings) for item in values)
        elif (descriptor.full_name, field.name) in strings:
            if _repeated(field):
                texts = [_utf8(v) for v in value]
                repaired += sum(t != v for t, v in zip(texts, value, strict=True))
                value[:] = texts
            elif (text := _utf8(value)) != value:
                setattr(message, field.name, text)
                repaired += 1
    return repaired


def _repeated(field: Any) -> bool:
    repeated = getattr(field, "is_repeated", None)  # newer protobufs; 7 has no ``label``
    if repeated is None:
        return bool(field.label == _LABEL_REPEATED)
    return bool(repeated)


def repaired_warning(repaired: int) -> str:
    """What ``partial_success`` and import reports say of the repaired strings."""
    return (
        f"{repaired} string(s) were not valid UTF-8: stored with U+FFFD in place of each "
        "bad byte sequence"
    )


def _utf8(value: bytes) -> bytes:
    return value.decode("utf-8", "replace").encode("utf-8")
