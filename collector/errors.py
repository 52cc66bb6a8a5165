"""Errors the receivers map to protocol answers at the edge (STYLE habit 2)."""

from __future__ import annotations


class BadRequest(Exception):
    """The request cannot be decoded: HTTP 400, gRPC INVALID_ARGUMENT."""


class RequestTooLarge(Exception):
    """The body (compressed or not) exceeds the size limit: HTTP 413, gRPC RESOURCE_EXHAUSTED."""


class Overloaded(Exception):
    """The writer queue is full: HTTP 503 + Retry-After, gRPC UNAVAILABLE (exporters retry)."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(Exception):
    """The writer is stopping or failed to commit; the spans were not stored."""
