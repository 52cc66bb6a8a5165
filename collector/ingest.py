"""The one export path: every transport hands decoded spans to ``Ingest.export``.

It submits them to the single writer, which answers once they are durable in the
span journal (store/journal.py), so success is only reported for durable spans;
and it maps writer conditions to the errors the transports translate at their edge.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from flowscope.collector.decode_pool import DecodePool
from flowscope.collector.errors import Overloaded, Unavailable
from flowscope.collector.flatten import FlattenResult
from flowscope.durations import format_duration, nanoseconds
from flowscope.logs import error_line
from flowscope.store.journal import JournalError
from flowscope.store.writer import QueueFull, WriterClosed


def started_before(table: pa.Table, age: timedelta) -> int:
    """How many of a batch's spans started longer than ``age`` ago."""
    cutoff = pa.scalar(time.time_ns() - nanoseconds(age), pa.timestamp("ns"))
    return int(pc.sum(pc.less(table.column("Timestamp"), cutoff)).as_py() or 0)


class SpanSink(Protocol):
    """Where accepted spans go: the writer (store/writer.py), or in the ingest process
    the journal sink (store/journal_sink.py). The future resolves once they are durable."""

    def submit(
        self, table: pa.Table, keys: list[bytes], *, weight: int | None = None
    ) -> Future[int]: ...


@dataclass(frozen=True)
class ExportOutcome:
    accepted: int  # spans in the request that passed validation
    stored: int  # of those, new (not seen in the dedup window)
    rejected: int
    error_message: str
    warning: str = ""  # for partial_success, also with nothing rejected

    def response(self) -> ExportTraceServiceResponse:
        """The answer every transport sends: ``partial_success`` says why spans were
        rejected, and warnings (OTLP lets a server fill it with nothing rejected "to
        convey warnings")."""
        response = ExportTraceServiceResponse()
        if self.rejected or self.warning:
            response.partial_success.rejected_spans = self.rejected
            response.partial_success.error_message = "; ".join(
                text for text in (self.error_message, self.warning) if text
            )
        return response


@dataclass
class IngestCounters:
    requests: int = 0
    accepted_spans: int = 0
    rejected_spans: int = 0
    refused_requests: int = 0
    # Why the last request was refused for storage (its spans could not be written to
    # the journal: a full disk); None once a request is stored again.
    storage_error: str | None = None


class Ingest:
    def __init__(
        self,
        writer: SpanSink,
        *,
        decoder: DecodePool | None = None,
        commit_timeout_s: float = 30.0,
        retention: timedelta | None = None,
    ) -> None:
        self.writer = writer
        self.decoder = decoder or DecodePool(0)
        self.commit_timeout_s = commit_timeout_s
        self.retention = retention
        self.counters = IngestCounters()
        self._lock = threading.Lock()

    def export(self, result: FlattenResult) -> ExportOutcome:
        batch = result.batch
        try:
            future = self.writer.submit(batch.table, batch.keys, weight=batch.weight)
        except QueueFull as exc:
            self._count(refused=True)
            if exc.larger_than_queue:  # not "busy": retried, it waits for an empty queue
                raise Overloaded(f"flowscope took no spans: {exc}") from exc
            raise Overloaded(f"flowscope is overloaded ({exc}); retry later") from exc
        except WriterClosed as exc:
            self._count(refused=True)
            raise Unavailable(f"flowscope is shutting down ({exc}); retry later") from exc
        except (OSError, JournalError) as exc:  # the journal could not be written
            self._count(refused=True, storage_error=error_line(exc))
            raise Unavailable(f"storing spans failed: {exc}; retry later") from exc
        try:
            stored = future.result(self.commit_timeout_s)
        except FutureTimeout as exc:
            self._count(refused=True)
            raise Unavailable(
                f"spans not committed within {self.commit_timeout_s:g}s; retry later"
            ) from exc
        except WriterClosed as exc:
            self._count(refused=True)
            raise Unavailable(f"flowscope is shutting down ({exc}); retry later") from exc
        except Exception as exc:
            self._count(refused=True)
            raise Unavailable(f"storing spans failed: {exc}") from exc
        # Only a request whose spans went into the journal says it can be written again
        # (an empty one or resends alone write nothing).
        self._count(accepted=batch.spans, rejected=result.rejected, stored=stored > 0)
        warnings = (result.warning, self._expired(batch.table))
        return ExportOutcome(
            batch.spans,
            stored,
            result.rejected,
            result.error_message,
            "; ".join(text for text in warnings if text),
        )

    def _expired(self, table: pa.Table) -> str:
        """A warning when spans started before the retention: stored, they are deleted
        at the next sweep (old files sent by ``flowscope import``, a replay), which
        the sender would not learn otherwise."""
        if self.retention is None or table.num_rows == 0:
            return ""
        old = started_before(table, self.retention)
        if not old:
            return ""
        keep = format_duration(self.retention)
        return (
            f"{old} of {table.num_rows} spans started more than {keep} ago, before this "
            f"server's retention (--retention {keep}): they are stored, then deleted at "
            "its next sweep (serve with --retention off to keep them)"
        )

    def export_body(self, body: bytes, content_type: str) -> ExportOutcome:
        """Decode an (uncompressed) OTLP body and export it."""
        return self.export(self.decoder.decode(body, content_type))

    def _count(
        self,
        accepted: int = 0,
        rejected: int = 0,
        refused: bool = False,
        storage_error: str | None = None,
        stored: bool = False,
    ) -> None:
        with self._lock:
            self.counters.requests += 1
            self.counters.accepted_spans += accepted
            self.counters.rejected_spans += rejected
            self.counters.refused_requests += int(refused)
            if storage_error is not None or stored:  # set, or stored again
                self.counters.storage_error = storage_error
