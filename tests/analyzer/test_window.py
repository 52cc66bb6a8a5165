from __future__ import annotations

import re

import pytest

from flowscope.analyzer.model import Window
from flowscope.analyzer.window import ALL_TIME, format_ns, parse_window, window_label

NOW = 1_767_229_200_000_000_000  # 2026-01-01T01:00:00Z
HOUR_NS = 3_600_000_000_000


def test_default_is_the_last_hour() -> None:
    assert parse_window(None, None, NOW) == Window(NOW - HOUR_NS, NOW)


@pytest.mark.parametrize(
    ("since", "expected_ns"),
    [("15m", 15 * 60 * 10**9), ("1h", HOUR_NS), ("7d", 7 * 24 * HOUR_NS), ("90s", 90 * 10**9)],
)
def test_durations_back_from_now(since: str, expected_ns: int) -> None:
    assert parse_window(since, None, NOW) == Window(NOW - expected_ns, NOW)


def test_rfc3339_both_ends_keep_nanoseconds() -> None:
    window = parse_window("2026-01-01T00:00:00Z", "2026-01-01T00:30:00.000000001+00:00", NOW)
    assert window == Window(1_767_225_600_000_000_000, 1_767_227_400_000_000_001)


@pytest.mark.parametrize(
    "until",
    [
        "2026-01-01 00:30:00.000000001Z",  # a space, as RFC 3339 allows
        "2026-01-01t00:30:00.000000001z",
        "2026-01-01 02:30:00.000000001 02:00",  # the "+" of a URL became a space
    ],
)
def test_every_rfc3339_separator_keeps_nanoseconds(until: str) -> None:
    """Only an upper-case "T" kept them: the others were cut to microseconds."""
    assert parse_window("2026-01-01T00:00:00Z", until, NOW).until_ns == 1_767_227_400_000_000_001


def test_offsets_are_converted_to_utc() -> None:
    window = parse_window("2026-01-01T02:00:00+02:00", "2026-01-01T00:10:00Z", NOW)
    assert window.since_ns == 1_767_225_600_000_000_000


def test_only_until_means_the_hour_before_it() -> None:
    window = parse_window(None, "2026-01-01T00:30:00Z", NOW)
    assert window == Window(1_767_227_400_000_000_000 - HOUR_NS, 1_767_227_400_000_000_000)


def test_until_as_a_duration() -> None:
    assert parse_window("2h", "1h", NOW) == Window(NOW - 2 * HOUR_NS, NOW - HOUR_NS)


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("yesterday", None, "--since: invalid time 'yesterday'"),
        ("1h", "soon", "--until: invalid time 'soon'"),
        ("1h", "2h", "must be before --until"),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "must be before --until"),
        # Outside what TIMESTAMP_NS holds: before, a DuckDB binder error (HTTP 500).
        ("1600-01-01T00:00:00Z", None, "--since: '1600-01-01T00:00:00Z' is outside the times"),
        ("99999999d", None, "--since: '99999999d' is outside the times"),
        ("1h", "2300-01-01T00:00:00Z", "--until: '2300-01-01T00:00:00Z' is outside the times"),
        (None, "2300-01-01T00:00:00Z", "--until: '2300-01-01T00:00:00Z' is outside the times"),
        ("99999999999999999999d", None, "--since: duration '99999999999999999999d' is too long"),
        ("", "", None),
    ],
)
def test_bad_windows_say_which_option(
    since: str | None, until: str | None, message: str | None
) -> None:
    if message is None:  # not bad: empty form fields are the defaults
        assert parse_window(since, until, NOW) == Window(NOW - HOUR_NS, NOW)
        return
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_window(since, until, NOW)


def test_empty_since_with_until_is_the_hour_before_it() -> None:
    """Before, ``since=`` meant the last hour even when ``until`` was two hours ago."""
    assert parse_window("", "2h", NOW) == Window(NOW - 3 * HOUR_NS, NOW - 2 * HOUR_NS)


def test_lower_case_zulu_and_an_offset_whose_plus_became_a_space() -> None:
    expected = parse_window("2026-01-01T00:00:00Z", None, NOW)
    assert parse_window("2026-01-01t00:00:00z", None, NOW) == expected
    assert parse_window("2026-01-01T02:00:00 02:00", None, NOW) == expected  # '+' in a URL
    assert parse_window("2026-01-01T02:00:00.5 02:00", None, NOW).since_ns == (
        expected.since_ns + 500_000_000
    )


def test_format_and_labels() -> None:
    assert format_ns(1_767_225_600_250_000_000) == "2026-01-01T00:00:00.25Z"
    assert format_ns(1_767_225_600_000_000_000) == "2026-01-01T00:00:00Z"
    assert window_label(ALL_TIME) == "all time"
    assert window_label(Window(1_767_225_600_000_000_000, 1_767_229_200_000_000_000)) == (
        "2026-01-01T00:00:00Z .. 2026-01-01T01:00:00Z"
    )


def test_a_long_time_text_is_refused_before_matching() -> None:
    """A newline after 100,000 fraction digits took the fraction regex 32 s (it held
    the API's event loop: any web page could send that as an <img> URL)."""
    with pytest.raises(ValueError, match=r"20,022 characters"):
        parse_window("2024-01-01T00:00:00." + "1" * 20_000 + "\nx", None)
