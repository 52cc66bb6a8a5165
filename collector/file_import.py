"""``flowscope import``: files in OTLP JSON / JSON lines / protobuf, Jaeger or Zipkin JSON.

Every format is turned into OTLP requests and goes through the same flatten and
writer as live traffic, so dedup and validation are identical. A file whose
content hash was imported before is skipped whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.collector.decode import PROTOBUF, parse_request
from flowscope.collector.errors import BadRequest
from flowscope.collector.flatten import FlattenResult, SpanBatch, flatten_request
from flowscope.collector.import_formats import detect_format
from flowscope.collector.jaeger_json import jaeger_to_otlp
from flowscope.collector.otlp_json import request_from_json, request_from_json_object
from flowscope.collector.zipkin_json import zipkin_to_otlp

CHUNK_SPANS = 16_384
Progress = Callable[[int], None]


@dataclass
class FileReport:
    path: str
    format: str
    spans: int = 0  # valid spans read
    stored: int = 0  # of those, new
    rejected: int = 0
    skipped_reason: str = ""
    messages: list[str] | None = None

    @property
    def duplicates(self) -> int:
        return self.spans - self.stored


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sniff(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    return detect_format(head, path.name)


def read_requests(
    path: Path, fmt: str, progress: Progress | None = None
) -> Iterator[ExportTraceServiceRequest]:
    """The file's content as OTLP requests; ``progress`` gets bytes consumed."""
    if fmt == "otlp-jsonl":
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if progress:
                    progress(len(line))
                if not line.strip():
                    continue
                try:
                    yield request_from_json(line)
                except BadRequest as exc:
                    raise BadRequest(f"line {number}: {exc}") from exc
        return
    data = path.read_bytes()
    if progress:
        progress(len(data))
    if fmt == "otlp-protobuf":
        yield parse_request(data, PROTOBUF)
        return
    if fmt == "otlp-json":
        yield request_from_json(data)
        return
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise BadRequest(f"not valid JSON: {exc}") from exc
    if fmt == "jaeger-json":
        yield jaeger_to_otlp(document)
    elif fmt == "zipkin-json":
        yield zipkin_to_otlp(document)
    else:
        yield request_from_json_object(document)


def flattened_chunks(requests: Iterator[ExportTraceServiceRequest]) -> Iterator[FlattenResult]:
    """Flatten requests, merging small ones so each commit carries many spans."""
    tables: list[pa.Table] = []
    keys: list[bytes] = []
    rejected = 0
    reasons: list[str] = []
    size = 0
    for request in requests:
        result = flatten_request(request)
        tables.append(result.batch.table)
        keys.extend(result.batch.keys)
        rejected += result.rejected
        reasons.extend(result.reasons[: max(0, 5 - len(reasons))])
        size += result.batch.spans
        if size >= CHUNK_SPANS:
            yield FlattenResult(SpanBatch(pa.concat_tables(tables), keys), rejected, reasons)
            tables, keys, rejected, reasons, size = [], [], 0, [], 0
    if tables or rejected:
        table = (
            pa.concat_tables(tables)
            if tables
            else flatten_request(ExportTraceServiceRequest()).batch.table
        )
        yield FlattenResult(SpanBatch(table, keys), rejected, reasons)
