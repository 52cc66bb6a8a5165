"""A bounded window of recently stored span ids, so exporter retries do not double-count.

OTLP exporters retry a whole request when they time out waiting for our answer,
although we may already have committed it. Spans seen within the last
``capacity`` stored spans are dropped. Each key is the 64-bit hash of
trace id + span id + whether the span is a SERVER span (a Python int in a set: about 70 bytes per span of window,
measured in docs/benchmarks.md); the false-positive rate at a million keys is
about 5e-8.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable, Sequence

import pyarrow as pa

from flowscope.store.columns import as_batch

# A span's dedup key: trace id (16) + span id (8) + 1 for a SERVER span, else 0. A
# SERVER span is no retry of a CLIENT span of its id: Zipkin instrumentation reports
# an RPC's two sides under one id, and the Collector passes both on over OTLP
# (analyzer/shared_ids.py tells them apart).
KEY_BYTES = 25
SERVER = b"\x01"
NOT_SERVER = b"\x00"


def span_key(trace_id: str, span_id: str, server: bool) -> bytes:
    """A span's dedup key from its hex ids and whether it is a SERVER span."""
    return bytes.fromhex(trace_id) + bytes.fromhex(span_id) + (SERVER if server else NOT_SERVER)


def pack_keys(spans: Iterable[tuple[str, str, bool]]) -> bytes:
    """(TraceId hex, SpanId hex, is SERVER) per span as dedup keys packed back to back."""
    return b"".join(span_key(*span) for span in spans)


def split_keys(blob: bytes) -> list[bytes]:
    """The dedup keys packed back to back in ``blob`` (how they cross processes and C)."""
    return [blob[i : i + KEY_BYTES] for i in range(0, len(blob), KEY_BYTES)]


class RecentSpanKeys:
    def __init__(self, capacity: int = 1_000_000) -> None:
        if capacity < 0:
            raise ValueError("dedup window capacity must be >= 0")
        self.capacity = capacity
        self._keys: set[int] = set()
        # Each batch's keys in order, as arrays: the garbage collector does not walk
        # those (it walked lists of a million ints in every full pass; see settle_heap
        # in collector/ingest_process.py).
        self._order: deque[array[int]] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def new_mask(self, keys: Sequence[bytes]) -> tuple[list[bool], list[int]]:
        """Which keys are new (also within this batch), and their hashes to remember."""
        seen = self._keys
        in_batch: set[int] = set()
        mask: list[bool] = []
        fresh: list[int] = []
        for key in keys:
            digest = hash(key)
            is_new = digest not in seen and digest not in in_batch
            mask.append(is_new)
            if is_new:
                in_batch.add(digest)
                fresh.append(digest)
        return mask, fresh

    def remember(self, digests: list[int]) -> None:
        if not digests or self.capacity == 0:
            return
        self._keys.update(digests)
        self._order.append(array("q", digests))
        self._size += len(digests)
        while self._size > self.capacity and self._order:
            oldest = self._order.popleft()
            self._keys.difference_update(oldest)
            self._size -= len(oldest)

    def warm(self, spans: Iterable[tuple[str, str, bool]]) -> None:
        """Load (TraceId hex, SpanId hex, is SERVER) per span, oldest first, as stored."""
        self._warm([hash(span_key(*span)) for span in spans])

    def warm_keys(self, keys: bytes) -> None:
        """Load span keys (``KEY_BYTES`` each, oldest first) as already stored."""
        self._warm([hash(key) for key in split_keys(keys)])

    def _warm(self, digests: list[int]) -> None:
        # In chunks: the window forgets a chunk at a time, and one chunk of all the warm
        # keys would go as a whole on the first new span.
        chunk = min(65536, max(1, self.capacity // 8))
        for start in range(0, len(digests), chunk):
            self.remember(digests[start : start + chunk])


def only_new(
    window: RecentSpanKeys, table: pa.Table, keys: Sequence[bytes]
) -> tuple[pa.Table, list[int]]:
    """The spans of ``table`` not in ``window`` (nor repeated within it), as a batch, and
    the digests to remember once they are taken; no digests: nothing is new."""
    mask, digests = window.new_mask(keys)
    if not digests:
        return table, digests
    table = as_batch(table)
    if len(digests) != table.num_rows:
        table = table.filter(pa.array(mask, pa.bool_()))
    return table, digests
