"""A bounded window of recently stored span ids, so exporter retries do not double-count.

OTLP exporters retry a whole request when they time out waiting for our answer,
although we may already have committed it. Spans seen within the last
``capacity`` stored spans are dropped. Each key is the 64-bit hash of trace id +
span id + whether the span is a SERVER span and, if it is, its service (a Python int
in a set: about 70 bytes per span of window, measured in docs/benchmarks.md); the
false-positive rate at a million keys is about 5e-8.
"""

from __future__ import annotations

import functools
from array import array
from collections import deque
from collections.abc import Iterable, Sequence

import pyarrow as pa

from flowscope.store.columns import as_batch

# A span's dedup key: trace id (16) + span id (8) + 1 for a SERVER span, else 0 + for
# a SERVER span its service's FNV-1a hash (8, little-endian), else 8 zeros. A SERVER
# span is no retry of a CLIENT span of its id: Zipkin instrumentation reports an RPC's
# two sides under one id, and the Collector passes both on over OTLP
# (analyzer/shared_ids.py tells them apart); nor of another service's SERVER span of
# that id (two services answering one call, a proxy and its app, say).
KEY_BYTES = 33
SERVER = b"\x01"
NOT_SERVER = bytes(KEY_BYTES - 24)
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    """64-bit FNV-1a, as collector/_fastflatten.c computes it."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & _U64
    return value


@functools.lru_cache(maxsize=4096)  # warming the window asks once per stored span
def server_tail(service: str) -> bytes:
    """The last 9 bytes of a SERVER span's key in ``service``."""
    return SERVER + fnv1a64(service.encode()).to_bytes(8, "little")


def span_key(trace_id: str, span_id: str, server: bool, service: str) -> bytes:
    """A span's dedup key from its hex ids, whether it is a SERVER span, and its service."""
    tail = server_tail(service) if server else NOT_SERVER
    return bytes.fromhex(trace_id) + bytes.fromhex(span_id) + tail


StoredSpan = tuple[str, str, bool, str]  # TraceId hex, SpanId hex, is SERVER, ServiceName


def pack_keys(spans: Iterable[StoredSpan]) -> bytes:
    """Stored spans' dedup keys packed back to back."""
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
        self._head = 0  # keys of the oldest array already forgotten
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
        # The oldest keys go one by one, not a batch at a time: forgetting whole batches
        # held as few as capacity − batch + 1 keys (one batch over the capacity left
        # none, its own included), and a retry within the window was stored again
        # (durability review: 50 keys held of a --dedup-window of 100).
        while self._size > self.capacity:
            oldest = self._order[0]
            end = min(len(oldest), self._head + self._size - self.capacity)
            self._keys.difference_update(oldest[self._head : end])
            self._size -= end - self._head
            if end == len(oldest):
                self._order.popleft()
                end = 0
            self._head = end

    def warm(self, spans: Iterable[StoredSpan]) -> None:
        """Load stored spans' keys, oldest first."""
        self._warm([hash(span_key(*span)) for span in spans])

    def warm_keys(self, keys: bytes) -> None:
        """Load span keys (``KEY_BYTES`` each, oldest first) as already stored."""
        self._warm([hash(key) for key in split_keys(keys)])

    def _warm(self, digests: list[int]) -> None:
        # Only keys not held already: one held twice was forgotten with its older copy
        # while the newer was still in the window, and a resumed import
        # (SpanWriter.remember_stored) stored its spans again (diff review).
        self.remember([digest for digest in dict.fromkeys(digests) if digest not in self._keys])


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
