"""Where analysis results come from: the DuckDB file itself, or a running server's API.

``flowscope.open`` and the CLI's read commands share these, so a result is the
same records whichever way it was fetched. A database file held by a running
``flowscope serve`` (DuckDB lets one process write it) is read through that
server's JSON API, found from the ``<db>.server.json`` file the server writes.
Every failure a user can cause surfaces as ``AnalysisError`` (or its
``UnknownFlow``/``UnknownTrace``) with a message.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from flowscope.analyzer.errors import AnalysisError, UnknownFlow, UnknownTrace
from flowscope.analyzer.flows_config import FlowsConfig
from flowscope.analyzer.model import (
    Comparison,
    CriticalSegment,
    Edge,
    Flow,
    FlowDetail,
    Node,
    Record,
    ServiceMap,
    Step,
    StepDelta,
    TraceSpan,
    TraceSummary,
    TraceView,
    Window,
)

R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class SqlRows:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


class AnalysisSource(Protocol):
    """The analyses by name, with windows as the user typed them (``1h``, RFC 3339)."""

    where: str  # the file or URL, for messages

    def service_map(self, since: str | None, until: str | None, flow: str | None) -> ServiceMap: ...
    def flows(self, since: str | None, until: str | None, by: str | None) -> list[Flow]: ...
    def flow(
        self, flow_id: str, since: str | None, until: str | None, by: str | None
    ) -> FlowDetail: ...
    def traces(
        self, since: str | None, until: str | None, **filters: Any
    ) -> list[TraceSummary]: ...
    def trace(self, trace_id: str, since: str | None, until: str | None) -> TraceView: ...
    def compare(self, **params: str | None) -> Comparison: ...
    def sql(self, query: str, limit: int, timeout_s: float = 10.0) -> SqlRows: ...
    def close(self) -> None: ...


def record_from_dict(cls: type[R], data: dict[str, Any]) -> R:
    """A flat record from its ``as_dict()``; keys the record lacks (``window``) are dropped."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def service_map_from_dict(data: dict[str, Any]) -> ServiceMap:
    return ServiceMap(
        nodes=[record_from_dict(Node, n) for n in data["nodes"]],
        edges=[record_from_dict(Edge, e) for e in data["edges"]],
    )


def flow_detail_from_dict(data: dict[str, Any]) -> FlowDetail:
    return FlowDetail(
        flow=record_from_dict(Flow, data["flow"]),
        steps=[record_from_dict(Step, s) for s in data["steps"]],
    )


def trace_view_from_dict(data: dict[str, Any]) -> TraceView:
    return TraceView(
        trace_id=data["trace_id"],
        flow=data["flow"],
        duration_ms=data["duration_ms"],
        spans=[record_from_dict(TraceSpan, s) for s in data["spans"]],
        critical_path=[record_from_dict(CriticalSegment, c) for c in data["critical_path"]],
    )


def comparison_from_dict(data: dict[str, Any]) -> Comparison:
    return Comparison(
        mode=data["mode"],
        left=data["left"],
        right=data["right"],
        deltas=[record_from_dict(StepDelta, d) for d in data["deltas"]],
    )


def _window(
    since: str | None, until: str | None, prefix: str = "", now_ns: int | None = None
) -> Window:
    from flowscope.analyzer.window import parse_window

    try:
        return parse_window(since, until, now_ns)
    except ValueError as exc:
        raise AnalysisError(
            str(exc).replace("--", f"--{prefix}", 2) if prefix else str(exc)
        ) from exc


class LocalSource:
    """Reads the DuckDB file read-only, in this process, through ``Analysis``."""

    def __init__(self, database: Any, flows_config: FlowsConfig | None) -> None:
        from flowscope.analyzer.analysis import Analysis

        self.database = database
        self.where = database.path
        self.analysis = Analysis(database, flows_config)

    def service_map(self, since: str | None, until: str | None, flow: str | None) -> ServiceMap:
        return self.analysis.service_map(_window(since, until), flow)

    def flows(self, since: str | None, until: str | None, by: str | None) -> list[Flow]:
        return self.analysis.flows(_window(since, until), by)

    def flow(
        self, flow_id: str, since: str | None, until: str | None, by: str | None
    ) -> FlowDetail:
        return self.analysis.flow(flow_id, _window(since, until), by)

    def traces(self, since: str | None, until: str | None, **filters: Any) -> list[TraceSummary]:
        return self.analysis.traces(_window(since, until), **filters)

    def trace(self, trace_id: str, since: str | None, until: str | None) -> TraceView:
        baseline = _window(since, until) if since or until else None
        return self.analysis.trace(trace_id, baseline)

    def compare(self, **params: str | None) -> Comparison:
        p = params
        if p.get("left") and p.get("right"):
            return self.analysis.compare_traces(str(p["left"]), str(p["right"]))
        if p.get("trace"):
            return self.analysis.compare_baseline(
                str(p["trace"]), _window(p.get("since"), p.get("until"))
            )
        flow = p.get("flow")
        if flow and p.get("left_version") and p.get("right_version"):
            window = _window(p.get("since"), p.get("until"))
            return self.analysis.compare_versions(
                flow, window, str(p["left_version"]), str(p["right_version"])
            )
        if flow and (p.get("left_since") or p.get("right_since")):
            # One "now" for both: `--left-until 30m --right-since 30m` must meet exactly.
            now_ns = time.time_ns()
            left = _window(p.get("left_since"), p.get("left_until"), "left-", now_ns)
            right = _window(p.get("right_since"), p.get("right_until"), "right-", now_ns)
            return self.analysis.compare_windows(flow, left, right)
        raise AnalysisError(
            "say what to compare: two trace ids, a trace and its baseline, "
            "a flow in two windows, or a flow in two versions"
        )

    def sql(self, query: str, limit: int, timeout_s: float = 10.0) -> SqlRows:
        from flowscope.store.sandbox import SqlError, SqlRefused, run_sandboxed

        try:
            out = run_sandboxed(self.database, query, row_limit=limit, timeout_s=timeout_s)
        except (SqlRefused, SqlError) as exc:
            raise AnalysisError(str(exc)) from exc
        return SqlRows(out.columns, out.rows, out.truncated)

    def close(self) -> None:
        self.database.close()


class RemoteSource:
    """Asks a running server's JSON API (docs/api.md) and rebuilds the records."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 120.0) -> None:
        self.where = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.where, headers=headers, timeout=timeout_s)

    def _get(self, path: str, params: dict[str, Any], missing: AnalysisError | None = None) -> Any:
        # Check windows here too, so a typo gets the same message as on a file.
        for prefix in ("", "left_", "right_"):
            since, until = params.get(f"{prefix}since"), params.get(f"{prefix}until")
            if since is not None or until is not None:
                _window(since, until, prefix.replace("_", "-"))
        query = {k: _param(v) for k, v in params.items() if v is not None}
        return self._answer(path, lambda: self.http.get(path, params=query), missing)

    def _answer(self, path: str, call: Any, missing: AnalysisError | None = None) -> Any:
        try:
            response = call()
        except httpx.HTTPError as exc:
            raise AnalysisError(f"cannot reach {self.where}{path}: {exc}") from exc
        if response.status_code == 404 and missing is not None:
            raise missing
        if response.status_code >= 400:
            raise AnalysisError(f"server refused: {_detail(response)}")
        return response.json()

    def service_map(self, since: str | None, until: str | None, flow: str | None) -> ServiceMap:
        params = {"since": since, "until": until, "flow": flow}
        return service_map_from_dict(self._get("/api/map", params))

    def flows(self, since: str | None, until: str | None, by: str | None) -> list[Flow]:
        data = self._get("/api/flows", {"since": since, "until": until, "by": by})
        return [record_from_dict(Flow, f) for f in data["flows"]]

    def flow(
        self, flow_id: str, since: str | None, until: str | None, by: str | None
    ) -> FlowDetail:
        params = {"since": since, "until": until, "by": by}
        path = f"/api/flows/{_segment(flow_id)}"
        return flow_detail_from_dict(self._get(path, params, UnknownFlow(flow_id)))

    def traces(self, since: str | None, until: str | None, **filters: Any) -> list[TraceSummary]:
        data = self._get("/api/traces", {"since": since, "until": until, **filters})
        return [record_from_dict(TraceSummary, t) for t in data["traces"]]

    def trace(self, trace_id: str, since: str | None, until: str | None) -> TraceView:
        path = f"/api/traces/{_segment(trace_id)}"
        data = self._get(path, {"since": since, "until": until}, UnknownTrace(trace_id))
        return trace_view_from_dict(data)

    def compare(self, **params: str | None) -> Comparison:
        missing: AnalysisError | None = None
        if params.get("flow"):
            missing = UnknownFlow(str(params["flow"]))
        else:
            trace = params.get("trace") or params.get("left")
            missing = AnalysisError(f"no such trace: {trace} or {params.get('right')}")
            if params.get("trace"):
                missing = UnknownTrace(str(trace))
        return comparison_from_dict(self._get("/api/compare", params, missing))

    def sql(self, query: str, limit: int, timeout_s: float = 10.0) -> SqlRows:
        """``timeout_s`` is the server's to set (its sandbox); it is not sent."""
        payload = {"sql": query, "limit": limit}
        data = self._answer("/api/sql", lambda: self.http.post("/api/sql", json=payload))
        return SqlRows(data["columns"], data["rows"], bool(data.get("truncated")))

    def close(self) -> None:
        self.http.close()


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(detail, dict):
        return str(detail.get("message") or detail)
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
    return str(detail or f"HTTP {response.status_code}")


def open_source(
    target: str | Path,
    *,
    token: str | None = None,
    flows: str | Path | FlowsConfig | None = None,
    server_url: str | None = None,
) -> AnalysisSource:
    """A URL (``http://...``) or ``server_url`` is asked over HTTP; a file is opened
    read-only, or asked through the server that holds it. ``flows`` applies to a
    file read here; a server uses its own flows configuration."""
    from flowscope.cli_common import running_server
    from flowscope.store.database import Database, DatabaseLocked, StoreError

    token = token or os.environ.get("FLOWSCOPE_TOKEN") or None
    text = str(target)
    if server_url is None and text.startswith(("http://", "https://")):
        server_url = text
    if server_url is not None:
        return RemoteSource(server_url, token)
    config = _flows_config(flows)
    try:
        database = Database(text, read_only=True)
    except DatabaseLocked as exc:
        info = running_server(text)
        if info is None:
            raise AnalysisError(str(exc)) from exc
        return RemoteSource(info.ui_url, token)
    except StoreError as exc:
        raise AnalysisError(str(exc)) from exc
    return LocalSource(database, config)


def _flows_config(flows: str | Path | FlowsConfig | None) -> FlowsConfig | None:
    from flowscope.analyzer.flows_config import FlowsConfigError

    if flows is None or isinstance(flows, FlowsConfig):
        return flows
    try:
        return FlowsConfig.load(flows)
    except FlowsConfigError as exc:
        raise AnalysisError(str(exc)) from exc
