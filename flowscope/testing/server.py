"""A real ``flowscope serve`` for tests: in this process or as a child process.

Both bind port 0 and report the ports the OS chose; the child is ready when it
prints its ``ready`` line (no sleeping, no fixed ports).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flowscope.server import FlowscopeServer, ServeConfig


@dataclass
class Endpoints:
    grpc: str  # host:port
    http: str  # http://host:port (OTLP base)
    ui: str  # http://host:port


@contextmanager
def server_in_process(
    db: Path | str, **overrides: Any
) -> Iterator[tuple[FlowscopeServer, Endpoints]]:
    """A server on free ports in this process; ``overrides`` are ServeConfig fields."""
    base = ServeConfig(db=str(db), grpc_port=0, http_port=0, ui_port=0, retention=None)
    config = replace(base, **overrides)
    server = FlowscopeServer(config)
    server.start()
    try:
        yield server, Endpoints(server.grpc_address, server.otlp_http_url, server.ui_url)
    finally:
        server.shutdown()


_GRPC = re.compile(r"OTLP/gRPC\s+(\S+)")
_HTTP = re.compile(r"OTLP/HTTP\s+(\S+)/v1/traces")
_UI = re.compile(r"API\s+(\S+)")


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    endpoints: Endpoints
    output: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # Killed, so no test leaves it running; what it said tells why it hung.
            self.process.kill()
            self.process.wait(timeout)
            said = "".join(self.output[-40:])
            raise RuntimeError(
                f"flowscope serve did not stop within {timeout:g} s of signal {sig}; "
                f"it said:\n{said}"
            ) from None
        if self._reader is not None:
            self._reader.join(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


def serve_command(db: Path | str, *extra: str) -> list[str]:
    """``flowscope serve`` on ``db`` with every port chosen by the OS."""
    return [
        sys.executable,
        "-m",
        "flowscope.cli",
        "serve",
        "--db",
        str(db),
        "--grpc-port",
        "0",
        "--http-port",
        "0",
        "--ui-port",
        "0",
        *extra,
    ]


def start_server_process(
    db: Path | str, *extra: str, env: dict[str, str] | None = None, session: bool = False
) -> ServerProcess:
    """``session``: in a session (and process group) of its own, as a terminal starts
    it, so the group can be signalled as a terminal does."""
    process = subprocess.Popen(
        serve_command(db, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=session,
    )
    assert process.stdout is not None
    lines: list[str] = []
    found: dict[str, str] = {}
    for line in process.stdout:
        lines.append(line)
        for key, pattern in (("grpc", _GRPC), ("http", _HTTP), ("ui", _UI)):
            match = pattern.search(line)
            if match and key not in found:
                found[key] = match.group(1)
        if line.startswith("ready"):
            break
    else:
        process.wait(30)
        process.stdout.close()
        raise RuntimeError("flowscope serve exited before it was ready:\n" + "".join(lines))
    server = ServerProcess(process, Endpoints(found["grpc"], found["http"], found["ui"]), lines)

    def drain() -> None:
        assert process.stdout is not None
        for rest in process.stdout:
            lines.append(rest)

    server._reader = threading.Thread(target=drain, daemon=True)
    server._reader.start()
    return server
