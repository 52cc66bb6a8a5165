"""OTLP/gRPC ``TraceService/Export``: only speaks gRPC, decodes through ``Ingest``."""

from __future__ import annotations

import collections
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]
from google.rpc.status_pb2 import Status as RpcStatus  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from flowscope.collector.auth import token_matches
from flowscope.collector.decode import DEFAULT_MAX_BYTES, PROTOBUF
from flowscope.collector.errors import BadRequest, Overloaded, RequestTooLarge, Unavailable
from flowscope.collector.ingest import Ingest
from flowscope.http_server import bind_socket

log = logging.getLogger(__name__)
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class _Status(
    collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status
):
    """A status with trailing metadata, for ``abort_with_status``."""


def _retry_later(message: str, retry_after_s: int) -> grpc.Status:
    """UNAVAILABLE with RetryInfo, the delay OTLP exporters honour (OTLP "Throttling":
    Go's SDK and the Collector read ``google.rpc.RetryInfo`` only), and the same delay
    as a plain ``retry-after`` trailer for people reading the answer."""
    info = AnyMessage()
    info.Pack(RetryInfo(retry_delay=Duration(seconds=retry_after_s)))
    status = RpcStatus(code=grpc.StatusCode.UNAVAILABLE.value[0], message=message, details=[info])
    metadata = (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("retry-after", str(retry_after_s)),
    )
    return _Status(grpc.StatusCode.UNAVAILABLE, message, metadata)


class GrpcReceiver:
    def __init__(
        self,
        ingest: Ingest,
        host: str,
        port: int,
        *,
        token: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        workers: int = 16,
    ) -> None:
        self.ingest = ingest
        self.host = host
        self.requested_port = port
        self.port = 0
        self.token = token
        self.max_bytes = max_bytes
        self.workers = workers
        self._server: grpc.Server | None = None

    def start(self) -> None:
        if self._server is not None:
            return
        if self.requested_port:
            # gRPC refuses a port in use with a RuntimeError and a log line of its C core
            # on stderr: try the port first, to refuse it in the HTTP side's words.
            bind_socket(self.host, self.requested_port).close()
        server = grpc.server(
            ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", self.max_bytes),
                ("grpc.so_reuseport", 0),
            ],
            # No maximum_concurrent_rpcs (nor an HTTP/2 stream limit): past it grpcio
            # answers RESOURCE_EXHAUSTED without RetryInfo, which OTLP exporters (Go's,
            # the Collector's) take as permanent and drop the spans; a stream limit
            # refuses the streams a client opens before it learns the limit. Calls
            # beyond the workers wait their turn; an overloaded writer answers
            # UNAVAILABLE with retry-after, and each request is size-limited.
        )
        handler = grpc.unary_unary_rpc_method_handler(
            self._export, request_deserializer=None, response_serializer=None
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),)
        )
        address = (
            f"[{self.host}]:{self.requested_port}"
            if ":" in self.host
            else f"{self.host}:{self.requested_port}"
        )
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from exc
        if self.port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {address}")
        server.start()
        self._server = server

    def shutdown(self, grace_s: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace_s).wait()

    def _export(self, body: bytes, context: Any) -> bytes:
        metadata = dict(context.invocation_metadata())
        if not token_matches(self.token, metadata.get("authorization")):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            if len(body) > self.max_bytes:
                raise RequestTooLarge(f"request exceeds {self.max_bytes} bytes")
            outcome = self.ingest.export_body(body, PROTOBUF)
        except BadRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except RequestTooLarge as exc:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except Overloaded as exc:
            context.abort_with_status(_retry_later(str(exc), exc.retry_after_s))
        except Unavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception:  # a bug: answer INTERNAL, keep serving
            log.exception("OTLP/gRPC export failed")
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the flowscope log")
        response = ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.error_message
        return response.SerializeToString()
