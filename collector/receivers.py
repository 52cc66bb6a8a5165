"""The OTLP receivers (gRPC and HTTP) and their decode pool in front of one span sink.

``flowscope serve`` runs them in its ingest process (collector/ingest_process.py),
or with ``--no-ingest-process`` in the server itself, in front of the writer: one
set-up, so both start, fail and stop the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flowscope.collector.decode_pool import DecodePool
from flowscope.collector.grpc_receiver import GrpcReceiver
from flowscope.collector.http_receiver import create_otlp_http_app, otlp_refusal
from flowscope.collector.ingest import Ingest, SpanSink
from flowscope.http_server import HttpServer


@dataclass(frozen=True)
class ReceiverSettings:
    host: str
    grpc_port: int
    http_port: int
    token: str | None
    max_request_bytes: int
    decode_workers: int
    # The server's --retention: spans older are accepted with a warning (ingest.py).
    retention: timedelta | None = None
    # Web page origins whose browser exporters may send to OTLP/HTTP (CORS).
    cors_origins: tuple[str, ...] = ()


class Receivers:
    def __init__(self, sink: SpanSink, settings: ReceiverSettings) -> None:
        self.settings = settings
        self.decoder = DecodePool(settings.decode_workers)
        self.ingest = Ingest(sink, decoder=self.decoder, retention=settings.retention)
        self.grpc: GrpcReceiver | None = None
        self.http: HttpServer | None = None

    def start(self) -> None:
        """Listen on both ports; if either fails, stop what started and raise."""
        if self.http is not None:
            return  # started already: a second set of ports would leak
        s = self.settings
        try:
            # The HTTP socket is bound first, before anything is served or a decode
            # worker spawned, so a port in use is reported at once.
            app = create_otlp_http_app(
                self.ingest,
                token=s.token,
                max_bytes=s.max_request_bytes,
                cors_origins=s.cors_origins,
            )
            self.http = HttpServer(
                app,
                s.host,
                s.http_port,
                "otlp",
                token=s.token,
                refusal=otlp_refusal,
                port_label="OTLP/HTTP",
                http2_hint=": a gRPC exporter sends to the OTLP/gRPC port, or is set to "
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf for this one",
            )
            self.grpc = GrpcReceiver(
                self.ingest, s.host, s.grpc_port, token=s.token, max_bytes=s.max_request_bytes
            )
            self.grpc.start()
            self.decoder.start()
            self.http.start()
        except BaseException:
            self.shutdown()
            self.grpc = self.http = None
            raise

    @property
    def ports(self) -> tuple[int, int]:
        """(gRPC, HTTP) as bound: a port asked as 0 is known once started."""
        assert self.grpc is not None and self.http is not None, "receivers not started"
        return self.grpc.port, self.http.port

    def shutdown(self) -> None:
        """Receivers first: they finish the requests in flight, whose decoding may still
        need the pool; then the pool. Safe twice (each part's shutdown is)."""
        if self.grpc is not None:
            self.grpc.shutdown()
        if self.http is not None:
            self.http.shutdown()
        self.decoder.shutdown()
