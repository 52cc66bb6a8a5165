"""The API port's cap on request bodies and their pace, over real HTTP (a security review
sent /api/sql an 800 MB body, taken whole, and stalled 2,047 bodies for good)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from flowscope.collector import http_receiver
from flowscope.dashboard import body_limit
from flowscope.dashboard.body_limit import MAX_API_BODY_BYTES, BodyLimit
from flowscope.store.sandbox import MAX_SQL_CHARS
from flowscope.testing.server import server_in_process
from flowscope.testing.waiting import wait_until


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("body") / "body.duckdb"
    with server_in_process(path, decode_workers=0) as (_server, endpoints):
        yield endpoints.ui


def _sql(ui: str, **kwargs: object) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    return httpx.post(f"{ui}/api/sql", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_a_body_over_the_limit_is_413_and_the_server_answers_on(ui: str) -> None:
    big = json.dumps({"sql": "SELECT 1 -- " + "x" * MAX_API_BODY_BYTES}).encode()
    answer = _sql(ui, content=big)
    assert answer.status_code == 413
    assert answer.json()["detail"]["message"] == (
        f"request body of {len(big)} bytes exceeds the limit of {MAX_API_BODY_BYTES}"
    )
    assert answer.headers["connection"] == "close"
    assert _sql(ui, json={"sql": "SELECT 1 AS one"}).json()["rows"] == [[1]]


def test_a_chunked_body_is_cut_off_at_the_limit(ui: str) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"sql": "SELECT 1 -- '
        for _ in range(64):  # 4 MiB in all, unless refused before
            sent += 65536
            yield b"x" * 65536
        yield b'"}'

    answer = _sql(ui, content=chunks())
    assert answer.status_code == 413
    assert answer.json()["detail"]["message"] == (
        f"request body exceeds the limit of {MAX_API_BODY_BYTES} bytes"
    )


def test_the_longest_query_the_sandbox_takes_fits_escaped(ui: str) -> None:
    # Each 'é' is six bytes as JSON escapes it (\\u00e9): the worst case of a query's text.
    sql = "SELECT '" + "é" * (MAX_SQL_CHARS - 20) + "' AS s"
    body = json.dumps({"sql": sql, "limit": 1}).encode()
    assert len(body) > 5 * MAX_SQL_CHARS
    answer = _sql(ui, content=body)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["rows"][0][0]) == MAX_SQL_CHARS - 20


def test_a_body_that_stops_coming_is_408(ui: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_receiver, "BODY_IDLE_S", 0.5)
    address = urlsplit(ui)
    with socket.create_connection((address.hostname, address.port), timeout=20) as client:
        client.sendall(
            b"POST /api/sql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"sql": "SELECT'
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            part = client.recv(65536)  # the server's answer, or b"" once it closes
            if not part:
                break
            answer += part
    head, _, content = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(content)["detail"]["message"] == (
        "no part of the request body came for 0.5 s; 15 bytes of it arrived"
    )


def test_a_wrong_token_is_answered_before_the_body_is_read(tmp_path: Path) -> None:
    with server_in_process(tmp_path / "t.duckdb", decode_workers=0, token="right") as running:
        ui = running[1].ui
        big = b"x" * (4 * MAX_API_BODY_BYTES)
        answer = httpx.post(
            f"{ui}/api/sql",
            content=big,
            headers={"Content-Type": "application/json", "Authorization": "Bearer wrong"},
            timeout=30,
        )
        assert answer.status_code == 401


def test_bodies_at_once_past_the_budget_are_told_to_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing capped the bytes of API bodies being received at once: 400 connections
    each sending 1 MiB slowly took the server from 205 to 626 MB."""
    monkeypatch.setattr(body_limit, "API_BODIES_BUDGET_BYTES", 3000)
    with server_in_process(tmp_path / "b.duckdb", decode_workers=0) as (_server, endpoints):
        address = urlsplit(endpoints.ui)
        head = (
            b"POST /api/sql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 3000\r\n\r\n"
        )
        with socket.create_connection((address.hostname, address.port), timeout=20) as slow:
            slow.sendall(head + b'{"sql": "SELECT 1 AS one --' + b"x" * 2500)  # and waits
            answers: list[httpx.Response] = []

            def refused() -> bool:  # once the server holds the slow body's bytes
                padded = json.dumps({"sql": "SELECT 1 AS one --" + "y" * 2000})
                answers.append(_sql(endpoints.ui, content=padded.encode()))
                return answers[-1].status_code == 503

            wait_until(refused, "a body past the budget to be refused")
            assert answers[-1].headers["Retry-After"] == "1"
            assert "request bodies at once already" in answers[-1].json()["detail"]["message"]
            rest = 3000 - len(b'{"sql": "SELECT 1 AS one --') - 2500 - 2
            slow.sendall(b"x" * rest + b'"}')
            assert slow.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert _sql(endpoints.ui, json={"sql": "SELECT 2 AS two"}).status_code == 200


def test_a_client_gone_during_its_body_gets_an_answer_nobody_reads() -> None:
    """Without one, the token middleware logged "No response returned" and a traceback
    for every client that left mid-body."""
    called = []

    async def app(scope: object, receive: object, send: object) -> None:
        called.append(scope)

    messages = [
        {"type": "http.request", "body": b'{"sql": ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/api/sql", "headers": [(b"content-length", b"100")]}
    asyncio.run(BodyLimit(app)(scope, receive, send))
    assert not called
    assert sent[0]["status"] == 400


def test_bodies_outside_the_api_are_not_read() -> None:
    """POST /healthz (405) had its body read first, 1 MiB a connection, without a token."""
    passed = []

    async def app(scope: object, receive: object, send: object) -> None:
        passed.append(receive)

    async def receive() -> dict[str, object]:
        raise AssertionError("the body was read")

    scope = {"type": "http", "path": "/healthz", "headers": [(b"content-length", b"100")]}
    asyncio.run(BodyLimit(app)(scope, receive, lambda message: None))
    assert passed == [receive]  # handed on untouched
