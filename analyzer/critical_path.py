"""The critical path of a trace, by Jaeger's rules (jaeger-ui ``criticalPath``).

Starting at the root's end and walking back in time: within a span, take the child
that finishes last; descend into it; when back in the span, take the
last-finishing child that ends *before* the child just left starts; when no child
is left, the span itself fills the time back to its start. Before that, every
child is clipped to its parent's interval (recursively; children wholly outside are
dropped) and async children (CONSUMER under PRODUCER, follows-from) are left out.

``chain_members`` is the per-span choice of children, used vectorized by
``span_tree``; ``sections`` gives the path itself, as time-ordered segments, for one
trace view. Both are loops, never recursion: a 20 000-span chain is fine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


def chain_members(
    parent: npt.NDArray[np.int64], lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Which children are on their parent's path.

    Input: children grouped by ``parent`` and, within a group, ordered last-finishing
    first; ``lo``/``hi`` their clipped intervals. The first child of a group is taken;
    then each child that ends strictly before the start of the last one taken.
    """
    n = len(parent)
    taken = np.zeros(n, dtype=bool)
    if n == 0:
        return taken
    # Only groups with 2+ children need the loop: a lone child is always taken.
    first = np.ones(n, dtype=bool)
    first[1:] = parent[1:] != parent[:-1]
    taken[first] = True
    size = np.diff(np.append(np.flatnonzero(first), n))
    starts = np.flatnonzero(first)
    busy = starts[size > 1]
    lo_list = lo.tolist()
    hi_list = hi.tolist()
    taken_list = taken.tolist()
    sizes = dict(zip(starts.tolist(), size.tolist(), strict=True))
    for begin in busy.tolist():
        cursor = lo_list[begin]
        for i in range(begin + 1, begin + sizes[begin]):
            if hi_list[i] < cursor:
                taken_list[i] = True
                cursor = lo_list[i]
    return np.array(taken_list, dtype=bool)


@dataclass(frozen=True)
class Section:
    row: int  # the span (its index in the caller's arrays)
    start: int  # ns
    end: int  # ns


def sections(
    root: int,
    children: Sequence[Sequence[int]],
    lo: Sequence[int],
    hi: Sequence[int],
    tie: Sequence[Any] | None = None,
) -> list[Section]:
    """The critical path from ``root``, earliest section first.

    ``children[i]``: the eligible (non-async, non-empty after clipping) children of
    span i; ``lo``/``hi``: clipped intervals; ``tie``: what orders children that end
    and start alike (the row index if None), as ``span_tree`` orders them. Iterative: an explicit stack of
    (span, time the walk has reached in it).
    """
    last = tie if tie is not None else range(len(lo))
    ordered = [sorted(kids, key=lambda c: (-hi[c], lo[c], last[c])) for kids in children]
    out: list[Section] = []
    # Each frame: (span, cursor, next index into its ordered children).
    stack: list[tuple[int, int, int]] = [(root, hi[root], 0)]
    while stack:
        span, cursor, index = stack.pop()
        kids = ordered[span]
        while index < len(kids) and not (
            hi[kids[index]] < cursor or (index == 0 and cursor == hi[span])
        ):
            index += 1
        if index < len(kids):
            child = kids[index]
            if hi[child] < cursor:
                out.append(Section(span, hi[child], cursor))
            stack.append((span, lo[child], index + 1))
            stack.append((child, hi[child], 0))
        else:
            if lo[span] < cursor:
                out.append(Section(span, lo[span], cursor))
    out.reverse()
    return out
