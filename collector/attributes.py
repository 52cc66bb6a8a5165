"""OTLP AnyValue -> string, encoded the way the Collector's ClickHouse exporter stores it.

The exporter calls pdata's ``Value.AsString()``: strings as they are, booleans as
``true``/``false``, integers in decimal, doubles formatted like ECMAScript
``Number.prototype.toString``, bytes as standard base64, arrays and key-value
lists as JSON (keys sorted, ``<``, ``>`` and ``&`` escaped as Go's encoder does).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def format_double(value: float) -> str:
    """Shortest round-trip text of a double, ECMAScript style (``1`` not ``1.0``)."""
    if math.isnan(value) or math.isinf(value):
        # pdata renders these as the JSON encoder's error text; keep the number instead,
        # which is what a reader of the span wants to see.
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e-6 <= magnitude < 1e21:
        if value.is_integer():
            return str(int(value))
        text = repr(value)
        if "e" not in text:
            return text
        # repr switches to exponent form at 1e16 and below 1e-4; ECMAScript does not.
        return format(value, "f").rstrip("0").rstrip(".") if magnitude >= 1 else _fixed(value)
    mantissa, exponent = repr(value).split("e")
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


def _fixed(value: float) -> str:
    # Smallest fixed-point text that round-trips, for 1e-6 <= |value| < 1e-4.
    for digits in range(1, 40):
        text = f"{value:.{digits}f}"
        if float(text) == value:
            return text.rstrip("0").rstrip(".")
    return repr(value)


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
        return _json_string(base64.b64encode(raw).decode("ascii"))
    if isinstance(raw, str):
        return _json_string(raw)
    if isinstance(raw, list):
        return "[" + ",".join(_json(item) for item in raw) + "]"
    items = sorted(raw.items())
    return "{" + ",".join(f"{_json_string(k)}:{_json(v)}" for k, v in items) + "}"


def _json_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    return encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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


def attribute_lists(attributes: Sequence[KeyValue]) -> tuple[list[str], list[str]]:
    """Keys and stringified values, in order; a repeated key keeps its last value.

    Hot path: most values are non-empty strings, and reading ``string_value`` first
    skips a ``WhichOneof`` call for them (an empty result means another kind, or "").
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
    if len(set(keys)) != len(keys):
        merged = dict(zip(keys, values, strict=True))
        return list(merged), list(merged.values())
    return keys, values
