"""Load generation for the benchmarks: unique OTLP requests sent at full speed or a set rate.

Each sender process pre-builds one request and makes it unique per send by
replacing an 8-byte marker that starts every trace id with a counter, so every
span is new to the server's dedup window and costs the sender almost nothing.
"""

from __future__ import annotations

import multiprocessing
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowscope.testing.otlp import realistic_request

MARKER = b"\xf1\x0f\xc0\xde\xf1\x0f\xc0\xde"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass
class SenderResult:
    sent_spans: int = 0
    acked_spans: int = 0
    refused: int = 0  # 503 / UNAVAILABLE answers (retried)
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)  # wall-clock (epoch) s of each ack
    # Wall-clock (epoch) seconds of the first send and the last answer: process start-up
    # is not sending time.
    started_at: float = 0.0
    finished_at: float = 0.0


def template(traces: int, seed: int) -> tuple[bytes, int]:
    request = realistic_request(traces, seed=seed, trace_id_prefix=MARKER)
    spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    return request.SerializeToString(), spans


def unique(body: bytes, sender: int, counter: int) -> bytes:
    return body.replace(MARKER, ((sender << 40) | counter).to_bytes(8, "big"))


def _shift_times(request: ExportTraceServiceRequest, delta_ns: int) -> None:
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                span.start_time_unix_nano += delta_ns
                span.end_time_unix_nano += delta_ns
                for event in span.events:
                    event.time_unix_nano += delta_ns


def send_loop(
    transport: str,
    target: str,
    sender: int,
    seconds: float,
    traces: int,
    rate_spans_per_s: float = 0.0,
    time_origin_ns: int = 0,
) -> SenderResult:
    """Send unique requests for ``seconds``; retries refused ones like an OTLP exporter.

    ``time_origin_ns``: the spans' times advance with the clock from this instant, as
    live traffic's do (about 2 ms of sender CPU a 512-span request); 0 sends the same
    times in every request, which costs the sender nothing.
    """
    body, spans = template(traces, seed=sender)
    live_start = time_origin_ns  # where the live request's times are now
    live = (
        realistic_request(traces, seed=sender, start_ns=live_start, trace_id_prefix=MARKER)
        if time_origin_ns
        else None
    )
    result = SenderResult()
    channel = (
        grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
        if transport == "grpc"
        else None
    )
    call = (
        channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        if channel
        else None
    )
    interval = spans / rate_spans_per_s if rate_spans_per_s else 0.0
    result.started_at = time.time()
    start = time.perf_counter()
    deadline = start + seconds
    counter = 0
    next_send = start
    while time.perf_counter() < deadline:
        if interval:
            delay = next_send - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_send += interval
        counter += 1
        if live is not None:
            wanted = time_origin_ns + int((time.perf_counter() - start) * 1e9)
            _shift_times(live, wanted - live_start)
            live_start = wanted
            body = live.SerializeToString()
        payload = unique(body, sender, counter)
        result.sent_spans += spans
        while True:
            began = time.perf_counter()
            outcome = _send(transport, target, call, payload)
            if outcome == "ok":
                result.latencies_ms.append((time.perf_counter() - began) * 1e3)
                result.acked_at.append(time.time())
                result.acked_spans += spans
                break
            if outcome == "refused":
                result.refused += 1
                time.sleep(0.05)
                continue
            result.errors += 1
            break
    result.finished_at = time.time()
    if channel is not None:
        channel.close()
    return result


@contextmanager
def running_senders(
    endpoints: Any,
    senders: int,
    seconds: float,
    traces: int,
    *,
    rate: float = 0.0,
    time_origin_ns: int = 0,
    first_id: int = 1,
) -> Iterator[list[Future[SenderResult]]]:
    """One ``send_loop`` per sender process, gRPC and HTTP in turn, ``rate`` shared
    among them (0: full speed); sender ids ``first_id``, ``first_id + 1``, ... go into
    the trace ids, so different ids send different spans. The processes end with the
    ``with`` block."""
    with ProcessPoolExecutor(senders, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield [
            pool.submit(
                send_loop,
                "grpc" if i % 2 == 0 else "http",
                endpoints.grpc if i % 2 == 0 else endpoints.http,
                first_id + i,
                seconds,
                traces,
                rate / senders,
                time_origin_ns,
            )
            for i in range(senders)
        ]


def _send(transport: str, target: str, call: object, payload: bytes) -> str:
    if transport == "grpc":
        try:
            call(payload, timeout=60)  # type: ignore[operator]
            return "ok"
        except grpc.RpcError as exc:
            return (
                "refused"
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
                else "error"
            )
    request = urllib.request.Request(
        f"{target}/v1/traces",
        data=payload,
        method="POST",
        headers={"Content-Type": "application/x-protobuf"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        return "ok"
    except urllib.error.HTTPError as exc:
        return "refused" if exc.code in (429, 503) else "error"
    except OSError:
        return "error"
