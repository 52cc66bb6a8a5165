"""OTLP/HTTP bodies as clients really send them: chunked, gzip, both, JSON."""

from __future__ import annotations

import gzip
import socket
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cramjam
import httpx
import pytest
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from flowscope.collector.decode import decompress
from flowscope.collector.otlp_json import request_from_json, request_to_json
from flowscope.server import FlowscopeServer
from flowscope.testing.otlp import realistic_request
from flowscope.testing.posting import PB
from flowscope.testing.server import Endpoints, server_in_process
from flowscope.testing.waiting import wait_until


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlowscopeServer, Endpoints]]:
    db = Path(tmp_path_factory.mktemp("transfer")) / "spans.duckdb"
    with server_in_process(db) as pair:
        yield pair


def _pieces(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _count(server: FlowscopeServer, trace_hex_prefix: str) -> int:
    server.database.await_writes()  # acknowledged: in the journal, moving to the table
    rows = server.database.reader().execute(
        "SELECT count(*) FROM otel_traces WHERE TraceId LIKE $p", {"p": trace_hex_prefix + "%"}
    )
    row = rows.fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(
    ("label", "prefix", "chunked", "gzipped", "as_json"),
    [
        ("chunked protobuf", b"\x01\x01", True, False, False),
        ("gzip protobuf", b"\x01\x02", False, True, False),
        ("chunked gzip protobuf", b"\x01\x03", True, True, False),
        ("chunked gzip JSON", b"\x01\x04", True, True, True),
    ],
)
def test_body_encodings_store_every_span(
    live: tuple[FlowscopeServer, Endpoints],
    label: str,
    prefix: bytes,
    chunked: bool,
    gzipped: bool,
    as_json: bool,
) -> None:
    server, endpoints = live
    request = realistic_request(20, seed=len(label), trace_id_prefix=prefix)
    sent = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if as_json:
        body = request_to_json(request)
        headers = {"Content-Type": "application/json"}
    else:
        body = request.SerializeToString()
        headers = {"Content-Type": "application/x-protobuf"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    content: bytes | Iterator[bytes] = _pieces(body) if chunked else body
    answer = httpx.post(f"{endpoints.http}/v1/traces", content=content, headers=headers)
    assert answer.status_code == 200, answer.text
    if chunked:
        assert "content-length" not in answer.request.headers
        assert answer.request.headers["transfer-encoding"] == "chunked"
    if not as_json:
        parsed = ExportTraceServiceResponse.FromString(answer.content)
        assert parsed.partial_success.rejected_spans == 0
    assert _count(server, prefix.hex()) == sent


def test_gzip_body_of_several_members(live: tuple[FlowscopeServer, Endpoints]) -> None:
    """RFC 1952 lets a gzip body hold members one after another (``cat a.gz b.gz``);
    before, only the first was read and the request's other spans were lost."""
    server, endpoints = live
    prefix = b"\x01\x05"
    request = realistic_request(20, seed=9, trace_id_prefix=prefix)
    sent = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    body = request.SerializeToString()
    middle = len(body) // 2
    members = gzip.compress(body[:middle]) + gzip.compress(body[middle:])
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    answer = httpx.post(f"{endpoints.http}/v1/traces", content=members, headers=headers)
    assert answer.status_code == 200, answer.text
    assert _count(server, prefix.hex()) == sent


# The OpenTelemetry Collector's exporters send these with ``compression:`` zstd, snappy
# (a raw block, or framed as older Collectors sent it), lz4 (a frame) or zlib.
COLLECTOR_ENCODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "zstd": ("zstd", lambda body: bytes(cramjam.zstd.compress(body))),
    "snappy block": ("snappy", lambda body: bytes(cramjam.snappy.compress_raw(body))),
    "snappy framed": ("snappy", lambda body: bytes(cramjam.snappy.compress(body))),
    "x-snappy-framed": ("x-snappy-framed", lambda body: bytes(cramjam.snappy.compress(body))),
    "lz4": ("lz4", lambda body: bytes(cramjam.lz4.compress(body))),
    "zlib": ("zlib", zlib.compress),
    "deflate": ("deflate", zlib.compress),
}


@pytest.mark.parametrize("label", sorted(COLLECTOR_ENCODINGS))
def test_the_collectors_other_encodings_store_every_span(
    live: tuple[FlowscopeServer, Endpoints], label: str
) -> None:
    """A Collector exporter set to ``compression: zstd`` (or snappy, lz4) was answered
    400 "unsupported Content-Encoding", and every span it sent was dropped."""
    server, endpoints = live
    prefix = bytes([2, sorted(COLLECTOR_ENCODINGS).index(label)])
    request = realistic_request(10, seed=11, trace_id_prefix=prefix)
    sent = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    encoding, compress = COLLECTOR_ENCODINGS[label]
    headers = {**PB, "Content-Encoding": encoding}
    body = compress(request.SerializeToString())
    answer = httpx.post(f"{endpoints.http}/v1/traces", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert _count(server, prefix.hex()) == sent


@pytest.mark.parametrize("label", ["zstd", "snappy block", "snappy framed", "lz4"])
def test_a_small_body_takes_a_buffer_near_its_size_not_the_limit(label: str) -> None:
    """Each zstd/snappy/lz4 body was decoded into a zeroed buffer of the whole request
    limit: 20 MB for a 1 KB request, 1 GB under --max-request-bytes 1GB."""
    encoding, compress = COLLECTOR_ENCODINGS[label]
    body = realistic_request(2, seed=3).SerializeToString()
    squeezed = compress(body)
    tracemalloc.start()
    try:
        assert decompress(squeezed, encoding, max_bytes=1 << 30) == body
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_otlp_json_round_trip_keeps_every_field() -> None:
    request = realistic_request(5, seed=3)
    text = request_to_json(request)
    assert b'"traceId":"' in text and b'"kind":2' in text  # hex ids, integer enums
    assert request_from_json(text) == request


@pytest.fixture
def quick_cutoffs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[FlowscopeServer, Endpoints]]:
    """A server in this process (the receivers too) with short cut-offs and a small
    budget for bodies in flight."""
    from flowscope import http_server
    from flowscope.collector import http_receiver

    monkeypatch.setattr(http_server, "HEADER_TIMEOUT_S", 0.3)
    monkeypatch.setattr(http_receiver, "BODY_IDLE_S", 0.3)
    monkeypatch.setattr(http_receiver, "BODY_TOTAL_S", 1.0)
    monkeypatch.setattr(http_receiver, "BODIES_BUDGET_BYTES", 3000)
    with server_in_process(tmp_path / "cut.duckdb", ingest_process=False) as pair:
        yield pair


def _connect(endpoints: Endpoints) -> socket.socket:
    url = httpx.URL(endpoints.http)
    sock = socket.create_connection((url.host, url.port), timeout=20)
    return sock


def _head(length: int) -> bytes:
    """An OTLP/HTTP protobuf request's head, for a body of ``length`` bytes."""
    return (
        b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: %d\r\n\r\n" % length
    )


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_connections_that_send_no_request_are_closed(
    quick_cutoffs: tuple[FlowscopeServer, Endpoints],
) -> None:
    """Before, idle and byte-by-byte connections stayed open for good: 2,048 of them
    made uvicorn answer every exporter 503."""
    _, endpoints = quick_cutoffs
    with _connect(endpoints) as idle, _connect(endpoints) as partial:
        partial.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\n")  # and no more
        assert _answer(idle) == b""  # closed by the server, within the socket's 20 s
        assert _answer(partial) == b""
    body = realistic_request(1, seed=31).SerializeToString()
    ok = httpx.post(f"{endpoints.http}/v1/traces", content=body, headers=PB)
    assert ok.status_code == 200


def test_a_body_that_stops_coming_is_a_408(
    quick_cutoffs: tuple[FlowscopeServer, Endpoints],
) -> None:
    _, endpoints = quick_cutoffs
    with _connect(endpoints) as stalled:
        stalled.sendall(_head(1000) + b"\n" * 10)
        answer = _answer(stalled)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"no part of the request body came for 0.3 s; 10 bytes of it arrived" in answer
    with _connect(endpoints) as silent:  # not one byte of its body
        silent.sendall(_head(1000))
        answer = _answer(silent)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"no part of the request body came for 0.3 s; 0 bytes of it arrived" in answer


def test_bodies_in_flight_past_the_budget_are_told_to_retry(
    quick_cutoffs: tuple[FlowscopeServer, Endpoints],
) -> None:
    """600 half-sent 16 MB bodies held 5 GB before; now the bytes of bodies being
    received at once are capped, and the next request is told to come back."""
    _, endpoints = quick_cutoffs
    body = realistic_request(1, seed=32).SerializeToString()
    assert 2500 < len(body) < 4000
    with _connect(endpoints) as first:
        first.sendall(_head(len(body)) + body[:2500])  # held, while the rest has not come
        answers: list[httpx.Response] = []

        def refused() -> bool:  # once the server holds the first body's 2,500 bytes
            answers.append(
                httpx.post(f"{endpoints.http}/v1/traces", content=body[:2000], headers=PB)
            )
            return answers[-1].status_code == 503

        wait_until(refused, "a request past the budget to be refused")
        assert answers[-1].headers["Retry-After"] == "1"
        assert "request bodies at once already" in Status.FromString(answers[-1].content).message
        first.sendall(body[2500:])
        assert first.recv(65536).startswith(b"HTTP/1.1 200 ")
    again = httpx.post(f"{endpoints.http}/v1/traces", content=body, headers=PB)
    assert again.status_code == 200  # the budget was given back


def test_inflated_bodies_count_in_the_budget(
    quick_cutoffs: tuple[FlowscopeServer, Endpoints],
) -> None:
    """Only the compressed bytes were counted, and given back before inflating: 40
    small bombs at once (100 KB of gzip, 256 MB each) took the process to 4.7 GB."""
    _, endpoints = quick_cutoffs
    held = realistic_request(1, seed=34).SerializeToString()
    inflating = realistic_request(3, seed=35).SerializeToString()
    packed = gzip.compress(inflating)
    assert len(packed) < 2000 < len(inflating) and len(held) > 1000  # a budget of 3,000
    gzipped = {**PB, "Content-Encoding": "gzip"}
    with _connect(endpoints) as first:
        first.sendall(_head(len(held)) + held[:1000])  # 1,000 bytes held meanwhile
        answers: list[httpx.Response] = []

        def refused() -> bool:
            url = f"{endpoints.http}/v1/traces"
            answers.append(httpx.post(url, content=packed, headers=gzipped))
            return answers[-1].status_code == 503

        wait_until(refused, "an inflated body past the budget to be refused")
        assert "request bodies at once already" in Status.FromString(answers[-1].content).message
        first.sendall(held[1000:])
        assert first.recv(65536).startswith(b"HTTP/1.1 200 ")
    alone = httpx.post(f"{endpoints.http}/v1/traces", content=packed, headers=gzipped)
    assert alone.status_code == 200  # alone it may pass the budget, as a plain body may


def test_a_few_bodies_inflate_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import threading
    import time

    from flowscope.collector import http_receiver

    real = http_receiver.decompress
    lock = threading.Lock()
    active, most = [0], [0]

    def counted(*args: Any) -> bytes:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.05)  # the inflating itself, made long enough to overlap
            return real(*args)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(http_receiver, "decompress", counted)
    packed = gzip.compress(realistic_request(1, seed=36).SerializeToString())
    headers = {**PB, "Content-Encoding": "gzip"}
    with server_in_process(tmp_path / "inflate.duckdb", ingest_process=False) as (_, endpoints):
        url = f"{endpoints.http}/v1/traces"
        codes: list[int] = []
        senders = [
            threading.Thread(
                target=lambda: codes.append(
                    httpx.post(url, content=packed, headers=headers).status_code
                )
            )
            for _ in range(16)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(120)
    assert codes == [200] * 16
    assert 1 <= most[0] <= http_receiver.INFLATING_AT_ONCE


def test_a_body_that_trickles_is_cut_off_at_the_total_deadline(
    quick_cutoffs: tuple[FlowscopeServer, Endpoints],
) -> None:
    """A byte every 0.2 s never trips the 0.3 s idle cut-off: the whole body has 1 s."""
    _, endpoints = quick_cutoffs
    with _connect(endpoints) as slow:
        slow.sendall(_head(1000))
        slow.settimeout(0.2)
        answer = b""
        reset = False
        for _ in range(100):  # 20 s at most
            try:
                slow.sendall(b"\n")
                answer += slow.recv(65536)
            except TimeoutError:
                continue
            except OSError:  # closed after the answer
                break
            if answer:
                slow.settimeout(20)
                try:
                    answer += _answer(slow)  # the rest, to the close
                except ConnectionResetError:
                    # A byte of ours the server never read made its close a reset,
                    # which can drop the rest of the answer here (seen under load).
                    reset = True
                break
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert reset or b"the request body took over 1 s" in answer


def test_a_body_larger_than_the_budget_alone_is_taken(
    quick_cutoffs: tuple[FlowscopeServer, Endpoints],
) -> None:
    """The budget limits bodies beside others; alone, one over it (a --max-request-bytes
    above the budget) was refused for ever, its own first chunk counted against it."""
    server, endpoints = quick_cutoffs
    body = realistic_request(2, seed=33).SerializeToString()
    assert len(body) > 3000  # the test budget
    answer = httpx.post(f"{endpoints.http}/v1/traces", content=_pieces(body, 1000), headers=PB)
    assert answer.status_code == 200, answer.content


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_a_refused_bomb_frees_its_inflated_bytes_at_once(tmp_path: Path, encoding: str) -> None:
    """The 413's exception sat in a cycle (the worker's future, the traceback, the frames
    holding the inflated output) that only a full collection frees: 40 refused bombs
    at once kept 1 GB of the ingest process, 10.8 GB under a 256 MB limit."""
    import gc

    raw = b"\0" * (8 * 1024 * 1024)  # inflates past the 1 MiB limit below
    packed = gzip.compress(raw) if encoding == "gzip" else bytes(cramjam.zstd.compress(raw))
    headers = {**PB, "Content-Encoding": encoding}
    limit = 1024 * 1024
    with server_in_process(
        tmp_path / "bombs.duckdb", ingest_process=False, max_request_bytes=limit
    ) as (_, endpoints):
        gc.collect()
        gc.disable()  # as between the collector's full passes
        tracemalloc.start()
        try:
            for _ in range(8):
                answer = httpx.post(f"{endpoints.http}/v1/traces", content=packed, headers=headers)
                assert answer.status_code == 413
            kept, _peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            gc.enable()
    assert kept < 4 * limit  # not one inflated MiB per refused bomb


def test_requests_turned_away_before_the_app_get_an_otlp_status(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    """OTLP/HTTP: "The response body for all HTTP 4xx and HTTP 5xx responses MUST be a
    Protobuf-encoded Status message" (JSON for JSON requests). The DNS-rebinding guard's
    403 and a body of two lengths were plain text. Exporters sent to 0.0.0.0 (which
    reaches loopback) were refused: an address is no rebinding."""
    _, endpoints = live
    url = f"{endpoints.http}/v1/traces"
    body = realistic_request(1, seed=1).SerializeToString()
    rebound = httpx.post(url, content=body, headers={"Host": "evil.example", **PB}, timeout=30)
    assert rebound.status_code == 403
    assert rebound.headers["content-type"] == "application/x-protobuf"
    status = Status.FromString(rebound.content)
    assert status.code == 7 and "DNS rebinding" in status.message
    as_json = httpx.post(
        url,
        content=b"{}",
        headers={"Host": "evil.example", "Content-Type": "application/json"},
        timeout=30,
    )
    assert as_json.status_code == 403 and "DNS rebinding" in as_json.json()["message"]
    with _connect(endpoints) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/x-protobuf\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        head, _, rest = _answer(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/x-protobuf" in head
    assert "both Content-Length and Transfer-Encoding" in Status.FromString(rest).message
    for host in ("0.0.0.0", "[::]"):
        taken = httpx.post(url, content=body, headers={"Host": host, **PB}, timeout=30)
        assert taken.status_code == 200, host


def test_a_transfer_coding_other_than_chunked_is_501_on_both_ports(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    """RFC 9112 §6.1: a server that does not understand a transfer coding answers 501.
    It was a 400 "not a valid HTTP/1.1 request", which says the client is wrong."""
    _server, endpoints = live
    request = (
        b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    )
    with _connect(endpoints) as sock:
        sock.sendall(request)
        head, _, body = _answer(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501 "), head
    assert b"content-type: application/x-protobuf" in head.lower()
    assert Status.FromString(body).message == (
        "not implemented here: Only Transfer-Encoding: chunked is supported; send a "
        "compressed body with Content-Encoding: gzip"
    )
    url = httpx.URL(endpoints.ui)
    with socket.create_connection((url.host, url.port), timeout=20) as sock:
        sock.sendall(request.replace(b"/v1/traces", b"/api/sql"))
        head, _, body = _answer(sock).partition(b"\r\n\r\n")
    # The API does not decode a compressed body: no advice to send one (diff review).
    assert head.startswith(b"HTTP/1.1 501 ") and b"Only Transfer-Encoding: chunked" in body
    assert b"Content-Encoding" not in body


def test_a_request_http11_does_not_allow_is_refused_as_otlp_refuses(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    """Without a Host header (HTTP/1.1 requires one) uvicorn answered plain text;
    OTLP/HTTP answers every failure with a google.rpc.Status."""
    _server, endpoints = live
    with _connect(endpoints) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        answer = _answer(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert b"content-type: application/x-protobuf" in head.lower()
    status = Status()
    status.ParseFromString(body)
    assert status.code == 3 and "not a valid HTTP/1.1 request" in status.message
    # The API port keeps uvicorn's answer.
    url = httpx.URL(endpoints.ui)
    with socket.create_connection((url.host, url.port), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 400 ")
