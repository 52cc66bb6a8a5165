"""``flowscope import``: files in OTLP JSON / JSON lines / protobuf, Jaeger or Zipkin JSON.

Every format is turned into OTLP requests and goes through the same flatten and
writer as live traffic, so dedup and validation are identical. A file whose
content hash was imported before is skipped whole.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import zstandard
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.collector import fast_flatten
from flowscope.collector.decode import JSON, PROTOBUF, decompress, parse_request
from flowscope.collector.errors import BadRequest, RequestTooLarge
from flowscope.collector.flatten import (
    MAX_REJECT_REASONS,
    FlattenResult,
    SpanBatch,
    flatten_request,
)
from flowscope.collector.import_formats import (
    ACCEPTED_FORMATS,
    BLANK,
    BOM,
    EMPTY,
    GZIP_MAGIC,
    JAEGER_V3_JSON,
    OTHER_SIGNALS,
    OTLP_JSON,
    OTLP_JSONL,
    OTLP_PROTOBUF,
    OTLP_PROTOBUF_FRAMED,
    OTLP_ZSTD_FRAMED,
    TEMPO_JSON,
    ZSTD_MAGIC,
    OtherSignal,
    Undecided,
    detect_format,
    json_type,
    tempo_to_otlp_json,
    trailing_bytes,
)
from flowscope.collector.jaeger_json import jaeger_to_otlp
from flowscope.collector.otlp_json import (
    load_json,
    request_from_json,
    request_from_json_object,
    without_half_pairs,
)
from flowscope.collector.proto_frames import LENGTH_BYTES, find_frames
from flowscope.collector.zipkin_json import zipkin_to_otlp
from flowscope.store.writer import MAX_BATCH_BYTES

CHUNK_SPANS = 16_384
# Nor more than a commit may weigh (store/writer.MAX_BATCH_BYTES): a chunk is one
# commit, and chunks of 16,384 spans of large attributes took an import of a 630 MB
# file to 5.4 GB (review).
CHUNK_BYTES = MAX_BATCH_BYTES
# A file's request is sent (with a server) or flattened in pieces of at most this many
# spans and about this many bytes: a Jaeger file of 80,000 spans was one 26 MB request,
# over the server's 20 MiB limit, and the progress bar stood still while it went.
PIECE_SPANS = 4096
PIECE_BYTES = 4 << 20
SNIFF_BYTES = 64 * 1024  # the head ``detect_format`` sees
_BLOCK = 1 << 20
Progress = Callable[[int], None]


@dataclass
class FileReport:
    """What happened to one file. At most one of ``error``, ``skipped`` and ``empty`` holds."""

    path: str
    format: str = ""
    spans: int = 0  # valid spans read (through a server: accepted by it)
    stored: int = 0  # of those, new (through a server: unknown, the server does not say)
    rejected: int = 0
    error: str = ""  # why the file could not be imported (or not completely)
    skipped: str = ""  # why it was not read at all (imported before)
    messages: list[str] | None = None
    # JSON lines (framed messages) passed over as unreadable, the rest of the file read
    bad_parts: int = 0
    bad_notes: list[str] = field(default_factory=list)  # why, for the first few
    other_signal_lines: int = 0  # OTLP logs / metrics lines passed over in JSON lines
    # Through a server: the first warning it gave with nothing rejected (its retention,
    # say: ``partial_success``), and how many of its answers carried one.
    server_warning: str = ""
    server_warnings: int = 0
    repaired_strings: int = 0  # protobuf strings whose invalid UTF-8 was replaced
    # Into a file: spans that started before a server's default retention, which its
    # first sweep deletes (an old Jaeger download, say).
    old_spans: int = 0

    @property
    def empty(self) -> bool:
        """The file holds nothing (or only blank space): nothing read, nothing wrong."""
        return self.format == EMPTY

    @property
    def duplicates(self) -> int:
        return self.spans - self.stored


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def unreadable(path: Path) -> str:
    """Why ``path`` is not a file to read, or "" when it is one."""
    try:
        return _unreadable(path)
    except PermissionError:  # a folder on its way this user may not enter (is_dir raised)
        return f"permission denied: the user flowscope runs as cannot reach it ({path.parent})"


def is_a_file(path: Path) -> bool:
    """``path.is_file()``, False where this user may not look (which raised)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _unreadable(path: Path) -> str:
    if path.is_dir():
        # The shell expands a pattern; flowscope does not walk folders.
        return f"is a directory; name the files in it (e.g. {path / '*'})"
    if str(path) == "-" and not path.exists():
        return "standard input is not read; save it to a file and import that"
    if not path.exists():
        if path.is_symlink():
            return "no such file (a broken symbolic link)"
        if any(ch in str(path) for ch in "*?["):
            # A quoted pattern ('traces/*.json') reaches flowscope whole.
            return "no such file; a pattern is expanded by the shell: leave it unquoted"
        return "no such file"
    if not path.is_file():
        # /dev/stdin, <(zcat x.gz): a file is read more than once (its format, then
        # its spans) and remembered by its content.
        return "not a regular file (a pipe or a device); save it to a file and import that"
    if not os.access(path, os.R_OK):
        return "permission denied: the user flowscope runs as cannot read it"
    return ""


# zstd's skippable frames: magic 0x184D2A50-0x184D2A5F, little-endian.
_ZSTD_SKIPPABLE = re.compile(rb"[\x50-\x5f]\x2a\x4d\x18", re.S)
# Suffixes a compressed file's content is named without, so its format is sniffed by
# the name it had before it was compressed (``traces.pb.zst`` is protobuf).
_COMPRESSED_SUFFIXES = {GZIP_MAGIC: (".gz", ".gzip"), ZSTD_MAGIC: (".zst", ".zstd")}


@contextmanager
def decompressed(path: Path) -> Iterator[Path]:
    """``path``, or for a gzip or zstd file (``traces.jsonl.gz``, ``traces.jsonl.zst``)
    its content in a temporary file beside the system's others, named like it without
    the compression's suffix (its format is sniffed from that), removed afterwards.
    Read as they were, both were refused with a hint to decompress them first; the
    Collector's file exporter writes a whole file as one zstd stream with its
    ``exporter.file.nativeCompression`` gate on."""
    with path.open("rb") as handle:
        head = handle.read(len(ZSTD_MAGIC))
    if _ZSTD_SKIPPABLE.fullmatch(head):  # pzstd starts every file with one
        head = ZSTD_MAGIC
    magic = next((m for m in _COMPRESSED_SUFFIXES if head.startswith(m)), None)
    if magic is None:
        yield path
        return
    name = path.name
    for suffix in _COMPRESSED_SUFFIXES[magic]:
        name = name.removesuffix(suffix)
    with tempfile.TemporaryDirectory(prefix="flowscope-import-") as folder:
        copy = Path(folder) / (name or "content")
        if magic == GZIP_MAGIC:
            _gunzip(path, copy)
        else:
            _unzstd(path, copy)
        yield copy


def _gunzip(path: Path, copy: Path) -> None:
    try:
        with gzip.open(path, "rb") as source, copy.open("wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise BadRequest(f"not valid gzip ({exc or 'cut short'})") from exc


# How many bytes of a zstd file the decoder is given at once. It returns its whole
# output for them, and a 4-byte block may stand for 128 KiB: fed a MiB at a time, a
# 1 GB content compressed to 99 KB took 1.1 GB of memory. The pieces shrink while
# each one's output is over ZSTD_OUT_BYTES and grow back to ZSTD_PIECE_BYTES (one
# piece can stand for 128 MiB at most) while it is well under.
ZSTD_PIECE_BYTES = 4096
ZSTD_OUT_BYTES = 1 << 20


def _unzstd(path: Path, copy: Path) -> None:
    # cramjam's decoder wants whole frames in memory, and zstandard's stream reader
    # takes a cut frame for the end of the file. Frames written one after another
    # (`zstd` of several inputs, a file appended to, pzstd's) are one content, as
    # `zstd -d` reads them.
    decoder = zstandard.ZstdDecompressor()
    frame = decoder.decompressobj()
    inside = False  # the current frame has begun and not ended
    size = 256
    try:
        with path.open("rb") as raw, copy.open("wb") as target:
            while chunk := raw.read(1 << 20):
                # What is left to feed, first first: the chunk, and in front of it what
                # a frame that ended did not take of its last piece.
                pending = [memoryview(chunk)]
                while pending:
                    head = pending.pop()
                    piece = head[:size]
                    if len(head) > size:
                        pending.append(head[size:])
                    out = frame.decompress(piece)
                    target.write(out)
                    inside = True
                    if len(out) > ZSTD_OUT_BYTES:
                        size = max(16, size // 4)
                    elif len(out) < ZSTD_OUT_BYTES // 8:
                        size = min(ZSTD_PIECE_BYTES, size * 2)
                    if frame.eof:
                        if frame.unused_data:  # the next frame begins in this piece
                            pending.append(memoryview(frame.unused_data))
                        frame, inside = decoder.decompressobj(), False
    except zstandard.ZstdError as exc:
        raise BadRequest(f"not valid zstd ({exc})") from exc
    if inside:
        raise BadRequest("not valid zstd (cut short)")


def sniff(path: Path) -> str:
    """The file's format (``import_formats.FORMATS``), or ``EMPTY`` when it holds nothing."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        if len(head) < SNIFF_BYTES and not head.removeprefix(BOM).strip(BLANK):
            return EMPTY
        try:
            fmt = _detect_reading_on(head, path.name, handle)
        except OtherSignal:
            # Logs or metrics first: a file of traces too when more lines follow.
            if len(head) == SNIFF_BYTES and _first_of_lines(head, handle):
                return OTLP_JSONL
            raise
        # The head shows one OTLP object and nothing after it; when that object is the
        # first of several lines (a line can be far longer than the head), it is JSON lines.
        if fmt == OTLP_JSON and len(head) == SNIFF_BYTES and _first_of_lines(head, handle):
            return OTLP_JSONL
        if fmt == OTLP_PROTOBUF:
            frames = find_frames(handle, os.fstat(handle.fileno()).st_size)
            if frames is not None:
                return OTLP_ZSTD_FRAMED if frames.zstd else OTLP_PROTOBUF_FRAMED
    return fmt


# Zipkin spans with sorted keys (`jq -S`) put `traceId` after their annotations and
# tags: a first span of 240 KB hid it from the 64 KiB head, and the file was refused.
MAX_SNIFF_BYTES = 64 << 20


def _detect_reading_on(head: bytes, name: str, handle: BinaryIO) -> str:
    """``detect_format`` of the head, reading on (8 times as much each time, up to
    ``MAX_SNIFF_BYTES``) while the head says JSON of no known kind yet. Leaves
    ``handle`` just past the first ``SNIFF_BYTES``."""
    size = SNIFF_BYTES
    try:
        while True:
            try:
                return detect_format(head, name, whole=len(head) < size)
            except Undecided:
                if size >= MAX_SNIFF_BYTES:
                    raise
                size = min(size * 8, MAX_SNIFF_BYTES)
                handle.seek(0)
                head = handle.read(size)
    finally:
        handle.seek(SNIFF_BYTES)


def _first_of_lines(head: bytes, handle: BinaryIO) -> bool:
    """Whether the object ``head`` starts (after BOM and blanks) is the first of several
    lines, reading on from ``handle`` (just past the head)."""
    first = head[head.index(b"{") :]
    return _object_then_another_line(chain([first], iter(lambda: handle.read(_BLOCK), b"")))


def _object_then_another_line(blocks: Iterable[bytes]) -> bool:
    """Whether the JSON text in ``blocks`` (an object first) has a first line that ends
    with ``}`` and, after blank space, another line that cannot go on a JSON value.

    Reads block by block up to there, keeping no more than a block. A JSON string cannot
    hold a raw newline, so that ``}`` is not inside one; and within a single JSON value a
    ``}`` is followed only by ``,``, ``]`` or ``}``: after anything else (the next
    object, or a line a crash or an edit broke: text, NUL bytes, ``[1]``) the first line
    is one whole object, and the file JSON lines, whose reader passes over a bad line.
    A file whose lines are longer than the head was refused whole for one such line.
    """
    last = b""
    rest = iter(blocks)
    for block in rest:
        newline = block.find(b"\n")
        line = (block if newline < 0 else block[:newline]).rstrip(b" \t\r")
        last = line[-1:] or last
        if newline >= 0:
            if last != b"}":
                return False
            for after in chain([block[newline:]], rest):
                start = after.lstrip(BLANK)
                if start:
                    return start[:1] not in (b",", b"]", b"}")
            return False
    return False


MAX_NOTES = 5  # reasons kept per file for lines passed over


def read_requests(
    path: Path, fmt: str, progress: Progress | None = None, report: FileReport | None = None
) -> Iterator[ExportTraceServiceRequest]:
    """The file's content as OTLP requests; ``progress`` gets bytes consumed.

    A JSON line (or framed message) that cannot be read is counted in ``report`` and
    passed over (without a report it stops the file): the Collector's file exporter
    leaves its last one cut off while it writes, or when it was stopped, and every
    other one is fine.
    """
    if fmt == EMPTY:
        return
    if fmt == OTLP_JSONL:
        yield from _json_lines(path, progress, report)
        return
    if fmt in (OTLP_PROTOBUF_FRAMED, OTLP_ZSTD_FRAMED):
        yield from _framed_messages(path, progress, report, zstd=fmt == OTLP_ZSTD_FRAMED)
        return
    data = path.read_bytes()
    if fmt == JAEGER_V3_JSON:
        yield from _jaeger_v3_answers(data, progress)
        return
    try:
        whole, repaired = _whole_request(data, fmt)
    except BadRequest as exc:
        if fmt != OTLP_JSON or not _ends_inside(exc):
            raise
        # One OTLP JSON object not finished: the Collector's file exporter writing a
        # first line longer than the head. It was "not valid JSON: Unterminated
        # string", the file failed, where a cut later line is passed over.
        _pass_over(report, "the document", _CUT_OFF)
        if progress:
            progress(len(data))
        return
    if report:
        report.repaired_strings += repaired
    # Parsing the one document is about half of such a file's import (a 298 MB Jaeger
    # file: 32 s of 58): the bar's first half, the spans handed on its second.
    parsed = len(data) // 2
    rest = len(data) - parsed
    if progress:
        progress(parsed)
    total = max(1, _span_count(whole))
    done = 0
    for piece in split_request(whole):
        yield piece
        if progress:  # the file's bytes, in step with the spans handed on
            spans = done + _span_count(piece)
            progress(rest * spans // total - rest * done // total)
            done = spans
    if progress and done == 0:
        progress(rest)


def _json_lines(
    path: Path, progress: Progress | None, report: FileReport | None
) -> Iterator[ExportTraceServiceRequest]:
    others: dict[str, int] = {}  # lines of logs / metrics, by signal
    traces = False
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if progress:
                progress(len(line))
            if not line.strip():
                continue
            try:
                document = load_json(line)
                signal = _other_signal(document)  # parsed once: such lines may be most
                if not signal:
                    request = request_from_json_object(without_half_pairs(document, line))
            except BadRequest as exc:
                # Not JSON (or not UTF-8) and no newline after it: not finished.
                cut = not line.endswith(b"\n") and isinstance(exc.__cause__, ValueError)
                _pass_over(report, f"line {number}", _CUT_OFF if cut else str(exc))
                continue
            if signal:
                others[signal] = others.get(signal, 0) + 1
                if report is not None:
                    report.other_signal_lines += 1
                continue
            traces = True
            yield from split_request(request)
    if others and not traces:
        kinds = " and ".join(sorted(others))
        lines = sum(others.values())
        raise BadRequest(
            f"holds OTLP {kinds} ({lines} line{'s' if lines > 1 else ''}), no traces; "
            "flowscope stores traces only"
        )


def _jaeger_v3_answers(
    data: bytes, progress: Progress | None
) -> Iterator[ExportTraceServiceRequest]:
    """Jaeger v2's API v3 answers, one after another: each ``{"result": <OTLP JSON>}``
    (``/api/v3/traces`` streams one per chunk), or ``{"error": {...}}``, which stops
    the file with Jaeger's message."""
    try:
        text = data.removeprefix(BOM).decode("utf-8")  # a BOM: as other JSON files take it
    except UnicodeDecodeError as exc:
        raise BadRequest(f"not valid UTF-8: {exc}") from exc
    decoder = json.JSONDecoder()
    position, number = _BLANKS.match(text).end(), 0  # type: ignore[union-attr]
    while position < len(text):
        number += 1
        try:
            answer, end = decoder.raw_decode(text, position)
        except ValueError as exc:
            raise BadRequest(f"answer {number}: not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise BadRequest(f"answer {number}: JSON nested too deeply") from exc
        if not isinstance(answer, dict) or not ({"result", "error"} & answer.keys()):
            raise BadRequest(
                f"answer {number}: {json_type(answer)} with neither result nor error, "
                'expected {"result": {"resourceSpans": [...]}} as Jaeger\'s API v3 answers'
            )
        if "result" not in answer:
            error = answer["error"]
            message = error.get("message") if isinstance(error, dict) else error
            code = error.get("httpCode") if isinstance(error, dict) else None
            raise BadRequest(
                f"answer {number}: Jaeger answered an error, not traces: "
                f"{message}{f' (HTTP {code})' if code else ''}"
            )
        result = answer["result"]
        signal = _other_signal(result)
        if signal:
            raise BadRequest(
                f"answer {number}: OTLP {signal} under result, not traces; "
                "flowscope stores traces only"
            )
        raw = text[position:end].encode()
        try:
            request = request_from_json_object(without_half_pairs(result, raw))
        except BadRequest as exc:
            raise BadRequest(f"answer {number}: {exc}") from exc
        if progress:
            progress(len(raw))
        yield from split_request(request)
        position = _BLANKS.match(text, end).end()  # type: ignore[union-attr]


_BLANKS = re.compile(r"[ \t\r\n]*")  # always matches


def _other_signal(document: Any) -> str:
    """The signal (logs, metrics, profiles) of a JSON line of another OTLP signal, else ""."""
    if not isinstance(document, dict) or {"resourceSpans", "resource_spans"} & document.keys():
        return ""
    return next((kind for key, kind in OTHER_SIGNALS.items() if key in document), "")


_CUT_OFF = "cut off, the file ends inside it (still being written, or its writer was stopped)"


def _pass_over(report: FileReport | None, where: str, why: str) -> None:
    if report is None:
        raise BadRequest(f"{where}: {why}")
    report.bad_parts += 1
    if len(report.bad_notes) < MAX_NOTES:
        report.bad_notes.append(f"{where}: {why}")


# A zstd-compressed message of a Collector file is refused past this many bytes once
# decompressed (a bomb guard; the Collector's own messages are a batch each).
MAX_MESSAGE_BYTES = 512 << 20


def _framed_messages(
    path: Path, progress: Progress | None, report: FileReport | None, zstd: bool = False
) -> Iterator[ExportTraceServiceRequest]:
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        frames = find_frames(handle, size)
        if frames is None or frames.zstd != zstd:
            raise BadRequest("no longer the length-prefixed messages it was (changed while read?)")
        for number, (start, end) in enumerate(frames.bounds, start=1):
            handle.seek(start)
            body = handle.read(end - start)
            if progress:
                progress(LENGTH_BYTES + len(body))
            try:
                if zstd:  # protobuf or JSON, as the exporter's format: says
                    body = decompress(body, "zstd", MAX_MESSAGE_BYTES)
                kind = JSON if zstd and body.lstrip(BLANK).startswith(b"{") else PROTOBUF
                request, repaired = parse_request(body, kind)
            except (BadRequest, RequestTooLarge) as exc:
                _pass_over(report, f"message {number} (at byte {start - LENGTH_BYTES})", str(exc))
                continue
            if report:
                report.repaired_strings += repaired
            yield from split_request(request)
        if frames.cut_at >= 0:
            if progress:
                progress(size - frames.cut_at)
            where = f"message {len(frames.bounds) + 1} (at byte {frames.cut_at})"
            _pass_over(report, where, _CUT_OFF)


def _ends_inside(exc: BadRequest) -> bool:
    """Whether JSON failed because the data ends inside it: a string that never closes,
    or a value missing at the very end."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):  # the end falls inside a character
        return cause.reason == "unexpected end of data" and cause.end == len(cause.object)
    if not isinstance(cause, json.JSONDecodeError):
        return False
    # pos counts characters of the text, not bytes of the data (a cut after "é" was
    # not seen as one).
    return cause.msg.startswith("Unterminated string") or cause.pos >= len(cause.doc.rstrip())


def _whole_request(data: bytes, fmt: str) -> tuple[ExportTraceServiceRequest, int]:
    """The file's one request, and how many of its strings had invalid UTF-8 replaced."""
    if fmt == "otlp-protobuf":
        try:
            return parse_request(data, PROTOBUF)
        except BadRequest as exc:
            # Whatever matched no other format lands here: say what would have worked.
            raise BadRequest(f"{exc} (flowscope imports {ACCEPTED_FORMATS})") from exc
    if fmt == "otlp-json":
        return request_from_json(data), 0
    try:
        document = json.loads(data)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # said as a head of the file says it (import_formats)
            raise BadRequest(trailing_bytes(exc.doc, exc.pos)) from exc
        raise BadRequest(f"not valid JSON: {exc}") from exc
    except ValueError as exc:
        raise BadRequest(f"not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("JSON nested too deeply") from exc
    document = without_half_pairs(document, data)  # a traceback on Jaeger/Zipkin files
    if fmt == "jaeger-json":
        return jaeger_to_otlp(document), 0
    if fmt == TEMPO_JSON:
        return request_from_json_object(tempo_to_otlp_json(document)), 0
    return zipkin_to_otlp(document), 0  # the last format detect_format gives


def _span_count(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def split_request(
    request: ExportTraceServiceRequest,
    max_spans: int = PIECE_SPANS,
    max_bytes: int = PIECE_BYTES,
) -> Iterator[ExportTraceServiceRequest]:
    """The request in pieces of at most ``max_spans`` spans and about ``max_bytes``
    bytes (one span more only when it alone is larger), each span under a copy of its
    resource and scope; a request within both limits comes back as it is."""
    if _span_count(request) <= max_spans and request.ByteSize() <= max_bytes:
        yield request
        return
    piece, spans, size = ExportTraceServiceRequest(), 0, 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            target = None
            for span in scope_spans.spans:
                span_bytes = span.ByteSize()
                if spans and (spans >= max_spans or size + span_bytes > max_bytes):
                    yield piece
                    piece, spans, size, target = ExportTraceServiceRequest(), 0, 0, None
                if target is None:
                    holder = piece.resource_spans.add(
                        resource=resource_spans.resource, schema_url=resource_spans.schema_url
                    )
                    target = holder.scope_spans.add(
                        scope=scope_spans.scope, schema_url=scope_spans.schema_url
                    )
                    size += holder.ByteSize()  # the copies count too
                target.spans.append(span)
                spans += 1
                size += span_bytes
    if spans:
        yield piece


def flattened_chunks(requests: Iterator[ExportTraceServiceRequest]) -> Iterator[FlattenResult]:
    """Flatten requests, merging small ones so each commit carries many spans (up to
    ``CHUNK_SPANS`` or ``CHUNK_BYTES``, and the request that passes either).

    The requests of a chunk are flattened together, as one (their wire bytes end to
    end are one request): flattened one by one, a chunk of 1,339 JSON lines of ~9
    spans was a table of 1,339 pieces, each weighed on its own (a third of the import's
    time) and each with dictionaries of its own, which DuckDB inserted 14 times slower
    and in 5 times the memory (import review)."""
    bodies: list[bytes] = []
    size = weight = 0
    iterator = iter(requests)
    while True:
        try:
            request = next(iterator, None)
        except Exception:
            # A file found bad part-way: what was read before it is stored all the same,
            # as through a server (each piece sent as read), before the error goes on.
            if bodies:
                yield _flattened(bodies)
            raise
        if request is None:
            break
        body = request.SerializeToString()
        bodies.append(body)
        spans, copies = _spans_and_copies(request)
        size += spans
        weight += len(body) + copies
        if size >= CHUNK_SPANS or weight >= CHUNK_BYTES:
            yield _flattened(bodies)
            bodies, size, weight = [], 0, 0
    if bodies:
        yield _flattened(bodies)


def _spans_and_copies(request: ExportTraceServiceRequest) -> tuple[int, int]:
    """The request's spans, and the bytes of its resources and scopes once copied to
    each (as ``otel_traces`` stores them; store/table_size.py)."""
    spans = copies = 0
    for resource_spans in request.resource_spans:
        resource = resource_spans.resource.ByteSize()
        for scope_spans in resource_spans.scope_spans:
            count = len(scope_spans.spans)
            spans += count
            copies += count * (resource + scope_spans.scope.ByteSize())
    return spans, copies


def _flattened(bodies: list[bytes]) -> FlattenResult:
    # The C path, several times the Python flatten's speed; the Python path for what it
    # declines (and to say what is wrong with it). Declined together (past its message
    # limit, or for one bad id), the requests are flattened one by one, so only those
    # it declines alone go the Python way: the whole chunk did, 1.75 times slower (diff
    # review).
    joined = fast_flatten.flatten_body(b"".join(bodies))
    if joined is not None:
        return joined
    results = [
        fast_flatten.flatten_body(body)
        or flatten_request(ExportTraceServiceRequest.FromString(body))
        for body in bodies
    ]
    if len(results) == 1:
        return results[0]
    reasons = [reason for result in results for reason in result.reasons]
    return FlattenResult(
        SpanBatch(
            pa.concat_tables(result.batch.table for result in results),
            [key for result in results for key in result.batch.keys],
        ),
        sum(result.rejected for result in results),
        reasons[:MAX_REJECT_REASONS],
    )
