"""The analyzer's one entry point: every question the CLI, API and notebooks ask.

Each method runs in one read snapshot (``flowscope.store.derivation.read_snapshot``)
on the calling thread's read cursor: derived tables are brought up to date for that
snapshot (traces still queued for derivation are derived on the fly), so answers
never lag the stored spans and are the same whether derivation has caught up or
not. Nothing here writes to the database.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from flowscope.analyzer import compare as cmp
from flowscope.analyzer.errors import AnalysisError, UnknownFlow, UnknownTrace
from flowscope.analyzer.flows import (
    FactsRow,
    FlowCatalog,
    FlowMapping,
    auto_flow_id,
    auto_flow_name,
    flow_record,
    list_flows,
    select_flow,
)
from flowscope.analyzer.flows_config import FlowsConfig
from flowscope.analyzer.model import (
    TRACE_ORDERS,
    Comparison,
    Flow,
    FlowClaim,
    FlowDetail,
    ServiceMap,
    Step,
    TraceSummary,
    TraceView,
    Window,
)
from flowscope.analyzer.rates import rate_minutes
from flowscope.analyzer.service_map import service_map
from flowscope.analyzer.steps import flow_steps, root_flow_steps
from flowscope.analyzer.trace_view import LoadedTrace, load_trace, trace_view
from flowscope.analyzer.window import STORABLE_NS, timestamp_ns, window_label
from flowscope.store.database import Database
from flowscope.store.derivation import read_snapshot

_SHORT_HEX = re.compile(r"[0-9a-f]{1,31}")
# W3C trace context, as a log line or a header copies it: version-traceid-spanid-flags.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_key(trace_id: str) -> str:
    """A trace id as stored: lower case, and a shorter hex id (Zipkin's and Jaeger's
    64-bit ones, ``463ac35c9f6413ad``, or Jaeger's unpadded ``abc``) left-padded with
    zeros to 32 digits, as import stores it (docs/import.md). A pasted ``traceparent``
    (``00-<trace id>-<span id>-01``) or ``0x``-prefixed id names its trace id."""
    key = trace_id.strip().lower()
    if (parent := _TRACEPARENT.fullmatch(key)) is not None:
        return parent[1]
    key = key.removeprefix("0x")
    return key.rjust(32, "0") if _SHORT_HEX.fullmatch(key) else key


class Analysis:
    def __init__(self, database: Database, flows_config: FlowsConfig | None = None) -> None:
        self.database = database
        self.flows_config = flows_config
        self.catalog = FlowCatalog(database, flows_config)

    # -- service map -----------------------------------------------------------
    def service_map(self, window: Window, flow: str | None = None) -> ServiceMap:
        """Nodes and edges of calls in the window, or of one flow's traces in it."""
        flow = flow or None  # an empty form field: every flow, as an empty ``by``
        with read_snapshot(self.database):
            if flow is None:
                return service_map(self.database, window)
            self._select(flow, window)
            return service_map(self.database, window, selected=True)

    # -- flows and steps -------------------------------------------------------
    def flows(self, window: Window, by: str | None = None) -> list[Flow]:
        """Flows with traces rooted in the window, most traces first; split by ``by``."""
        by = by or None  # an empty form field: not split (not split by the key '')
        with read_snapshot(self.database):
            if by is None:
                return list_flows(self.database, self.catalog, window)
            mapping = select_flow(self.database, self.catalog, window, None)
            self.database.fetch("sel_groups", self._sel_bounds({"by": by}))
            return self._flow_stats(mapping, window, by)

    def flow(self, flow_id: str, window: Window, by: str | None = None) -> FlowDetail:
        """One flow's totals and steps (per ``by`` group); UnknownFlow if no such id."""
        by = by or None
        with read_snapshot(self.database):
            root = self._sole_root(flow_id) if by is None else None
            if root is not None:
                return self._root_flow(flow_id, root, window)
            mapping = self._select(flow_id, window)
            self.database.fetch("sel_groups_none")
            overall = self._flow_stats(mapping, window, None)
            flow = overall[0] if overall else self._empty_flow(flow_id, mapping, window)
            if by is not None:
                self.database.fetch("sel_groups", self._sel_bounds({"by": by}))
            steps = flow_steps(self.database, window, by)
            return FlowDetail(flow=flow, steps=steps, claimed_by=self._claims(flow_id, mapping))

    # -- traces ----------------------------------------------------------------
    def traces(
        self,
        window: Window,
        *,
        service: str | None = None,
        operation: str | None = None,
        flow: str | None = None,
        min_duration_ms: float | None = None,
        error: bool | None = None,
        limit: int = 20,
        attributes: Sequence[tuple[str, str]] = (),
        max_duration_ms: float | None = None,
        sort: str = "slowest",
    ) -> list[TraceSummary]:
        """Traces rooted in the window, in ``sort`` order (TRACE_ORDERS: slowest first,
        fastest first, most recent first, most spans first). Without ``flow``, also the
        traces with no root span whose first span started in the window (``has_root``
        false: named by that span, lasting their spans' extent, in no flow).

        ``service``/``operation``/``attributes``: the trace has a span of that service,
        of that name and with every (key, value) as a span or resource attribute, all
        one span (as Jaeger's tag search and Tempo's ``{ span.a = x && ... }``);
        ``error``: it has (or has no) span with status Error; ``min_duration_ms`` /
        ``max_duration_ms``: of the root span (a rootless trace's: its extent). Empty
        strings (form fields) are not given.
        """
        service, operation, flow = service or None, operation or None, flow or None
        if sort not in TRACE_ORDERS:
            raise AnalysisError(f"sort must be one of {', '.join(TRACE_ORDERS)}, not {sort!r}")
        # Each pair is looked up in every span of the window: 1,500 of them in one
        # request took 86 s (network review). Repeats say nothing more.
        pairs = list(dict.fromkeys(attributes))
        if len(pairs) > MAX_ATTRIBUTES:
            raise AnalysisError(
                f"at most {MAX_ATTRIBUTES} attributes (KEY=VALUE) in one search, not {len(pairs)}"
            )
        db = self.database
        params: dict[str, Any] = {"since": window.since_ns, "until": window.until_ns}
        min_duration_ns = _duration_ns(min_duration_ms, "min_duration_ms")
        max_duration_ns = (
            STORABLE_NS
            if max_duration_ms is None
            else _duration_ns(max_duration_ms, "max_duration_ms")
        )
        with read_snapshot(db):
            if flow is not None:
                self._select(flow, window)
            else:
                db.fetch("sel_traces_none")
            filter_spans = service is not None or operation is not None or bool(pairs)
            if filter_spans:
                span_range = {**params, "filter_flow": flow is not None}
                lo, hi = db.fetch("window_span_range", span_range)[0]
                db.fetch(
                    "span_match",
                    {
                        "lo": lo or 0,
                        "hi": hi or 0,
                        "service": service,
                        "operation": operation,
                        "keys": [k for k, _ in pairs],
                        "values": [v for _, v in pairs],
                    },
                )
            else:
                db.fetch("span_match_none")
            rows = db.fetch(
                "traces_list",
                {
                    **params,
                    "keys": list(self.catalog.config.attribute_keys),
                    "min_duration_ns": min_duration_ns,
                    "max_duration_ns": max_duration_ns,
                    "filter_error": error is not None,
                    "error": bool(error),
                    "filter_flow": flow is not None,
                    "filter_spans": filter_spans,
                    "limit": limit,
                    "sort": sort,
                },
            )
            first_spans = _first_spans(db, [(r[0], int(r[3])) for r in rows if r[1] is None])
        out = []
        for (
            trace_id,
            svc,
            op,
            start,
            duration,
            spans,
            services,
            errors,
            status,
            route,
            attrs,
        ) in rows:
            has_root = svc is not None
            if has_root:
                flow_id, _name = self.catalog.assign(FactsRow(svc, op, route, tuple(attrs), 0))
            else:  # in no flow; a first span retention took since reads as unnamed
                flow_id, (svc, op) = "", first_spans.get(trace_id, ("", ""))
            out.append(
                TraceSummary(
                    trace_id=trace_id,
                    flow=flow_id,
                    root_service=svc,
                    root_operation=op,
                    start=timestamp_ns(int(start)),
                    duration_ms=int(duration) / 1e6,
                    spans=int(spans),
                    services=int(services),
                    errors=int(errors),
                    status=status or "",
                    has_root=has_root,
                )
            )
        return out

    def trace(self, trace_id: str, baseline: Window | None = None) -> TraceView:
        """The trace as a tree with its critical path; with ``baseline``, each span's
        step P50 in its flow over that window (None: no baseline, the fast path)."""
        db = self.database
        typed, trace_id = trace_id, trace_key(trace_id)
        # A trace asked for by id must be found even if it arrived a moment ago: never
        # a settled read (flowscope/store/derivation.py).
        with read_snapshot(db, only_trace=trace_id if baseline is None else None, settled=False):
            flow_id, loaded = self._load_trace(trace_id, typed)
            step_p50: dict[str, float] = {}
            if flow_id is not None and baseline is not None:
                step_p50 = {s.id: s.p50_ms for s in self._steps(flow_id, baseline)}
            return trace_view(loaded, trace_id, flow_id, step_p50)

    # -- compare ---------------------------------------------------------------
    def compare_traces(self, left_id: str, right_id: str) -> Comparison:
        # Labels as ids are everywhere else: 32 lower-case hex digits, however typed.
        left = self._trace_values(left_id)
        right = self._trace_values(right_id)
        left_id, right_id = trace_key(left_id), trace_key(right_id)
        return Comparison("traces", left_id, right_id, cmp.deltas(left, right))

    def compare_baseline(self, trace_id: str, window: Window | None = None) -> Comparison:
        """The trace's steps against the P50 of the same steps in its flow's window; by
        default the hour around the trace (30 minutes either side of its root's start),
        which holds its flow's traces however old it is, where the last hour may not."""
        typed, trace_id = trace_id, trace_key(trace_id)
        with read_snapshot(self.database, settled=False):  # as trace(): the trace is there
            flow_id, loaded = self._load_trace(trace_id, typed)
            if flow_id is None:
                raise AnalysisError(
                    f"trace {trace_id} has no root span (yet), so it is in no flow: no baseline"
                )
            if window is None:
                start = int(loaded.spans.trace_root_start[0])
                window = Window(  # within what TIMESTAMP_NS holds, for a trace near its ends
                    max(start - BASELINE_HALF_NS, 1 - STORABLE_NS),
                    min(start + BASELINE_HALF_NS, STORABLE_NS - 1),
                )
            baseline = cmp.flow_step_values(self._steps(flow_id, window), "p50_ms")
            values = self._trace_values(trace_id)
        label = f"{flow_id} P50 {window_label(window)}"
        return Comparison("baseline", label, trace_id, cmp.deltas(baseline, values))

    def compare_windows(self, flow_id: str, left: Window, right: Window) -> Comparison:
        """Per-step P95 and error-rate deltas of a flow between two windows."""
        with read_snapshot(self.database):
            a = cmp.flow_step_values(self._steps(flow_id, left), "p95_ms")
            b = cmp.flow_step_values(self._steps(flow_id, right), "p95_ms")
        return Comparison("windows", window_label(left), window_label(right), cmp.deltas(a, b))

    def compare_versions(
        self, flow_id: str, window: Window, left_version: str, right_version: str
    ) -> Comparison:
        """Per-step P95 and error-rate deltas between the flow's traces that ran
        through resource ``service.version`` = left and those through = right."""
        with read_snapshot(self.database):
            a = cmp.flow_step_values(self._steps(flow_id, window, left_version), "p95_ms")
            b = cmp.flow_step_values(self._steps(flow_id, window, right_version), "p95_ms")
        for version, side in ((left_version, a), (right_version, b)):
            if not side:  # an empty side would read as "every step is new" or "all gone"
                raise AnalysisError(
                    f"no trace of flow {flow_id!r} ran through {_version_label(version)} "
                    f"in {window_label(window)}"
                )
        return Comparison(
            "versions",
            _version_label(left_version),
            _version_label(right_version),
            cmp.deltas(a, b),
        )

    # -- internals (inside a snapshot) ------------------------------------------
    def _select(self, flow_id: str, window: Window) -> FlowMapping:
        mapping = select_flow(self.database, self.catalog, window, flow_id)
        if flow_id not in mapping.names and self.catalog.known(flow_id) is None:
            raise UnknownFlow(flow_id)
        return mapping

    def _sole_root(self, flow_id: str) -> tuple[str, str] | None:
        """The root (service, operation) of an automatic flow that is exactly "every trace
        with this root", or None: a flows.yaml rule that could claim some of those traces
        (one naming no service, or this service) makes the flow a subset of them."""
        rules = self.catalog.config.flows
        if self.catalog.config.by_id(flow_id) is not None:
            return None
        for service, operation in self.database.fetch("flows_all_roots"):
            if auto_flow_id(str(service), str(operation)) == flow_id:
                if any(rule.service in (None, service) for rule in rules):
                    return None
                return str(service), str(operation)
        return None

    def _root_flow(self, flow_id: str, root: tuple[str, str], window: Window) -> FlowDetail:
        """An automatic flow read by its root alone: no trace selection, no join."""
        params = {
            "service": root[0],
            "operation": root[1],
            "since": window.since_ns,
            "until": window.until_ns,
        }
        rows = self.database.fetch("flows_auto", params)
        flow = flow_record(
            flow_id,
            auto_flow_name(*root),
            root,
            tuple(rows[0][2:]) if rows else None,
            rate_minutes(self.database, window),
        )
        steps = root_flow_steps(self.database, window, root, flow.traces) if flow.traces else []
        return FlowDetail(flow=flow, steps=steps)

    def _sel_bounds(self, params: dict[str, Any]) -> dict[str, Any]:
        _count, lo, hi = self.database.fetch("sel_range")[0]
        return {**params, "lo": lo or 0, "hi": hi or 0}

    def _flow_stats(self, mapping: FlowMapping, window: Window, by: str | None) -> list[Flow]:
        minutes = rate_minutes(self.database, window)
        flows = [
            flow_record(
                str(flow_id),
                mapping.names[str(flow_id)],
                mapping.root_of(str(flow_id)),
                (traces, error_traces, with_errors, quantiles),
                minutes,
                {by: str(group)} if by is not None else None,
            )
            for flow_id, group, traces, error_traces, with_errors, quantiles in self.database.fetch(
                "sel_flow_stats"
            )
        ]
        return sorted(flows, key=lambda f: (-f.traces, f.id, sorted(f.group.items())))

    def _claims(self, flow_id: str, mapping: FlowMapping) -> list[FlowClaim]:
        """The flows.yaml flows that took traces with this automatic flow's root."""
        if mapping.whole is None or self.catalog.config.by_id(flow_id) is not None:
            return []
        root = self.catalog.automatic_root(flow_id)
        if root is None:
            return []
        return [FlowClaim(*claim) for claim in mapping.whole.claims(root, flow_id)]

    def _empty_flow(self, flow_id: str, mapping: FlowMapping, window: Window) -> Flow:
        name = mapping.names.get(flow_id) or self.catalog.known(flow_id) or flow_id
        rule = self.catalog.config.by_id(flow_id)
        if rule is not None:
            root = rule.root
        else:
            # By the id, not the name: roots ("a b", "c") and ("a", "b c") share the
            # name "a b c", and the other one's was shown.
            root = self.catalog.automatic_root(flow_id) or ("", "")
        return flow_record(flow_id, name, root, None, rate_minutes(self.database, window))

    def _steps(self, flow_id: str, window: Window, version: str | None = None) -> list[Step]:
        self._select(flow_id, window)
        if version is not None:
            service, wanted = version_of(version)
            params = {"version": wanted, "service": service}
            self.database.fetch("sel_keep_version", self._sel_bounds(params))
        self.database.fetch("sel_groups_none")
        return flow_steps(self.database, window)

    def _load_trace(self, trace_id: str, typed: str) -> tuple[str | None, LoadedTrace]:
        """One trace's spans and tree, and its flow id (None without a root); ``typed``:
        the id as given, for the message if there is no such trace."""
        db = self.database
        keys = list(self.catalog.config.attribute_keys)
        found = db.fetch("trace_root", {"trace_id": trace_id, "keys": keys})
        if not found:
            raise UnknownTrace(trace_id, typed)
        root_span, service, operation, route, attrs, first, last = found[0]
        loaded = load_trace(db, trace_id, root_span, (int(first), int(last)))
        if loaded is None:
            raise UnknownTrace(trace_id, typed)
        flow_id = None
        if root_span:
            flow_id = self.catalog.assign(FactsRow(service, operation, route, tuple(attrs), 0))[0]
        return flow_id, loaded

    def _trace_values(self, trace_id: str) -> dict[str, cmp.StepValue]:
        typed, trace_id = trace_id, trace_key(trace_id)
        with read_snapshot(self.database, only_trace=trace_id):
            loaded = self._load_trace(trace_id, typed)[1]
            return cmp.trace_step_values(loaded.spans)


def _first_spans(db: Database, rootless: list[tuple[str, int]]) -> dict[str, tuple[str, str]]:
    """(service, name) of the first span of each listed trace without a root span,
    ``rootless`` its (trace id, first span start): such a trace is named by it, as
    Jaeger and Tempo list one. Looked up for the listed traces only."""
    if not rootless:
        return {}
    starts = [start for _, start in rootless]
    found = db.fetch(
        "traces_first_spans",
        {"ids": [trace_id for trace_id, _ in rootless], "lo": min(starts), "hi": max(starts)},
    )
    return {trace_id: (svc, op) for trace_id, svc, op in found}


BASELINE_HALF_NS = 30 * 60 * 1_000_000_000
MAX_ATTRIBUTES = 16  # attribute pairs one trace search takes


def _duration_ns(ms: float | None, name: str) -> int:
    """A duration bound in ms as ns; past the longest a span can last, that longest."""
    if ms is None:
        return 0
    if not (math.isfinite(ms) and ms >= 0):
        raise AnalysisError(f"{name} must be a number of milliseconds >= 0, not {ms}")
    # Compared before converting: 1e308 ms is finite, its nanoseconds are not (a 500).
    return STORABLE_NS if ms * 1e6 >= STORABLE_NS else round(ms * 1e6)


def version_of(version: str) -> tuple[str, str]:
    """(service, version) of a versions-mode side: ``SERVICE=VERSION`` is that
    service's version alone (services deployed on their own keep their versions, and a
    trace through the new version of one and the old of another counted on both
    sides); a plain version is any service's (service ''), and ``=VERSION`` too: the
    way to give a version that itself holds a ``=``."""
    service, equals, wanted = version.partition("=")
    return (service, wanted) if equals else ("", version)


def _version_label(version: str) -> str:
    service, wanted = version_of(version)
    return f"{service}'s service.version={wanted}" if service else f"service.version={wanted}"


__all__ = ["Analysis", "version_of"]
