"""The OpenTelemetry Python SDK's own exporters against a live flowscope server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.json.http.trace_exporter import (
    OTLPSpanExporter as JsonHttpExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as ProtoHttpExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from flowscope.server import FlowscopeServer
from flowscope.testing.server import Endpoints, server_in_process


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[FlowscopeServer, Endpoints]]:
    with server_in_process(tmp_path / "live.duckdb") as running:
        yield running


def _grpc(ep: Endpoints) -> SpanExporter:
    return GrpcExporter(endpoint=f"http://{ep.grpc}", insecure=True)


def _grpc_gzip(ep: Endpoints) -> SpanExporter:
    from grpc import Compression as GrpcCompression

    return GrpcExporter(
        endpoint=f"http://{ep.grpc}", insecure=True, compression=GrpcCompression.Gzip
    )


def _proto_http(ep: Endpoints) -> SpanExporter:
    return ProtoHttpExporter(endpoint=f"{ep.http}/v1/traces")


def _proto_http_gzip(ep: Endpoints) -> SpanExporter:
    return ProtoHttpExporter(endpoint=f"{ep.http}/v1/traces", compression=Compression.Gzip)


def _json_http(ep: Endpoints) -> SpanExporter:
    return JsonHttpExporter(endpoint=f"{ep.http}/v1/traces")


EXPORTERS: dict[str, Callable[[Endpoints], SpanExporter]] = {
    "grpc": _grpc,
    "grpc-gzip": _grpc_gzip,
    "http-protobuf": _proto_http,
    "http-protobuf-gzip": _proto_http_gzip,
    "http-json": _json_http,
}

LINKED = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("vendor", "x")]),
)


def _emit(exporter: SpanExporter) -> dict[str, Any]:
    resource = Resource.create(
        {
            "service.name": "checkout",
            "service.version": "2.1.0",
            "deployment.environment.name": "test",
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop.checkout", "3.4.5", attributes={"scope.attr": "yes"})
    ids: dict[str, Any] = {}
    with tracer.start_as_current_span(
        "POST /checkout", kind=SpanKind.SERVER, attributes={"http.route": "/checkout"}
    ) as root:
        with tracer.start_as_current_span(
            "charge card", kind=SpanKind.CLIENT, links=[Link(LINKED, {"link.kind": "retry-of"})]
        ) as child:
            child.set_attributes(
                {
                    "str": "text <&>",
                    "bool": True,
                    "int": -42,
                    "float": 1.5,
                    "float_int": 3.0,
                    "strs": ["a", "b"],
                    "ints": [1, 2],
                    "bools": [True, False],
                    "floats": [0.25, 2.0],
                }
            )
            child.add_event(
                "card declined",
                {"attempt": 2, "gateway": "visa"},
                timestamp=1_700_000_000_123_456_789,
            )
            child.set_status(Status(StatusCode.ERROR, "declined"))
            ids["child"] = child.get_span_context()
        ids["root"] = root.get_span_context()
    provider.shutdown()
    return ids


def _query(server: FlowscopeServer, sql: str) -> list[tuple[Any, ...]]:
    assert server.database is not None
    server.database.await_writes()  # acknowledged: in the journal, moving to the table
    rows: list[tuple[Any, ...]] = server.database.reader().execute(sql).fetchall()
    return rows


@pytest.mark.parametrize("name", sorted(EXPORTERS))
def test_sdk_exporter_spans_are_stored_with_every_field(
    name: str, live: tuple[FlowscopeServer, Endpoints]
) -> None:
    server, endpoints = live
    ids = _emit(EXPORTERS[name](endpoints))
    root, child = ids["root"], ids["child"]
    trace = f"{root.trace_id:032x}"
    rows = _query(server, f"SELECT * FROM otel_traces WHERE TraceId = '{trace}' ORDER BY SpanName")
    assert len(rows) == 2
    assert server.database is not None
    columns = [
        d[0]
        for d in server.database.reader().execute("SELECT * FROM otel_traces LIMIT 0").description
    ]
    by_name = {row[columns.index("SpanName")]: dict(zip(columns, row, strict=True)) for row in rows}
    server_span, client_span = by_name["POST /checkout"], by_name["charge card"]

    assert server_span["SpanId"] == f"{root.span_id:016x}"
    assert server_span["ParentSpanId"] == ""
    assert server_span["SpanKind"] == "Server"
    assert server_span["StatusCode"] == "Unset"
    assert server_span["SpanAttributes"] == {"http.route": "/checkout"}
    assert server_span["Duration"] > 0

    c = client_span
    assert c["TraceId"] == trace
    assert c["SpanId"] == f"{child.span_id:016x}"
    assert c["ParentSpanId"] == f"{root.span_id:016x}"
    assert c["SpanKind"] == "Client"
    assert c["ServiceName"] == "checkout"
    assert c["ResourceAttributes"]["service.version"] == "2.1.0"
    assert c["ResourceAttributes"]["deployment.environment.name"] == "test"
    assert c["ResourceAttributes"]["telemetry.sdk.language"] == "python"
    assert c["ScopeName"] == "shop.checkout"
    assert c["ScopeVersion"] == "3.4.5"
    assert c["ScopeAttributes"] == {"scope.attr": "yes"}
    assert c["SpanAttributes"] == {
        "str": "text <&>",
        "bool": "true",
        "int": "-42",
        "float": "1.5",
        "float_int": "3",
        "strs": '["a","b"]',
        "ints": "[1,2]",
        "bools": "[true,false]",
        "floats": "[0.25,2]",
    }
    assert c["StatusCode"] == "Error"
    assert c["StatusMessage"] == "declined"
    assert c["Duration"] > 0
    assert c["Timestamp"] >= server_span["Timestamp"]
    assert len(c["Events"]) == 1
    event = c["Events"][0]
    assert event["Name"] == "card declined"
    assert event["Attributes"] == {"attempt": "2", "gateway": "visa"}
    assert event["Timestamp"].isoformat().startswith("2023-11-14T22:13:20.123456")
    # The Python SDK's encoders do not send a link's trace state (test_flatten covers it).
    assert c["Links"] == [
        {
            "TraceId": "0af7651916cd43dd8448eb211c80319c",
            "SpanId": "b7ad6b7169203331",
            "TraceState": "",
            "Attributes": {"link.kind": "retry-of"},
        }
    ]
    assert c["EventsDroppedAttributesCount"] == [0]
    assert c["LinksDroppedAttributesCount"] == [0]
    # OTLP span flags: 0x100 "is-remote known", 0x200 "is remote" (the linked context is).
    assert c["Flags"] == 0x100
    assert c["LinksFlags"] == [0x300]
    assert c["DroppedAttributesCount"] == c["DroppedEventsCount"] == c["DroppedLinksCount"] == 0


def test_exact_event_timestamp_in_nanoseconds(live: tuple[FlowscopeServer, Endpoints]) -> None:
    server, endpoints = live
    _emit(_proto_http(endpoints))
    rows = _query(
        server, "SELECT epoch_ns(Events[1].Timestamp) FROM otel_traces WHERE len(Events) = 1"
    )
    assert rows == [(1_700_000_000_123_456_789,)]


def test_a_grpc_exporter_at_the_http_port_is_named_in_the_log(tmp_path: Path) -> None:
    """The most usual mistake (Python's and .NET's SDKs default to gRPC) lost every
    span, and the server logged only uvicorn's "Invalid HTTP request received."."""
    from flowscope.testing.server import start_server_process
    from flowscope.testing.waiting import wait_until

    server = start_server_process(tmp_path / "spans.duckdb")
    try:
        exporter = GrpcExporter(endpoint=server.endpoints.http, insecure=True, timeout=2)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.get_tracer("t").start_span("lost").end()
        provider.shutdown()
        wait_until(lambda: "HTTP/2 client" in "".join(server.output), "the warning")
        warned = [line for line in server.output if "HTTP/2 client" in line]
        assert len(warned) == 1, warned  # the exporter's retries: said once
        assert "connected to the OTLP/HTTP port" in warned[0]
        assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in warned[0]
        assert not any("Invalid HTTP request" in line for line in server.output)
    finally:
        assert server.stop() == 0
