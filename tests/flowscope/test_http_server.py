"""The HTTP servers' own guard: which requests a loopback server without a token takes."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from flowscope import http_server
from flowscope.http_server import (
    HttpServer,
    _LocalNamesOnly,
    hosts_file_loopback_names,
    is_loopback,
)
from flowscope.testing.server import server_in_process
from flowscope.testing.waiting import wait_until


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_a_loopback_server_without_a_token_answers_only_local_names(token: str | None) -> None:
    """A page on a name its attacker points at 127.0.0.1 (DNS rebinding) was same-origin
    with a loopback server and read every span through /api/sql."""
    server = HttpServer(Starlette(routes=[Route("/", _hello)]), "127.0.0.1", 0, "t", token=token)
    server.start()
    url = f"http://127.0.0.1:{server.port}/"
    try:
        for local in (
            "localhost",
            "127.0.0.1",
            "[::1]",
            "app.localhost",
            "LOCALHOST",
            "localhost.",
        ):
            answer = httpx.get(url, headers={"Host": f"{local}:{server.port}"}, timeout=30)
            assert answer.status_code == 200, local
        rebound = httpx.get(url, headers={"Host": f"evil.example:{server.port}"}, timeout=30)
    finally:
        server.shutdown()
    if token:  # the token guards it: any name may reach it (a proxy, another host)
        assert rebound.status_code == 200
    else:
        assert rebound.status_code == 403
        assert "Host 'evil.example:" in rebound.text and "DNS rebinding" in rebound.text


def test_loopback_names_as_given_to_host() -> None:
    """`--host LOCALHOST` binds to loopback: it turned the guard off (and warned that
    the server was open to the network)."""
    for name in ("localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.1", "::1", "[::1]"):
        assert is_loopback(name), name
    for name in ("0.0.0.0", "::", "evil.example", "localhost.evil.example", "10.0.0.1"):
        assert not is_loopback(name), name


def test_the_client_shows_a_plain_text_refusal() -> None:
    """The guard's 403 reached the CLI as "server refused: HTTP 403", its reason lost."""
    from flowscope.analysis_sources import _detail

    refused = httpx.Response(
        403, text="Host 'vm:1' refused: ...", headers={"content-type": "text/plain"}
    )
    assert _detail(refused) == "HTTP 403: Host 'vm:1' refused: ..."


def test_names_the_hosts_file_gives_a_loopback_address_are_local(tmp_path: Path) -> None:
    """A machine's own name (`127.0.1.1 myhost` on Debian, `127.0.0.1 vm` here) was
    refused: `curl http://myhost:8686/healthz` on the machine itself got a 403."""
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "127.0.0.1 localhost\n"
        "127.0.1.1 MyHost.example myhost  # the machine\n"
        "::1 ip6-localhost six.\n"
        "10.0.0.5 db.internal\n"
        "# 127.0.0.1 commented.out\n"
        "garbage\n"
    )
    assert hosts_file_loopback_names(hosts) == {
        "localhost",
        "myhost.example",
        "myhost",
        "ip6-localhost",
        "six",
    }
    assert hosts_file_loopback_names(tmp_path / "missing") == frozenset()
    guarded = _LocalNamesOnly(Starlette(routes=[Route("/", _hello)]), hosts)

    async def status(host: str) -> tuple[int, str]:
        transport = httpx.ASGITransport(app=guarded)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
            answer = await client.get("/")
            return answer.status_code, answer.text

    # 0.0.0.0 and :: reach this machine and are no names: exporters sent to them.
    for name in (
        "myhost:8686",
        "MYHOST.example.",
        "six",
        "localhost:1",
        "0.0.0.0:4318",
        "[::]:1",
        "0:1",
        "[::0]:1",
    ):
        assert asyncio.run(status(name)) == (200, "hello"), name
    for name in ("db.internal", "commented.out", "evil.example"):
        code, text = asyncio.run(status(name))
        assert code == 403 and f"or a name {hosts} gives a loopback one" in text, name


def test_a_name_for_loopback_given_to_host_keeps_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve --host vm` (127.0.0.1 in /etc/hosts) bound loopback, yet warned that it was
    open to the network and answered any Host: the guard went by the name given."""
    import socket as socket_module

    from flowscope import http_server
    from flowscope.server import ServeConfig

    real_getaddrinfo = socket_module.getaddrinfo
    real_bind = http_server.bind_socket

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        return real_getaddrinfo("127.0.0.1" if host == "myname" else host, *args, **kwargs)

    monkeypatch.setattr(socket_module, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(
        http_server,
        "bind_socket",
        lambda host, port: real_bind("127.0.0.1" if host == "myname" else host, port),
    )
    assert http_server.binds_loopback("myname") and ServeConfig(host="myname").is_loopback
    assert not http_server.binds_loopback("0.0.0.0")
    assert not http_server.binds_loopback("no-such-name.invalid")
    server = HttpServer(Starlette(routes=[Route("/", _hello)]), "myname", 0, "t")
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/"
        answer = httpx.get(url, headers={"Host": f"evil.example:{server.port}"}, timeout=30)
    finally:
        server.shutdown()
    assert answer.status_code == 403


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    """At the usual soft limit of 1,024, a thousand idle connections used every file
    descriptor: both OTLP ports stopped accepting (uvicorn's 2,048-connection cap was
    never reached), and asyncio logged every refused accept."""
    import subprocess
    import sys

    script = (
        "import resource\n"
        "from flowscope.http_server import raise_open_file_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
        "print(raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    raised, soft, hard = (int(x) for x in out)
    assert raised == soft
    assert soft == hard or hard == -1  # RLIM_INFINITY: raised to a large finite value


def _raw_request(port: int, head: str) -> tuple[int, str]:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head.encode("latin-1"))
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, reply.partition(b"\r\n\r\n")[2].decode()


async def _where(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{request.url.path} {request.headers['host']} {request.url.query}")


def test_a_request_target_in_absolute_form_is_served_as_its_path() -> None:
    """RFC 9112 §3.2.2: a server must accept `POST http://host/v1/traces` (a proxy
    forwards targets so), and take the host from it. It was a 404: the whole URL was
    taken for the path."""
    app = Starlette(routes=[Route("/v1/traces", _where)])
    server = HttpServer(app, "127.0.0.1", 0, "t")
    server.start()
    try:

        def ask(target: str, host: str = "localhost") -> tuple[int, str]:
            head = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            return _raw_request(server.port, head)

        port = server.port
        assert ask(f"http://localhost:{port}/v1/traces?a=1") == (
            200,
            f"/v1/traces localhost:{port} a=1",
        )
        # The target's host wins over the header's, for the DNS-rebinding guard too.
        assert ask(f"HTTP://127.0.0.1:{port}/v1/traces", host="evil.example")[0] == 200
        assert ask(f"http://evil.example:{port}/v1/traces", host="localhost")[0] == 403
        assert ask(f"http://user@localhost:{port}/v1/traces")[0] == 400
        assert ask("/v1/traces")[0] == 200
    finally:
        server.shutdown()


def test_a_target_with_a_broken_host_is_a_400() -> None:
    """urlsplit raised on `http://[::1/x`: a 500 and a traceback in the log each time."""
    server = HttpServer(Starlette(routes=[Route("/v1/traces", _where)]), "127.0.0.1", 0, "t")
    server.start()
    try:
        for target in ("http://[::1/v1/traces", "http://[zz]/v1/traces", "http:///v1/traces"):
            head = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            status, body = _raw_request(server.port, head)
            assert status == 400 and "has no valid host" in body, (target, body)
    finally:
        server.shutdown()


def test_a_request_with_two_body_lengths_is_refused_and_its_connection_closed() -> None:
    """h11 read the body as chunked and served the bytes after it as a second request:
    behind a proxy that goes by Content-Length, a request smuggled past it."""
    server = HttpServer(Starlette(routes=[Route("/v1/traces", _where)]), "127.0.0.1", 0, "t")
    server.start()
    try:
        head = (
            "GET /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            "GET /v1/traces HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        status, body = _raw_request(server.port, head)  # reads until the server closes
        assert status == 400 and "both Content-Length and Transfer-Encoding" in body
        assert "HTTP/1.1" not in body  # no second answer
    finally:
        server.shutdown()


def test_ipv4_mapped_loopback_and_spaced_names() -> None:
    assert is_loopback("::ffff:127.0.0.1") and is_loopback("[::ffff:127.0.0.2]")
    assert not is_loopback("::ffff:10.0.0.1")
    assert not is_loopback("127.0.0.1 evil.example")


def test_an_h2c_upgrade_is_answered_over_http_1_1_without_warnings() -> None:
    """The JDK's HttpClient asks for h2c on every http:// request (an OTel Java exporter
    with the JDK sender): each logged "Unsupported upgrade request." and advice to
    install a WebSocket library."""
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    server = HttpServer(Starlette(routes=[Route("/v1/traces", _where)]), "127.0.0.1", 0, "t")
    logger = logging.getLogger("uvicorn.error")  # uvicorn's own, not propagated to root
    logger.addHandler(handler)
    server.start()
    try:
        head = (
            "GET /v1/traces HTTP/1.1\r\nHost: localhost\r\n"
            "Connection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\n"
            "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
        )
        status, _ = _raw_request(server.port, head)
        assert status == 200
        messages = [r.getMessage() for r in records]
        assert not [m for m in messages if "upgrade" in m.lower() or "WebSocket" in m], messages
    finally:
        server.shutdown()
        logger.removeHandler(handler)


def _until_hello(sock: socket.socket, end: bytes = b"hello") -> bytes:
    """One answer of the hello app (one that ends with ``end``) on a connection."""
    received = b""
    while not received.endswith(end):
        part = sock.recv(65536)
        if not part:
            break
        received += part
    return received


def test_at_the_connection_limit_the_oldest_untrusted_connection_makes_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A peer without the token held every connection (2,048) open, renewing them as the
    header deadline cut them, or keeping them by a refused request every 25 s: every
    exporter and /healthz got 503."""
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 20)
    app = Starlette(routes=[Route("/", _hello)])
    server = HttpServer(app, "127.0.0.1", 0, "t", token="s3cret")
    server.start()

    def request(token: str) -> bytes:
        return (
            f"GET / HTTP/1.1\r\nHost: c.example\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )

    def connect() -> socket.socket:
        return socket.create_connection(("127.0.0.1", server.port), timeout=20)

    held: list[socket.socket] = []
    try:
        with connect() as exporter:
            exporter.sendall(request("s3cret"))
            assert _until_hello(exporter).startswith(b"HTTP/1.1 200 ")
            for n in range(40):
                held.append(connect())
                if n % 2:  # half of them make a request without the token, then idle
                    held[-1].sendall(request("wrong"))
                    assert _until_hello(held[-1]).startswith(b"HTTP/1.1 200 ")
            with connect() as fresh:
                fresh.sendall(request("s3cret"))
                assert _until_hello(fresh).startswith(b"HTTP/1.1 200 ")
            exporter.sendall(request("s3cret"))  # trusted: kept, with its connection
            assert _until_hello(exporter).startswith(b"HTTP/1.1 200 ")
        assert held[0].recv(1) == b""  # the oldest untrusted ones were closed for room
        assert held[1].recv(1) == b""
    finally:
        for sock in held:
            sock.close()
        server.shutdown()


def test_untrusted_connections_inside_a_request_make_room_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connections in the middle of a request kept their place: a peer without the token
    held every slot with answers it never read (a close waited for them to be sent)."""
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 20)
    released = threading.Event()
    waiting: list[int] = []

    async def wait(request: Request) -> PlainTextResponse:
        waiting.append(1)
        await asyncio.to_thread(released.wait, 60)
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", _hello), Route("/wait", wait)])
    server = HttpServer(app, "127.0.0.1", 0, "t", token="s3cret")
    server.start()
    held: list[socket.socket] = []
    try:
        for _ in range(19):
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=20))
            held[-1].sendall(b"GET /wait HTTP/1.1\r\nHost: c.example\r\n\r\n")  # no token
        wait_until(lambda: len(waiting) == 19, "every held connection inside its request")
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as fresh:
            fresh.sendall(
                b"GET / HTTP/1.1\r\nHost: c.example\r\nAuthorization: Bearer s3cret\r\n\r\n"
            )
            assert _until_hello(fresh).startswith(b"HTTP/1.1 200 ")
        try:
            assert held[0].recv(1) == b""  # the oldest was dropped for room
        except ConnectionResetError:
            pass  # dropped with a reset: what abort() sends
    finally:
        released.set()
        for sock in held:
            sock.close()
        server.shutdown()


@pytest.mark.parametrize("port", ["otlp", "api"])
def test_a_client_that_sends_its_whole_body_before_reading_gets_the_413(
    tmp_path: Path, port: str
) -> None:
    """Python's urllib (and requests) send the whole body, then read: from 8 MiB on,
    the server's close with the body unread reset the connection, and they reported
    "connection reset by peer" instead of the 413."""
    with server_in_process(tmp_path / "big.duckdb", max_request_bytes=1 << 20) as (_, ends):
        url = f"{ends.http}/v1/traces" if port == "otlp" else f"{ends.ui}/api/sql"
        kind = "application/x-protobuf" if port == "otlp" else "application/json"
        request = urllib.request.Request(
            url, data=b"x" * (32 << 20), headers={"Content-Type": kind}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 413
        refused.value.close()
        health = httpx.get(f"{ends.ui}/healthz", timeout=30)
        assert health.status_code == 200


@pytest.mark.parametrize("port", ["otlp", "api"])
def test_a_client_that_goes_on_sending_after_the_413_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    monkeypatch.setattr(http_server, "LINGER_S", 1.0)
    with server_in_process(
        tmp_path / "big.duckdb", max_request_bytes=1 << 20, ingest_process=False
    ) as (_, ends):
        base, path = (ends.http, b"/v1/traces") if port == "otlp" else (ends.ui, b"/api/sql")
        host, number = base.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(number)), timeout=30) as sock:
            sock.sendall(
                b"POST " + path + b" HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
            )
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 413 ")
            cut = threading.Event()

            def trickle() -> None:
                try:
                    while not cut.is_set():
                        sock.sendall(b"x" * 1024)
                        cut.wait(0.05)
                except OSError:
                    cut.set()

            sender = threading.Thread(target=trickle)
            sender.start()
            try:
                assert cut.wait(20), "the lingering connection was never closed"
            finally:
                cut.set()
                sender.join()


async def _too_large(request: Request) -> PlainTextResponse:
    return PlainTextResponse("too large", 413, headers={"Connection": "close"})


def _lingering(port: int, count: int, token: str) -> list[socket.socket]:
    """Connections whose body (of a declared 1 GB) was refused at once, which then
    send nothing and read nothing: each left lingering."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.sendall(
            b"POST /big HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000000\r\n"
            + f"Authorization: Bearer {token}\r\n\r\n".encode()
            + b"x" * 1000
        )
        held.append(sock)
    try:
        for sock in held:
            assert _until_hello(sock, b"too large").startswith(b"HTTP/1.1 413 ")
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held


def test_lingering_connections_make_room_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lingering, they counted as closing and were never chosen to make room: 2,048 of
    them (a wrong token and a large body, left alone) kept new connections at 503."""
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 20)
    monkeypatch.setattr(http_server, "LINGER_IDLE_S", 60.0)
    app = Starlette(routes=[Route("/", _hello), Route("/big", _too_large, methods=["POST"])])
    server = HttpServer(app, "127.0.0.1", 0, "t", token="s3cret")
    server.start()
    held: list[socket.socket] = []
    try:
        held = _lingering(server.port, 19, "s3cret")  # the token: trusted ones too
        wait_until(lambda: _lingering_count(server) == 19, "19 lingering connections")
        # A burst, made before any is read: each one drops a lingering connection of
        # its own (they all chose the same one, and got 503).
        burst = [socket.create_connection(("127.0.0.1", server.port), timeout=20) for _ in range(8)]
        try:
            for fresh in burst:
                fresh.sendall(
                    b"GET / HTTP/1.1\r\nHost: c.example\r\nAuthorization: Bearer s3cret\r\n\r\n"
                )
            for fresh in burst:
                assert _until_hello(fresh).startswith(b"HTTP/1.1 200 ")
        finally:
            for fresh in burst:
                fresh.close()
    finally:
        for sock in held:
            sock.close()
        server.shutdown()


def test_a_connection_dropped_at_the_limit_stops_counting_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Aborted, it was counted until its connection_lost a pass of the loop later, and a
    request read in between got uvicorn's 503 (CI: 7 of a burst of 8)."""
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 20)
    monkeypatch.setattr(http_server, "LINGER_IDLE_S", 60.0)
    counted: list[int] = []
    made = http_server._HeaderDeadlineH11.connection_made

    def counting(self: Any, transport: asyncio.Transport) -> None:
        made(self, transport)
        counted.append(len(self.connections))  # before the loop runs anything else

    monkeypatch.setattr(http_server._HeaderDeadlineH11, "connection_made", counting)
    app = Starlette(routes=[Route("/big", _too_large, methods=["POST"])])
    server = HttpServer(app, "127.0.0.1", 0, "t", token="s3cret")
    server.start()
    held: list[socket.socket] = []
    try:
        held = _lingering(server.port, 19, "s3cret")
        wait_until(lambda: _lingering_count(server) == 19, "19 lingering connections")
        with socket.create_connection(("127.0.0.1", server.port), timeout=20):
            wait_until(lambda: len(counted) == 20, "the 20th connection made")
        assert counted[-1] == 19
    finally:
        for sock in held:
            sock.close()
        server.shutdown()


def _lingering_count(server: HttpServer) -> int:
    connections = server._server.server_state.connections
    return sum(1 for c in list(connections) if getattr(c, "lingering", False))


def test_a_server_stops_without_waiting_for_lingering_connections(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn's shutdown closed them, which lingering ignores: it waited out its grace
    time (5 s a port) and logged an error."""
    monkeypatch.setattr(http_server, "LINGER_IDLE_S", 60.0)
    app = Starlette(routes=[Route("/big", _too_large, methods=["POST"])])
    server = HttpServer(app, "127.0.0.1", 0, "t")  # sets uvicorn's logging up
    uvicorn_log = logging.getLogger("uvicorn")  # which does not propagate to the root's
    uvicorn_log.addHandler(caplog.handler)
    server.start()
    held = _lingering(server.port, 2, "")
    try:
        wait_until(lambda: _lingering_count(server) == 2, "2 lingering connections")
        server.shutdown()
    finally:
        uvicorn_log.removeHandler(caplog.handler)
        for sock in held:
            sock.close()
    assert "graceful shutdown exceeded" not in caplog.text


@pytest.mark.parametrize("port", ["otlp", "api"])
def test_a_body_still_arriving_when_the_server_stops_is_answered_retry_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, port: str
) -> None:
    """uvicorn waited out its 5 s grace for the rest of the body, then cancelled the
    request: the client got a 500, and the log a CancelledError traceback."""
    uvicorn_log = logging.getLogger("uvicorn")  # which does not propagate to the root's
    uvicorn_log.addHandler(caplog.handler)
    try:
        with server_in_process(tmp_path / "stop.duckdb", ingest_process=False) as (server, ends):
            assert server.receivers is not None and server.receivers.http is not None
            assert server.ui is not None
            http, base, path = (
                (server.receivers.http, ends.http, b"/v1/traces")
                if port == "otlp"
                else (server.ui, ends.ui, b"/api/sql")
            )
            host, number = base.removeprefix("http://").rsplit(":", 1)
            sock = socket.create_connection((host, int(number)), timeout=30)
            sock.sendall(
                b"POST " + path + b" HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                b"application/json\r\nContent-Length: 1000000\r\n\r\n" + b" " * 100_000
            )
            wait_until(lambda: _reading_a_body(http), "the request's body is being read")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        sock.close()
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
    assert b"retry-after: 1\r\n" in answer.lower()
    assert b"the server is stopping; retry the request" in answer
    assert "graceful shutdown exceeded" not in caplog.text
    assert "Traceback" not in caplog.text


def _reading_a_body(server: HttpServer) -> bool:
    connections = server._server.server_state.connections
    return any(
        c.cycle is not None and c.cycle.more_body and c.cycle.body == b""
        for c in list(connections)
        if getattr(c, "cycle", None) is not None
    )
