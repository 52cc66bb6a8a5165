"""Flows: traces grouped by their root span, named and matched by ``flows.yaml``.

Without a flows file a flow is every trace whose root has the same (service,
operation); its id is a slug of both plus 6 hex digits of their hash, so ids never
collide and never change (``client-gateway-post-orders-1a2b3c``). With a file, the
first rule matching a root's facts (service, operation, route, attributes) names
its flow; unmatched roots keep their automatic flow.

The analyzer works on *facts combinations*: the distinct root facts among the
window's traces (few, however many traces), mapped to flow ids in Python and
handed back to SQL as parallel lists, so every statistic stays exact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from flowscope.analyzer.flows_config import FlowsConfig, RootFacts, hashed_slug, slugify
from flowscope.analyzer.milliseconds import ms_of_ns
from flowscope.analyzer.model import Flow, Window
from flowscope.analyzer.rates import rate_minutes
from flowscope.store.database import Database


def auto_flow_id(service: str, operation: str) -> str:
    return hashed_slug(slugify(f"{service} {operation}"), f"{service}\x00{operation}".encode())


def auto_flow_name(service: str, operation: str) -> str:
    return f"{service} {operation}"


@dataclass(frozen=True)
class FactsRow:
    service: str
    operation: str
    route: str
    attrs: tuple[str, ...]
    traces: int


@dataclass
class FlowMapping:
    """Facts combinations -> flow id, as the parallel lists the SQL takes."""

    keys: list[str]
    use_route: bool
    names: dict[str, str] = field(default_factory=dict)  # flow id -> name
    roots: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    columns: dict[str, list[Any]] = field(
        default_factory=lambda: {
            "flow_ids": [],
            "services": [],
            "operations": [],
            "routes": [],
            "attrs": [],
        }
    )
    # The mapping of every flow that ``only`` restricted this one from.
    whole: FlowMapping | None = None

    def add(self, facts: FactsRow, flow_id: str, name: str) -> None:
        self.names[flow_id] = name
        self.roots.setdefault(flow_id, Counter())[(facts.service, facts.operation)] += facts.traces
        self.columns["flow_ids"].append(flow_id)
        self.columns["services"].append(facts.service)
        self.columns["operations"].append(facts.operation)
        self.columns["routes"].append(facts.route)
        self.columns["attrs"].append(list(facts.attrs))

    def only(self, flow_id: str) -> FlowMapping:
        """The same mapping restricted to one flow."""
        out = FlowMapping(self.keys, self.use_route)
        for i, fid in enumerate(self.columns["flow_ids"]):
            if fid == flow_id:
                facts = FactsRow(
                    self.columns["services"][i],
                    self.columns["operations"][i],
                    self.columns["routes"][i],
                    tuple(self.columns["attrs"][i]),
                    0,
                )
                out.add(facts, fid, self.names[fid])
        out.roots = {flow_id: self.roots.get(flow_id, Counter())}
        out.whole = self
        return out

    def claims(self, root: tuple[str, str], besides: str) -> list[tuple[str, str, int]]:
        """(flow id, name, traces) of the flows other than ``besides`` that took traces
        with this root, most first."""
        taken = [
            (flow_id, self.names[flow_id], counts[root])
            for flow_id, counts in self.roots.items()
            if flow_id != besides and counts.get(root)
        ]
        return sorted(taken, key=lambda claim: (-claim[2], claim[0]))

    def params(self, window: Window) -> dict[str, Any]:
        return {
            **self.columns,
            "keys": self.keys,
            "use_route": self.use_route,
            "since": window.since_ns,
            "until": window.until_ns,
        }

    def root_of(self, flow_id: str) -> tuple[str, str]:
        """The flow's most frequent root (service, operation); ties by name."""
        counts = self.roots.get(flow_id)
        if not counts:
            return ("", "")
        return min(counts, key=lambda root: (-counts[root], root))


class FlowCatalog:
    def __init__(self, database: Database, config: FlowsConfig | None) -> None:
        self.database = database
        self.config = config or FlowsConfig()

    @property
    def uses_facts(self) -> bool:
        return bool(self.config.flows)

    def mapping(self, window: Window) -> FlowMapping:
        keys = list(self.config.attribute_keys)
        use_route = any(rule.route is not None for rule in self.config.flows)
        mapping = FlowMapping(keys, use_route)
        params = {
            "keys": keys,
            "use_route": use_route,
            "since": window.since_ns,
            "until": window.until_ns,
        }
        for service, operation, route, attrs, traces in self.database.fetch("flows_facts", params):
            facts = FactsRow(str(service), str(operation), str(route), tuple(attrs), int(traces))
            flow_id, name = self.assign(facts)
            mapping.add(facts, flow_id, name)
        return mapping

    def assign(self, facts: FactsRow) -> tuple[str, str]:
        root = RootFacts(
            facts.service,
            facts.operation,
            facts.route,
            dict(zip(self.config.attribute_keys, facts.attrs, strict=True)),
        )
        rule = self.config.match(root)
        if rule is not None:
            return rule.id, rule.name
        return self.automatic(facts.service, facts.operation)

    def automatic(self, service: str, operation: str) -> tuple[str, str]:
        """The id and name of the automatic flow of roots no rule matched."""
        flow_id = auto_flow_id(service, operation)
        if self.config.by_id(flow_id) is not None:
            # A rule reuses this automatic id (to keep links to the flow working, say):
            # the roots it does not match stay a flow of their own, not merged into it,
            # nor into a rule that took "<id>-unmatched" too (it absorbed them).
            base, flow_id, number = flow_id + "-unmatched", flow_id + "-unmatched", 1
            while self.config.by_id(flow_id) is not None:
                number += 1
                flow_id = f"{base}-{number}"
        return flow_id, auto_flow_name(service, operation)

    def known(self, flow_id: str) -> str | None:
        """The name of a flow id that exists at any time (a rule, or a stored root)."""
        rule = self.config.by_id(flow_id)
        if rule is not None:
            return rule.name
        root = self.automatic_root(flow_id)
        return None if root is None else self.automatic(*root)[1]

    def automatic_root(self, flow_id: str) -> tuple[str, str] | None:
        """The stored root (service, operation) whose automatic flow has this id."""
        for service, operation in self.database.fetch("flows_all_roots"):
            if self.automatic(str(service), str(operation))[0] == flow_id:
                return str(service), str(operation)
        return None


def flow_record(
    flow_id: str,
    name: str,
    root: tuple[str, str],
    stats: tuple[Any, ...] | None,
    minutes: float,
    group: dict[str, str] | None = None,
) -> Flow:
    """A Flow from (traces, error traces, traces with span errors, [p50, p95, p99] ns)."""
    traces, error_traces, with_span_errors, quantiles = stats or (0, 0, 0, None)
    p50, p95, p99 = quantiles or (0.0, 0.0, 0.0)
    return Flow(
        id=flow_id,
        name=name,
        root_service=root[0],
        root_operation=root[1],
        traces=int(traces),
        error_rate=int(error_traces) / int(traces) if traces else 0.0,
        traces_with_span_errors=int(with_span_errors),
        p50_ms=ms_of_ns(p50),
        p95_ms=ms_of_ns(p95),
        p99_ms=ms_of_ns(p99),
        rate_per_min=int(traces) / minutes if minutes > 0 else 0.0,
        group=group or {},
    )


def list_flows(database: Database, catalog: FlowCatalog, window: Window) -> list[Flow]:
    """Every flow with traces in the window, most traces first."""
    minutes = rate_minutes(database, window)
    flows: list[Flow] = []
    base = {"since": window.since_ns, "until": window.until_ns}
    if not catalog.uses_facts:
        every_root = {**base, "service": None, "operation": None}
        for service, operation, *stats in database.fetch("flows_auto", every_root):
            flows.append(
                flow_record(
                    auto_flow_id(service, operation),
                    auto_flow_name(service, operation),
                    (service, operation),
                    tuple(stats),
                    minutes,
                )
            )
    else:
        mapping = catalog.mapping(window)
        for flow_id, *stats in database.fetch("flows_mapped", mapping.params(window)):
            flows.append(
                flow_record(
                    flow_id, mapping.names[flow_id], mapping.root_of(flow_id), tuple(stats), minutes
                )
            )
    return sorted(flows, key=lambda f: (-f.traces, f.id))


def select_flow(
    database: Database, catalog: FlowCatalog, window: Window, flow_id: str | None
) -> FlowMapping:
    """Fill ``sel_traces`` with the flow's traces in the window (every flow: None)."""
    mapping = catalog.mapping(window)
    if flow_id is not None:
        mapping = mapping.only(flow_id)
    database.fetch("select_traces", mapping.params(window))
    return mapping
