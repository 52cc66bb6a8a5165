"""What the API's answers look like, for its OpenAPI description (``/openapi.json``).

The routes build their JSON from the analyzer's records (``as_dict()``) and are not
filtered through these models: they only describe it, so generated clients and
``/docs`` show every field (docs/api.md says what each one means). A test checks
real answers against this description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from flowscope.analyzer.model import Edge, Flow, FlowClaim, Node, Step, TraceSummary, TraceView


class WindowEcho(BaseModel):
    since: str = Field(description="the window's start, RFC 3339 UTC (inclusive)")
    until: str = Field(description="the window's end, RFC 3339 UTC (exclusive)")


class MapAnswer(BaseModel):
    nodes: list[Node]
    edges: list[Edge]
    window: WindowEcho


class FlowsAnswer(BaseModel):
    flows: list[Flow]
    window: WindowEcho


class FlowAnswer(BaseModel):
    flow: Flow
    steps: list[Step]
    claimed_by: list[FlowClaim] = Field(
        description="flows.yaml flows that took traces with this automatic flow's root"
    )
    window: WindowEcho


@dataclass(frozen=True)
class TraceAnswer(TraceView):
    window: WindowEcho | None = Field(
        None, description="the baseline window of the step P50s; null when none was asked for"
    )


class TracesAnswer(BaseModel):
    traces: list[TraceSummary]
    window: WindowEcho


class SqlAnswer(BaseModel):
    columns: list[str]
    types: list[str] = Field(
        description="DuckDB's name of each column's type (TIMESTAMP_NS, BIGINT, "
        "MAP(VARCHAR, VARCHAR), ...), in the order of columns"
    )
    rows: list[list[Any]]
    truncated: bool = Field(description="rows were left out at the row limit or answer size")
    row_limit: int
    elapsed_ms: float


class Refusal(BaseModel):
    message: str
    flow: str | None = Field(None, description="404: the flow id that is not there")
    trace: str | None = Field(None, description="404: the trace id that is not there")
    rule: str | None = Field(None, description="/api/sql: the sandbox rule that refused")


class RefusalAnswer(BaseModel):
    detail: Refusal


class AuthAnswer(BaseModel):
    detail: str


class Health(BaseModel):
    model_config = {"extra": "allow"}

    status: Literal["ok", "degraded", "stopping", "failed"] = Field(
        description="ok, degraded (commits failing, retried), stopping, or failed (then 503)"
    )
    version: str
    pid: int
    database: str
    spans: int | None = Field(description="spans stored; null once the database failed")
    spans_exact: bool
    writer_queue_spans: int
    uptime_s: float
    disk: dict[str, Any] | None = None
    writer: dict[str, Any] | None = None
    derivation: dict[str, Any] | None = None
    retention: dict[str, Any] | None = None
    ingest: dict[str, Any] | None = None
    failure: str | None = None
    partial: str | None = Field(
        None, description="why the statistics are left out of this answer (degraded)"
    )


def answers(model: type[Any], *refusals: int) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses``: its answer, and the refusals it can give."""
    declared: dict[int | str, dict[str, Any]] = {200: {"model": model}}
    for status in refusals:
        declared[status] = {"model": RefusalAnswer, "description": _REFUSALS[status]}
    return declared


def text_answers(*refusals: int) -> dict[int | str, dict[str, Any]]:
    """A diagram route's ``responses``: Mermaid or DOT text, and its refusals."""
    text = {"schema": {"type": "string"}}
    # text/vnd.mermaid comes from the route's response class
    declared: dict[int | str, dict[str, Any]] = {
        200: {"description": "the diagram", "content": {"text/vnd.graphviz": text}}
    }
    # Refusals are JSON here too; "model" would file them under the route's media type.
    # The JSON routes' own refusals put RefusalAnswer among the components.
    refusal = {"application/json": {"schema": {"$ref": "#/components/schemas/RefusalAnswer"}}}
    for status in refusals:
        declared[status] = {"description": _REFUSALS[status], "content": refusal}
    return declared


_REFUSALS = {
    400: "a bad window or parameter, or a query the SQL sandbox refused (its rule)",
    404: "no such flow or trace (named in detail.flow or detail.trace)",
    408: "the body stopped coming for 30 s, or was not whole within 120 s",
    413: "a body over 1 MiB (the API's limit; the longest query the sandbox takes fits)",
    415: "a body sent as another media type than JSON, or without a Content-Type",
    503: "not now, with Retry-After: the SQL queries' limit is reached, or the server is stopping",
}
