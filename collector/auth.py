"""Bearer-token check shared by the OTLP receivers and the API."""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence

# A token is sent in an HTTP header: printable ASCII, no spaces.
_TOKEN = re.compile(r"^[\x21-\x7e]+$")
TOKEN_RULE = "printable ASCII without spaces (it is sent in an HTTP header)"


def client_token(token: str | None) -> tuple[str | None, str | None]:
    """The token a client sends, its surrounding whitespace dropped (a token file
    written on Windows ends in a CR), or None for none; and, for one that cannot be
    sent, None and what is wrong with it, never quoting it, for the client to say if
    the server asks for a token (a stray FLOWSCOPE_TOKEN must not stop a client of a
    server that takes none). A non-ASCII token was a UnicodeEncodeError traceback, and
    one with a CR made a message that printed it."""
    token = (token or "").strip()
    if not token:
        return None, None
    if not is_valid_token(token):
        return None, f"the token (--token / FLOWSCOPE_TOKEN) must be {TOKEN_RULE}"
    return token, None


def is_valid_token(token: str) -> bool:
    # fullmatch: "$" matches before a final newline, and a token ending in one was
    # taken, then no header (which cannot hold one) ever matched it (network review).
    return bool(_TOKEN.fullmatch(token))


def token_matches(expected: str | None, authorization: str | Sequence[str] | None) -> bool:
    """True when no token is configured or the header is ``Bearer <expected>``; given
    every value of the header, exactly one (with two, HTTP read the first and gRPC the
    last: now neither is taken)."""
    if not expected:
        return True
    if authorization is not None and not isinstance(authorization, str):
        if len(authorization) != 1:
            return False
        authorization = authorization[0]
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, which
    # was an HTTP 500), and header values arrive decoded as latin-1.
    given = value.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(given, expected.encode("utf-8"))


# The WWW-Authenticate header of a 401 (RFC 6750 §3): the scheme a client should use.
BEARER_CHALLENGE = 'Bearer realm="flowscope"'
