"""--token: OTLP and /api/* need the bearer token, /healthz does not; open binds are warned about."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from flowscope.collector.auth import BEARER_CHALLENGE, token_matches
from flowscope.server import FlowscopeServer, ServeConfig
from flowscope.testing.otlp import realistic_request
from flowscope.testing.posting import PB
from flowscope.testing.server import Endpoints, server_in_process, start_server_process

TOKEN = "s3cret-token"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
UNAUTHENTICATED = 16  # google.rpc.Code
WRONG = ["", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlowscopeServer, Endpoints]]:
    path = tmp_path_factory.mktemp("auth") / "auth.duckdb"
    with server_in_process(path, decode_workers=0, token=TOKEN) as running:
        yield running


def _headers(authorization: str | None) -> dict[str, str]:
    return {**PB, "Authorization": authorization} if authorization is not None else dict(PB)


def _grpc(endpoints: Endpoints, body: bytes, authorization: str | None) -> grpc.StatusCode:
    metadata = (("authorization", authorization),) if authorization is not None else None
    with grpc.insecure_channel(endpoints.grpc) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        try:
            export(body, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _count(server: FlowscopeServer) -> int:
    assert server.database is not None
    return server.database.span_count()


def test_otlp_http_requires_the_token(live: tuple[FlowscopeServer, Endpoints]) -> None:
    server, endpoints = live
    body = realistic_request(1, seed=1).SerializeToString()
    before = _count(server)
    with httpx.Client(timeout=30) as client:
        for authorization in [None, *WRONG]:
            answer = client.post(
                f"{endpoints.http}/v1/traces", content=body, headers=_headers(authorization)
            )
            assert answer.status_code == 401, authorization
            assert Status.FromString(answer.content).code == UNAUTHENTICATED
            assert answer.headers["www-authenticate"] == BEARER_CHALLENGE  # RFC 6750 §3
        assert _count(server) == before
        for authorization in (f"Bearer {TOKEN}", f"bearer {TOKEN}"):
            answer = client.post(
                f"{endpoints.http}/v1/traces", content=body, headers=_headers(authorization)
            )
            assert answer.status_code == 200, authorization
    assert _count(server) == before + 8


def test_a_token_with_non_ascii_bytes_is_a_401_not_a_500(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    """Before, hmac.compare_digest raised TypeError on the header's non-ASCII text."""
    _, endpoints = live
    body = realistic_request(1, seed=3).SerializeToString()
    with httpx.Client(timeout=30) as client:
        for value in (f"Bearer {TOKEN}é", "Bearer s3crét-tøken", f"Bearer {TOKEN}\u2603"):
            raw = value.encode("utf-8")
            answer = client.post(
                f"{endpoints.http}/v1/traces", content=body, headers={**PB, "Authorization": raw}
            )
            assert answer.status_code == 401, value
            api = client.get(f"{endpoints.ui}/api/flows", headers={"Authorization": raw})
            assert api.status_code == 401, value
    assert token_matches("tøken", "Bearer tøken")  # a UTF-8 token compares as text


def test_otlp_grpc_requires_the_token(live: tuple[FlowscopeServer, Endpoints]) -> None:
    server, endpoints = live
    body = realistic_request(1, seed=2).SerializeToString()
    before = _count(server)
    for authorization in [None, *[w for w in WRONG if w]]:
        assert _grpc(endpoints, body, authorization) == grpc.StatusCode.UNAUTHENTICATED
    assert _count(server) == before
    assert _grpc(endpoints, body, f"Bearer {TOKEN}") == grpc.StatusCode.OK
    assert _count(server) == before + 8


def test_two_authorization_headers_are_refused_everywhere(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    """OTLP/HTTP and the API read the first of two, gRPC the last: one request got in
    through one door and not the other. Two are now refused by all three."""
    _, endpoints = live
    body = realistic_request(1, seed=4).SerializeToString()
    for pair in ([f"Bearer {TOKEN}", "Bearer wrong"], ["Bearer wrong", f"Bearer {TOKEN}"]):
        headers = [("Content-Type", PB["Content-Type"])] + [("Authorization", v) for v in pair]
        with httpx.Client(timeout=30) as client:
            answer = client.post(f"{endpoints.http}/v1/traces", content=body, headers=headers)
            assert answer.status_code == 401, pair
            api = client.get(
                f"{endpoints.ui}/api/flows", headers=[("Authorization", v) for v in pair]
            )
            assert api.status_code == 401, pair
        with grpc.insecure_channel(endpoints.grpc) as channel:
            export = channel.unary_unary(
                EXPORT, request_serializer=None, response_deserializer=None
            )
            with pytest.raises(grpc.RpcError) as refused:
                export(body, metadata=[("authorization", v) for v in pair], timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, pair
    # The same token twice is two headers too: a client sends one.
    assert not token_matches(TOKEN, [f"Bearer {TOKEN}", f"Bearer {TOKEN}"])
    assert token_matches(TOKEN, [f"Bearer {TOKEN}"]) and not token_matches(TOKEN, [])


def test_api_requires_the_token_and_healthz_stays_open(
    live: tuple[FlowscopeServer, Endpoints],
) -> None:
    _, endpoints = live
    query = {"sql": "SELECT count(*) AS n FROM otel_traces"}
    with httpx.Client(base_url=endpoints.ui, timeout=30) as client:
        for authorization in [None, *WRONG]:
            headers = {"Authorization": authorization} if authorization is not None else {}
            answer = client.post("/api/sql", json=query, headers=headers)
            assert answer.status_code == 401, authorization
            assert answer.json() == {"detail": "missing or wrong bearer token"}
            assert answer.headers["www-authenticate"] == BEARER_CHALLENGE
            # Unknown API paths too: the token is checked before routing.
            assert client.get("/api/nothing-here", headers=headers).status_code == 401
        answer = client.post("/api/sql", json=query, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200
        assert answer.json()["columns"] == ["n"]
        health = client.get("/healthz", params={"wait_s": 30})
        assert health.status_code == 200 and health.json()["status"] == "ok"


def _sdk_grpc(endpoints: Endpoints) -> SpanExporter:
    return GrpcExporter(
        endpoint=f"http://{endpoints.grpc}",
        insecure=True,
        headers={"authorization": f"Bearer {TOKEN}"},
    )


def _sdk_http(endpoints: Endpoints) -> SpanExporter:
    return HttpExporter(
        endpoint=f"{endpoints.http}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"}
    )


@pytest.mark.parametrize("make", [_sdk_grpc, _sdk_http], ids=["grpc", "http"])
def test_sdk_exporters_configured_with_the_token_get_in(
    make: object, live: tuple[FlowscopeServer, Endpoints]
) -> None:
    server, endpoints = live
    assert callable(make)
    service = f"authed-{getattr(make, '__name__', '')}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(make(endpoints)))
    provider.get_tracer("auth-test").start_span("with token").end()
    provider.shutdown()
    assert server.database is not None
    server.database.await_writes()  # acknowledged: in the journal, moving to the table
    rows = (
        server.database.reader()
        .execute("SELECT SpanName FROM otel_traces WHERE ServiceName = ?", [service])
        .fetchall()
    )
    assert rows == [("with token",)]


def test_token_check() -> None:
    assert token_matches(None, None) and token_matches("", "anything")
    assert token_matches("t", "Bearer t") and token_matches("t", "BEARER  t ")
    assert not token_matches("t", None) and not token_matches("t", "Bearer u")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("flowscope.example.com", False),
    ],
)
def test_which_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    assert ServeConfig(host=host).is_loopback is loopback


WARNING = "without --token"


def test_open_bind_without_token_prints_a_warning(tmp_path: Path) -> None:
    server = start_server_process(
        tmp_path / "open.duckdb", "--host", "0.0.0.0", "--decode-workers", "0", env=_no_token()
    )
    try:
        health = httpx.get(f"{server.endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60)
        assert health.status_code == 200
    finally:
        assert server.stop() == 0
    output = "".join(server.output)
    assert "warning: listening on 0.0.0.0 without --token" in output
    # The printed URLs are this machine's way in; the banner says the bind is wider.
    assert "listening on every interface, 0.0.0.0" in output


def test_an_address_that_cannot_be_bound_is_not_warned_of_as_listened_on(
    tmp_path: Path,
) -> None:
    """The warning came first, then "cannot listen on": it had not listened at all."""
    with pytest.raises(RuntimeError) as failed:
        # TEST-NET-1 (RFC 5737): no interface of this machine has it.
        start_server_process(tmp_path / "far.duckdb", "--host", "192.0.2.1", env=_no_token())
    assert "cannot listen on 192.0.2.1" in str(failed.value)
    assert WARNING not in str(failed.value)


def test_open_bind_with_token_prints_no_warning(tmp_path: Path) -> None:
    server = start_server_process(
        tmp_path / "tokened.duckdb",
        "--host",
        "0.0.0.0",
        "--decode-workers",
        "0",
        env={"FLOWSCOPE_TOKEN": TOKEN},  # the environment variable counts as --token
    )
    try:
        assert (
            httpx.post(f"{server.endpoints.ui}/api/sql", json={"sql": "SELECT 1"}).status_code
            == 401
        )
    finally:
        assert server.stop() == 0
    assert WARNING not in "".join(server.output)


def _no_token() -> dict[str, str]:
    # start_server_process adds to os.environ; a token set by whoever runs the tests must
    # not hide the warning. An empty FLOWSCOPE_TOKEN means no token (serve treats "" as None).
    return {"FLOWSCOPE_TOKEN": ""}
