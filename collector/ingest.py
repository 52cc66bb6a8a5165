"""The one export path: every transport hands decoded spans to ``Ingest.export``.

It submits them to the single writer, which answers once they are durable in the
span journal (store/journal.py), so success is only reported for durable spans;
and it maps writer conditions to the errors the transports translate at their edge.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from flowscope.collector.decode_pool import DecodePool
from flowscope.collector.errors import Overloaded, Unavailable
from flowscope.collector.flatten import FlattenResult
from flowscope.store.journal import JournalError
from flowscope.store.writer import QueueFull, WriterClosed


class SpanSink(Protocol):
    """Where accepted spans go: the writer (store/writer.py), or in the ingest process
    the journal sink (store/journal_sink.py). The future resolves once they are durable."""

    def submit(self, table: pa.Table, keys: list[bytes]) -> Future[int]: ...


@dataclass(frozen=True)
class ExportOutcome:
    accepted: int  # spans in the request that passed validation
    stored: int  # of those, new (not seen in the dedup window)
    rejected: int
    error_message: str


@dataclass
class IngestCounters:
    requests: int = 0
    accepted_spans: int = 0
    rejected_spans: int = 0
    refused_requests: int = 0


class Ingest:
    def __init__(
        self,
        writer: SpanSink,
        *,
        decoder: DecodePool | None = None,
        commit_timeout_s: float = 30.0,
    ) -> None:
        self.writer = writer
        self.decoder = decoder or DecodePool(0)
        self.commit_timeout_s = commit_timeout_s
        self.counters = IngestCounters()
        self._lock = threading.Lock()

    def export(self, result: FlattenResult) -> ExportOutcome:
        batch = result.batch
        try:
            future = self.writer.submit(batch.table, batch.keys)
        except QueueFull as exc:
            self._count(refused=True)
            raise Overloaded(f"flowscope is overloaded ({exc}); retry later") from exc
        except WriterClosed as exc:
            self._count(refused=True)
            raise Unavailable(f"flowscope is shutting down ({exc}); retry later") from exc
        except (OSError, JournalError) as exc:  # the journal could not be written
            self._count(refused=True)
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
        self._count(accepted=batch.spans, rejected=result.rejected)
        return ExportOutcome(batch.spans, stored, result.rejected, result.error_message)

    def export_body(self, body: bytes, content_type: str) -> ExportOutcome:
        """Decode an (uncompressed) OTLP body and export it."""
        return self.export(self.decoder.decode(body, content_type))

    def _count(self, accepted: int = 0, rejected: int = 0, refused: bool = False) -> None:
        with self._lock:
            self.counters.requests += 1
            self.counters.accepted_spans += accepted
            self.counters.rejected_spans += rejected
            self.counters.refused_requests += int(refused)
