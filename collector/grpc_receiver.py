"""OTLP/gRPC ``TraceService/Export``: only speaks gRPC, decodes through ``Ingest``.

Runs grpcio's asyncio server on a thread of its own: a call holds no thread while
its message arrives, only once the message is whole and handed to ``Ingest`` (in a
pool of ``workers`` threads). With the thread-per-call server a client that sent a
call's headers and never its message held a worker until it gave up, and 16 such
calls stopped every exporter's calls. The call is read as a stream (the same bytes
on the wire as a unary call) so that a message that does not come within
``MESSAGE_TIMEOUT_S``, or a call with no message or several, gets an answer: the
asyncio server's own unary reading waits forever for a message that never comes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import grpc.aio
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]
from google.rpc.status_pb2 import Status as RpcStatus  # type: ignore[import-untyped]

from flowscope.collector.auth import token_matches
from flowscope.collector.decode import DEFAULT_MAX_BYTES, PROTOBUF
from flowscope.collector.errors import BadRequest, Overloaded, RequestTooLarge, Unavailable
from flowscope.collector.ingest import ExportOutcome, Ingest
from flowscope.http_server import bind_socket

log = logging.getLogger(__name__)
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
START_TIMEOUT_S = 30.0
# A call's message must be whole this long after its turn began (CALLS_READING): a
# turn held longer keeps another exporter waiting, and 128 calls that never sent their
# message held every turn for 120 s (the OTLP/HTTP body limit, BODY_TOTAL_S, before).
# OTLP exporters time out their own calls sooner (Go's and Python's after 10 s, the
# Collector's after 5 s); a 4 MB message over a 50 ms round trip takes ~3 s in the
# 64 KiB windows below.
MESSAGE_TIMEOUT_S = 15.0
ONE_MESSAGE = "Export requires exactly one request message"
# Calls whose message is read, decoded and stored at once. gRPC's C core takes in a
# call's message only once the handler reads it (with BDP probing off, a waiting call
# holds one 64 KiB flow-control window), so this bounds the receiver's memory at about
# this many request messages: 2,000 concurrent 4 MB calls took 8.4 GB without it,
# 2.2 GB with it (bench/grpc_flood.py, docs/benchmarks.md). A call waits SLOT_WAIT_S for its turn, then is
# answered UNAVAILABLE with RetryInfo, which exporters retry.
CALLS_READING = 128
SLOT_WAIT_S = 2.0
# Of those turns, one connection holds at most this share: a client whose calls stop
# before their message (a hung exporter) held all 128 for MESSAGE_TIMEOUT_S, and every
# other exporter was told to retry meanwhile. OTLP exporters send each connection's
# requests a few at a time (the Collector's queue has 10 consumers by default).
PEER_SHARE = 4

Trailers = tuple[tuple[str, str | bytes], ...]


def _retry_later(message: str, retry_after_s: int) -> Trailers:
    """The trailers of an UNAVAILABLE that OTLP exporters retry after the delay (OTLP
    "Throttling": Go's SDK and the Collector read ``google.rpc.RetryInfo`` only), and
    the same delay as a plain ``retry-after`` trailer for people reading the answer."""
    info = AnyMessage()
    info.Pack(RetryInfo(retry_delay=Duration(seconds=retry_after_s)))
    status = RpcStatus(code=grpc.StatusCode.UNAVAILABLE.value[0], message=message, details=[info])
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("retry-after", str(retry_after_s)),
    )


class _Refused(Exception):
    """An export answered with a status other than OK."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: Trailers = ()) -> None:
        super().__init__(details)
        self.code, self.details, self.trailers = code, details, trailers

    def bare(self) -> _Refused:
        """The same refusal, without the frames and the errors this one carries."""
        return _Refused(self.code, self.details, self.trailers)


async def _one_message(messages: AsyncIterator[bytes]) -> bytes:
    """The call's one request message, whole within ``MESSAGE_TIMEOUT_S``."""
    received: list[bytes] = []
    try:
        async with asyncio.timeout(MESSAGE_TIMEOUT_S):
            async for message in messages:
                received.append(message)
                if len(received) > 1:
                    break
    except TimeoutError:
        raise _Refused(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the request message did not come within {MESSAGE_TIMEOUT_S:g} s",
        ) from None
    if len(received) != 1:
        raise _Refused(grpc.StatusCode.UNIMPLEMENTED, ONE_MESSAGE)
    return received[0]


async def _abort(context: grpc.aio.ServicerContext[Any, Any], refused: _Refused) -> None:
    """End the call with the refusal's status (``context.abort`` raises AbortError).

    grpc may have ended the call itself meanwhile: a gzip message past the size limit
    once inflated is answered RESOURCE_EXHAUSTED by grpc, and the handler then sees no
    message. Its own status stands; the abort's failure was logged as an ERROR with a
    traceback ("ExecuteBatchError raised in core"), a cancelled handler is not."""
    try:
        await context.abort(refused.code, refused.details, refused.trailers)
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        log.debug("OTLP/gRPC call ended before its refusal (%s): %r", refused.details, exc)
        raise asyncio.CancelledError from exc


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
        calls_reading: int = CALLS_READING,
    ) -> None:
        self.ingest = ingest
        self.host = host
        self.requested_port = port
        self.port = 0
        self.token = token
        self.max_bytes = max_bytes
        self.workers = workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: grpc.aio.Server | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._reading = asyncio.Semaphore(calls_reading)
        self._reading_limit = calls_reading
        self._peer_limit = max(1, calls_reading // PEER_SHARE)
        # Per connection (grpc's peer: address and port): its turns, and calls using them.
        self._peers: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}
        # Set (on the loop) as the server stops: calls still waiting for their message
        # are answered "retry" at once (``_message_unless_stopping``).
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = asyncio.Event()  # a receiver started again is not stopping
        if self.requested_port:
            # gRPC refuses a port in use with a RuntimeError and a log line of its C core
            # on stderr: try the port first, to refuse it in the HTTP side's words.
            bind_socket(self.host, self.requested_port).close()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="otlp-grpc")
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_forever()
            finally:
                loop.close()

        thread = threading.Thread(target=run, name="otlp-grpc-loop", daemon=True)
        thread.start()
        try:
            self.port = asyncio.run_coroutine_threadsafe(self._serve(), loop).result(
                START_TIMEOUT_S
            )
        except BaseException:  # no server: the loop, its thread and the pool go too
            loop.call_soon_threadsafe(loop.stop)
            thread.join(START_TIMEOUT_S)
            self._pool.shutdown(wait=False)
            self._pool = None
            raise
        self._loop, self._thread = loop, thread

    async def _serve(self) -> int:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.max_bytes),
                ("grpc.so_reuseport", 0),
                # BDP probing widens a stream's window to take in messages nobody reads
                # yet, which CALLS_READING could then not bound.
                ("grpc.http2.bdp_probe", 0),
            ],
            # No maximum_concurrent_rpcs (nor an HTTP/2 stream limit): past it grpcio
            # answers RESOURCE_EXHAUSTED without RetryInfo, which OTLP exporters (Go's,
            # the Collector's) take as permanent and drop the spans; a stream limit
            # refuses the streams a client opens before it learns the limit. Calls
            # beyond CALLS_READING wait SLOT_WAIT_S for their turn, then are answered
            # UNAVAILABLE with RetryInfo, as an overloaded writer's are; each request
            # is size-limited.
        )
        handler = grpc.stream_unary_rpc_method_handler(
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
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {address}")
        await server.start()
        self._server = server
        return port

    def shutdown(self, grace_s: float = 5.0) -> None:
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        server = self._server
        # A loop that died (it should not) cannot stop the server: the rest of the
        # receivers' shutdown must still run, not end in "Event loop is closed".
        if server is not None and thread.is_alive() and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stopping.set)
                stopping = asyncio.run_coroutine_threadsafe(server.stop(grace_s), loop)
                stopping.result(grace_s + START_TIMEOUT_S)
            except Exception:  # a stop that failed or hung: the loop goes anyway
                log.exception("OTLP/gRPC server did not stop cleanly")
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass  # closed meanwhile
        thread.join(START_TIMEOUT_S)
        self._server = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    async def _export(
        self, messages: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        metadata = context.invocation_metadata() or ()
        given = [str(value) for key, value in metadata if key == "authorization"]
        if not token_matches(self.token, given):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        refusal: _Refused | None = None
        try:
            outcome = await self._receive(messages, context.peer() or "")
        except _Refused as refused:
            # Answered after this block, as a fresh exception. The one caught carries the
            # frames that held the request and its decoded spans, and grpc keeps the
            # abort's error (whose context the caught one would be) in a reference cycle
            # with this call's state: only the cyclic collector, which runs rarely while
            # few objects are made, freed them. 32 gRPC senders of 8 MB requests, most
            # told to retry, left 3-4 GB of such garbage in the receivers' process.
            refusal = refused.bare()
        if refusal is not None:
            await _abort(context, refusal)
        return outcome.response().SerializeToString()

    async def _receive(self, messages: AsyncIterator[bytes], peer: str) -> ExportOutcome:
        """The call's message, decoded and stored in its turn; a refusal as ``_Refused``."""
        await self._take_slot(peer)
        try:
            body = await self._message_unless_stopping(messages)
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._ingest, body)
        finally:
            self._reading.release()
            self._leave(peer, holding=True)

    async def _message_unless_stopping(self, messages: AsyncIterator[bytes]) -> bytes:
        """The call's message; UNAVAILABLE with RetryInfo if the server stops first.
        grpc's stop waited out its grace (5 s) for a message still arriving, then
        cancelled the call: the stop took 5 s more, as OTLP/HTTP's did before it
        answered such requests at once (``http_server.SERVER_STOPPING``)."""
        reading = asyncio.ensure_future(_one_message(messages))
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait((reading, stop), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the call was cancelled: its reading goes with it
            reading.cancel()
            raise
        finally:
            stop.cancel()
        if reading.done():
            return reading.result()
        reading.cancel()
        why = "the server is stopping; retry"
        raise _Refused(grpc.StatusCode.UNAVAILABLE, why, _retry_later(why, 5))

    async def _take_slot(self, peer: str) -> None:
        """A turn of the connection's and one of the receiver's, within ``SLOT_WAIT_S``."""
        own, users = self._peers.setdefault(peer, (asyncio.Semaphore(self._peer_limit), [0]))
        users[0] += 1
        busy = ""
        try:
            async with asyncio.timeout(SLOT_WAIT_S):
                busy = f"{self._peer_limit} calls from this connection are being received"
                await own.acquire()
                try:
                    busy = f"{self._reading_limit} calls are being received"
                    await self._reading.acquire()
                except BaseException:
                    own.release()
                    raise
        except TimeoutError:
            self._leave(peer, holding=False)
            busy += "; retry later"
            raise _Refused(grpc.StatusCode.UNAVAILABLE, busy, _retry_later(busy, 1)) from None
        except BaseException:
            self._leave(peer, holding=False)
            raise

    def _leave(self, peer: str, *, holding: bool) -> None:
        """A call of ``peer`` is done with its turn (``holding``) or never got one."""
        own, users = self._peers[peer]
        if holding:
            own.release()
        users[0] -= 1
        if users[0] == 0:
            del self._peers[peer]

    def _ingest(self, body: bytes) -> ExportOutcome:
        """Decode and store one request (on a pool thread); a refusal as ``_Refused``."""
        try:
            if len(body) > self.max_bytes:
                raise RequestTooLarge(f"request exceeds {self.max_bytes} bytes")
            return self.ingest.export_body(body, PROTOBUF)
        except BadRequest as exc:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        except RequestTooLarge as exc:
            raise _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from exc
        except Overloaded as exc:
            raise _Refused(
                grpc.StatusCode.UNAVAILABLE, str(exc), _retry_later(str(exc), exc.retry_after_s)
            ) from exc
        except Unavailable as exc:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, str(exc)) from exc
        except BaseException as exc:  # a bug: answer INTERNAL, keep serving
            # BaseException too: one escaping the pool would end the event loop, and
            # every later call would hang.
            log.exception("OTLP/gRPC export failed")
            raise _Refused(
                grpc.StatusCode.INTERNAL, "internal error; see the flowscope log"
            ) from exc
