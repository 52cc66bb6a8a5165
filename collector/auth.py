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
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), expected)
