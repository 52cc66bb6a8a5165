"""A span batch of many requests' tables as one piece, for DuckDB to insert.

Each request is flattened to a table of its own, its per-resource columns
dictionary-encoded with a dictionary of their own. DuckDB reads a dictionary column
chunk by chunk, converting each chunk's dictionary: a commit of 16,384 spans from
2,048 requests of 8 spans took 1.7 s and 1.2 GB to insert, against 0.12 s and 0.23 GB
from 32 requests of 512 (import review; docs/benchmarks.md). Pyarrow cannot join
dictionaries of maps (``unify_dictionaries``: not implemented), so the dictionaries
are put end to end and each chunk's indices moved past the ones before it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Fewer pieces than this are inserted as they are: joining costs more than it saves.
MOST_PIECES = 64


def one_piece(table: pa.Table) -> pa.Table:
    """``table`` with each column in one chunk, when it has over ``MOST_PIECES``."""
    if table.num_rows == 0 or table.column(0).num_chunks <= MOST_PIECES:
        return table
    columns = [
        _joined_dictionary(column)
        if pa.types.is_dictionary(column.type)
        else column.combine_chunks()
        for column in table.columns
    ]
    return pa.Table.from_arrays(columns, schema=table.schema)


def _joined_dictionary(column: pa.ChunkedArray) -> pa.DictionaryArray:
    chunks = column.chunks
    dictionaries = [chunk.dictionary for chunk in chunks]
    indices = [chunk.indices for chunk in chunks]
    sizes = np.fromiter(map(len, dictionaries), np.int64, len(chunks))
    lengths = np.fromiter(map(len, indices), np.int64, len(chunks))
    # Each chunk's indices point past the dictionaries of the chunks before it. A
    # dictionary holds at most its request's rows before retries were filtered out of
    # it, and a commit's requests hold far fewer than the int32 indices can count.
    offsets = np.repeat(np.cumsum(sizes) - sizes, lengths)
    index_type = column.type.index_type
    moved = pc.add(pa.concat_arrays(indices), pa.array(offsets, index_type))
    return pa.DictionaryArray.from_arrays(moved, pa.concat_arrays(dictionaries))
