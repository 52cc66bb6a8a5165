"""What the analyzer raises: one base class, and the two "no such thing" cases the API maps to 404."""

from __future__ import annotations

from flowscope.analyzer.flows_config import slugify


class AnalysisError(Exception):
    """An analysis that cannot be answered; the message says why, for a user."""


# Where the flows are listed, whichever of them the caller used (a notebook's message
# named only the CLI's command).
_FLOWS_LIST = "`flowscope flows`, GET /api/flows, fs.flows()"


class UnknownFlow(AnalysisError):
    def __init__(self, flow_id: str) -> None:
        if slugify(flow_id) == flow_id:  # shaped like an id (flows.yaml checks ids so)
            message = f"no flow {flow_id!r} (the flows list gives the ids: {_FLOWS_LIST})"
        else:  # a flow's name, most likely ("client-gateway POST /v1/order")
            message = (
                f"no flow {flow_id!r}: flow ids are lower-case letters, digits and '-', "
                f"not names; the flows list gives each id next to its name ({_FLOWS_LIST})"
            )
        super().__init__(message)
        self.flow_id = flow_id


class UnknownTrace(AnalysisError):
    def __init__(self, trace_id: str, typed: str | None = None) -> None:
        """``typed``: the id as given, when ``trace_id`` is it as stored (padded)."""
        message = f"no trace {trace_id!r} in the database"
        if not trace_id:  # `trace 0x` or a blank id: say so, not "no trace ''"
            message = f"{typed or trace_id!r} holds no trace id: one is up to 32 hex digits"
        elif typed is not None and typed.strip().lower().startswith("0x"):
            typed = typed.strip()[2:]  # the prefix is no digit (0x1 had "3 hex digits")
        if typed is not None and len(typed.strip()) < len(trace_id):
            # A 31-digit id (one lost in copying) came back with a leading 0 the user
            # never typed.
            message += (
                f" ({typed.strip()!r} has {len(typed.strip())} hex digits: a shorter id "
                "than 32 is read with zeros in front, as 64-bit Zipkin and Jaeger ids "
                "are stored)"
            )
        super().__init__(message)
        self.trace_id = trace_id
