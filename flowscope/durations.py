"""Parsing the durations and instants users type: ``15m``, ``1h``, ``7d``, RFC 3339."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_ZULU = re.compile(r"[zZ]$")
_URL_PLUS = re.compile(r"(:\d{2}(?:\.\d+)?) (\d{2}:?\d{2})$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# `flowscope serve --retention` unless told otherwise (DESIGN: "--retention 7d").
DEFAULT_RETENTION = timedelta(days=7)
# Longer keeps everything: its cutoff would fall before year 1 (every sweep failed on
# the date).
MAX_RETENTION = timedelta(days=36_525)
TOO_LONG_RETENTION = "retention over 100 years keeps everything: use 'off'"


def nanoseconds(value: timedelta) -> int:
    """A timedelta in whole nanoseconds: exact integer arithmetic, where a float of
    seconds would lose the last digits."""
    return (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1_000


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``7d``, ``2w`` -> timedelta; ValueError says what is accepted."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit (ms, s, m, h, d, w), e.g. 15m or 7d"
        )
    try:
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:
        raise ValueError(f"duration {text.strip()!r} is too long") from None


def format_duration(value: timedelta) -> str:
    """The inverse of ``parse_duration``: ``7d``, ``36h``, ``15m``, ``90s``, ``1500ms``
    (whole seconds were all it wrote: 1500ms was "1s", and 0.5s "0s", which reads as
    retention off)."""
    micros = value // timedelta(microseconds=1)
    if micros % 1_000_000:
        return f"{micros // 1000}.{micros % 1000:03d}".rstrip("0").rstrip(".") + "ms"
    seconds = micros // 1_000_000
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """A duration back from ``now`` or an RFC 3339 timestamp, as an aware UTC datetime."""
    now = now or datetime.now(UTC)
    if _DURATION.match(text):
        return now - parse_duration(text)
    # RFC 3339 allows a lower-case "z"; a "+" of an offset typed into a URL arrives as
    # a space, which cannot mean anything else there.
    iso = _URL_PLUS.sub(r"\1+\2", _ZULU.sub("+00:00", text.strip()))
    try:
        value = datetime.fromisoformat(iso)
    except ValueError as exc:
        raise ValueError(
            f"invalid time {text!r}: use a duration back from now (15m, 1h) or RFC 3339"
        ) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
