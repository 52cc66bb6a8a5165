"""The OTLP/JSON fast path gives the request protobuf's own parser gives, or declines."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from flowscope.collector.errors import BadRequest
from flowscope.collector.otlp_json import (
    generic_request,
    request_from_json,
    request_from_json_object,
    request_to_json_object,
)
from flowscope.collector.otlp_json_fast import Decline, request_from_document
from flowscope.testing.otlp import realistic_request
from tests.collector.test_fast_flatten import every_kind_request

SAMPLES = Path(__file__).resolve().parents[2] / "sample_traces"


def documents() -> list[dict[str, Any]]:
    docs = [
        json.loads(line)
        for path in sorted(SAMPLES.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    docs += [request_to_json_object(realistic_request(16, seed=seed)) for seed in range(3)]
    return docs


def generic(document: dict[str, Any]) -> Any:
    return generic_request(copy.deepcopy(document))


def test_the_usual_documents_take_the_fast_path_and_match() -> None:
    docs = documents()
    assert len(docs) > 200
    for document in docs:
        assert request_from_document(document) == generic(document)


def test_unusual_values_are_left_to_the_generic_parser() -> None:
    document = request_to_json_object(every_kind_request())  # bytes values among them
    with pytest.raises(Decline):
        request_from_document(document)
    assert request_from_json_object(copy.deepcopy(document)) == every_kind_request()


MUTANTS: list[Any] = ["x", "", "12", "-3", "1e3", 5, -1, 5.5, True, None, [], {}, 2**64, "NaN"]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*path, index))
    return out


def test_mutated_documents_match_or_are_declined() -> None:
    """Every value, anywhere, swapped for another type or range: the fast path's
    answer is the generic parser's, or it declines (and the generic one answers,
    or says what is wrong)."""
    rng = random.Random(7)
    base = request_to_json_object(realistic_request(2, seed=1))
    paths = _paths(base)[1:]
    answered = 0
    for _ in range(600):
        document = copy.deepcopy(base)
        *parent_path, last = rng.choice(paths)
        parent: Any = document
        for step in parent_path:
            parent = parent[step]
        parent[last] = copy.deepcopy(rng.choice(MUTANTS))
        if rng.random() < 0.2 and isinstance(parent, dict):
            parent["unknownField"] = 1
        try:
            fast = request_from_document(document)
        except Decline:
            continue
        answered += 1
        try:
            expected = generic(document)
        except (json_format.ParseError, ValueError, TypeError) as exc:
            raise AssertionError(f"fast path accepted what protobuf refuses: {exc}") from exc
        assert fast == expected, (parent_path, last, parent[last])
    assert answered > 50  # the comparison ran, not only declines


def test_errors_keep_the_generic_parsers_words() -> None:
    document = request_to_json_object(realistic_request(1, seed=1))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] = 5
    with pytest.raises(BadRequest, match="invalid OTLP/JSON"):
        request_from_json_object(document)


def test_a_value_nested_past_protobufs_limit_is_a_short_bad_request() -> None:
    """The fast path's upb constructors raised DecodeError past 48 levels: a 500, every
    span lost. The generic parser's message then ran to 5 KB, one step per level."""
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(60):
        value = {"arrayValue": {"values": [value]}}
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}
    span |= {"name": "deep", "attributes": [{"key": "deep", "value": value}]}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    with pytest.raises(BadRequest) as refused:
        request_from_json(body)
    message = str(refused.value)
    assert "Message too deep" in message and "more levels" in message
    assert len(message) < 400 and not message.endswith("..")


@pytest.mark.parametrize("nested", [False, True])
def test_bytes_values_that_are_not_base64_are_refused(nested: bool) -> None:
    """protobuf's parser skipped what is not base64: "!!!" was stored as empty bytes and
    "aGVs!!bG8=" as "hello", where the Collector answers 400."""

    def document(encoded: str) -> dict[str, Any]:
        value: dict[str, Any] = {"bytesValue": encoded}
        if nested:  # inside an array inside a key-value list
            value = {
                "kvlistValue": {
                    "values": [{"key": "k", "value": {"arrayValue": {"values": [value]}}}]
                }
            }
        span = {
            "traceId": "ab" * 16,
            "spanId": "cd" * 8,
            "name": "x",
            "attributes": [{"key": "b", "value": value}],
        }
        return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}

    for good in ("aGVsbG8=", "aGVsbG8", "aGVs-_8=", ""):  # standard, unpadded, URL-safe
        request_from_json_object(document(good))
    for bad in ("!!!", "aGVs!!bG8=", "a", "aGVs bG8="):
        with pytest.raises(BadRequest, match="is not base64"):
            request_from_json_object(document(bad))


def test_an_id_that_is_a_number_is_told_in_otlps_words() -> None:
    """The message was protobuf's Python: "object of type 'int' has no len()"."""
    span = {"traceId": 12345, "spanId": "cd" * 8, "name": "x"}
    with pytest.raises(BadRequest, match="traceId is a number, expected a string of hex digits"):
        request_from_json_object({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
