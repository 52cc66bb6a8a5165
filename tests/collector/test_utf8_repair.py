"""collector/utf8_repair.py: strings that are not UTF-8, anywhere in a request, made
U+FFFD exactly as Python's own decoder replaces them; everything else byte for byte."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from flowscope.collector.utf8_repair import repair_body
from flowscope.testing.otlp import realistic_request, span_id, trace_id

# Markers of 6 bytes, each replaced by 6 bytes that are not UTF-8 in another way.
BAD = {
    b"@name@": b"ab\xffcd\xfe",  # bytes that never start a sequence
    b"@attk@": b"\xc3\x28xyzw",  # a lead byte without its continuation
    b"@attv@": b"\xe2\x82abcd",  # a three-byte sequence cut short
    b"@deep@": b"\x80\x80\x80zz!",  # lone continuation bytes
    b"@evnt@": b"ok\xed\xa0\x80!",  # an encoded surrogate
    b"@stat@": b"\xf4\x90\x80\x80xx",  # past U+10FFFF
    b"@scop@": b"\xc0\xafabcd",  # an overlong encoding
}


def _request(text: dict[str, str] | None = None) -> ExportTraceServiceRequest:
    """A realistic request with one more span holding every marker (or, with ``text``,
    what stands for each marker)."""
    text = text or {}

    def t(marker: str) -> str:
        return text.get(marker, marker)

    request = realistic_request(4, seed=11)
    scope = request.resource_spans[0].scope_spans[0]
    scope.scope.name = t("@scop@")
    nested = KeyValue(key="k", value=AnyValue(string_value=t("@deep@")))
    span = Span(
        trace_id=trace_id(99),
        span_id=span_id(99),
        name=t("@name@"),
        attributes=[
            KeyValue(key=t("@attk@"), value=AnyValue(string_value=t("@attv@"))),
            KeyValue(key="nested", value=AnyValue(kvlist_value=KeyValueList(values=[nested]))),
        ],
        events=[Span.Event(name=t("@evnt@"), time_unix_nano=1)],
        status=Status(code=Status.STATUS_CODE_ERROR, message=t("@stat@")),
    )
    scope.spans.append(span)
    return request


def _bad_request() -> tuple[bytes, bytes]:
    """The request's bytes with the markers as they are and with them made invalid."""
    good = _request().SerializeToString()
    bad = good
    for marker, replacement in BAD.items():
        bad = bad.replace(marker, replacement)
    return good, bad


def test_every_bad_string_is_replaced_as_python_decodes_it() -> None:
    good, bad = _bad_request()
    with pytest.raises(DecodeError, match="UTF-8"):
        ExportTraceServiceRequest.FromString(bad)
    fixed, repaired = repair_body(bad)
    assert repaired == len(BAD)
    replaced = {m.decode(): r.decode("utf-8", "replace") for m, r in BAD.items()}
    assert ExportTraceServiceRequest.FromString(fixed) == _request(replaced)


def test_a_body_that_parses_is_kept_byte_for_byte() -> None:
    good, _ = _bad_request()
    assert repair_body(good) == (good, 0)


@pytest.mark.parametrize("cut", [1, 3, 40])
def test_a_body_cut_short_is_still_refused(cut: int) -> None:
    _, bad = _bad_request()
    with pytest.raises(DecodeError):
        repair_body(bad[:-cut])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def test_an_unknown_group_beside_a_bad_string_is_kept() -> None:
    """Protobuf keeps an unknown group's bytes (wire types 3 and 4); the repair gave up
    on them ("wire type 3 where a repair cannot follow it"), a 400 where the same body
    with a valid string was a 200."""
    group = (
        _varint(99 << 3 | 3)
        + _varint(1 << 3 | 0)
        + _varint(5)
        + _varint(7 << 3 | 2)
        + _varint(2)
        + b"ok"
        + _varint(99 << 3 | 4)
    )
    span = Span(trace_id=trace_id(1), span_id=span_id(1), name="@name@").SerializeToString()
    spans = _varint(2 << 3 | 2) + _varint(len(span + group)) + span + group  # ScopeSpans.spans
    scope = _varint(2 << 3 | 2) + _varint(len(spans)) + spans  # ResourceSpans.scope_spans
    body = _varint(1 << 3 | 2) + _varint(len(scope)) + scope  # request.resource_spans
    ExportTraceServiceRequest.FromString(body)  # as protobuf reads it
    fixed, repaired = repair_body(body.replace(b"@name@", BAD[b"@name@"]))
    assert repaired == 1
    parsed = ExportTraceServiceRequest.FromString(fixed)
    assert parsed.resource_spans[0].scope_spans[0].spans[0].name == "ab\ufffdcd\ufffd"
    assert group in fixed  # kept byte for byte
