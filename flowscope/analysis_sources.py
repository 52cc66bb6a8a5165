"""Where analysis results come from: the DuckDB file itself, or a running server's API.

``flowscope.open`` and the CLI's read commands share these, so a result is the
same records whichever way it was fetched. A database file held by a running
``flowscope serve`` (DuckDB lets one process write it) is read through that
server's JSON API, found from the ``<db>.server.json`` file the server writes.
Every failure a user can cause surfaces as ``AnalysisError`` (or its
``UnknownFlow``/``UnknownTrace``) with a message, the same one on a file and
through a server. Messages name the parameters as the caller wrote them:
``--left-since`` for the CLI, ``left_since`` for Python (``names``).
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast

import httpx

from flowscope.analyzer.errors import AnalysisError, UnknownFlow, UnknownTrace
from flowscope.analyzer.flows_config import FlowsConfig
from flowscope.analyzer.model import (
    TRACE_ORDERS,
    Comparison,
    CriticalSegment,
    Edge,
    Flow,
    FlowClaim,
    FlowDetail,
    Node,
    Record,
    ServiceMap,
    SpanEvent,
    SpanLink,
    Step,
    StepDelta,
    TraceSpan,
    TraceSummary,
    TraceView,
    Window,
)

R = TypeVar("R", bound=Record)
T = TypeVar("T")
# How messages name a parameter: the CLI's ``--left-since`` or Python's ``left_since``.
Names = Literal["cli", "python"]
WINDOW_BOUNDS = ("left_since", "left_until", "right_since", "right_until")
# "--server" on the CLI; flowscope.open() takes the URL as its first argument.
_API_URL_WANTED = {"cli": "--server wants", "python": "flowscope.open wants"}
# A host that drops packets (a typo'd address, a firewall) never refuses: without a
# connect limit of its own, a command waited the whole answer timeout (120 s) silently.
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SqlRows:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    row_limit: int  # the limit applied: a server caps the one asked for
    # DuckDB's name of each column's type; none from a server that does not send them
    types: list[str] = field(default_factory=list)


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
        claimed_by=[record_from_dict(FlowClaim, c) for c in data.get("claimed_by", [])],
    )


def _trace_span(data: dict[str, Any]) -> TraceSpan:
    return record_from_dict(
        TraceSpan,
        {
            **data,
            "events": [record_from_dict(SpanEvent, e) for e in data.get("events", [])],
            "links": [record_from_dict(SpanLink, link) for link in data.get("links", [])],
            "resource": data.get("resource", {}),
            "events_omitted": data.get("events_omitted", 0),
        },
    )


def trace_view_from_dict(data: dict[str, Any]) -> TraceView:
    return TraceView(
        trace_id=data["trace_id"],
        flow=data["flow"],
        duration_ms=data["duration_ms"],
        spans=[_trace_span(s) for s in data["spans"]],
        critical_path=[record_from_dict(CriticalSegment, c) for c in data["critical_path"]],
    )


def comparison_from_dict(data: dict[str, Any]) -> Comparison:
    return Comparison(
        mode=data["mode"],
        left=data["left"],
        right=data["right"],
        deltas=[record_from_dict(StepDelta, d) for d in data["deltas"]],
    )


def param_name(name: str, names: Names) -> str:
    """``left_since`` as the caller spells it: ``--left-since`` on the CLI."""
    if names != "cli":
        return name
    if name in ("left_version", "right_version"):
        return "--versions"  # both come from the one option
    if name == "attributes":
        return "--attr"
    return "--" + name.replace("_", "-")


def _window(
    since: str | None,
    until: str | None,
    names: Names,
    prefix: str = "",
    now_ns: int | None = None,
) -> Window:
    """``prefix``: ``left_``/``right_`` for the windows of a comparison."""
    from flowscope.analyzer.window import parse_window

    spelled = (param_name(f"{prefix}since", names), param_name(f"{prefix}until", names))
    try:
        return parse_window(since, until, now_ns, spelled)
    except ValueError as exc:
        raise AnalysisError(str(exc)) from exc


# The API's bounds (dashboard/api_analysis.py), checked here so a file and a server
# refuse the same values with the same words.
MAX_TRACES = 10_000


def _check_trace_filters(filters: Mapping[str, Any], names: Names) -> None:
    limit = filters.get("limit", 20)
    if not 1 <= limit <= MAX_TRACES:
        raise AnalysisError(f"{param_name('limit', names)} must be 1 to {MAX_TRACES}, not {limit}")
    for bound in ("min_duration_ms", "max_duration_ms"):
        ms = filters.get(bound)
        # NaN compares false with 0, and a server refuses what is not finite in its own
        # words: refused here, a file and a server say the same.
        if ms is not None and not (math.isfinite(ms) and ms >= 0):
            name = param_name(bound, names)
            raise AnalysisError(f"{name} must be a finite number, 0 or more, not {ms}")
    sort = filters.get("sort", "slowest")
    if sort not in TRACE_ORDERS:
        name = param_name("sort", names)
        raise AnalysisError(f"{name} must be one of {', '.join(TRACE_ORDERS)}, not {sort!r}")
    for key, _value in filters.get("attributes", ()):
        if not key:
            name = param_name("attributes", names)
            raise AnalysisError(f"{name}: an attribute needs a name (KEY=VALUE)")


def attribute_pair(text: str, name: str) -> tuple[str, str]:
    """``KEY=VALUE`` (split at the first '=', so a value may hold one) as a pair;
    AnalysisError naming the parameter ``name`` for text without '=' or a name."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise AnalysisError(
            f"{name}: {text!r} is not KEY=VALUE (an attribute's name, '=', its value as "
            "stored: http.status_code=500, deployment.environment=prod)"
        )
    return key, value


CompareMode = Literal["traces", "baseline", "versions", "windows"]


def compare_mode(params: Mapping[str, str | None], names: Names) -> CompareMode:
    """The comparison ``params`` ask for (the API's /api/compare rules), or
    AnalysisError when none is complete or options of two are given."""
    p = params
    one_comparison(p, names)
    if p.get("left") and p.get("right"):
        return "traces"
    if p.get("trace"):
        return "baseline"
    flow = p.get("flow")
    if flow and p.get("left_version") and p.get("right_version"):
        return "versions"
    if flow and any(p.get(bound) for bound in WINDOW_BOUNDS):
        # A side with neither bound would silently be the last hour, often the same
        # window as the other side: every delta 0, which reads as "no change".
        if not (p.get("left_since") or p.get("left_until")) or not (
            p.get("right_since") or p.get("right_until")
        ):
            n = {bound: param_name(bound, names) for bound in WINDOW_BOUNDS}
            raise AnalysisError(
                f"comparing two windows needs both: the left one ({n['left_since']}, "
                f"{n['left_until']} or both) and the right one ({n['right_since']}, "
                f"{n['right_until']} or both)"
            )
        return "windows"
    raise AnalysisError(
        "say what to compare: two trace ids, a trace and its baseline, "
        "a flow in two windows, or a flow in two versions"
    )


_COMPARISONS = {
    "two trace ids": ("left", "right"),
    "a trace for its baseline": ("trace",),
    "a flow's windows or versions": ("flow", "left_version", "right_version", *WINDOW_BOUNDS),
}


def one_comparison(p: Mapping[str, str | None], names: Names) -> None:
    """Options of two comparisons at once: one would be silently ignored."""
    given = []
    for what, keys in _COMPARISONS.items():
        options = list(dict.fromkeys(param_name(k, names) for k in keys if p.get(k)))
        if options:  # named, so that a --left-since given with --trace says which it is
            given.append(what if what == "two trace ids" else f"{what} ({', '.join(options)})")
    if len(given) > 1:
        raise AnalysisError(f"give one comparison, not {' and '.join(given)}")
    from flowscope.analyzer.analysis import version_of

    for side in ("left_version", "right_version"):
        # "" is read as "not given": "say what to compare" followed; "SERVICE=" is none.
        value = p.get(side)
        if value is not None and not version_of(value)[1]:
            raise AnalysisError(
                f"{param_name(side, names)}: a version must not be empty (traces without "
                "service.version have none to compare by)"
            )
    versions = p.get("left_version") or p.get("right_version")
    bounds = [param_name(b, names) for b in WINDOW_BOUNDS if p.get(b)]
    if versions and bounds:
        since, until = param_name("since", names), param_name("until", names)
        raise AnalysisError(
            f"versions are compared over one window ({since}/{until}), not {', '.join(bounds)}"
        )
    window = [param_name(b, names) for b in ("since", "until") if p.get(b)]
    if window and (p.get("left") or bounds):
        verb = "chooses" if len(window) == 1 else "choose"
        raise AnalysisError(
            f"{'/'.join(window)} {verb} the window of a baseline or of versions; "
            "two traces have none, two windows have their own bounds"
        )


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _file_errors(method: _Method) -> _Method:
    """``method`` with DuckDB's errors as AnalysisError, the file named: a damaged file
    opens and fails at its first read, which raised DuckDB's own IOException from the
    Python API where the CLI said the file is not usable. An interrupt (Ctrl-C, a
    close) is no fault of the file's and stays as it is."""

    @functools.wraps(method)
    def read(self: LocalSource, *args: Any, **kwargs: Any) -> Any:
        import duckdb

        from flowscope.store.database import read_failure

        try:
            return method(self, *args, **kwargs)
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            raise AnalysisError(read_failure(self.where, exc)) from exc

    return cast(_Method, read)


class LocalSource:
    """Reads the DuckDB file read-only, in this process, through ``Analysis``."""

    def __init__(
        self, database: Any, flows_config: FlowsConfig | None, names: Names = "cli"
    ) -> None:
        from flowscope.analyzer.analysis import Analysis

        self.database = database
        self.where = database.path
        self.names = names
        self.analysis = Analysis(database, flows_config)

    @_file_errors
    def service_map(self, since: str | None, until: str | None, flow: str | None) -> ServiceMap:
        return self.analysis.service_map(_window(since, until, self.names), flow)

    @_file_errors
    def flows(self, since: str | None, until: str | None, by: str | None) -> list[Flow]:
        return self.analysis.flows(_window(since, until, self.names), by)

    @_file_errors
    def flow(
        self, flow_id: str, since: str | None, until: str | None, by: str | None
    ) -> FlowDetail:
        return self.analysis.flow(flow_id, _window(since, until, self.names), by)

    @_file_errors
    def traces(self, since: str | None, until: str | None, **filters: Any) -> list[TraceSummary]:
        _check_trace_filters(filters, self.names)
        return self.analysis.traces(_window(since, until, self.names), **filters)

    @_file_errors
    def trace(self, trace_id: str, since: str | None, until: str | None) -> TraceView:
        baseline = _window(since, until, self.names) if since or until else None
        return self.analysis.trace(trace_id, baseline)

    @_file_errors
    def compare(self, **params: str | None) -> Comparison:
        p = params
        mode = compare_mode(p, self.names)
        if mode == "traces":
            return self.analysis.compare_traces(str(p["left"]), str(p["right"]))
        if mode == "baseline":
            since, until = p.get("since"), p.get("until")
            window = _window(since, until, self.names) if since or until else None
            return self.analysis.compare_baseline(str(p["trace"]), window)
        flow = str(p["flow"])
        if mode == "versions":
            window = _window(p.get("since"), p.get("until"), self.names)
            return self.analysis.compare_versions(
                flow, window, str(p["left_version"]), str(p["right_version"])
            )
        # One "now" for both: `--left-until 30m --right-since 30m` must meet exactly.
        now_ns = time.time_ns()
        left = _window(p.get("left_since"), p.get("left_until"), self.names, "left_", now_ns)
        right = _window(p.get("right_since"), p.get("right_until"), self.names, "right_", now_ns)
        return self.analysis.compare_windows(flow, left, right)

    @_file_errors
    def sql(self, query: str, limit: int, timeout_s: float = 10.0) -> SqlRows:
        from flowscope.store.sandbox import SqlError, SqlRefused, run_sandboxed

        try:
            out = run_sandboxed(self.database, query, row_limit=limit, timeout_s=timeout_s)
        except (SqlRefused, SqlError, ValueError) as exc:
            raise AnalysisError(str(exc)) from exc
        return SqlRows(out.columns, out.rows, out.truncated, limit, out.types)

    def close(self) -> None:
        self.database.close()


class RemoteSource:
    """Asks a running server's JSON API (docs/api.md) and rebuilds the records."""

    def __init__(
        self,
        url: str,
        token: str | None,
        timeout_s: float = 120.0,
        names: Names = "cli",
        held: str | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        from flowscope.collector.auth import client_token

        self.where = url.rstrip("/")
        self.names = names
        # The file this server held when it was opened by its path: once the server is
        # gone, every call said only "cannot reach" its old URL.
        self.held = held
        # What is wrong with a token that cannot be sent: said on a 401 only.
        token, self.token_problem = client_token(token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            self.http = httpx.Client(
                base_url=self.where,
                headers=headers,
                timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            )
        except httpx.InvalidURL as exc:
            raise AnalysisError(f"{url!r} is not a usable server URL: {exc}") from exc

    def _get(
        self,
        path: str,
        params: dict[str, Any],
        decode: Callable[[Any], T],
        missing: AnalysisError | None = None,
    ) -> T:
        # Check windows here too, so a typo gets the same message as on a file.
        for prefix in ("", "left_", "right_"):
            since, until = params.get(f"{prefix}since"), params.get(f"{prefix}until")
            if since is not None or until is not None:
                _window(since, until, self.names, prefix)
        query = {
            k: [_param(x) for x in v] if isinstance(v, list) else _param(v)
            for k, v in params.items()
            if v is not None
        }
        return self._answer(path, lambda: self.http.get(path, params=query), decode, missing)

    def _answer(
        self,
        path: str,
        call: Any,
        decode: Callable[[Any], T],
        missing: AnalysisError | None = None,
    ) -> T:
        """The answer to ``call()`` read into records by ``decode``: one of another shape
        (a server that is not flowscope's, a Jaeger query service, say) is an
        AnalysisError, not a KeyError."""
        try:
            response = call()
        except httpx.RemoteProtocolError as exc:  # not HTTP/1.1 there: a gRPC port, say
            raise AnalysisError(
                f"{self.where} does not answer HTTP/1.1 ({exc}): {self._api_url_hint}"
            ) from exc
        except httpx.ConnectTimeout as exc:
            seconds = self.http.timeout.connect
            raise AnalysisError(
                f"cannot reach {self.where}: no connection within {seconds:g} s (is the "
                "address right, and is the port open to this machine?)"
            ) from exc
        except httpx.HTTPError as exc:
            again = ""
            if self.held is not None and isinstance(exc, httpx.ConnectError):
                again = (
                    f"; the server that held {self.held} has stopped: open the file again"
                    " (it is then read directly, or through the server that holds it now)"
                )
            raise AnalysisError(f"cannot reach {self.where}{path}: {exc}{again}") from exc
        if response.status_code in (404, 405):
            # The server names what it did not find (docs/api.md): the same exception,
            # and message, as reading the file here.
            unknown = _unknown(response)
            if unknown is not None:
                raise unknown
            if _no_route(response):
                # No route there: an OTLP port, or a path under the API's own URL.
                raise AnalysisError(
                    f"{self.where} has no {path}: {self._api_url_hint}, not an OTLP port or a "
                    "path under it"
                )
            if missing is not None:
                raise missing
        if response.status_code == 400:
            # A refusal with the reason (a window, the SQL sandbox): the words a file gives.
            raise AnalysisError(_detail(response))
        if response.status_code == 401:
            if self.token_problem is not None:
                raise AnalysisError(
                    f"the server at {self.where} asks for a token: {self.token_problem}"
                )
            raise AnalysisError(
                f"the server at {self.where} refused: {_detail(response)} "
                "(give its token with --token or FLOWSCOPE_TOKEN; in Python, "
                "flowscope.open(..., token=...))"
            )
        if response.status_code == 503:  # it cannot answer now, and says why
            raise AnalysisError(
                f"the server at {self.where} cannot answer now: {_detail(response)}"
            )
        if response.status_code >= 400:
            raise AnalysisError(f"server refused: {_detail(response)}")
        if response.status_code >= 300:
            where = response.headers.get("location", "elsewhere")
            raise AnalysisError(
                f"{self.where}{path} answered {response.status_code}, a redirect to {where}: "
                f"{self._api_url_hint}"
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise AnalysisError(
                f"{self.where}{path} did not answer JSON: {self._api_url_hint}"
            ) from exc
        try:
            return decode(data)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise AnalysisError(
                f"{self.where}{path} answered JSON that is not flowscope's "
                f"({type(exc).__name__}: {exc}): {self._api_url_hint}"
            ) from exc

    def service_map(self, since: str | None, until: str | None, flow: str | None) -> ServiceMap:
        params = {"since": since, "until": until, "flow": flow}
        missing = UnknownFlow(flow) if flow is not None else None
        return self._get("/api/map", params, service_map_from_dict, missing)

    def flows(self, since: str | None, until: str | None, by: str | None) -> list[Flow]:
        return self._get(
            "/api/flows",
            {"since": since, "until": until, "by": by},
            lambda d: [record_from_dict(Flow, f) for f in d["flows"]],
        )

    def flow(
        self, flow_id: str, since: str | None, until: str | None, by: str | None
    ) -> FlowDetail:
        params = {"since": since, "until": until, "by": by}
        path = f"/api/flows/{_segment(flow_id, UnknownFlow(flow_id))}"
        return self._get(path, params, flow_detail_from_dict, UnknownFlow(flow_id))

    def traces(self, since: str | None, until: str | None, **filters: Any) -> list[TraceSummary]:
        _check_trace_filters(filters, self.names)
        flow = filters.get("flow")
        missing = UnknownFlow(flow) if flow is not None else None
        query = {k: v for k, v in filters.items() if k != "attributes"}
        query["attr"] = [f"{k}={v}" for k, v in filters.get("attributes", ())] or None
        return self._get(
            "/api/traces",
            {"since": since, "until": until, **query},
            lambda d: [record_from_dict(TraceSummary, t) for t in d["traces"]],
            missing,
        )

    def trace(self, trace_id: str, since: str | None, until: str | None) -> TraceView:
        path = f"/api/traces/{_segment(trace_id, UnknownTrace(trace_id))}"
        params = {"since": since, "until": until}
        return self._get(path, params, trace_view_from_dict, UnknownTrace(trace_id))

    def compare(self, **params: str | None) -> Comparison:
        mode = compare_mode(params, self.names)  # refused here, in the caller's words
        missing: AnalysisError | None = None
        if mode in ("versions", "windows"):
            missing = UnknownFlow(str(params["flow"]))
        elif mode == "baseline":
            missing = UnknownTrace(str(params["trace"]))
        # traces: only the server's 404 says which of the two ids it lacks
        return self._get("/api/compare", params, comparison_from_dict, missing)

    @property
    def _api_url_hint(self) -> str:
        wanted = _API_URL_WANTED[self.names]
        return f"{wanted} the API URL that flowscope serve prints (API http://HOST:8686)"

    def sql(self, query: str, limit: int, timeout_s: float = 10.0) -> SqlRows:
        """The server caps ``limit`` and ``timeout_s`` at its own limits."""
        payload = {"sql": query, "limit": limit, "timeout_s": timeout_s}
        return self._answer(
            "/api/sql",
            lambda: self.http.post("/api/sql", json=payload),
            lambda d: SqlRows(
                d["columns"],
                d["rows"],
                bool(d.get("truncated")),
                int(d.get("row_limit", limit)),
                list(d.get("types") or []),
            ),
        )

    def close(self) -> None:
        self.http.close()


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _segment(value: str, unknown: AnalysisError) -> str:
    """``value`` as one path segment, or ``unknown`` raised for an id no route can
    carry: empty, with a '/' (the server decodes %2F before routing), or all dots
    (which the client would take as "this folder" or "the one above")."""
    from urllib.parse import quote

    if not value or "/" in value:
        raise unknown
    if set(value) == {"."}:
        return "%2E" * len(value)
    return quote(value, safe="")


def _unknown(response: httpx.Response) -> AnalysisError | None:
    """UnknownFlow/UnknownTrace from a 404's ``detail.flow``/``detail.trace``, if named."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return None
    if not isinstance(detail, dict):
        return None
    if isinstance(detail.get("flow"), str):
        return UnknownFlow(detail["flow"])
    if isinstance(detail.get("trace"), str):
        unknown = UnknownTrace(detail["trace"])
        if isinstance(detail.get("message"), str):  # its words, which know the id typed
            unknown.args = (detail["message"],)
        return unknown
    return None


def _no_route(response: httpx.Response) -> bool:
    """A 404/405 that says no route is there (an OTLP port, a path under the API's URL,
    another kind of server), not that a flow or trace is unknown: decided on the body,
    not on ``_detail``'s text, which gives a plain-text reason (Go's "404 page not
    found") and hid the hint."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):  # not JSON, or JSON but not an object
        return True
    return detail in (None, "", "Not Found", "Method Not Allowed")


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):  # not JSON, or JSON but not an object
        text = response.text.strip()
        # A short plain-text reason (the loopback Host guard's 403) says more than a code.
        plain = response.headers.get("content-type", "").startswith("text/plain")
        if plain and text and len(text) <= 500:
            return f"HTTP {response.status_code}: {text}"
        return f"HTTP {response.status_code}"
    if isinstance(detail, dict):
        return str(detail.get("message") or detail)
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(
            f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}"
            if isinstance(d, dict)
            else str(d)
            for d in detail
        )
    return str(detail or f"HTTP {response.status_code}")


def open_source(
    target: str | Path,
    *,
    token: str | None = None,
    flows: str | Path | FlowsConfig | None = None,
    server_url: str | None = None,
    names: Names = "cli",
) -> AnalysisSource:
    """A URL (``http://...``) or ``server_url`` is asked over HTTP; a file is opened
    read-only, or asked through the server that holds it. ``flows`` applies to a
    file read here; a server uses its own flows configuration. ``names``: how
    messages name parameters (``--since`` or ``since``)."""
    from flowscope.cli_common import running_server
    from flowscope.store.database import Database, DatabaseLocked, StoreError

    token = token or os.environ.get("FLOWSCOPE_TOKEN") or None
    text = str(target)
    if server_url is None and text.startswith(("http://", "https://")):
        server_url = text
    if server_url is not None:
        return RemoteSource(server_url, token, names=names)
    config = _flows_config(flows)
    try:
        database = Database(text, read_only=True)
    except DatabaseLocked as exc:
        info = running_server(text)
        if info is None:
            raise AnalysisError(str(exc)) from exc
        return RemoteSource(info.ui_url, token, names=names, held=text)
    except StoreError as exc:
        raise AnalysisError(str(exc)) from exc
    return LocalSource(database, config, names)


def _flows_config(flows: str | Path | FlowsConfig | None) -> FlowsConfig | None:
    from flowscope.analyzer.flows_config import FlowsConfigError

    if flows is None or isinstance(flows, FlowsConfig):
        return flows
    if not isinstance(flows, str | os.PathLike):
        raise AnalysisError(
            f"flows: {flows!r} is {type(flows).__name__}; give a flows.yaml path or a FlowsConfig"
        )
    try:
        return FlowsConfig.load(flows)
    except FlowsConfigError as exc:
        raise AnalysisError(str(exc)) from exc
