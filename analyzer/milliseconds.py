"""Nanoseconds as the milliseconds the answers report."""

from __future__ import annotations

from typing import Any


def ms_of_ns(ns: Any) -> float:
    """Milliseconds to a thousandth of a nanosecond. Interpolated percentiles of integer
    nanoseconds lie on that grid; rounding to it removes last-bit differences that the
    order rows are aggregated in can make (the same edge's P95 was 52.2 on the map and
    52.199999999999996 on its flow's map)."""
    return round(float(ns) / 1e6, 9)
