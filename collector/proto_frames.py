"""Protobuf files as the OpenTelemetry Collector's file exporter writes them.

With ``format: proto`` the exporter writes each request after its length: 4 bytes,
an unsigned big-endian integer (collector-contrib ``exporter/fileexporter``,
``exportMessageAsBuffer``). Read as one request, such a file was "Wire format was
corrupt". With its ``compression: zstd`` (unless the feature gate
``exporter.file.nativeCompression`` is on) each message is compressed on its own before
that length (for ``format: json`` too): ``file_import`` decompresses each.

A file is taken as framed when its lengths chain from message to message to exactly
its end (or to a last message cut off by the end, as while the exporter writes) and its
first message decodes. A plain request cannot pass for one: it starts with the tag of
``resource_spans`` (0x0A), which as the first byte of a length makes that length over
160 MiB, longer than any file it could be in until files grow that large; there the
chain and the decoding still have to agree. A cut off last message is accepted only
after a first byte 0x00 (a message under 16 MiB), which no plain request starts with:
field number 0 does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.collector.import_formats import ZSTD_MAGIC

LENGTH_BYTES = 4


@dataclass(frozen=True)
class Frames:
    """Where the messages of a framed file are."""

    bounds: list[tuple[int, int]]  # (start, end) of each whole message, past its length
    cut_at: int  # where a last message cut off by the end of the file starts; -1: none
    zstd: bool  # the messages are zstd frames (the exporter's ``compression: zstd``)


def find_frames(handle: BinaryIO, size: int) -> Frames | None:
    """The file's messages when it is framed (see the module's docstring), else None."""
    bounds: list[tuple[int, int]] = []
    position = 0
    while position < size:
        handle.seek(position)
        prefix = handle.read(LENGTH_BYTES)
        end = position + LENGTH_BYTES + int.from_bytes(prefix, "big")
        if len(prefix) < LENGTH_BYTES or end > size:
            break
        bounds.append((position + LENGTH_BYTES, end))
        position = end
    cut_at = position if position < size else -1
    handle.seek(0)
    if cut_at >= 0 and handle.read(1) != b"\x00":
        return None
    if not bounds:
        # The first message cut off (the exporter is writing it), when what follows the
        # length starts as a request does (its resource_spans tag) or as zstd: any
        # other file starting with 0x00 (a .wasm, zeros) is no trace file.
        handle.seek(LENGTH_BYTES)
        opening = handle.read(len(ZSTD_MAGIC))
        # (The file may end inside that start too, or right after the length.)
        if opening and not (ZSTD_MAGIC.startswith(opening) or opening.startswith(b"\x0a")):
            return None
        return Frames([], cut_at, zstd=opening == ZSTD_MAGIC)
    if all(begin == finish for begin, finish in bounds):  # zeros chain as lengths of 0
        return None
    start, end = bounds[0]
    handle.seek(start)
    first = handle.read(end - start)
    if first.startswith(ZSTD_MAGIC):
        return Frames(bounds, cut_at, zstd=True)
    try:
        ExportTraceServiceRequest().ParseFromString(first)
    except (DecodeError, RecursionError):
        return None
    return Frames(bounds, cut_at, zstd=False)
