"""The analyzer's results: typed records whose field names are the API's (DESIGN.md §4-5).

Every record turns into the JSON the API returns with ``as_dict()``; lists of
records turn into pandas DataFrames in ``flowscope.open`` (``.df()``). Durations
are milliseconds as floats; rates are per minute; ratios are 0..1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

EdgeRule = Literal["rpc", "virtual", "async"]
NodeKind = Literal["service", "database", "messaging", "external"]
PeerKind = Literal["database", "messaging", "external"]  # a virtual node's
# SpanKind and StatusCode as otel_traces stores them; '' for a number outside the enum
# (collector/flatten.py's SPAN_KINDS and STATUS_CODES, which a test holds to these).
SpanKindName = Literal["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer", ""]
StatusName = Literal["Unset", "Ok", "Error", ""]


def kind_name(stored: str) -> SpanKindName:
    """A SpanKind read from otel_traces, typed as the records declare it (the writer
    stores no other value)."""
    return cast(SpanKindName, stored)


def status_name(stored: str) -> StatusName:
    """A StatusCode read from otel_traces, typed as the records declare it."""
    return cast(StatusName, stored)


@dataclass(frozen=True)
class Record:
    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def group_columns(group_keys: list[str], fields: list[str]) -> list[str]:
    """The column names of ``--by`` values beside a record's ``fields``: the attribute's
    name, ``group.KEY`` for one named like a field (``--by service``), so it overwrites
    nothing (CLI tables and the Python API's DataFrames alike)."""
    return [f"group.{key}" if key in fields else key for key in group_keys]


# The orders of a trace list, as Jaeger's search offers them.
TRACE_ORDERS = ("slowest", "fastest", "recent", "spans")


def unset_by(by: str | None, groups: list[dict[str, str]]) -> bool:
    """``by`` named an attribute no record has a value for: likely a typo (user_tier
    for user.tier), which answered a blank column and looked like an answer."""
    return by is not None and bool(groups) and all(not group.get(by) for group in groups)


@dataclass(frozen=True)
class Window:
    """A closed-open time window [since, until) in nanoseconds since the epoch (UTC)."""

    since_ns: int
    until_ns: int

    @property
    def minutes(self) -> float:
        return max((self.until_ns - self.since_ns) / 60e9, 1e-9)


@dataclass(frozen=True)
class Node(Record):
    id: str
    kind: NodeKind
    spans: int
    error_rate: float
    p95_ms: float | None  # of its SERVER/CONSUMER spans; None when it has none


@dataclass(frozen=True)
class Edge(Record):
    source: str
    target: str
    rule: EdgeRule
    calls: int
    errors: int
    error_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rate_per_min: float
    # async edges only (None otherwise)
    messaging_system: str | None = None
    destination: str | None = None
    lag_p50_ms: float | None = None
    lag_p95_ms: float | None = None
    lag_p99_ms: float | None = None
    # virtual edges only (None otherwise): the kind of peer the calls named. Calls that
    # name one peer as different kinds (peer.service alone, and with db.system) are
    # separate edges, told apart by this.
    peer_kind: PeerKind | None = None


@dataclass(frozen=True)
class ServiceMap(Record):
    nodes: list[Node]
    edges: list[Edge]


@dataclass(frozen=True)
class Flow(Record):
    id: str  # stable slug
    name: str
    root_service: str
    root_operation: str
    traces: int
    error_rate: float
    traces_with_span_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rate_per_min: float
    group: dict[str, str] = field(default_factory=dict)  # --by ATTR value(s), else empty


@dataclass(frozen=True)
class Step(Record):
    id: str  # stable within a flow: derived from the path of (service, operation, kind)
    parent_id: str | None
    service: str
    operation: str
    kind: SpanKindName
    calls: int
    traces: int
    calls_per_trace: float
    errors: int
    error_rate: float
    origin_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    self_p50_ms: float
    start_offset_p50_ms: float
    critical_path_share: float
    # A CLIENT step: the peer its spans name, by the map's virtual-node rule (the least
    # name if they name several); a PRODUCER step: the queue (messaging system and
    # destination) it sends to. Diagrams draw the call to it when no traced service
    # answers it. None for other kinds.
    peer: str | None = None
    group: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowClaim(Record):
    """A flows.yaml flow that took traces with an automatic flow's root (its service and
    operation) in the window: where an automatic id's traces went once a rule named them."""

    flow: str  # flow id
    name: str
    traces: int  # traces with that root in the window


@dataclass(frozen=True)
class FlowDetail(Record):
    flow: Flow
    steps: list[Step]
    # Empty unless ``flow`` is an automatic flow whose root flows.yaml rules match.
    claimed_by: list[FlowClaim] = field(default_factory=list)


@dataclass(frozen=True)
class TraceSummary(Record):
    trace_id: str
    flow: str  # flow id
    root_service: str
    root_operation: str
    start: str  # RFC 3339, UTC
    duration_ms: float
    spans: int
    services: int
    errors: int  # spans with status Error
    status: StatusName  # the root's ('' without one)
    # False: no root span stored (the trace is in progress, or its root's service sends
    # no spans). The root_* fields and start then are its first span's, duration_ms its
    # spans' extent, flow ''.
    has_root: bool = True


@dataclass(frozen=True)
class SpanEvent(Record):
    name: str
    start: str  # RFC 3339, UTC
    offset_ms: float  # from its span's start
    attributes: dict[str, str]
    attributes_omitted: int = 0  # past trace_view.MAX_NESTED_ATTRIBUTES


@dataclass(frozen=True)
class SpanLink(Record):
    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, str]
    attributes_omitted: int = 0  # past trace_view.MAX_NESTED_ATTRIBUTES


@dataclass(frozen=True)
class TraceSpan(Record):
    span_id: str
    parent_span_id: str  # '' for the root
    service: str
    operation: str
    kind: SpanKindName
    start: str  # RFC 3339, UTC
    start_offset_ms: float  # from the trace's earliest span
    duration_ms: float
    self_ms: float
    status: StatusName
    status_message: str
    attributes: dict[str, str]
    resource: dict[str, str]  # its resource's attributes (Jaeger's process tags)
    events: list[SpanEvent]  # in time order
    events_omitted: int  # its events a view leaves out (over trace_view.MAX_EVENTS a trace)
    links: list[SpanLink]
    depth: int
    step_id: str | None  # the flow step this span belongs to
    step_p50_ms: float | None  # that step's P50 in the flow's baseline window
    on_critical_path: bool
    orphan: bool  # its parent never arrived
    children: list[str] = field(default_factory=list)  # span ids, in start order
    # What a view leaves out (over trace_view.MAX_ATTRIBUTES, MAX_NESTED_ATTRIBUTES and
    # MAX_LINKS a trace); last, with defaults, as an older server's answer lacks them.
    attributes_omitted: int = 0
    resource_omitted: int = 0
    links_omitted: int = 0


@dataclass(frozen=True)
class CriticalSegment(Record):
    span_id: str
    service: str
    operation: str
    start_offset_ms: float
    duration_ms: float  # time this span itself is on the critical path


@dataclass(frozen=True)
class TraceView(Record):
    trace_id: str
    flow: str | None
    duration_ms: float
    spans: list[TraceSpan]
    critical_path: list[CriticalSegment]


@dataclass(frozen=True)
class StepDelta(Record):
    step: str  # "service operation" path label
    # The step's id, as in the flow's steps and trace views: two steps can share a
    # label (a detached sub-tree's top under the root's name; names holding " > ").
    step_id: str
    under: str  # the "service operation" of the step it hangs under; '' for a root
    service: str
    operation: str
    kind: SpanKindName
    left_ms: float | None  # None: step absent on that side
    right_ms: float | None
    delta_ms: float | None
    left_error_rate: float | None = None
    right_error_rate: float | None = None
    error_rate_delta: float | None = None
    left_calls: int | None = None
    right_calls: int | None = None


@dataclass(frozen=True)
class Comparison(Record):
    mode: Literal["traces", "baseline", "windows", "versions"]
    left: str  # label of the left side (trace id, window, version)
    right: str
    deltas: list[StepDelta]  # biggest absolute delta first
