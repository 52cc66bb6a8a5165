"""The bounded window of recent span keys that drops exporter retries."""

from __future__ import annotations

import gc

from flowscope.store.dedup import KEY_BYTES, RecentSpanKeys


def _key(n: int) -> bytes:
    return n.to_bytes(16, "big") + (n + 1).to_bytes(8, "big")


def test_a_warm_window_forgets_its_oldest_keys_a_chunk_at_a_time() -> None:
    capacity = 200_000
    window = RecentSpanKeys(capacity)
    warm = [_key(n) for n in range(capacity)]
    window.warm_keys(b"".join(warm))
    assert len(window) == capacity
    mask, digests = window.new_mask([_key(capacity + 1)])
    window.remember(digests)
    # One new span evicts the oldest chunk (65,536 keys), not the whole warm set.
    still_known = window.new_mask(warm)[0].count(False)
    assert capacity - 65_536 <= still_known < capacity
    assert window.new_mask(warm[-10:])[0] == [False] * 10  # the newest stay


def test_warm_keys_and_warm_pairs_agree() -> None:
    pairs = [(_key(n)[:16].hex(), _key(n)[16:].hex()) for n in range(5)]
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
