"""Identifiers and label text that are safe in Mermaid and DOT, and number formats.

Names come from spans, so they can hold anything: quotes, brackets, ``#``,
``;``, ``<``, newlines, keywords such as ``end``. Ids are derived from names
(stable across runs, readable in the text) and labels are escaped rather than
stripped, so the rendered diagram shows the real name.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable

from flowscope.analyzer.diagrams.health import DEFAULT_THRESHOLDS
from flowscope.analyzer.model import Edge, Node

# Characters Mermaid shows verbatim inside a quoted label or message text; every
# other character becomes a numeric entity (#35; for '#'), which Mermaid decodes.
_MERMAID_SAFE = set(" .,:/()-_+=@*!?'%")
_SLUG = re.compile(r"[^A-Za-z0-9]+")
_MAX_SLUG = 40


# A label longer than this is cut, with "…": one name of 20,000 quotes (80,000
# characters escaped) made a diagram Mermaid refuses, however few steps it drew.
MAX_LABEL = 200


# What a diagram shows for a name of only whitespace (a service without service.name
# is stored as ''): such a box, participant or arrow was drawn with no text at all.
NO_NAME = "(no name)"


def shown_name(name: str) -> str:
    """``name`` as a diagram shows it: ``NO_NAME`` when it has nothing to show."""
    return name if name.strip() else NO_NAME


def mermaid_text(text: str) -> str:
    """``text`` as Mermaid label / message content (without the surrounding quotes)."""
    text = " ".join(text.split())  # newlines and tabs would end the statement
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    escaped = "".join(c if c.isalnum() or c in _MERMAID_SAFE else f"#{ord(c)};" for c in text)
    # Before parsing, mermaid strips the last ';' of any line matching
    # /style.*:\S*#.*;/ or /classDef.*:\S*#.*;/ (meant for those statements), which
    # would break an entity code; an encoded letter keeps the words out of labels.
    escaped = escaped.replace("style", "styl#101;").replace("classDef", "classDe#102;")
    # A sequence diagram's text loses a leading "wrap:" or "nowrap:" (its wrap flag).
    return _WRAP_FLAG.sub(lambda m: f"{m[1]}#{ord(m[2] or m[3])};", escaped, count=1)


def mermaid_around(before: str, name: str, after: str) -> str:
    """``mermaid_text`` of ``before + name + after`` with the name cut, not the rest:
    cut as a whole, an operation of 200 characters took the P95 and error share off
    its arrow and note, which are what they are drawn for."""
    name = " ".join(shown_name(name).split())
    room = max(1, MAX_LABEL - len(before) - len(after))
    if len(name) > room:
        name = name[: room - 1] + "…"
    return mermaid_text(before + name + after)


_WRAP_FLAG = re.compile(r"^(:?)(?:(n)(?=owrap:)|(w)(?=rap:))")


def dot_string(text: str) -> str:
    """``text`` as a double-quoted DOT string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{escaped}"'


def diagram_ids(names: Iterable[str], prefix: str) -> dict[str, str]:
    """A distinct ``[A-Za-z0-9_]`` id for each name: ``prefix`` + slug of the name.

    Names whose slugs collide (``a.b`` and ``a-b``) get a short hash of the name
    appended, so the mapping depends only on the set of names, not their order.
    """
    unique = sorted(set(names))
    slugs = {name: _slug(name) for name in unique}
    counts: dict[str, int] = {}
    for slug in slugs.values():
        counts[slug] = counts.get(slug, 0) + 1
    ids: dict[str, str] = {}
    for name in unique:
        slug = slugs[name]
        if counts[slug] > 1 or not slug:
            digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
            slug = f"{slug}_{digest}" if slug else digest
        ids[name] = f"{prefix}{slug}"
    return ids


def _slug(name: str) -> str:
    slug = _SLUG.sub("_", name).strip("_").lower()[:_MAX_SLUG]
    return slug.replace("style", "styl_e")  # see mermaid_text


def format_ms(value: float | None) -> str:
    """Milliseconds with three significant digits, enough to compare steps at a glance;
    never rounded up onto a health threshold (499.6 is "499 ms" in a green box, not
    "500 ms")."""
    if value is None:
        return "n/a"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{_short_of_edges(value, digits, _P95_EDGES):.{digits}f} ms"


def format_percent(ratio: float) -> str:
    """A ratio as a percentage with one decimal, never rounded up onto a health
    threshold: 0.995 % read "1.0% err" in a green box, where 1 % is amber."""
    return f"{_short_of_edges(ratio * 100, 1, _PERCENT_EDGES):.1f}%"


# The health thresholds (health.py), in the units shown.
_PERCENT_EDGES = (  # rounded: 0.05 * 100 is 5.000000000000001
    round(DEFAULT_THRESHOLDS.warn_error_rate * 100, 9),
    round(DEFAULT_THRESHOLDS.bad_error_rate * 100, 9),
)
_P95_EDGES = (DEFAULT_THRESHOLDS.warn_p95_ms, DEFAULT_THRESHOLDS.bad_p95_ms)


def _short_of_edges(value: float, digits: int, edges: tuple[float, ...]) -> float:
    """``value`` as it is shown with ``digits`` decimals: rounded, or cut down when
    rounding would take a value under an edge up to it."""
    shown = float(f"{value:.{digits}f}")
    if any(value < edge <= shown for edge in edges):
        return float(math.floor(value * 10**digits) / 10**digits)
    return value


def count(number: float, noun: str) -> str:
    """``1 call``, ``4 calls``, ``1.5 calls``."""
    if float(number).is_integer():
        shown = str(int(number))
    elif number >= 100:
        shown = f"{number:.0f}"  # .3g wrote 1000.33 as 1e+03
    else:
        shown = f"{number:.3g}"
        if float(shown).is_integer():  # 1.0004 is not "1 call"
            shown = f"{number:.2f}"
    return f"{shown} {noun}" if shown == "1" else f"{shown} {noun}s"


def node_summary(node: Node) -> list[str]:
    """The lines a node of the service map shows: the name, and for a service
    that answers calls its P95 and error rate."""
    if node.kind != "service" or node.p95_ms is None:
        return [shown_name(node.id)]
    return [
        shown_name(node.id),
        f"p95 {format_ms(node.p95_ms)}, {format_percent(node.error_rate)} err",
    ]


def edge_summaries(edges: list[Edge]) -> list[list[str]]:
    """Each edge's ``edge_summary``; edges that share both ends (calls that name one
    peer as different kinds) also say the kind they named, so their arrows differ
    by more than their numbers."""
    ends = Counter((edge.source, edge.target) for edge in edges)
    return [edge_summary(edge, ends[edge.source, edge.target] > 1) for edge in edges]


def edge_summary(edge: Edge, name_peer_kind: bool = False) -> list[str]:
    """The parts of an edge's label: calls, P95, error %; for async edges also the
    messaging system and destination, and the queue lag P95; with ``name_peer_kind``,
    a virtual edge's peer kind first."""
    parts = [count(edge.calls, "call"), f"p95 {format_ms(edge.p95_ms)}"]
    if name_peer_kind and edge.peer_kind is not None:
        parts.insert(0, f"as {edge.peer_kind}")
    parts.append(f"{format_percent(edge.error_rate)} err")
    if edge.rule == "async":
        where = " ".join(p for p in (edge.messaging_system, edge.destination) if p)
        if where:
            parts.insert(0, where)
        if edge.lag_p95_ms is not None:
            parts.append(f"lag p95 {format_ms(edge.lag_p95_ms)}")
    return parts
