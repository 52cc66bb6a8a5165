"""The bounded window of recent span keys that drops exporter retries."""

from __future__ import annotations

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
