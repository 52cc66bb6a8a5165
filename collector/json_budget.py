"""How many JSON objects and arrays an OTLP/JSON request may hold.

Parsing JSON into Python objects, and protobuf's generic JSON parser after it, cost
hundreds of bytes for each object or array, however few bytes the text spends on it:
an 18 MB request of 6,000,000 empty attributes (``{},{},...``) took a decode worker
to 4.3 GB and 27 s. The size limit counts bytes, so this counts containers, before
anything is parsed. Real exporters' requests spend 40 or more bytes on each (a 20 MiB
request holds about half a million); at the limit, decoding takes under a gigabyte.
"""

from __future__ import annotations

import re

from flowscope.collector.errors import RequestTooLarge

MAX_JSON_CONTAINERS = 1_000_000

# A JSON string: braces and brackets inside one are text, not containers.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_containers(body: bytes) -> int:
    """How many objects and arrays ``body`` holds, counting from its text alone.

    Counting the bytes is an upper bound and costs milliseconds; only a body over the
    limit by that count has its strings taken out to count exactly (braces in string
    values, such as JSON documents captured as attributes, are not containers)."""
    rough = body.count(b"{") + body.count(b"[")
    if rough <= MAX_JSON_CONTAINERS:
        return rough
    bare = _STRING.sub(b"", body)
    return bare.count(b"{") + bare.count(b"[")


def check_json_containers(body: bytes) -> None:
    """RequestTooLarge when ``body`` holds more than ``MAX_JSON_CONTAINERS``."""
    count = json_containers(body)
    if count > MAX_JSON_CONTAINERS:
        raise RequestTooLarge(
            f"OTLP/JSON body holds {count:,} JSON objects and arrays, more than the "
            f"{MAX_JSON_CONTAINERS:,} a request may; send fewer spans or attributes "
            "per request (for the OpenTelemetry SDK, a smaller max_export_batch_size)"
        )
