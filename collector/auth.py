"""Bearer-token check shared by the OTLP receivers and the API."""

from __future__ import annotations

import hmac


def token_matches(expected: str | None, authorization: str | None) -> bool:
    """True when no token is configured or the header is ``Bearer <expected>``."""
    if not expected:
        return True
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, which
    # was an HTTP 500), and header values arrive decoded as latin-1.
    given = value.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(given, expected.encode("utf-8"))


# The WWW-Authenticate header of a 401 (RFC 6750 §3): the scheme a client should use.
BEARER_CHALLENGE = 'Bearer realm="flowscope"'
