"""AnyValue -> text as pdata's ``AsString()`` writes it (the ClickHouse exporter's encoding)."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from flowscope.collector.attributes import any_value_str, attribute_lists, format_double
from flowscope.testing.otlp import key_values


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.25, "0.25"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (-0.0, "-0"),  # strconv keeps the sign
        (2.0**53, "9007199254740992"),
        # The shortest digits that round-trip, then zeros: not the binary value
        # 9223372036854775808 (before, stored as that).
        (9.223372036854776e18, "9223372036854776000"),
        (1e16, "10000000000000000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (1e-6, "0.000001"),
        (1.5e-5, "0.000015"),
        (1.5e-7, "1.5e-7"),
        (5e-324, "5e-324"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Infinity"),
    ],
)
def test_doubles_as_go_formats_them(value: float, text: str) -> None:
    assert format_double(value) == text
    assert any_value_str(AnyValue(double_value=value)) == text


def test_arrays_escape_like_go_json_without_html_escaping() -> None:
    """pdata writes maps and slices with SetEscapeHTML(false) since Collector PR #15108:
    <, > and & as they are (before, \\u003c ...); U+2028/U+2029 stay escaped."""
    values = [
        AnyValue(string_value="a\u2028b\u2029<&>"),
        AnyValue(double_value=-0.0),
        AnyValue(double_value=9.223372036854776e18),
    ]
    text = any_value_str(AnyValue(array_value=ArrayValue(values=values)))
    assert text == '["a\\u2028b\\u2029<&>",-0,9223372036854776000]'
    kvlist = KeyValueList(values=[KeyValue(key="<k&>", value=AnyValue(string_value="</b>"))])
    assert any_value_str(AnyValue(kvlist_value=kvlist)) == '{"<k&>":"</b>"}'


def test_empty_bytes_inside_arrays_and_maps_are_null() -> None:
    """pdata's AsRaw turns empty bytes into a nil slice, which Go's JSON encoder writes as
    null; before, flowscope wrote "". A top-level empty bytes value stays ''."""
    empty, some = AnyValue(bytes_value=b""), AnyValue(bytes_value=b"\x00\xff")
    array = AnyValue(array_value=ArrayValue(values=[empty, some]))
    assert any_value_str(array) == '[null,"AP8="]'
    kvlist = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="b", value=empty)]))
    assert any_value_str(kvlist) == '{"b":null}'
    nested = AnyValue(array_value=ArrayValue(values=[kvlist]))
    assert any_value_str(nested) == '[{"b":null}]'
    assert any_value_str(empty) == ""


def test_attribute_maps_are_sorted_by_key_the_first_of_a_repeated_key_kept() -> None:
    """The exporter sorts every map by key (Go's byte-wise string order, which is code point
    order); before, flowscope kept the order sent. The order is remembered per key
    sequence, so each shape is asked twice."""
    shapes = [
        {"z": 1, "a.b": 2, "a": 3, "ab": 4, "é": 5, "\U0001d11e": 6, "\uffff": 7},
        {"b": 1, "a": 2},
        {"a": 1, "b": 2},
        {"only": 1},
    ]
    for attributes in shapes:
        for _ in range(2):
            keys, values = attribute_lists(key_values(attributes))
            assert list(keys) == sorted(attributes)  # code points: UTF-8's byte order
            assert list(values) == [str(attributes[key]) for key in sorted(attributes)]
    repeated = key_values({"k": "first", "b": "x"}) + key_values({"k": "last", "a": "y"})
    for _ in range(2):
        keys, values = attribute_lists(repeated)
        assert (list(keys), list(values)) == (["a", "b", "k"], ["y", "x", "first"])
    twice = key_values({"k": "first"}) + key_values({"k": "last"})
    assert [list(part) for part in attribute_lists(twice)] == [["k"], ["first"]]
