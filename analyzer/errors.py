"""What the analyzer raises: one base class, and the two "no such thing" cases the API maps to 404."""

from __future__ import annotations


class AnalysisError(Exception):
    """An analysis that cannot be answered; the message says why, for a user."""


class UnknownFlow(AnalysisError):
    def __init__(self, flow_id: str) -> None:
        super().__init__(f"no flow {flow_id!r} (run `flowscope flows` for the ids)")
        self.flow_id = flow_id


class UnknownTrace(AnalysisError):
    def __init__(self, trace_id: str) -> None:
        super().__init__(f"no trace {trace_id!r} in the database")
        self.trace_id = trace_id
