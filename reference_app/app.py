"""The trading platform: eight services in one process, one event loop, real HTTP between them.

Each service listens on its own loopback port (bound before anything starts, so
port 0 works and requests queue in the kernel until served) and exports its
spans through its own TracerProvider. ``start()`` returns when every service
can take requests; ``shutdown()`` finishes in-flight requests, delivers queued
messages, exports every span, and is safe twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from flowscope.http_server import KEEP_ALIVE_S, bind_socket
from flowscope.reference_app.channels import EventChannel
from flowscope.reference_app.faults import Faults
from flowscope.reference_app.gateway import create_gateway
from flowscope.reference_app.kit import Service, ServiceKit
from flowscope.reference_app.matching import create_market_data, create_matching_engine
from flowscope.reference_app.orders import create_order_manager
from flowscope.reference_app.reporting import create_reporting_service
from flowscope.reference_app.risk import create_risk_manager
from flowscope.reference_app.telemetry import SERVICES, ExportConfig, Telemetry
from flowscope.reference_app.users import TokenSigner, create_user_service
from flowscope.reference_app.wallets import create_wallet_service

READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class AppConfig:
    export: ExportConfig
    host: str = "127.0.0.1"
    data_dir: Path | None = None  # None: a temporary directory, removed at shutdown
    faults: Mapping[str, float] = field(default_factory=dict)
    seed: int = 1


def _listen(host: str) -> socket.socket:
    sock = bind_socket(host, 0)
    # asyncio turns Nagle off only on sockets whose proto is IPPROTO_TCP, which a
    # plain socket() is not; accepted connections inherit this from the listener.
    # Without it every response waits ~40 ms for the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class TradingApp:
    def __init__(self, config: AppConfig) -> None:
        config.export.validate()
        self.config = config
        self.faults = Faults(dict(config.faults))
        self.urls: dict[str, str] = {}
        self.telemetry: Telemetry | None = None
        self._own_data_dir = config.data_dir is None
        self.data_dir = config.data_dir or Path(tempfile.mkdtemp(prefix="flowscope-trading-"))
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stopped = False
        self._channel = EventChannel()
        self._kits: dict[str, ServiceKit] = {}

    @property
    def gateway_url(self) -> str:
        return self.urls["client-gateway"]

    def start(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.telemetry = Telemetry(self.config.export)
            sockets = {name: _listen(self.config.host) for name in SERVICES}
            host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
            self.urls = {n: f"http://{host}:{s.getsockname()[1]}" for n, s in sockets.items()}
            self._thread = threading.Thread(
                target=self._run, args=(sockets,), name="trading-app", daemon=True
            )
            self._thread.start()
            if not self._ready.wait(READY_TIMEOUT_S):
                raise RuntimeError("the trading app did not start in time")
            if self._failure is not None:
                raise RuntimeError(f"the trading app failed to start: {self._failure}") from (
                    self._failure
                )
        except BaseException:
            self.shutdown()
            raise

    def _build(self) -> list[Service]:
        assert self.telemetry is not None
        channel = self._channel
        key = hashlib.sha256(f"flowscope-trading-{self.config.seed}".encode()).digest()
        signer = TokenSigner(key)

        def kit(name: str) -> ServiceKit:
            assert self.telemetry is not None
            return ServiceKit(
                name, self.telemetry.provider(name), self.faults, channel, self.urls, self.data_dir
            )

        builders: dict[str, Callable[[ServiceKit], Service]] = {
            "client-gateway": lambda k: create_gateway(k, signer),
            "user-service": lambda k: create_user_service(k, signer),
            "wallet-service": create_wallet_service,
            "order-manager": create_order_manager,
            "risk-manager": create_risk_manager,
            "matching-engine": create_matching_engine,
            "market-data": create_market_data,
            "reporting-service": create_reporting_service,
        }
        self._kits = {name: kit(name) for name in SERVICES}
        return [builders[name](self._kits[name]) for name in SERVICES]

    def _run(self, sockets: dict[str, socket.socket]) -> None:
        try:
            asyncio.run(self._main(sockets))
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._failure = self._failure or exc
            self._ready.set()
        finally:
            for sock in sockets.values():  # a failed start never got to serve on them
                sock.close()

    async def _main(self, sockets: dict[str, socket.socket]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        services = self._build()
        started: list[Service] = []
        try:
            for service in services:
                started.append(service)
                for hook in service.on_start:
                    await hook()
        except BaseException:
            # Close what the services that did start opened (databases, clients).
            for service in started:
                for hook in service.on_stop:
                    with contextlib.suppress(Exception):
                        await hook()
            for kit in self._kits.values():
                await kit.close()
            raise
        servers = [
            uvicorn.Server(
                uvicorn.Config(
                    service.app,
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=5,
                    timeout_keep_alive=KEEP_ALIVE_S,
                )
            )
            for service in services
        ]
        tasks = [
            asyncio.create_task(server.serve(sockets=[sockets[service.name]]))
            for server, service in zip(servers, services, strict=True)
        ]
        self._ready.set()
        await self._stop.wait()
        # In order: no new requests, finish the ones in flight, deliver what they
        # published, then close databases and clients.
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in sockets.values():
            sock.close()
        await self._channel.drain()
        for service in services:
            for hook in service.on_stop:
                await hook()
        for kit in self._kits.values():
            await kit.close()

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until queued events are delivered and every finished span is exported."""
        if self._loop is not None and self._thread is not None:
            delivered = asyncio.run_coroutine_threadsafe(self._channel.join(), self._loop)
            delivered.result(timeout_s)
        if self.telemetry is not None:
            self.telemetry.force_flush(timeout_s)

    def shutdown(self) -> None:
        """Stop serving, deliver queued events, export all spans, remove temp data. Safe twice."""
        if self._stopped:
            return
        self._stopped = True
        thread, self._thread = self._thread, None
        if thread is not None:
            # The loop is closed when it ended on its own (a service failed to start):
            # telling it to stop then raised "Event loop is closed", which hid that
            # failure and skipped the clean-up below.
            if self._loop is not None and self._stop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):  # closed meanwhile
                    self._loop.call_soon_threadsafe(self._stop.set)
            thread.join(60)
        if self.telemetry is not None:
            self.telemetry.shutdown()
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
