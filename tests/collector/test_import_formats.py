"""Format sniffing for ``flowscope import``, on whole files and on a 64 KiB head of big ones."""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.collector import fast_flatten
from flowscope.collector.errors import BadRequest
from flowscope.collector.file_import import (
    SNIFF_BYTES,
    FileReport,
    flattened_chunks,
    read_requests,
    sniff,
    split_request,
)
from flowscope.collector.flatten import flatten_request
from flowscope.collector.import_formats import EMPTY, detect_format
from flowscope.collector.otlp_json import request_from_json_object
from flowscope.store.database import Database
from flowscope.testing.otlp import key_values, realistic_request

DATA = Path(__file__).parent / "data"
HEAD = 64 * 1024  # what ``flowscope import`` reads to sniff


def _otlp_json(traces: int = 2) -> dict[str, Any]:
    """OTLP JSON as SDK exporters write it (hex ids, lowerCamelCase)."""
    document: dict[str, Any] = json_format.MessageToDict(realistic_request(traces))
    for rs in document["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64decode(span[name]).hex()
    return document


def _compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _jaeger_span(n: int) -> dict[str, Any]:
    return {
        "traceID": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spanID": f"{n + 1:016x}",
        "operationName": "SELECT orders",
        "references": [],
        "startTime": 1_767_225_600_000_000 + n,
        "duration": 120,
        "tags": [{"key": "db.statement", "type": "string", "value": "SELECT * FROM orders " * 3}],
        "logs": [],
        "processID": "p1",
        "warnings": None,
    }


def _big_jaeger() -> bytes:
    trace = {
        "traceID": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spans": [_jaeger_span(n) for n in range(2000)],
        "processes": {"p1": {"serviceName": "orders", "tags": []}},
    }
    return json.dumps({"data": [trace]}, indent=2).encode()


def _big_zipkin(nested: bool) -> bytes:
    spans = [
        {
            "traceId": "463ac35c9f6413ad",
            "parentId": "463ac35c9f6413ad",
            "id": f"{n + 1:016x}",
            "kind": "CLIENT",
            "name": "get",
            "timestamp": 1_767_225_600_000_000 + n,
            "duration": 20,
            "localEndpoint": {"serviceName": "frontend"},
            "tags": {"http.url": "http://backend/api?" + "q" * 100},
        }
        for n in range(2000)
    ]
    return json.dumps([spans] if nested else spans).encode()


# --- the converters' fixtures and the real reader -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "spans"),
    [("jaeger_ui_trace.json", "jaeger-json", 3), ("zipkin_v2_spans.json", "zipkin-json", 4)],
)
def test_fixture_files_are_sniffed_and_read(name: str, fmt: str, spans: int) -> None:
    path = DATA / name
    assert detect_format(path.read_bytes(), path.name) == fmt
    assert sniff(path) == fmt
    requests = list(read_requests(path, fmt))
    assert sum(flatten_request(r).batch.spans for r in requests) == spans


# --- OTLP -----------------------------------------------------------------------------------------


def test_otlp_json_object_compact_and_pretty() -> None:
    document = _otlp_json()
    assert detect_format(_compact(document), "traces.json") == "otlp-json"
    assert detect_format(json.dumps(document, indent=2).encode(), "traces.json") == "otlp-json"
    snake = b'{"resource_spans": [{"scope_spans": []}]}'
    assert detect_format(snake, "export") == "otlp-json"


def test_json_lines_as_the_collector_file_exporter_writes_them(tmp_path: Path) -> None:
    lines = b"".join(_compact(_otlp_json(n)) + b"\n" for n in (1, 2, 3))
    assert detect_format(lines, "traces.jsonl") == "otlp-jsonl"
    # Also when the head ends in the middle of a later line.
    assert detect_format(lines[: len(lines) - 50], "traces.jsonl") == "otlp-jsonl"
    # One line (and a trailing newline) is plain OTLP JSON, which reads the same.
    assert detect_format(_compact(_otlp_json(1)) + b"\n\n", "traces.jsonl") == "otlp-json"
    path = tmp_path / "export.json"
    path.write_bytes(lines)
    assert sniff(path) == "otlp-jsonl"
    assert sum(flatten_request(r).batch.spans for r in read_requests(path, "otlp-jsonl")) == 48


def _spans(path: Path, fmt: str) -> int:
    return sum(flatten_request(r).batch.spans for r in read_requests(path, fmt))


def test_json_lines_whose_first_line_is_longer_than_the_head(tmp_path: Path) -> None:
    # The Collector's file exporter (and ``reference-app --otlp-file``) writes a whole
    # batch per line; a line of 100 KB leaves the 64 KiB head inside the first object.
    line = _compact(_otlp_json(20))
    assert len(line) > SNIFF_BYTES == HEAD
    path = tmp_path / "spans.jsonl"
    path.write_bytes(line + b"\n" + line + b"\n" + _compact(_otlp_json(1)) + b"\n")
    assert sniff(path) == "otlp-jsonl"
    assert _spans(path, "otlp-jsonl") == 2 * 160 + 8
    # Blank space around the lines and Windows line ends change nothing.
    path.write_bytes(b"\n " + line + b" \r\n\r\n" + line + b"\r\n")
    assert sniff(path) == "otlp-jsonl"
    assert _spans(path, "otlp-jsonl") == 2 * 160


def test_json_lines_whose_first_line_ends_exactly_at_the_head(tmp_path: Path) -> None:
    line = _compact(_otlp_json(10))
    padded = line + b" " * (SNIFF_BYTES - 1 - len(line)) + b"\n"
    assert len(padded) == SNIFF_BYTES
    path = tmp_path / "spans.jsonl"
    path.write_bytes(padded + line + b"\n")
    assert sniff(path) == "otlp-jsonl"
    assert _spans(path, "otlp-jsonl") == 2 * 80


@pytest.mark.parametrize(
    "bad",
    [b"a line of text", b"\x00" * 300, b"[1, 2]", b'"text"', b"42"],
    ids=["text", "nul", "list", "string", "number"],
)
def test_json_lines_longer_than_the_head_with_a_broken_line(tmp_path: Path, bad: bytes) -> None:
    """A line a crash or an edit broke, after a first line longer than the head, made
    the whole file one OTLP object, refused with "Extra data": no span stored."""
    line = _compact(_otlp_json(20))
    assert len(line) > SNIFF_BYTES
    path = tmp_path / "spans.jsonl"
    path.write_bytes(line + b"\n" + bad + b"\n" + line + b"\n")
    assert sniff(path) == "otlp-jsonl"
    with pytest.raises(BadRequest) as named:
        list(read_requests(path, "otlp-jsonl"))  # the bad line is named, read on ...
    assert _spans_passing_bad(path) == 2 * 160  # ... and the lines around it are read
    # NUL bytes were "not valid UTF-8: 'utf-32-be' codec can't decode byte 0x0a".
    assert "codec" not in str(named.value)


def test_short_json_lines_with_a_nul_tail_are_json_lines(tmp_path: Path) -> None:
    """NUL bytes a crash left after the last line made a small file "protobuf": refused
    as a corrupt wire format, its whole lines with it."""
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b"".join(_compact(_otlp_json(n)) + b"\n" for n in (1, 2)) + b"\x00" * 4096)
    assert sniff(path) == "otlp-jsonl"
    assert _spans_passing_bad(path) == 8 + 16
    # One object and the tail, no line break: JSON that cannot be read, not protobuf.
    path.write_bytes(_compact(_otlp_json(1)) + b"\x00" * 4096)
    assert sniff(path) == "otlp-jsonl"


def _spans_passing_bad(path: Path) -> int:
    """Spans of a JSON lines file read as import reads it: past lines it cannot read."""
    from flowscope.collector.file_import import FileReport

    report = FileReport(str(path), "otlp-jsonl")
    requests = read_requests(path, "otlp-jsonl", report=report)
    spans = sum(flatten_request(r).batch.spans for r in requests)
    assert report.bad_parts == 1
    return spans


def test_one_big_object_is_not_json_lines(tmp_path: Path) -> None:
    document = _otlp_json(40)
    path = tmp_path / "big.json"
    for data in (
        _compact(document),  # no newline at all
        _compact(document) + b"\n\n  \n",  # then only blank lines
        json.dumps(document, indent=2).encode(),  # many lines, the first one "{"
        # A long first line ending inside the object, not at its end.
        _compact(document)[:-2] + b"\n]}\n",
    ):
        assert len(data) > 2 * SNIFF_BYTES
        path.write_bytes(data)
        assert sniff(path) == "otlp-json"
        assert _spans(path, "otlp-json") == 320


def test_zipkin_spans_with_sorted_keys_and_a_long_first_span(tmp_path: Path) -> None:
    """`jq -S` puts a span's traceId last: after a 240 KB tag it was past the 64 KiB
    head, and the file was refused as "JSON, but not trace data"."""
    span = {
        "annotations": [{"timestamp": 1_767_225_600_000_001, "value": "x" * 50}] * 500,
        "duration": 5,
        "id": "000000000000000a",
        "localEndpoint": {"serviceName": "a"},
        "name": "op",
        "tags": {"sql.query": "y" * 240_000},
        "timestamp": 1_767_225_600_000_000,
        "traceId": "463ac35c9f6413ad",
    }
    path = tmp_path / "sorted.json"
    path.write_bytes(
        json.dumps([span, {**span, "id": "000000000000000b"}], sort_keys=True).encode()
    )
    assert sniff(path) == "zipkin-json"
    assert _spans(path, "zipkin-json") == 2
    # JSON of no known kind is still refused, once the whole file is read.
    path.write_bytes(json.dumps([{"a": "z" * 300_000}, {"b": 1}]).encode())
    with pytest.raises(BadRequest, match="JSON, but not trace data"):
        sniff(path)


def test_jaeger_traces_with_sorted_keys_and_a_long_first_trace(tmp_path: Path) -> None:
    """Sorted, a Jaeger trace's traceID comes after its spans."""
    document = json.loads((DATA / "jaeger_ui_trace.json").read_text())
    trace = document["data"][0]
    span = trace["spans"][0]
    trace["spans"] = [{**span, "spanID": f"{i:016x}", "references": []} for i in range(1, 2000)]
    path = tmp_path / "jaeger-sorted.json"
    path.write_bytes(json.dumps(document, sort_keys=True).encode())
    assert path.stat().st_size > 8 * SNIFF_BYTES
    assert sniff(path) == "jaeger-json"


def test_a_long_list_of_other_objects_is_refused_from_the_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its first object is whole in the head and has no traceId: reading on to 64 MiB
    cannot change that (a 73 MB list took 42 s to refuse)."""
    import flowscope.collector.file_import as file_import

    heads: list[int] = []

    def recorded(head: bytes, name: str, *, whole: bool = False) -> str:
        heads.append(len(head))
        return detect_format(head, name, whole=whole)

    monkeypatch.setattr(file_import, "detect_format", recorded)
    path = tmp_path / "other.json"
    path.write_bytes(json.dumps([{"a": i, "b": "x" * 50} for i in range(20_000)]).encode())
    with pytest.raises(BadRequest, match="JSON, but not trace data"):
        sniff(path)
    assert heads == [SNIFF_BYTES]


def test_pretty_printed_objects_one_after_another_are_not_json_lines() -> None:
    pretty = json.dumps(_otlp_json(1), indent=2).encode()
    with pytest.raises(BadRequest, match=r"dump.json: several OTLP JSON objects, but not one per"):
        detect_format(pretty + b"\n" + pretty, "dump.json")


def test_other_json_values_one_after_another() -> None:
    with pytest.raises(BadRequest, match=r"spans.json: several JSON values .* not an OTLP JSON"):
        detect_format(b'[{"traceId": "1", "id": "1"}]\n[]\n', "spans.json")


def test_protobuf_by_content_and_by_name() -> None:
    binary = realistic_request(3).SerializeToString()
    assert detect_format(binary, "traces.bin") == "otlp-protobuf"
    assert detect_format(binary[:HEAD], "traces") == "otlp-protobuf"
    # The suffix decides, whatever the content looks like.
    for name in ("a.pb", "a.binpb", "A.PROTO"):
        assert detect_format(_compact(_otlp_json(1)), name) == "otlp-protobuf"


def test_protobuf_whose_first_length_byte_looks_like_a_json_bracket() -> None:
    # Field 1 (resource_spans) has tag 0x0A, a whitespace byte; a length of 123 or 91 is
    # "{" or "[". The control bytes inside give it away.
    for size in (123, 91):
        request = ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(key_values({"service.name": ""}))
        rs.resource.attributes[0].value.string_value = "x" * (size - rs.ByteSize())
        assert rs.ByteSize() == size
        data = request.SerializeToString()
        assert data[:2] == b"\n" + bytes([size])
        assert detect_format(data, "export.bin") == "otlp-protobuf"


@pytest.mark.parametrize(
    ("data", "starts"),
    [
        (b"hello, world", "hello, world"),
        (b"\n\n# flowscope\n\nOTLP traces in, service maps out.\n", "# flowscope"),
        ("trace_id,span_id,name\n1,2,caf\u00e9\n".encode(), "trace_id,span_id,name"),
    ],
)
def test_text_that_is_not_json_is_not_a_trace_format(data: bytes, starts: str) -> None:
    with pytest.raises(BadRequest) as caught:
        detect_format(data, "notes.md")
    message = str(caught.value)
    assert message.startswith("notes.md: not a recognised trace format: text, neither JSON")
    assert f"(it starts {starts!r})" in message
    assert "OTLP protobuf (ExportTraceServiceRequest), OTLP JSON, OTLP JSON lines, " in message
    assert (
        "Jaeger JSON (and Jaeger's API v3 answers), Grafana Tempo's trace JSON and Zipkin v2 JSON"
        in message
    )


def test_binary_that_is_not_protobuf_names_the_formats(tmp_path: Path) -> None:
    # Starting as JSON does, bytes that are not UTF-8 do not make it protobuf.
    with pytest.raises(BadRequest, match=r"^weird.json: not valid JSON \("):
        detect_format(b"{\xff\xfe not utf-8", "weird.json", whole=True)
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xff")
    fmt = sniff(path)
    assert fmt == "otlp-protobuf"
    with pytest.raises(BadRequest, match=r"invalid OTLP protobuf: .*\(flowscope imports OTLP"):
        list(read_requests(path, fmt))


def test_compressed_files_are_named_so() -> None:
    data = gzip.compress(_compact(_otlp_json(1)))
    with pytest.raises(BadRequest, match=r"^spans.json.gz: gzip-compressed; decompress it first"):
        detect_format(data, "spans.json.gz")
    with pytest.raises(BadRequest, match=r"^spans.zst: zstd-compressed"):
        detect_format(b"\x28\xb5\x2f\xfd" + b"\x00" * 20, "spans.zst")


def test_a_duckdb_file_is_named_so(tmp_path: Path) -> None:
    """`flowscope import *` beside the database: it was read whole into memory, then
    refused as a corrupt protobuf."""
    database = Database(tmp_path / "spans.duckdb")
    database.close()
    head = (tmp_path / "spans.duckdb").read_bytes()[:4096]
    for name in ("spans.duckdb", "spans.pb"):
        with pytest.raises(BadRequest, match=rf"^{name}: a DuckDB database, not a trace file"):
            detect_format(head, name)


@pytest.mark.parametrize("tail", [b"\r\nxx", b"\x00" * 100])
def test_bytes_after_a_document_are_named_as_such_in_a_file_of_any_size(
    tmp_path: Path, tail: bytes
) -> None:
    """A small file said "several JSON values one after another" and named JSON lines;
    a large one "Extra data: line 23129 column 1" (import review)."""
    small = _compact({"data": [{"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spans": []}]})
    for document in (small, _big_jaeger()):
        assert len(small) < SNIFF_BYTES < len(_big_jaeger())
        path = tmp_path / "trace.json"
        path.write_bytes(document + tail)
        expected = (
            "not valid JSON: other bytes follow the JSON document, from byte "
            f"{len(document) + len(tail) - len(tail.lstrip()):,} ({tail.strip()[:16].decode()!r})"
        )
        with pytest.raises(BadRequest, match=re.escape(expected)):
            list(read_requests(path, sniff(path)))


def test_empty_and_blank_files_import_nothing(tmp_path: Path) -> None:
    assert detect_format(b"", "empty.json") == "otlp-protobuf"
    assert detect_format(b"\n  \n", "blank.json") == "otlp-jsonl"
    # A file that holds nothing is reported as empty, whatever its name.
    for name, data in (
        ("empty.json", b""),
        ("empty.pb", b""),
        ("blank.jsonl", b"\n  \r\n"),
        ("bom.json", b"\xef\xbb\xbf\n"),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        assert sniff(path) == EMPTY
        assert list(read_requests(path, EMPTY)) == []
    # Blank space alone for longer than the head is not taken as the whole file.
    path = tmp_path / "late.jsonl"
    path.write_bytes(b"\n" * SNIFF_BYTES + _compact(_otlp_json(1)) + b"\n")
    assert sniff(path) == "otlp-jsonl"


def test_byte_order_mark_is_skipped() -> None:
    data = b"\xef\xbb\xbf" + (DATA / "zipkin_v2_spans.json").read_bytes()
    assert detect_format(data, "bom.json") == "zipkin-json"


# --- Jaeger and Zipkin ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b'{"data": [], "total": 0, "limit": 0, "offset": 0, "errors": null}', "jaeger-json"),
        (b'{"data": [{"traceID": "abc", "spans": [], "processes": {}}]}', "jaeger-json"),
        (b'{"traceID": "abc", "spans": [], "processes": {}}', "jaeger-json"),
        # The query API's error answer: the converter then reports its "errors".
        (
            b'{"data": null, "total": 0, "errors": [{"code": 404, "msg": "trace not found"}]}',
            "jaeger-json",
        ),
        (b'[{"traceID": "abc", "spans": [], "processes": {}}]', "jaeger-json"),
        (b"[]", "zipkin-json"),
        (b" [ [ ], [] ] ", "zipkin-json"),
        (
            b'[{"traceId": "463ac35c9f6413ad", "id": "463ac35c9f6413ad", "name": "x"}]',
            "zipkin-json",
        ),
        (b'[[{"traceId": "463ac35c9f6413ad", "id": "1"}], []]', "zipkin-json"),
        # Key names inside values do not count, only real keys at the right depth.
        (b'[{"id": "1", "traceId": "2", "tags": {"traceID": "x", "spans": "y"}}]', "zipkin-json"),
    ],
)
def test_small_documents(data: bytes, fmt: str) -> None:
    assert detect_format(data, "x.json") == fmt


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (_big_jaeger(), "jaeger-json"),
        (_big_zipkin(nested=False), "zipkin-json"),
        (_big_zipkin(nested=True), "zipkin-json"),
        (json.dumps(_otlp_json(200)).encode(), "otlp-json"),
    ],
)
def test_only_the_head_of_a_big_file(data: bytes, fmt: str) -> None:
    assert len(data) > 2 * HEAD
    assert detect_format(data[:HEAD], "big.json") == fmt
    assert detect_format(data, "big.json") == fmt
    # Cut inside a string, inside a multi-byte character: still fine.
    cut = data[:HEAD].rfind(b'"') + 3
    assert detect_format(data[:cut], "big.json") == fmt
    assert detect_format(data[:HEAD] + "é".encode()[:1], "big.json") == fmt


@pytest.mark.parametrize(
    ("data", "described"),
    [
        (b'{"name": "not traces", "version": 2}', "an object with keys name, version"),
        (b'{"data": [{"user": 1}]}', "an object with keys data"),
        (b'{"data": "x"}', "an object with keys data"),
        (b"{}", "an empty object"),
        (b"[1, 2, 3]", "a list of plain values"),
        (b'[{"traceID": "abc"}]', "a list of objects with keys traceID"),
        (b'[{"trace_id": "abc", "span_id": "1"}]', "a list of objects with keys span_id, trace_id"),
        (b'[["a"]]', "a list of lists"),
        (b'{"spans": []}', "an object with keys spans"),
    ],
)
def test_json_of_no_known_kind_names_the_file(data: bytes, described: str) -> None:
    with pytest.raises(BadRequest) as caught:
        detect_format(data, "exports/other.json")
    message = str(caught.value)
    assert message.startswith("exports/other.json: JSON, but not trace data")
    assert described in message
    assert "Zipkin v2 JSON" in message


@pytest.mark.parametrize("data", [b"{bad", b'{"a": 1', b'[{"traceID": "abc"},]'])
def test_a_whole_file_that_is_no_json_is_called_so(data: bytes) -> None:
    """``{bad`` was "JSON, but not trace data (an empty object)"."""
    with pytest.raises(BadRequest) as caught:
        detect_format(data, "x.json", whole=True)
    assert str(caught.value).startswith("x.json: not valid JSON (")
    with pytest.raises(BadRequest, match="JSON, but not trace data"):
        detect_format(data, "x.json")  # a head of a longer file may be cut anywhere


def test_jaeger_error_answer_is_reported_with_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    path.write_text(
        '{"data": null, "total": 0, "limit": 0, "offset": 0,'
        ' "errors": [{"code": 404, "msg": "trace not found"}]}'
    )
    fmt = sniff(path)
    assert fmt == "jaeger-json"
    with pytest.raises(BadRequest, match=r'"data" is null.*trace not found'):
        list(read_requests(path, fmt))


def test_otlp_json_from_before_scopes_were_named_so(tmp_path: Path) -> None:
    """OTLP until 0.15 wrote instrumentationLibrarySpans; before, such a file imported
    0 spans without a word."""
    document = _otlp_json(2)
    for rs in document["resourceSpans"]:
        rs["instrumentationLibrarySpans"] = rs.pop("scopeSpans")
        for library_spans in rs["instrumentationLibrarySpans"]:
            library_spans["instrumentationLibrary"] = library_spans.pop("scope")
    path = tmp_path / "old.json"
    path.write_bytes(_compact(document))
    assert sniff(path) == "otlp-json"
    (request,) = list(read_requests(path, "otlp-json"))
    assert request == realistic_request(2)


def test_otlp_json_hex_ids_with_spaces_are_not_hex() -> None:
    document = _otlp_json(1)
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["spanId"] = " ".join(span["spanId"][i : i + 2] for i in range(0, 16, 2))
    result = flatten_request(request_from_json_object(document))
    assert result.rejected == 1 and "span_id is not a hex string" in result.error_message


def _spans_of(request: ExportTraceServiceRequest) -> list[tuple[bytes, str, str, bytes]]:
    return [
        (
            span.span_id,
            next(
                kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"
            ),
            ss.scope.name,
            span.SerializeToString(),
        )
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


def test_split_request_keeps_every_span_under_its_resource_and_scope() -> None:
    whole = realistic_request(60, seed=5)  # 480 spans over several services
    assert list(split_request(whole)) == [whole]  # within both limits: as it is
    pieces = list(split_request(whole, max_spans=50, max_bytes=20_000))
    assert len(pieces) > 480 // 50
    for piece in pieces:
        assert len(_spans_of(piece)) <= 50
        assert piece.ByteSize() <= 20_000 + 2_000  # a piece's own resource and scope copies
    assert [s for piece in pieces for s in _spans_of(piece)] == _spans_of(whole)


def test_a_whole_file_reports_progress_as_its_pieces_go(tmp_path: Path) -> None:
    """Before, the bar jumped to the whole file at once, before the slow part."""
    path = tmp_path / "zipkin.json"
    spans = [
        {
            "traceId": f"{t + 1:032x}",
            "id": f"{t + 1:016x}",
            "name": "op",
            "timestamp": 1_767_225_600_000_000 + t,
            "duration": 5,
            "localEndpoint": {"serviceName": "svc"},
        }
        for t in range(10_000)
    ]
    path.write_text(json.dumps(spans), encoding="utf-8")
    ticks: list[int] = []
    read = sum(len(_spans_of(r)) for r in read_requests(path, sniff(path), ticks.append))
    assert read == 10_000
    # The parse (half the bar), then 4096 + 4096 + 1808 spans.
    assert ticks[0] == path.stat().st_size // 2
    assert len(ticks) == 4 and sum(ticks) == path.stat().st_size


@pytest.mark.parametrize("fmt", ["zipkin-json", "jaeger-json"])
def test_json_nested_too_deeply_is_a_bad_file_not_a_crash(tmp_path: Path, fmt: str) -> None:
    """Before, RecursionError escaped: a traceback, and the files after it not read."""
    deep = "[" * 100_000 + "]" * 100_000
    if fmt == "zipkin-json":
        text = f'[{{"traceId": "{"1" * 32}", "id": "{"1" * 16}", "tags": {{"a": {deep}}}}}]'
    else:
        text = f'{{"data": [{{"traceID": "{"1" * 32}", "spans": {deep}}}]}}'
    path = tmp_path / "deep.json"
    path.write_text(text, encoding="utf-8")
    assert sniff(path) == fmt
    with pytest.raises(BadRequest, match="nested too deeply"):
        list(read_requests(path, fmt))


def test_a_head_of_brackets_is_refused_as_no_trace_format() -> None:
    """64 KiB of '[' took 45 s to refuse: the path of every bracket was copied."""
    with pytest.raises(BadRequest, match="not trace data flowscope can import"):
        detect_format(b"[" * SNIFF_BYTES, "brackets.json")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_json_is_named_so(encoding: str) -> None:
    """Before, PowerShell's UTF-16 output was taken for protobuf: 'Wire format was corrupt'."""
    text = json.dumps({"resourceSpans": []}, indent=2)
    with pytest.raises(BadRequest, match="UTF-16 text; save it as UTF-8"):
        detect_format(text.encode(encoding), "spans.json")
    # Protobuf never starts so: an empty request's resource list still reads as protobuf.
    request = realistic_request(1, seed=1).SerializeToString()
    assert detect_format(request, "x") == "otlp-protobuf"
    assert detect_format(b"\n\x00\n\x00", "x") == "otlp-protobuf"


def test_spans_read_before_a_file_turns_out_bad_are_handed_on() -> None:
    """Before, the spans still waiting to fill a chunk were dropped with the error."""

    def requests() -> Iterator[ExportTraceServiceRequest]:
        yield realistic_request(1, seed=3)
        raise BadRequest("line 2: broken")

    chunks = flattened_chunks(requests())
    assert next(chunks).batch.spans == 8
    with pytest.raises(BadRequest, match="line 2: broken"):
        next(chunks)


def test_a_chunk_weighs_at_most_a_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks were 16,384 spans whatever they weighed: spans of large attributes took
    an import of a 630 MB file to 5.4 GB (review). A chunk is one commit."""
    from flowscope.collector import file_import
    from flowscope.store.table_size import table_bytes

    one = realistic_request(1, seed=4)
    spans, copies = file_import._spans_and_copies(one)
    weight = one.ByteSize() + copies
    # The weight read off the request is about what its table weighs.
    assert 0.5 < weight / table_bytes(flatten_request(one).batch.table) < 2
    monkeypatch.setattr(file_import, "CHUNK_BYTES", int(2.5 * weight))
    requests = (realistic_request(1, seed=4, first_trace=n) for n in range(7))
    assert [chunk.batch.spans for chunk in flattened_chunks(requests)] == [24, 24, 8]


@pytest.mark.skipif(not fast_flatten.available(), reason="the C flatten is not built")
def test_requests_the_c_flatten_declines_together_are_flattened_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Joined past the C path's message limit, or with one bad id among them, a whole
    chunk went the Python way, 1.75 times slower (diff review)."""
    from flowscope.collector import file_import

    python_calls: list[int] = []

    def python_flatten(request: ExportTraceServiceRequest) -> Any:
        python_calls.append(1)
        return flatten_request(request)

    monkeypatch.setattr(file_import, "flatten_request", python_flatten)
    requests = [realistic_request(1, seed=6, first_trace=n) for n in range(4)]
    one_by_one = pa.concat_tables(flatten_request(r).batch.table for r in requests)
    one = fast_flatten.count_messages(requests[0].SerializeToString())
    assert one is not None
    monkeypatch.setattr(fast_flatten, "MAX_PROTOBUF_MESSAGES", int(one * 1.5))
    (chunk,) = flattened_chunks(iter(requests))
    assert chunk.batch.table.to_pylist() == one_by_one.to_pylist() and not python_calls
    monkeypatch.undo()
    monkeypatch.setattr(file_import, "flatten_request", python_flatten)
    requests[2].resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01"
    (chunk,) = flattened_chunks(iter(requests))
    assert python_calls == [1]  # the bad request alone
    assert chunk.rejected == 1 and "span_id has 1 bytes" in chunk.reasons[0]
    assert chunk.batch.spans == 4 * 8 - 1


def test_a_chunk_of_many_requests_is_flattened_as_one() -> None:
    """Flattened one by one, a chunk of 1,339 small requests was a table of 1,339
    pieces, which DuckDB inserted 14 times slower (import review)."""
    requests = [realistic_request(1, seed=5, first_trace=n) for n in range(100)]
    (chunk,) = flattened_chunks(iter(requests))
    assert {column.num_chunks for column in chunk.batch.table.columns} == {1}
    one_by_one = pa.concat_tables(flatten_request(r).batch.table for r in requests)
    assert chunk.batch.table.to_pylist() == one_by_one.to_pylist()


_LOGS_LINE = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hi"}}]}]}]}'
_METRICS_LINE = b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"up"}]}]}]}'


def test_other_otlp_signals_are_named_not_called_unknown_json(tmp_path: Path) -> None:
    """Before, a first line of logs was "not an OTLP JSON object" and the file refused;
    the Collector's file exporter writes logs, metrics and traces into one file when one
    exporter is in several pipelines."""
    traces = _compact(_otlp_json(1))
    mixed = _LOGS_LINE + b"\n" + traces + b"\n" + _METRICS_LINE + b"\n" + traces + b"\n"
    assert detect_format(mixed, "otel.jsonl") == "otlp-jsonl"
    path = tmp_path / "otel.jsonl"
    path.write_bytes(mixed)
    assert sniff(path) == "otlp-jsonl"
    with pytest.raises(
        BadRequest, match=r"^logs\.json: OTLP logs \(an object with resourceLogs\), "
    ):
        detect_format(_LOGS_LINE, "logs.json")
    with pytest.raises(BadRequest, match=r"not traces; flowscope stores traces only$"):
        detect_format(_METRICS_LINE + b"\n", "metrics.json")


def test_json_lines_whose_first_line_of_logs_is_longer_than_the_head(tmp_path: Path) -> None:
    padding = b"x" * SNIFF_BYTES
    logs = _LOGS_LINE.replace(b'"hi"', b'"' + padding + b'"')
    path = tmp_path / "otel.jsonl"
    path.write_bytes(logs + b"\n" + _compact(_otlp_json(1)) + b"\n")
    assert sniff(path) == "otlp-jsonl"
    path.write_bytes(logs + b"\n")
    with pytest.raises(BadRequest, match="OTLP logs"):
        sniff(path)


def test_logs_and_metrics_lines_are_counted_and_a_file_of_only_them_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "otel.jsonl"
    path.write_bytes(_LOGS_LINE + b"\n" + _compact(_otlp_json(1)) + b"\n" + _METRICS_LINE + b"\n")
    report = FileReport(str(path))
    assert sum(len(_spans_of(r)) for r in read_requests(path, "otlp-jsonl", None, report)) == 8
    assert report.other_signal_lines == 2
    path.write_bytes(_LOGS_LINE + b"\n" + _METRICS_LINE + b"\n" + _LOGS_LINE + b"\n")
    with pytest.raises(
        BadRequest,
        match=r"^holds OTLP logs and metrics \(3 lines\), no traces; flowscope stores traces only$",
    ):
        list(read_requests(path, "otlp-jsonl", None, FileReport(str(path))))
    # An empty request is a (spanless) traces line, not another signal.
    path.write_bytes(b'{"resourceSpans": []}\n' + _LOGS_LINE + b"\n")
    assert list(read_requests(path, "otlp-jsonl")) == [ExportTraceServiceRequest()]


def _framed(*messages: bytes) -> bytes:
    """As the Collector's file exporter writes ``format: proto``: each message after its
    length, 4 bytes big-endian."""
    return b"".join(len(m).to_bytes(4, "big") + m for m in messages)


def test_collector_file_exporter_protobuf_is_read_message_by_message(tmp_path: Path) -> None:
    """Before, such a file was one corrupt request: "Wire format was corrupt"."""
    requests = [realistic_request(t, seed=t) for t in (1, 2, 3)]  # 8, 16, 24 spans
    path = tmp_path / "traces.binpb"
    path.write_bytes(_framed(*(r.SerializeToString() for r in requests)))
    assert sniff(path) == "otlp-protobuf-framed"
    ticks: list[int] = []
    report = FileReport(str(path))
    read = list(read_requests(path, "otlp-protobuf-framed", ticks.append, report))
    assert read == requests
    assert sum(ticks) == path.stat().st_size
    assert report.bad_parts == 0
    # An empty message (no spans) is a message too.
    path.write_bytes(_framed(b"", requests[0].SerializeToString()))
    assert sniff(path) == "otlp-protobuf-framed"
    # A plain request stays one request, also when its name says nothing.
    path = tmp_path / "traces.bin"
    path.write_bytes(requests[2].SerializeToString())
    assert sniff(path) == "otlp-protobuf"


def test_a_framed_file_with_a_bad_and_a_cut_off_message(tmp_path: Path) -> None:
    good = [realistic_request(1, seed=s).SerializeToString() for s in (4, 5)]
    bad = b"\x0a\xff\xff"  # a length past its message's end
    cut = _framed(good[0])[:40]  # the exporter stopped while writing it
    path = tmp_path / "traces.bin"
    path.write_bytes(_framed(good[0], bad, good[1]) + cut)
    assert sniff(path) == "otlp-protobuf-framed"
    report = FileReport(str(path))
    ticks: list[int] = []
    read = list(read_requests(path, "otlp-protobuf-framed", ticks.append, report))
    assert [r.SerializeToString() for r in read] == good
    assert sum(ticks) == path.stat().st_size
    assert report.bad_parts == 2
    at = 3 * 4 + len(good[0]) + len(bad) + len(good[1])
    assert report.bad_notes[0].startswith(f"message 2 (at byte {4 + len(good[0])}): invalid OTLP")
    assert report.bad_notes[1] == (
        f"message 4 (at byte {at}): cut off, the file ends inside it (still being written, "
        "or its writer was stopped)"
    )
    # A plain request cut short is not taken for framed (it does not start with 0x00).
    path.write_bytes(good[0][:-3])
    assert sniff(path) == "otlp-protobuf"


def test_collector_zstd_messages_are_read_message_by_message(tmp_path: Path) -> None:
    """The exporter's compression: zstd compresses each message on its own, protobuf or
    JSON as its format: says. Such files were refused ("without a zstd decoder"),
    though flowscope decodes zstd for its receivers, and `zstd -d` cannot read them."""
    import cramjam

    def packed(data: bytes) -> bytes:
        return bytes(cramjam.zstd.compress(data))

    proto = [realistic_request(2, seed=s, first_trace=s * 2).SerializeToString() for s in (1, 2)]
    as_json = json.dumps(_otlp_json(2)).encode()
    path = tmp_path / "traces"
    path.write_bytes(_framed(packed(proto[0]), packed(as_json), packed(proto[1])))
    assert sniff(path) == "otlp-zstd-framed"
    assert _spans_read(path, "otlp-zstd-framed") == 48
    # A message that is not zstd is passed over, as one that is not protobuf is; a cut
    # last one is named so.
    bad = b"\x28\xb5\x2f\xfd" + b"\x04\x58" + bytes(range(40))  # zstd magic, then junk
    whole = _framed(packed(proto[0]), bad, packed(proto[1]))
    path.write_bytes(whole + _framed(packed(as_json))[:30])
    report = FileReport(str(path))
    assert sniff(path) == "otlp-zstd-framed"
    read = sum(
        flatten_request(r).batch.spans for r in read_requests(path, sniff(path), report=report)
    )
    assert read == 32 and report.bad_parts == 2
    from flowscope.collector.importer import report_line

    report.format = "otlp-zstd-framed"
    assert report_line(report, False).endswith("; 2 bad messages skipped")  # not "lines"


# --- Jaeger v2's API v3 answers -------------------------------------------------------------------


def _spans_read(path: Path, fmt: str) -> int:
    return sum(flatten_request(r).batch.spans for r in read_requests(path, fmt))


def test_jaeger_v3_answers_one_pretty_or_one_a_line(tmp_path: Path) -> None:
    """`curl <jaeger>/api/v3/traces/<id>` answers OTLP JSON under "result" (the
    find-traces call one such answer per chunk): it was refused as "not trace data"."""
    one = tmp_path / "trace.json"
    one.write_text(json.dumps({"result": _otlp_json(2)}, indent=2))
    assert sniff(one) == "jaeger-v3-json"
    assert _spans_read(one, "jaeger-v3-json") == 16
    lines = tmp_path / "found.json"
    lines.write_bytes(b"\n".join(_compact({"result": _otlp_json(n)}) for n in (1, 2, 3)))
    assert detect_format(lines.read_bytes(), lines.name) == "jaeger-v3-json"
    assert sniff(lines) == "jaeger-v3-json"
    assert _spans_read(lines, "jaeger-v3-json") == 48
    # Its spans are those of the same OTLP JSON imported bare.
    bare = tmp_path / "bare.json"
    bare.write_bytes(_compact(_otlp_json(2)))
    assert list(read_requests(bare, "otlp-json")) == list(read_requests(one, "jaeger-v3-json"))


def test_jaeger_v3_error_answer_says_what_jaeger_said(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    path.write_text('{"error": {"httpCode": 404, "message": "trace not found"}}')
    assert sniff(path) == "jaeger-v3-json"
    with pytest.raises(
        BadRequest, match=r"Jaeger answered an error, not traces: trace not found \(HTTP 404\)"
    ):
        list(read_requests(path, "jaeger-v3-json"))
    # An answer of another kind after good ones names the one it stopped at.
    path.write_bytes(_compact({"result": _otlp_json(1)}) + b'\n{"resultt": 1}\n')
    with pytest.raises(BadRequest, match="answer 2: an object with neither result nor error"):
        list(read_requests(path, "jaeger-v3-json"))


def test_jaeger_v3_answers_with_a_bom_or_of_logs(tmp_path: Path) -> None:
    """A BOM refused the file at character 0 (other JSON files take it); an answer of
    logs was "not trace data (an object with keys result)"."""
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + _compact({"result": _otlp_json(1)}))
    assert sniff(path) == "jaeger-v3-json"
    assert _spans_read(path, "jaeger-v3-json") == 8
    path.write_bytes(_compact({"result": {"resourceLogs": []}}))
    assert sniff(path) == "jaeger-v3-json"
    with pytest.raises(BadRequest, match="answer 1: OTLP logs under result, not traces"):
        list(read_requests(path, "jaeger-v3-json"))


def test_a_result_object_that_is_not_otlp_is_not_taken_for_jaeger_v3() -> None:
    with pytest.raises(BadRequest, match="not trace data"):
        detect_format(b'{"result": {"rows": [1, 2]}}', "answer.json", whole=True)


def test_one_zipkin_span_on_its_own_is_zipkin() -> None:
    """It was refused as "not trace data" while listing its traceId and id."""
    span = b'{"name": "get", "traceId": "463ac35c9f6413ad", "id": "0000000000000001"}'
    assert detect_format(span, "span.json", whole=True) == "zipkin-json"


def test_json_lines_with_a_byte_that_is_not_utf8_early_are_json(tmp_path: Path) -> None:
    """A Latin-1 byte in the first line made the whole file "invalid OTLP protobuf";
    now that line is passed over and the others read, as anywhere later in the file."""
    lines = [json.dumps(_otlp_json(1)).encode() for _ in range(3)]
    lines[0] = lines[0].replace(b'"name": "', b'"name": "caf\xe9 ', 1)
    assert b"\xe9" in lines[0]
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert sniff(path) == "otlp-jsonl"
    report = FileReport(str(path))
    read = sum(
        flatten_request(r).batch.spans for r in read_requests(path, "otlp-jsonl", report=report)
    )
    assert read == 16 and report.bad_parts == 1


def test_a_file_cut_inside_its_first_message_is_cut_off_not_corrupt(tmp_path: Path) -> None:
    """Caught while the Collector wrote its first batch (longer than the 64 KiB head),
    a JSON lines file was "not valid JSON: Unterminated string" and a framed one
    "invalid OTLP protobuf", each failing whole, where a cut later line or message is
    passed over as cut off."""
    line = json.dumps(_otlp_json(400)).encode()
    assert len(line) > 2 * SNIFF_BYTES
    message = realistic_request(400).SerializeToString()
    for name, data in (("live.jsonl", line[: len(line) // 2]), ("live.pb", _framed(message)[:999])):
        path = tmp_path / name
        path.write_bytes(data)
        report = FileReport(str(path))
        assert list(read_requests(path, sniff(path), report=report)) == []
        assert report.bad_parts == 1
        assert "cut off, the file ends inside it" in report.bad_notes[0]
    # A cut after text that is not ASCII (JSON counts characters, not bytes).
    path = tmp_path / "accents.json"
    path.write_bytes(
        '{"resourceSpans": [{"resource": {"attributes": [{"key": "ééé", "value":'.encode()
    )
    report = FileReport(str(path))
    assert list(read_requests(path, sniff(path), report=report)) == []
    assert report.bad_parts == 1 and "cut off" in report.bad_notes[0]
    # Cut right after the length, inside zstd's magic, or inside a character.
    for name, data in (
        ("after-length", (300).to_bytes(4, "big")),
        ("in-magic", (300).to_bytes(4, "big") + b"\x28\xb5"),
        (
            "in-char.json",
            '{"resourceSpans": [{"resource": {"attributes": [{"key": "é'.encode()[:-1],
        ),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        report = FileReport(str(path))
        assert list(read_requests(path, sniff(path), report=report)) == [], name
        assert report.bad_parts == 1 and "cut off" in report.bad_notes[0], name
    # Any other file starting with 0x00 is no trace file (it was "cut off" for a moment).
    for name, data in (("module.wasm", b"\x00asm\x01\x00\x00\x00" + bytes(500)), ("z", bytes(7))):
        path = tmp_path / name
        path.write_bytes(data)
        assert sniff(path) == "otlp-protobuf"


def test_a_zstd_file_is_decompressed_in_bounded_memory(tmp_path: Path) -> None:
    """Fed a MiB at a time, the decoder returned all its output for it at once: a 1 GB
    content compressed to 99 KB took 1.1 GB of memory."""
    import tracemalloc

    import zstandard

    from flowscope.collector.file_import import decompressed

    line = b'{"resourceSpans":[{"resource":{},"scopeSpans":[{"spans":[]}]}]}\n'
    content = line * (64 * 2**20 // len(line))  # 64 MiB, compressed to a few KB
    packed = tmp_path / "big.jsonl.zst"
    packed.write_bytes(zstandard.ZstdCompressor(level=3).compress(content))
    assert packed.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with decompressed(packed) as copy:
            assert copy.stat().st_size == len(content)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, peak


def test_a_zstd_file_that_starts_with_a_skippable_frame_is_zstd(tmp_path: Path) -> None:
    """pzstd starts every file with one; it was taken for protobuf ("Wire format was
    corrupt")."""
    import zstandard

    from flowscope.collector.file_import import decompressed

    content = b'{"resourceSpans": []}\n'
    skippable = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"\x00" * 4
    packed = tmp_path / "pz.jsonl.zst"
    packed.write_bytes(skippable + zstandard.ZstdCompressor().compress(content))
    with decompressed(packed) as copy:
        assert copy.name == "pz.jsonl" and copy.read_bytes() == content


# --- Grafana Tempo ----------------------------------------------------------------------------


def _as_old_otlp(document: dict[str, Any]) -> dict[str, Any]:
    """OTLP JSON as Tempo 1.x and Grafana's older exports wrote it."""
    for resource in document["resourceSpans"]:
        resource["instrumentationLibrarySpans"] = resource.pop("scopeSpans")
        for scope in resource["instrumentationLibrarySpans"]:
            scope["instrumentationLibrary"] = scope.pop("scope", {})
    return document


def _ids_in_base64(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every span's and link's ids in base64, as Tempo writes them."""
    found = 0

    def convert(item: dict[str, Any]) -> None:
        nonlocal found
        for key in ("traceId", "spanId", "parentSpanId"):
            if item.get(key):
                item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()
                found += 1

    for resource in document["resourceSpans"]:
        for scope in resource.get("scopeSpans") or resource["instrumentationLibrarySpans"]:
            for span in scope["spans"]:
                convert(span)
                for link in span.get("links", []):
                    convert(link)
    assert found
    return document


def test_grafana_tempo_trace_json_is_imported(tmp_path: Path) -> None:
    """Tempo's /api/traces/<id>, Grafana's "Export" of a trace ({"batches": [...]}, older
    ones with instrumentationLibrarySpans) and /api/v2/traces/<id> ({"trace": ...}) were
    refused as "not trace data": Tempo users could not load their files."""
    bare = tmp_path / "bare.json"
    bare.write_bytes(_compact(_otlp_json(2)))
    expected = list(read_requests(bare, "otlp-json"))
    documents = {
        "batches.json": {"batches": _otlp_json(2)["resourceSpans"]},
        "old.json": {"batches": _as_old_otlp(_otlp_json(2))["resourceSpans"]},
        "v2.json": {"trace": _otlp_json(2), "status": "complete"},
        "v2-batches.json": {"trace": {"batches": _otlp_json(2)["resourceSpans"]}},
        # As Tempo answers today: ids in base64 (grafana/tempo#5437); every span was
        # refused as not hex (migrator review).
        "base64.json": {"batches": _ids_in_base64(_otlp_json(2))["resourceSpans"]},
        "v2-base64.json": {"trace": _ids_in_base64(_as_old_otlp(_otlp_json(2)))},
    }
    for name, document in documents.items():
        path = tmp_path / name
        path.write_text(json.dumps(document, indent=2))
        assert sniff(path) == "tempo-json", name
        assert list(read_requests(path, "tempo-json")) == expected, name
    # A "batches" that is no list, or a "trace" without spans, is no Tempo answer.
    for document in ({"batches": {}}, {"trace": {"id": "x"}}):
        with pytest.raises(BadRequest, match=r"Grafana Tempo's trace JSON \(\{\"batches"):
            detect_format(_compact(document), "x.json", whole=True)
