"""The vectorized tree (pointer jumping) and the iterative critical path against plain
recursive reference implementations, on random trees with skew, async children and
orphans."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pytest

from flowscope.analyzer.critical_path import sections
from flowscope.analyzer.span_tree import SpanRows, SpanTree, build


@dataclass
class Tree:
    parent: list[int]
    start: list[int]
    end: list[int]
    op: list[int]
    is_async: list[bool]
    is_root: list[bool]


def random_tree(rng: random.Random, n: int) -> Tree:
    parent, start, end, op, is_async, is_root = [-1], [0], [1000], [0], [False], [True]
    for i in range(1, n):
        if rng.random() < 0.05:
            p = -1  # an orphan (its parent never arrived)
        else:
            p = rng.randrange(i)
        base_start, base_end = (start[p], end[p]) if p >= 0 else (0, 1000)
        # Mostly inside the parent; sometimes skewed out of it on either side.
        s = rng.randint(base_start - 50, base_end)
        e = s + rng.randint(0, max(1, (base_end - s) + 40))
        parent.append(p)
        start.append(s)
        end.append(e)
        op.append(rng.randrange(3))
        is_async.append(p >= 0 and rng.random() < 0.1)
        is_root.append(False)
    return Tree(parent, start, end, op, is_async, is_root)


def run(tree: Tree) -> SpanTree:
    n = len(tree.parent)
    rows = SpanRows(
        trace=np.zeros(n, dtype=np.int64),
        parent=np.array(tree.parent, dtype=np.int64),
        op_key=np.array([1000 + k for k in tree.op], dtype=np.uint64),
        start=np.array(tree.start, dtype=np.int64),
        duration=np.array(
            [e - s for s, e in zip(tree.start, tree.end, strict=True)], dtype=np.int64
        ),
        is_error=np.zeros(n, dtype=bool),
        is_async=np.array(tree.is_async, dtype=bool),
        is_trace_root=np.array(tree.is_root, dtype=bool),
    )
    return build(rows, np.array([tree.start[0]], dtype=np.int64))


def children_of(tree: Tree) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(tree.parent):
        if p >= 0:
            kids[p].append(i)
    return kids


def reference_self(tree: Tree) -> list[int]:
    kids = children_of(tree)
    out = []
    for i in range(len(tree.parent)):
        lo, hi = tree.start[i], tree.end[i]
        covered = [0] * (hi - lo)
        for c in kids[i]:
            for t in range(max(lo, tree.start[c]), min(hi, tree.end[c])):
                covered[t - lo] = 1
        out.append((hi - lo) - sum(covered))
    return out


def reference_critical_path(tree: Tree) -> list[tuple[int, int, int]]:
    """jaeger-ui's computeCriticalPath, recursive, with its sanitized children."""
    kids = children_of(tree)
    lo, hi = dict(enumerate(tree.start)), dict(enumerate(tree.end))
    sane: dict[int, list[int]] = {}
    order = [0]
    while order:  # sanitize top-down: clip each child to its (clipped) parent
        span = order.pop()
        sane[span] = []
        for c in kids[span]:
            if tree.is_async[c]:
                continue
            lo[c], hi[c] = max(lo[c], lo[span]), min(hi[c], hi[span])
            if hi[c] > lo[c]:
                sane[span].append(c)
                order.append(c)
    out: list[tuple[int, int, int]] = []

    def walk(span: int, returning: int | None) -> None:
        # Ties: the earlier raw start, then the row (these trees have no span keys).
        ordered = sorted(sane[span], key=lambda c: (-hi[c], lo[c], tree.start[c], c))
        if returning is None:
            child = ordered[0] if ordered else None
        else:
            child = next((c for c in ordered if hi[c] < returning), None)
        if child is not None:
            section_end = hi[span] if returning is None else returning
            if hi[child] != section_end:
                out.append((span, hi[child], section_end))
            walk(child, None)
            walk(span, lo[child])
        else:
            section_end = hi[span] if returning is None else returning
            if lo[span] != section_end:
                out.append((span, lo[span], section_end))

    walk(0, None)
    return sorted(out, key=lambda s: s[1])


@pytest.mark.parametrize("seed", range(5))
def test_self_times_of_decades_long_spans(seed: int) -> None:
    """Times scaled so a pass's summed spans pass int64 (spans that start at 0, 1970):
    the self times scale with them (before: they overflowed, wrong from there on)."""
    rng = random.Random(seed)
    tree = random_tree(rng, 60)
    scale = 2**52  # 1,000 units become ~143 years; the largest time still fits int64
    huge = Tree(
        tree.parent,
        [t * scale for t in tree.start],
        [t * scale for t in tree.end],
        tree.op,
        tree.is_async,
        tree.is_root,
    )
    assert run(huge).self_ns.tolist() == [t * scale for t in reference_self(tree)]


@pytest.mark.parametrize("seed", range(25))
def test_tree_facts_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    tree = random_tree(rng, rng.randint(2, 60))
    result = run(tree)
    assert result.self_ns.tolist() == reference_self(tree)
    # Depth and path keys: equal keys exactly for equal (detached?, path of ops).
    paths = []
    for i in range(len(tree.parent)):
        path, at = [], i
        while at >= 0:
            path.append(tree.op[at])
            top, at = at, tree.parent[at]
        paths.append((tree.is_root[top], tuple(reversed(path))))
        assert result.depth[i] == len(path) - 1
        assert result.top[i] == top
    keys = result.step_key.tolist()
    for i in range(len(paths)):
        for j in range(len(paths)):
            assert (keys[i] == keys[j]) == (paths[i] == paths[j])
    expected = reference_critical_path(tree)
    per_span = [0] * len(tree.parent)
    for span, lo, hi in expected:
        per_span[span] += hi - lo
    assert result.cp_ns.tolist() == per_span
    assert sum(per_span) == tree.end[0] - tree.start[0]
    on_path = {span for span, _, _ in expected}
    assert {i for i, flag in enumerate(result.on_critical_path.tolist()) if flag} >= on_path
    # The iterative sections walk gives the very same segments.
    kids = children_of(tree)
    lo, hi = result.clipped_start.tolist(), result.clipped_end.tolist()
    eligible = [
        [c for c in kids[i] if not tree.is_async[c] and hi[c] > lo[c]]
        for i in range(len(tree.parent))
    ]
    tie = list(zip(tree.start, range(len(lo)), strict=True))
    walked = [(s.row, s.start, s.end) for s in sections(0, eligible, lo, hi, tie)]
    assert walked == expected


def test_offsets_are_clamped_and_origin_errors_have_no_erroring_child() -> None:
    rows = SpanRows(
        trace=np.zeros(3, dtype=np.int64),
        parent=np.array([-1, 0, 1], dtype=np.int64),
        op_key=np.array([1, 2, 3], dtype=np.uint64),
        start=np.array([100, 90, 120], dtype=np.int64),
        duration=np.array([50, 40, 5], dtype=np.int64),
        is_error=np.array([True, True, False]),
        is_async=np.zeros(3, dtype=bool),
        is_trace_root=np.array([True, False, False]),
    )
    tree = build(rows, np.array([100], dtype=np.int64))
    assert tree.offset_ns.tolist() == [0, 0, 20]
    assert tree.origin_error.tolist() == [False, True, False]
