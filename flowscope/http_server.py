"""An ASGI app served by uvicorn on a socket we bind ourselves, in its own thread.

Binding first means the port is known (``0`` picks a free one) and connections
queue in the kernel's backlog from the moment ``start`` returns.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import h11
import uvicorn
from starlette.responses import PlainTextResponse, Response
from uvicorn.protocols.http.h11_impl import H11Protocol

from flowscope.collector.auth import token_matches

# A connection gets this long to send a request's headers: after it opens, and after
# the first byte of each next request. Without it, idle or byte-by-byte connections
# were never closed, and 2,048 of them (the concurrency limit) made every exporter
# get 503 for as long as they stayed.
HEADER_TIMEOUT_S = 30.0
# An idle kept-alive connection is closed after this long. It must outlast the idle
# time clients keep a connection for reuse (httpx: 5 s, the CLI's and the Python API's
# and the reference app's client): at uvicorn's default, also 5 s, a request could go
# out on a connection the server was closing at that moment, and fail with a
# ReadError (seen once in a demo run).
KEEP_ALIVE_S = 30
# Open connections uvicorn takes before it answers every request 503. At the limit, a
# new connection drops the oldest one that has not sent a request with the token (any
# request, on a server without one): a peer without the token held 2,048 connections,
# idle and renewed as the header deadline cut them, or kept by a refused request every
# 25 s, or by answers it never read, and every exporter and /healthz got 503 (reviews).
MAX_CONNECTIONS = 2048


# The ASGI scope extension (a callable, True once the client closed its side) that lets
# a long request stop work nobody will read: uvicorn's h11 protocol stops reading a
# connection while it answers a request, so its own disconnect is only seen on write.
CLIENT_GONE = "flowscope.client_gone"
# The ASGI scope extension set (True) on a request whose body is still arriving when the
# server stops, and its app woken from its wait for more: it can answer "retry later"
# now. uvicorn instead waited out its 5 s grace, then cancelled the app (a 500 and a
# CancelledError traceback in the log) for each port.
SERVER_STOPPING = "flowscope.server_stopping"
# What an HTTP/2 client sends first (RFC 9113 §3.4): a gRPC exporter at an HTTP/1.1 port.
HTTP2_PREFACE = b"PRI * HTTP/2.0"
# Such an exporter retries for ever: its warning is logged at most this often.
HTTP2_WARN_EVERY_S = 60.0
# A connection closed as its answer goes out while its client is still sending a body
# (a 413 answered at the declared length, say) is closed gently: the answer sent and
# our side shut, the rest of the body read and dropped, until the client closes, sends
# nothing for LINGER_IDLE_S, or LINGER_S has passed (nginx's lingering close: 5 s and
# 30 s). Closed at once, the unread bytes made the kernel reset the connection, and a
# client that sends its whole body before it reads (Python's urllib and requests, from
# 8 MiB) saw "connection reset" where the answer said 413.
LINGER_S = 30.0
LINGER_IDLE_S = 5.0
# While the server stops, at most this long: the request answered "retry later" at the
# stop (SERVER_STOPPING) lingered 5 s more before the process could exit.
STOP_LINGER_S = 1.0
# "As its answer goes out": its last byte written this recently. A close long after an
# answer (the keep-alive timeout after a 401 kept alive) has nobody to tell anything.
ANSWER_JUST_SENT_S = 1.0

log = logging.getLogger("flowscope.http")


def _peer_closed(transport: asyncio.BaseTransport | None) -> bool:
    """Whether the end of the client's stream is waiting in the socket (peeked, so a
    pipelined request stays for h11 to read)."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    try:
        with sock.dup() as peek:
            return bool(peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"")
    except BlockingIOError:
        return False  # nothing waiting: the client is still there
    except OSError:
        return True  # reset, or the socket is gone


class _GentleClose:
    """The transport uvicorn is given: ``close`` while the client is still sending a
    request's body lingers (``LINGER_S``); everything else is the real transport's."""

    def __init__(self, transport: asyncio.Transport, protocol: _HeaderDeadlineH11) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        self._protocol.written_at = self._protocol.loop.time()
        self._transport.write(data)

    def close(self) -> None:
        real, protocol = self._transport, self._protocol
        if protocol.lingering or real.is_closing():
            return
        answered = protocol.loop.time() - protocol.written_at < ANSWER_JUST_SENT_S
        if answered and protocol.conn.their_state is h11.SEND_BODY and real.can_write_eof():
            protocol.linger()
        else:
            real.close()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()


class _Connection(h11.Connection):
    """h11's connection, keeping why it refused the request and the status it hints
    (501 for a transfer coding it does not know, RFC 9112 §6.1): uvicorn hands on only
    "Invalid HTTP request received." whatever h11 found wrong."""

    refused_why = ""
    refused_status = 400

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refused_why, self.refused_status = str(exc), exc.error_status_hint
            raise


# The OTLP port's advice (only its receiver decodes a compressed body).
_OTLP_CODING = "; send a compressed body with Content-Encoding: gzip"


class _HeaderDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol, closing connections that do not send a request in time."""

    _header_deadline: asyncio.TimerHandle | None = None
    _first_data = True
    # Set per server (HttpServer makes a subclass): what it tells an HTTP/2 client's owner.
    port_label = "HTTP"
    http2_hint = ""
    http2_warned_at = -HTTP2_WARN_EVERY_S
    # How the port answers a request h11 cannot parse (None: uvicorn's plain text).
    bad_request: Refusal | None = None

    # The server's token (None: every request is trusted), and its connections that have
    # not sent a request with it, oldest first (each server gets its own dict; all on
    # its one event loop: no lock).
    token: str | None = None
    untrusted: dict[_HeaderDeadlineH11, None] = {}

    _real: asyncio.Transport
    lingering = False
    stopping = False  # the server is stopping (shutdown)
    written_at = -ANSWER_JUST_SENT_S
    _linger_check: asyncio.TimerHandle | None = None
    _linger_until = 0.0
    _linger_heard = 0.0
    conn: _Connection  # (made in __init__)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size
        # h11's own default size when uvicorn's config names none, as uvicorn does.
        self.conn = _Connection(h11.SERVER) if limit is None else _Connection(h11.SERVER, limit)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._real = transport  # uvicorn gets _GentleClose; lingering needs the socket's own
        super().connection_made(_GentleClose(transport, self))  # type: ignore[arg-type]
        if len(self.connections) >= MAX_CONNECTIONS:
            self._make_room()
        type(self).untrusted[self] = None
        self._arm()

    def _make_room(self) -> None:
        """Drop the oldest untrusted connection: one between requests, or whose answer
        its client does not read, else the oldest in the middle of a request (a probe's
        without the token, cut only at the limit). One that has sent a request with the
        token keeps its place (an exporter's kept-alive connection). Aborted, not
        closed: a close waits for the unread answer to be sent, which a client that
        never reads holds for good (diff review: 19 of 19 slots kept that way)."""
        # Not one aborted already: a burst of connections, made in one pass of the loop
        # before the aborted one was gone, each chose the same one (and got 503).
        closing = (
            c
            for c in self.connections
            if isinstance(c, _HeaderDeadlineH11) and c.lingering and not c._real.is_closing()
        )
        lingering = next(closing, None)
        if lingering is not None:  # closing anyway: it goes first, whoever it was
            lingering._drop()
            return
        live = [c for c in self.untrusted if not c.transport.is_closing()]
        stalled = (c for c in live if c._waiting_for_request() or c.flow.write_paused)
        victim = next(stalled, live[0] if live else None)
        if victim is not None:
            victim._drop()

    def _drop(self) -> None:
        """Abort, and stop counting it now: its connection_lost comes a pass of the loop
        later, and a request read in between was refused 503 at uvicorn's limit as if
        the aborted connection were still there (CI: 7 of a burst of 8)."""
        self._real.abort()
        self.connections.discard(self)
        type(self).untrusted.pop(self, None)

    def linger(self) -> None:
        """Send what is written, shut our side, and drop what the client still sends
        (``_GentleClose``; ``LINGER_S``)."""
        self.lingering = True
        self._disarm()
        self._real.write_eof()
        self._real.resume_reading()  # uvicorn pauses it while a request's body waits unread
        self._linger_heard = now = self.loop.time()
        self._linger_until = now + (STOP_LINGER_S if self.stopping else LINGER_S)
        self._linger_check = self.loop.call_later(
            min(1.0, self._linger_until - now), self._check_linger
        )

    def _check_linger(self) -> None:
        now = self.loop.time()
        if now >= self._linger_until or now - self._linger_heard >= LINGER_IDLE_S:
            self._real.abort()
        else:
            self._linger_check = self.loop.call_later(1.0, self._check_linger)

    def shutdown(self) -> None:
        if self.lingering:  # nobody waits for it: the server stops now
            self._real.abort()
            return
        self.stopping = True
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_started:
            scope: dict[str, Any] = cycle.scope  # type: ignore[assignment]
            scope.setdefault("extensions", {})[SERVER_STOPPING] = True
            cycle.message_event.set()  # its receive() returns at once (no body yet)
        super().shutdown()

    def eof_received(self) -> None:
        if self.lingering:
            self._real.close()
            return None
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self._linger_heard = self.loop.time()
            return  # the rest of a body nobody reads
        if self._first_data:
            self._first_data = False
            if data.startswith(HTTP2_PREFACE):
                self._http2_client()
                return
        super().data_received(data)
        if self._waiting_for_request():
            if self._header_deadline is None:  # the first byte of a next request
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._linger_check is not None:
            self._linger_check.cancel()
        type(self).untrusted.pop(self, None)
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and self in self.untrusted:
            given = [
                v.decode("latin-1") for k, v in self.cycle.scope["headers"] if k == b"authorization"
            ]
            if token_matches(type(self).token, given):
                del self.untrusted[self]
        # The request just read (its app starts after this returns) gets CLIENT_GONE.
        if self.cycle is not None and not self.cycle.response_complete:
            transport = self.transport
            scope: dict[str, Any] = self.cycle.scope  # type: ignore[assignment]
            scope.setdefault("extensions", {})[CLIENT_GONE] = lambda: _peer_closed(transport)

    def _unsupported_upgrade_warning(self) -> None:
        # A server may ignore an Upgrade it does not offer (RFC 9110 §7.8), and this one
        # answers over HTTP/1.1 as ever. The JDK's HttpClient asks for h2c on every
        # http:// request: each logged two warnings, one advising to install websockets.
        pass

    def send_400_response(self, msg: str) -> None:
        """A request line or headers HTTP/1.1 does not allow (no Host, say), answered as
        the port answers every refusal: on the OTLP port a google.rpc.Status, where
        uvicorn wrote plain text."""
        refusal = type(self).bad_request
        unknown = self.conn.refused_status == 501
        if refusal is None and not unknown:
            super().send_400_response(msg)
            return
        if unknown:  # a transfer coding h11 does not know (gzip, chunked)
            status, reason = 501, b"Not Implemented"
            text = f"not implemented here: {self.conn.refused_why}"
            text += _OTLP_CODING if refusal is not None else ""
        else:
            status, reason = 400, b"Bad Request"
            text = "not a valid HTTP/1.1 request (its request line or headers)"
        answer = (refusal or plain_refusal)(status, text, "")
        headers = [
            (name, value)
            for name, value in answer.raw_headers
            if name.lower() not in (b"connection", b"content-length")
        ]
        headers += [(b"content-length", str(len(answer.body)).encode()), (b"connection", b"close")]
        for event in (
            h11.Response(status_code=status, headers=headers, reason=reason),
            h11.Data(data=bytes(answer.body)),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()

    def _http2_client(self) -> None:
        """uvicorn logged only "Invalid HTTP request received." for the usual mistake of
        an OTLP/gRPC exporter pointed at the OTLP/HTTP port, whose spans are all lost."""
        cls = type(self)
        now = time.monotonic()
        if now - cls.http2_warned_at >= HTTP2_WARN_EVERY_S:
            cls.http2_warned_at = now
            peer = (self.client or ("?", 0))[0]
            log.warning(
                "an HTTP/2 client (%s) connected to the %s port %s, which speaks HTTP/1.1 "
                "only, and was closed%s (said at most once a minute)",
                peer,
                self.port_label,
                (self.server or ("?", "?"))[1],
                self.http2_hint,
            )
        self.transport.close()

    def _waiting_for_request(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if self._waiting_for_request() and not self.transport.is_closing():
            self.transport.close()


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio turns Nagle off only on sockets that say they are
    # TCP, and accepted sockets copy the listener's proto. With Nagle on, every small
    # response waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def normal_name(host: str) -> str:
    """A host name as compared: no brackets, lower case, without the root's dot."""
    return host.strip("[]").lower().removesuffix(".")


def is_loopback(host: str) -> bool:
    """Does ``host`` (as given to --host, or a Host header's name) mean this machine's
    loopback: ``localhost`` in any case, with or without the root's dot, ``*.localhost``,
    127/8 (also as the short forms a socket takes, ``127.1``) or ``::1``."""
    name = normal_name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _address(name)
    if address is None:
        return False
    # ::ffff:127.0.0.1 binds loopback too (Python 3.11 does not say so).
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``name`` as an IP address, also in the short forms a socket takes (``127.1``,
    ``0``); None for a name."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if any(c.isspace() for c in name):  # inet_aton stops at a space: "127.0.0.1 evil"
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (processes it
    starts inherit it), as Go programs such as the Collector do; the new soft limit.
    At the usual 1,024, a thousand idle connections used every descriptor: both OTLP
    ports stopped accepting, and asyncio logged each refused accept (~13,000 a second)."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = max(soft, 1 << 20)
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
        return soft
    except (OSError, ValueError):  # not allowed here: keep the limit there is
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def binds_loopback(host: str) -> bool:
    """Does binding ``host`` listen on loopback only: a loopback name or address, or a
    name every address of which is one (``vm`` in /etc/hosts as 127.0.0.1)."""
    if is_loopback(host):
        return True
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(is_loopback(str(info[4][0])) for info in infos)


HOSTS_FILE = Path("/etc/hosts")


def hosts_file_loopback_names(path: Path = HOSTS_FILE) -> frozenset[str]:
    """The names the hosts file gives a loopback address (Debian's ``127.0.1.1 myhost``,
    a container's own name): this machine's owner wrote them, not a DNS server an
    attacker controls, so a request for them is no rebinding. Unreadable: none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    names: set[str] = set()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and is_loopback(fields[0]):
            names.update(normal_name(name) for name in fields[1:])
    return frozenset(names)


def _host_name(header: str) -> str:
    """The name in a Host header, without its port (``[::1]:8686`` -> ``::1``)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


# Unspecified addresses name no machine but reach this one (Linux connects them to
# loopback): exporters configured with `http://0.0.0.0:4318` send that Host. An address
# is no name a DNS server could point elsewhere, so it is no rebinding; refused, it
# cost such an exporter every span, where the Collector takes them.
def _local(name: str) -> bool:
    """A loopback address or name, or an unspecified address in any spelling (``0``,
    ``0.0.0.0``, ``::``, ``::0``), as the kernel takes it."""
    if is_loopback(name):
        return True
    address = _address(name)
    return address is not None and address.is_unspecified


# How a server answers a request the wrappers below turn away: (status, why, the
# request's Content-Type or "") -> the response. The OTLP port answers with a
# google.rpc.Status, as OTLP/HTTP requires of every failure.
Refusal = Callable[[int, str, str], Response]


def plain_refusal(status: int, text: str, content_type: str) -> Response:
    """The refusal in plain text naming why."""
    return PlainTextResponse(text + "\n", status_code=status)


async def _refuse(
    scope: Any,
    receive: Any,
    send: Any,
    text: str,
    refusal: Refusal,
    *,
    status: int = 400,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer a request the wrappers below turn away."""
    content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
    response = refusal(status, text, content_type)
    if headers:
        response.headers.update(headers)
    await response(scope, receive, send)


class _LocalNamesOnly:
    """On a loopback address without a token, answer only requests addressed to this
    machine: a web page whose own name an attacker points at 127.0.0.1 (DNS rebinding)
    is otherwise same-origin with the server, and read every span (`/api/sql`) or sent
    spans. Such a page's requests carry its name in ``Host``; a request without one
    (HTTP/1.0) comes from no browser."""

    def __init__(
        self, app: Any, hosts_file: Path = HOSTS_FILE, refusal: Refusal = plain_refusal
    ) -> None:
        self.app = app
        self.refusal = refusal
        self.hosts_file = hosts_file
        self.local_names = hosts_file_loopback_names(hosts_file)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = dict(scope["headers"]).get(b"host")
            header = raw.decode("latin-1") if raw else "localhost"
            name = _host_name(header)
            if not _local(name) and normal_name(name) not in self.local_names:
                text = (
                    f"Host {header!r} refused: a server on a loopback address without "
                    "--token answers only requests for localhost, a loopback or unspecified "
                    f"address (0.0.0.0) or a name {self.hosts_file} gives a loopback one "
                    "(a web page could otherwise read it by DNS rebinding)"
                )
                await _refuse(scope, receive, send, text, self.refusal, status=403)
                return
        await self.app(scope, receive, send)


class AbsoluteFormTarget:
    """A request target in absolute form (`POST http://host:4318/v1/traces`), served
    as its path, its authority taken as the Host (RFC 9112 §3.2.2: a server must accept
    that form, and must then ignore the Host header). uvicorn passes the whole URL on as
    the path, so such a request was a 404; clients send it through proxies that forward
    the target as they got it."""

    def __init__(self, app: Any, refusal: Refusal = plain_refusal) -> None:
        self.app = app
        self.refusal = refusal

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raw = scope.get("raw_path", b"") if scope["type"] == "http" else b""
        if not raw[:8].lower().startswith((b"http://", b"https://")):
            await self.app(scope, receive, send)
            return
        try:
            target = urlsplit(raw.decode("latin-1"))
            usable = bool(target.hostname) and "@" not in target.netloc
        except ValueError:  # `http://[::1/x`: a 500 and a traceback each
            usable = False
        if not usable:
            # userinfo in a target is an error (RFC 9110 §4.2.4); no host, no target.
            await _refuse(
                scope,
                receive,
                send,
                f"request target {raw.decode('latin-1')!r} has no valid host, or has user info",
                self.refusal,
            )
            return
        path = target.path or "/"
        headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
        headers.append((b"host", target.netloc.encode("latin-1")))
        scope = {**scope, "path": unquote(path), "raw_path": path.encode("latin-1")}
        scope["headers"] = headers
        await self.app(scope, receive, send)


class OneBodyLength:
    """A request with both Content-Length and Transfer-Encoding is answered 400 and its
    connection closed (RFC 9112 §6.1: the server must close it). h11 read the body as
    chunked and served the bytes after it as the next request: behind a proxy that
    goes by Content-Length, a request smuggled past it."""

    def __init__(self, app: Any, refusal: Refusal = plain_refusal) -> None:
        self.app = app
        self.refusal = refusal

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            names = {name for name, _ in scope["headers"]}
            if b"content-length" in names and b"transfer-encoding" in names:
                text = "a request may not have both Content-Length and Transfer-Encoding"
                await _refuse(
                    scope, receive, send, text, self.refusal, headers={"Connection": "close"}
                )
                return
        await self.app(scope, receive, send)


class HeadAsGet:
    """HEAD answered as GET without its body (RFC 9110 §9.3.2: a general-purpose server
    must). FastAPI's GET routes answered 405, so ``curl -I /healthz`` and uptime
    monitors that probe with HEAD took a running server for a broken one."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Any) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class HttpServer:
    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        name: str,
        *,
        token: str | None = None,
        refusal: Refusal = plain_refusal,
        port_label: str | None = None,
        http2_hint: str = "",
    ) -> None:
        self.name = name
        self._socket = bind_socket(host, port)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        # By the address bound, not the name given: `--host vm` (a hosts-file name for
        # 127.0.0.1) bound loopback and left the DNS-rebinding guard off.
        if is_loopback(self._socket.getsockname()[0]) and not token:
            app = _LocalNamesOnly(app, refusal=refusal)
        protocol = type(
            "_ServerH11",
            (_HeaderDeadlineH11,),
            {
                "port_label": port_label or name,
                "http2_hint": http2_hint,
                "bad_request": None if refusal is plain_refusal else staticmethod(refusal),
                "token": token,
                "untrusted": {},
            },
        )
        config = uvicorn.Config(
            AbsoluteFormTarget(OneBodyLength(app, refusal), refusal),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            timeout_keep_alive=KEEP_ALIVE_S,
            limit_concurrency=MAX_CONNECTIONS,
            http=protocol,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"http-{self.name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def shutdown(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.should_exit = True
            thread.join(10)
        self._socket.close()
