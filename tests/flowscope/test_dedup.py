"""The bounded window of recent span keys that drops exporter retries."""

from __future__ import annotations

import gc
from pathlib import Path

from flowscope.collector.flatten import flatten_request
from flowscope.store.database import Database
from flowscope.store.dedup import (
    KEY_BYTES,
    NOT_SERVER,
    RecentSpanKeys,
    fnv1a64,
    server_tail,
    span_key,
)
from flowscope.store.writer import SpanWriter
from flowscope.testing.otlp import BASE_TIME_NS, realistic_request


def _key(n: int) -> bytes:
    ids = n.to_bytes(16, "big") + (n + 1).to_bytes(8, "big")
    return ids + (server_tail(f"svc{n % 3}") if n % 2 else NOT_SERVER)


def test_a_warm_window_forgets_its_oldest_keys_one_at_a_time() -> None:
    capacity = 200_000
    window = RecentSpanKeys(capacity)
    warm = [_key(n) for n in range(capacity)]
    window.warm_keys(b"".join(warm))
    assert len(window) == capacity
    mask, digests = window.new_mask([_key(capacity + 1)])
    window.remember(digests)
    # One new span evicts the oldest key alone (it was a chunk of 65,536).
    assert window.new_mask(warm)[0] == [True] + [False] * (capacity - 1)
    assert len(window) == capacity


def test_the_window_holds_its_capacity_whatever_the_batches_sizes() -> None:
    """Whole batches were forgotten: after 10, 80 and 15 keys a window of 100 held 95,
    and one batch of 150 left it empty, so retries within it were stored again
    (durability review)."""
    window = RecentSpanKeys(100)
    keys = [_key(n) for n in range(255)]
    sent = 0
    for size in (10, 80, 15, 150):
        mask, digests = window.new_mask(keys[sent : sent + size])
        assert all(mask)
        window.remember(digests)
        sent += size
        held = window.new_mask(keys[:sent])[0]
        assert held == [True] * max(0, sent - 100) + [False] * min(sent, 100), size
        assert len(window) == min(sent, 100)


def test_warm_keys_and_warm_pairs_agree() -> None:
    pairs = [
        (_key(n)[:16].hex(), _key(n)[16:24].hex(), n % 2 == 1, f"svc{n % 3}") for n in range(5)
    ]
    by_pairs, by_keys = RecentSpanKeys(10), RecentSpanKeys(10)
    by_pairs.warm(pairs)
    by_keys.warm_keys(b"".join(_key(n) for n in range(5)))
    assert len(_key(0)) == KEY_BYTES
    assert by_pairs.new_mask([_key(n) for n in range(6)]) == by_keys.new_mask(
        [_key(n) for n in range(6)]
    )
    assert by_keys.new_mask([_key(n) for n in range(6)])[0] == [False] * 5 + [True]


def test_the_window_gives_the_garbage_collector_nothing_per_batch_to_walk() -> None:
    # A full GC pass walked a list per remembered batch, a million ints in all, and
    # held every thread of the ingest process for 120-190 ms while it did.
    window = RecentSpanKeys(1000)
    for start in range(0, 3000, 100):
        window.remember([hash(i.to_bytes(24, "big")) for i in range(start, start + 100)])
    assert len(window) == 1000
    assert window._order
    walked = [ref for batch in window._order for ref in gc.get_referents(batch)]
    assert not any(isinstance(ref, int) for ref in walked)


def test_the_window_is_warmed_with_the_spans_stored_last(tmp_path: Path) -> None:
    """Warmed by start time, a retry after a restart of spans that started before the
    window's newest (a backlog sent after an outage) was stored twice."""
    database = Database(tmp_path / "warm.duckdb")
    recent = realistic_request(4, seed=1, start_ns=BASE_TIME_NS + 3_600_000_000_000)
    backlog = realistic_request(1, seed=2)  # an hour older, stored after them
    writer = SpanWriter(database, journal=False)
    writer.start()
    for request in (recent, backlog):  # two commits
        batch = flatten_request(request).batch
        writer.write(batch.table, batch.keys)
    writer.shutdown()
    stored_last = flatten_request(backlog).batch.keys
    warmed = database.recent_span_keys(len(stored_last))
    assert sorted(span_key(*span) for span in warmed) == sorted(stored_last)
    database.close()


def test_fnv1a64_is_the_published_function() -> None:
    # Test vectors of 64-bit FNV-1a (the C flattener computes the same, checked by
    # test_fast_flatten's key comparisons).
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_server_spans_of_one_id_in_two_services_are_no_retries_of_each_other() -> None:
    ids = "ab" * 16, "cd" * 8
    window = RecentSpanKeys(10)
    keys = [span_key(*ids, True, "proxy"), span_key(*ids, True, "payments")]
    keys += [span_key(*ids, True, "payments"), span_key(*ids, False, "web")]
    mask, digests = window.new_mask(keys)
    assert mask == [True, True, False, True]
    window.remember(digests)
    assert window.new_mask(keys)[0] == [False] * 4


def test_keys_warmed_again_are_not_forgotten_with_their_older_copy() -> None:
    """A key remembered twice was forgotten with its older copy while the newer one was
    still in the window: a resumed import stored its spans again (diff review)."""
    window = RecentSpanKeys(3)
    window.warm_keys(b"".join(_key(n) for n in range(3)))
    window.warm_keys(_key(0) + _key(0))  # already held, and twice in one call
    assert len(window) == 3
    assert window.new_mask([_key(n) for n in range(3)])[0] == [False] * 3
    mask, digests = window.new_mask([_key(3)])
    window.remember(digests)
    assert window.new_mask([_key(n) for n in range(4)])[0] == [True, False, False, False]
