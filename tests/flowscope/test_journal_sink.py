"""The ingest process's side of the journal, and the writer that takes its records."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest

from flowscope.collector.decode_budget import SMALL_EXPANSION
from flowscope.collector.decode_pool import DecodePool
from flowscope.collector.flatten import SpanBatch, flatten_request
from flowscope.store import journal as journal_file
from flowscope.store.database import Database
from flowscope.store.dedup import RecentSpanKeys
from flowscope.store.journal import Journal
from flowscope.store.journal_sink import JournalSink
from flowscope.store.table_size import table_bytes
from flowscope.store.writer import QueueFull, SpanWriter, WriterClosed
from flowscope.testing.otlp import realistic_request


def _batch(seed: int, traces: int = 2) -> SpanBatch:
    return flatten_request(realistic_request(traces, seed=seed, first_trace=seed * traces)).batch


class Forwarded:
    def __init__(self) -> None:
        self.records: list[tuple[int, pa.Table]] = []
        self.weights: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, seq: int, payload: bytes, weight: int) -> None:
        with self.lock:
            self.records.append((seq, journal_file.decode(payload)))
            self.weights.append(weight)


def _sink(tmp_path: Path, forwarded: Forwarded, **options: int) -> JournalSink:
    journal = Journal(tmp_path / "j", segment_bytes=options.pop("segment_bytes", 1 << 26))
    return JournalSink(journal, forwarded, first_seq=options.pop("first_seq", 7), **options)


def test_records_are_journalled_forwarded_in_order_and_deduplicated(tmp_path: Path) -> None:
    forwarded = Forwarded()
    sink = _sink(tmp_path, forwarded)
    batches = [_batch(seed) for seed in range(40)]
    with ThreadPoolExecutor(8) as pool:
        stored = list(pool.map(lambda b: sink.submit(b.table, b.keys).result(), batches))
    assert stored == [b.spans for b in batches]
    numbers = [seq for seq, _ in forwarded.records]
    assert numbers == list(range(7, 47))  # gapless, in the order the writer must see them
    # What was forwarded is what the journal holds, record for record.
    on_disk = {r.seq: r.table for r in sink.journal.records()}
    assert all(on_disk[seq].equals(table) for seq, table in forwarded.records)
    again = sink.submit(batches[0].table, batches[0].keys).result()
    assert again == 0 and sink.duplicate_spans == batches[0].spans
    assert len(forwarded.records) == 40  # a retry forwards nothing
    sink.close()
    with pytest.raises(WriterClosed):
        sink.submit(batches[1].table, batches[1].keys)
    sink.journal.close(all_moved=False)


class CountedSyncs(Journal):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.syncs: list[int] = []

    def sync(self, seq: int) -> None:
        self.syncs.append(seq)
        super().sync(seq)


def test_a_retry_is_answered_once_the_first_copies_are_on_disk(tmp_path: Path) -> None:
    """A request of spans all seen before was answered at once: a retry sent while the
    first copy's fsync ran was acknowledged before the spans were durable."""
    journal = CountedSyncs(tmp_path / "j")
    sink = JournalSink(journal, Forwarded(), first_seq=7)
    batch = _batch(1)
    assert sink.submit(batch.table, batch.keys).result() == batch.spans
    assert sink.submit(batch.table, batch.keys).result() == 0
    half = batch.table.num_rows // 2
    assert sink.submit(batch.table.slice(half), batch.keys[half:]).result() == 0
    assert journal.syncs == [7, 7, 7]  # each waits for record 7, which holds the spans
    sink.close()
    journal.close(all_moved=False)


def test_a_request_over_the_whole_limit_waits_for_an_empty_queue_and_says_so(
    tmp_path: Path,
) -> None:
    """Before, it was refused as "writer queue holds N spans", which reads as busy: under
    steady traffic it was refused for as long as the traffic lasted."""
    forwarded = Forwarded()
    small, big = _batch(1), _batch(2)
    limit = big.spans - 1
    sink = _sink(tmp_path, forwarded, max_queued_spans=limit)
    sink.submit(small.table, small.keys).result()
    with pytest.raises(QueueFull) as refused:
        sink.submit(big.table, big.keys)
    assert str(refused.value) == (
        f"the request holds {big.spans} spans, more than the writer queue's limit of {limit}: "
        f"it is taken only when the queue is empty (it holds {small.spans}); send smaller "
        "requests or raise --max-queued-spans"
    )
    assert refused.value.larger_than_queue  # receivers do not call it busy
    sink.moved(7)
    sink.submit(big.table, big.keys).result()  # the queue is empty: taken
    sink.moved(8)
    sink.journal.close(all_moved=True)


def test_the_queue_limit_counts_until_the_writer_moves_records(tmp_path: Path) -> None:
    forwarded = Forwarded()
    first, second, third = _batch(1), _batch(2), _batch(3)
    sink = _sink(tmp_path, forwarded, max_queued_spans=first.spans + second.spans, segment_bytes=1)
    sink.submit(first.table, first.keys).result()
    sink.submit(second.table, second.keys).result()
    with pytest.raises(QueueFull):
        sink.submit(third.table, third.keys)
    segments = sink.journal.segments()
    assert len(segments) == 2
    sink.moved(7)  # the first record is committed: its span count and segment go
    assert sink.queued_spans == second.spans
    assert sink.journal.segments() == segments[1:]
    sink.submit(third.table, third.keys).result()
    sink.moved(9)
    assert sink.queued_spans == 0
    sink.journal.close(all_moved=True)


def test_the_queue_limit_counts_bytes_as_well_as_spans(tmp_path: Path) -> None:
    """Before, only spans counted: 8 clients sending one span of an 8 MB attribute each
    filled the queue to 17.8 GB of the server's memory, well under 200,000 spans."""
    forwarded = Forwarded()
    first, second, third = _batch(1), _batch(2), _batch(3)
    weights = [table_bytes(b.table) for b in (first, second, third)]
    sink = _sink(tmp_path, forwarded, max_queued_bytes=weights[0] + weights[1])
    sink.submit(first.table, first.keys).result()
    sink.submit(second.table, second.keys).result()
    assert sink.queued_bytes == weights[0] + weights[1]
    with pytest.raises(QueueFull) as refused:
        sink.submit(third.table, third.keys)
    assert str(refused.value).startswith("writer queue holds ")
    limit = (weights[0] + weights[1]) / 1024
    assert str(refused.value).endswith(f" KiB of spans (limit {limit:,.1f} KiB)")
    assert not refused.value.larger_than_queue
    sink.moved(7)
    assert sink.queued_bytes == weights[1]
    sink.submit(third.table, third.keys).result()
    sink.moved(9)
    assert (sink.queued_spans, sink.queued_bytes) == (0, 0)
    sink.journal.close(all_moved=True)


def test_the_decoders_weight_is_taken_and_forwarded_not_measured_again(tmp_path: Path) -> None:
    """Measured again here and by the server's writer (~0.2 ms each), it took 15-20 %
    of the ingest rate of 8- and 80-span requests."""
    forwarded = Forwarded()
    sink = _sink(tmp_path, forwarded)
    batch = _batch(1)
    sink.submit(batch.table, batch.keys, weight=123_456).result()
    assert sink.queued_bytes == 123_456
    assert forwarded.weights == [123_456]
    sink.moved(7)
    sink.journal.close(all_moved=True)


@pytest.mark.parametrize("traces", [3, 64])
def test_the_decode_pool_weighs_what_it_decodes(traces: int) -> None:
    """Exactly, or for a small request by a quick bound that is never less."""
    body = realistic_request(traces).SerializeToString()
    batch = DecodePool(0).decode(body, "application/x-protobuf").batch
    exact = table_bytes(batch.table)
    assert batch.weight is not None and exact > batch.table.nbytes
    if traces == 3:
        assert exact < batch.weight <= batch.table.nbytes + SMALL_EXPANSION
    else:
        assert batch.weight == exact


def test_a_request_over_the_whole_byte_limit_waits_for_an_empty_queue(tmp_path: Path) -> None:
    forwarded = Forwarded()
    small, big = _batch(1, traces=1), _batch(2, traces=4)
    limit = table_bytes(big.table) - 1
    sink = _sink(tmp_path, forwarded, max_queued_bytes=limit)
    sink.submit(small.table, small.keys).result()
    with pytest.raises(QueueFull, match=r"raise --max-queued-bytes$") as refused:
        sink.submit(big.table, big.keys)
    assert refused.value.larger_than_queue
    sink.moved(7)
    sink.submit(big.table, big.keys).result()  # the queue is empty: taken
    sink.moved(8)
    sink.journal.close(all_moved=True)


def test_a_warm_window_drops_spans_stored_before(tmp_path: Path) -> None:
    batch = _batch(5)
    window = RecentSpanKeys(100)
    window.remember([hash(key) for key in batch.keys])
    forwarded = Forwarded()
    sink = JournalSink(Journal(tmp_path / "j"), forwarded, first_seq=1, dedup=window)
    assert sink.submit(batch.table, batch.keys).result() == 0
    assert forwarded.records == []
    sink.journal.close(all_moved=True)


def test_a_writer_fed_from_outside_stores_records_in_order_and_reports_them(
    tmp_path: Path,
) -> None:
    database = Database(tmp_path / "fed.duckdb")
    writer = SpanWriter(database, external_journal=True, derive_interval_s=None)
    moved: list[int] = []
    writer.moved_listener = moved.append
    writer.start()
    try:
        first, second = _batch(1), _batch(2)
        with pytest.raises(WriterClosed, match="through the ingest process"):
            writer.write(first.table, first.keys)  # numbers are the other process's
        writer.take_journalled(writer.next_seq, first.table)
        writer.take_journalled(writer.next_seq + 4, second.table)  # gaps are fine
        with pytest.raises(ValueError, match="arrived after"):
            writer.take_journalled(2, second.table)
        assert writer.await_moved()
        assert database.span_count() == first.spans + second.spans
        assert database.moved_seq() == 6 and moved[-1] == 6
    finally:
        writer.shutdown()
        database.close()


def test_spans_are_refused_while_the_writer_commits_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Under a full disk, room freed while exporters kept sending went to the journal
    (20 MB in 2 s), and commits never found any again: the server stayed degraded.
    The log says once when refusing starts and when it ends (it said neither)."""
    from flowscope.store import journal_sink

    caplog.set_level(logging.WARNING, logger=journal_sink.__name__)

    now = [100.0]
    forwarded = Forwarded()
    journal = Journal(tmp_path / "j")
    sink = JournalSink(journal, forwarded, first_seq=1, clock=lambda: now[0])
    first, second, third = _batch(1), _batch(2), _batch(3)
    sink.submit(first.table, first.keys).result()
    now[0] += journal_sink.STALLED_AFTER_S - 0.1
    sink.submit(second.table, second.keys).result()  # waiting, not yet stalled
    now[0] += 0.2
    for _ in range(2):
        with pytest.raises(QueueFull, match="no spans committed for 10s"):
            sink.submit(third.table, third.keys)
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "no spans committed for 10 s: OTLP requests are answered 'retry later' until "
        "commits land again (the acknowledged spans wait in the span journal; the "
        "server's log says why commits fail)"
    ]
    sink.moved(1)  # a commit: the writer moves again, though the next one waits
    assert [r.getMessage() for r in caplog.records][1:] == [
        "spans are committed again: OTLP requests are taken again"
    ]
    sink.submit(third.table, third.keys).result()
    sink.moved(3)
    now[0] += 3600  # nothing waiting: an idle server is no stalled one
    sink.submit(_batch(4).table, _batch(4).keys).result()
    journal.close(all_moved=False)
