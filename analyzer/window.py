"""Analysis time windows: ``--since``/``--until`` as durations back from now or RFC 3339.

A window is closed-open, ``[since, until)``, in nanoseconds since the epoch (UTC).
Spans belong to a window by their start time, traces by their root's (DESIGN.md §4).
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime

from flowscope.analyzer.model import Window
from flowscope.durations import nanoseconds, parse_duration, parse_instant
from flowscope.store.columns import TIMESTAMP_NS_LIMIT

# RFC 3339 with up to nanosecond fractions (datetime alone keeps microseconds); RFC 3339
# also allows a lower-case "t" or a space between date and time.
_FRACTION = re.compile(r"^(?P<base>.+[Tt ]\d{2}:\d{2}:\d{2})\.(?P<digits>\d+)(?P<zone>.*)$")

# The longest time text read: an RFC 3339 time with nanoseconds and an offset is 35,
# with spaces around it a little more. Matching _FRACTION takes the square of the length
# when it fails (a newline after 100,000 digits held the API's event loop for 32 s).
MAX_TIME_CHARS = 64

DEFAULT_SINCE = "1h"
# A window bound outside what TIMESTAMP_NS holds cannot be compared with a span's start.
STORABLE_NS = TIMESTAMP_NS_LIMIT
# Up to 2100-01-01: DuckDB TIMESTAMP_NS ends in 2262, so 2**63 - 1 would not convert.
ALL_TIME = Window(0, 4_102_444_800 * 1_000_000_000)


def parse_window(
    since: str | None,
    until: str | None,
    now_ns: int | None = None,
    names: tuple[str, str] = ("--since", "--until"),
) -> Window:
    """``since``/``until`` -> Window; the default is the last hour.

    Each is a duration back from now (``15m``, ``1h``, ``7d``) or an RFC 3339
    timestamp; ``until`` defaults to now. ValueError names the bad option as the
    caller spells it (``names``: the CLI's ``--since``, the API's ``left_since``, ...).
    """
    since_name, until_name = names
    since, until = since or None, until or None  # an empty form field is not given
    now_ns = time.time_ns() if now_ns is None else now_ns
    try:
        until_ns = now_ns if until is None else instant_ns(until, now_ns)
    except ValueError as exc:
        raise ValueError(f"{until_name}: {exc}") from exc
    try:
        since_ns = instant_ns(since or DEFAULT_SINCE, now_ns)
    except ValueError as exc:
        raise ValueError(f"{since_name}: {exc}") from exc
    if since is None and until is not None:
        # "the hour before --until" is what a user means when only --until is given.
        since_ns = until_ns - (now_ns - since_ns)
    for name, text, ns in ((until_name, until, until_ns), (since_name, since, since_ns)):
        if not -STORABLE_NS < ns < STORABLE_NS:
            raise ValueError(
                f"{name}: {text or 'the default'!r} is outside the times spans can have "
                # To the nanosecond: pandas' Timestamp.max, one past the last, read as
                # inside "1677-09-21 .. 2262-04-11".
                f"({format_ns(1 - STORABLE_NS)} to {format_ns(STORABLE_NS - 1)})"
            )
    if since_ns >= until_ns:
        raise ValueError(
            f"{since_name} ({format_ns(since_ns)}) must be before "
            f"{until_name} ({format_ns(until_ns)})"
        )
    return Window(since_ns, until_ns)


def instant_ns(text: str, now_ns: int) -> int:
    """A duration back from ``now_ns`` or an RFC 3339 timestamp, in ns since the epoch."""
    if len(text) > MAX_TIME_CHARS:
        raise ValueError(
            f"invalid time {text[:40]!r}... ({len(text):,} characters): use a duration back "
            "from now (15m, 1h) or RFC 3339"
        )
    try:
        back = parse_duration(text)
    except ValueError:
        pass
    else:  # subtract from the exact now: a datetime would drop the nanoseconds
        return now_ns - nanoseconds(back)
    match = _FRACTION.match(text.strip())
    if match is None:
        return _to_ns(parse_instant(text))
    whole = parse_instant(match["base"] + match["zone"])
    fraction = int((match["digits"] + "000000000")[:9])
    return _to_ns(whole) + fraction


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # Cached: a trace's spans and events fall in a few seconds, and formatting each of
    # a trace's 155k events' times took 0.65 s.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _to_ns(value: datetime) -> int:
    return nanoseconds(value - datetime(1970, 1, 1, tzinfo=UTC))


def format_ns(ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds trimmed of trailing zeros (``...T00:00:00.25Z``),
    for people: messages and labels."""
    seconds, rest = divmod(ns, 1_000_000_000)
    text = _second(seconds)
    if rest:
        text += "." + f"{rest:09d}".rstrip("0")
    return text + "Z"


def timestamp_ns(ns: int) -> str:
    """RFC 3339 in UTC with all nine fraction digits (``...T00:00:00.250000000Z``), for
    answers' fields: trimmed, ``...51.05118181Z`` (…810 ns) sorted as text after
    ``...51.051181811Z``, and the digits varied from row to row (docs review)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{_second(seconds)}.{rest:09d}Z"


def window_label(window: Window) -> str:
    if window == ALL_TIME:
        return "all time"
    return f"{format_ns(window.since_ns)} .. {format_ns(window.until_ns)}"
