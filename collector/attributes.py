"""OTLP AnyValue -> string, encoded the way the Collector's ClickHouse exporter stores it.

The exporter calls pdata's ``Value.AsString()``: strings as they are, booleans as
``true``/``false``, integers in decimal, doubles formatted like ECMAScript
``Number.prototype.toString``, bytes as standard base64, arrays and key-value
lists as JSON (keys sorted, written as Go's encoder does with ``SetEscapeHTML(false)``).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from operator import itemgetter
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def format_double(value: float) -> str:
    """Shortest round-trip digits of a double, placed as ECMAScript's (and pdata's
    ``float64AsString``) do: fixed-point from 1e-6 up to 1e21 (``1`` not ``1.0``,
    ``9223372036854776000`` not the binary value's ``...808``), exponent form outside."""
    if math.isnan(value) or math.isinf(value):
        # pdata renders these as the JSON encoder's error text; keep the number instead,
        # which is what a reader of the span wants to see.
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    magnitude = abs(value)
    text = repr(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        return f"{mantissa.removesuffix('.0')}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
    if "e" in text:  # repr's exponent form from 1e16 up and below 1e-4
        return format(Decimal(text).normalize(), "f")
    return text.removesuffix(".0")  # keeps the sign of -0.0, as Go's formatter does


def any_value_raw(value: AnyValue) -> Any:
    """The plain Python value behind an AnyValue (bytes stay bytes)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return value.double_value
    if kind == "bytes_value":
        return value.bytes_value
    if kind == "array_value":
        return [any_value_raw(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_raw(kv.value) for kv in value.kvlist_value.values}
    return None


def _json(raw: Any) -> str:
    if raw is None:
        return "null"
    if raw is True:
        return "true"
    if raw is False:
        return "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        return format_double(raw) if math.isfinite(raw) else "null"
    if isinstance(raw, bytes):
        # pdata's AsRaw gives empty bytes as a nil slice, which Go's encoder writes as
        # null (only inside arrays and maps: a top-level value is base64, so '').
        return _json_string(base64.b64encode(raw).decode("ascii")) if raw else "null"
    if isinstance(raw, str):
        return _json_string(raw)
    if isinstance(raw, list):
        return "[" + ",".join(_json(item) for item in raw) + "]"
    items = sorted(raw.items())
    return "{" + ",".join(f"{_json_string(k)}:{_json(v)}" for k, v in items) + "}"


def _json_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    for char, escaped in _GO_ESCAPES:
        encoded = encoded.replace(char, escaped)
    return encoded


# What Go's encoder escapes beyond JSON's minimum even with SetEscapeHTML(false): the two
# line separators JavaScript does not allow in strings. pdata stopped HTML-escaping <, > and
# & in maps and slices with opentelemetry-collector PR #15108 (merged 2026-04-13).
_GO_ESCAPES = (
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def any_value_str(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        return format_double(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind in ("array_value", "kvlist_value"):
        return _json(any_value_raw(value))
    return ""


def attribute_lists(attributes: Sequence[KeyValue]) -> tuple[Sequence[str], Sequence[str]]:
    """Keys and stringified values, sorted by key; a repeated key keeps its first value.

    The exporter sorts every attribute map by key (clickhouse-go's orderedmap); Python
    compares strings by code point, which is the byte order of their UTF-8, as Go's sort.

    The exporter stores every entry (a ClickHouse Map may repeat a key) and ClickHouse's
    ``m['k']`` reads the first; a DuckDB MAP cannot repeat one, so only that one is kept.

    Hot path: most values are non-empty strings, and reading ``string_value`` first
    skips a ``WhichOneof`` call for them (an empty result means another kind, or "").
    The order to pick entries in is remembered per sequence of keys: an instrumentation
    sends the same keys in the same order span after span.
    """
    keys: list[str] = []
    values: list[str] = []
    for kv in attributes:
        keys.append(kv.key)
        value = kv.value
        text = value.string_value
        if not text:
            text = any_value_str(value)
        values.append(text)
    if len(keys) < 2:
        return keys, values
    shape = tuple(keys)
    pick = _PICKS.get(shape, _UNSEEN)
    if pick is _UNSEEN:
        pick = _pick(keys)
        # Bounded whatever is sent: 256 sequences of at most 64 keys and 2,048 characters.
        if len(shape) <= 64 and sum(map(len, shape)) <= 2048:
            if len(_PICKS) >= _MAX_PICKS:
                _PICKS.clear()  # many distinct key sequences: start over rather than grow
            _PICKS[shape] = pick
    if pick is None:
        return keys, values
    return pick(keys), pick(values)


_Pick = Callable[[Sequence[str]], tuple[str, ...]]
_UNSEEN: Any = object()
_PICKS: dict[tuple[str, ...], _Pick | None] = {}
_MAX_PICKS = 256


def _pick(keys: list[str]) -> _Pick | None:
    """Which entries to keep, in key order (the first of a repeated key); None: all, as is."""
    first: dict[str, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    order = [first[key] for key in sorted(first)]
    if order == list(range(len(keys))):
        return None
    if len(order) == 1:  # itemgetter with one index returns the item, not a tuple
        only = order[0]
        return lambda entries: (entries[only],)
    return itemgetter(*order)
