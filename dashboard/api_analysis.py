"""The analyzer's JSON API (DESIGN.md §5): map, flows, steps, traces, compare, diagrams.

Thin: each route parses its window, runs one ``Analysis`` call in the thread
pool (DuckDB work blocks) and returns the records' ``as_dict()``. A bad window
or parameter is a 400 with a message, an unknown flow or trace a 404 that names
it (``flowscope.open`` turns that back into UnknownFlow/UnknownTrace); the
fields are documented in docs/api.md.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn, TypeVar, cast

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from flowscope.analysis_sources import attribute_pair, one_comparison
from flowscope.analyzer.analysis import Analysis
from flowscope.analyzer.diagrams.formats import FLOW_DIAGRAMS, MAP_DIAGRAMS, FlowFormat, MapFormat
from flowscope.analyzer.errors import AnalysisError, UnknownFlow, UnknownTrace
from flowscope.analyzer.model import Comparison, Window
from flowscope.analyzer.window import parse_window, timestamp_ns
from flowscope.dashboard.api_schemas import (
    FlowAnswer,
    FlowsAnswer,
    MapAnswer,
    TraceAnswer,
    TracesAnswer,
    answers,
    text_answers,
)
from flowscope.dashboard.query_parameters import known_query_parameters

T = TypeVar("T")

Since = Annotated[
    str | None,
    Query(
        description="window start: a duration back from now (15m, 1h, 7d) or RFC 3339; default 1h"
    ),
]
Until = Annotated[
    str | None, Query(description="window end: a duration back from now or RFC 3339; default now")
]
By = Annotated[
    str | None,
    Query(
        description="split the statistics by this resource or span attribute, e.g. wallet.provider"
    ),
]
MERMAID_TYPE = "text/vnd.mermaid; charset=utf-8"
DOT_TYPE = "text/vnd.graphviz; charset=utf-8"


class MermaidText(PlainTextResponse):
    """A diagram's answer (DOT when asked for): its media type in the OpenAPI description."""

    media_type = "text/vnd.mermaid"


def _text(format: str, diagram: str) -> PlainTextResponse:
    return PlainTextResponse(diagram, media_type=DOT_TYPE if format == "dot" else MERMAID_TYPE)


def window_or_400(
    since: str | None, until: str | None, prefix: str = "", now_ns: int | None = None
) -> Window:
    try:
        return parse_window(since, until, now_ns, (f"{prefix}since", f"{prefix}until"))
    except ValueError as exc:
        raise HTTPException(400, detail={"message": str(exc)}) from exc


def window_dict(window: Window) -> dict[str, str]:
    # Nine fraction digits, as records have them: trimmed, the echo sorted wrongly as text.
    return {"since": timestamp_ns(window.since_ns), "until": timestamp_ns(window.until_ns)}


@dataclass(frozen=True)
class ClientWatch:
    """How a route's analysis learns that its client left, and stops a thread's read."""

    gone: Callable[[], bool]
    interrupt: Callable[[threading.Thread], None]


# Set by the app's analysis gate for the request it lets run (unset: nothing watches).
CLIENT_WATCH: ContextVar[ClientWatch | None] = ContextVar("client_watch", default=None)
# How often a running analysis or SQL query looks whether its client is still there.
CLIENT_POLL_S = 0.25


class _Run:
    """One analysis call on a worker thread, which may be interrupted while (and only
    while) it runs: the thread goes on to other requests after it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __call__(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            self._thread = threading.current_thread()
        try:
            return call(*args, **kwargs)
        finally:
            with self._lock:
                self._thread = None

    def interrupt(self, watch: ClientWatch) -> None:
        with self._lock:  # held: the thread cannot start another request's read meanwhile
            if self._thread is not None:
                watch.interrupt(self._thread)


async def answer(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking analysis in the thread pool; map its errors to HTTP statuses."""
    try:
        watch = CLIENT_WATCH.get()
        if watch is None:
            return await run_in_threadpool(call, *args, **kwargs)
        return await _while_the_client_waits(watch, call, *args, **kwargs)
    except UnknownFlow as exc:
        raise HTTPException(404, detail={"message": str(exc), "flow": exc.flow_id}) from exc
    except UnknownTrace as exc:
        raise HTTPException(404, detail={"message": str(exc), "trace": exc.trace_id}) from exc
    except (AnalysisError, ValueError) as exc:
        raise HTTPException(400, detail={"message": str(exc)}) from exc


async def _while_the_client_waits(
    watch: ClientWatch, call: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """Run the analysis, stopped if its client leaves: a client's Ctrl-C or timeout left
    it running to its end (minutes for some trace searches), holding one of the
    server's analysis turns for an answer nobody would read."""
    run = _Run()
    work = asyncio.ensure_future(run_in_threadpool(run, call, *args, **kwargs))
    left = False
    while not work.done():
        await asyncio.wait({work}, timeout=CLIENT_POLL_S)
        if not work.done() and (left or watch.gone()):
            # Again at each poll: an interrupt while no statement runs (between an
            # analysis's queries) does not stop the next one.
            left = True
            run.interrupt(watch)
    if left and work.exception() is not None:
        raise HTTPException(499, detail={"message": "the client left; its analysis was stopped"})
    return cast(T, work.result())


def analysis_router(analysis: Analysis) -> APIRouter:
    router = APIRouter(
        prefix="/api", tags=["analysis"], dependencies=[Depends(known_query_parameters)]
    )

    @router.get(
        "/map",
        summary="Service map: nodes and edges",
        response_model=None,
        responses=answers(MapAnswer, 400, 404),
    )
    async def service_map(
        since: Since = None,
        until: Until = None,
        flow: Annotated[str | None, Query(description="only the traces of this flow id")] = None,
    ) -> dict[str, Any]:
        window = window_or_400(since, until)
        result = await answer(analysis.service_map, window, flow)
        return {**result.as_dict(), "window": window_dict(window)}

    @router.get(
        "/map/diagram",
        summary="Service map as Mermaid or DOT text",
        response_class=MermaidText,
        responses=text_answers(400, 404),
    )
    async def service_map_diagram(
        format: MapFormat = "mermaid",
        since: Since = None,
        until: Until = None,
        flow: Annotated[str | None, Query(description="only the traces of this flow id")] = None,
    ) -> PlainTextResponse:
        window = window_or_400(since, until)
        result = await answer(analysis.service_map, window, flow)
        # Drawn in the thread pool as the analyses run: drawn here, a slow diagram held
        # the event loop, and /healthz with it.
        return _text(format, await run_in_threadpool(MAP_DIAGRAMS[format], result))

    @router.get(
        "/flows",
        summary="Business flows",
        response_model=None,
        responses=answers(FlowsAnswer, 400),
    )
    async def flows(since: Since = None, until: Until = None, by: By = None) -> dict[str, Any]:
        window = window_or_400(since, until)
        result = await answer(analysis.flows, window, by)
        return {"flows": [f.as_dict() for f in result], "window": window_dict(window)}

    @router.get(
        "/flows/{flow_id}",
        summary="One flow and its steps",
        response_model=None,
        responses=answers(FlowAnswer, 400, 404),
    )
    async def flow(
        flow_id: str, since: Since = None, until: Until = None, by: By = None
    ) -> dict[str, Any]:
        window = window_or_400(since, until)
        result = await answer(analysis.flow, flow_id, window, by)
        return {**result.as_dict(), "window": window_dict(window)}

    @router.get(
        "/flows/{flow_id}/diagram",
        summary="A flow as Mermaid or DOT text",
        response_class=MermaidText,
        responses=text_answers(400, 404),
    )
    async def flow_diagram(
        flow_id: str,
        format: FlowFormat = "mermaid-sequence",
        since: Since = None,
        until: Until = None,
        by: By = None,
    ) -> PlainTextResponse:
        window = window_or_400(since, until)
        detail = await answer(analysis.flow, flow_id, window, by)
        return _text(format, await run_in_threadpool(FLOW_DIAGRAMS[format], detail))

    @router.get(
        "/traces",
        summary="Traces, slowest first",
        response_model=None,
        responses=answers(TracesAnswer, 400, 404),
    )
    async def traces(
        since: Since = None,
        until: Until = None,
        service: Annotated[str | None, Query(description="has a span of this service")] = None,
        operation: Annotated[
            str | None,
            Query(description="has a span with this name (with service: of that service)"),
        ] = None,
        flow: Annotated[str | None, Query(description="belongs to this flow id")] = None,
        min_duration_ms: Annotated[
            float | None,
            # NaN got "should be >= 0", infinity a 400 of another form: both 422 now.
            Query(ge=0, allow_inf_nan=False, description="root duration at least this"),
        ] = None,
        error: Annotated[
            bool | None, Query(description="true: with an error span; false: without")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10_000, description="most traces returned")] = 20,
        attr: Annotated[
            list[str] | None,
            Query(
                description="KEY=VALUE, repeatable: has a span with every such attribute "
                "(its own or its resource's; with service/operation, that span)"
            ),
        ] = None,
        max_duration_ms: Annotated[
            float | None,
            Query(ge=0, allow_inf_nan=False, description="root duration at most this"),
        ] = None,
        sort: Annotated[
            Literal["slowest", "fastest", "recent", "spans"],
            Query(description="slowest first, fastest first, most recent first, most spans first"),
        ] = "slowest",
    ) -> dict[str, Any]:
        window = window_or_400(since, until)
        try:
            pairs = [attribute_pair(text, "attr") for text in attr or []]
        except AnalysisError as exc:
            raise HTTPException(400, detail={"message": str(exc)}) from exc
        result = await answer(
            analysis.traces,
            window,
            service=service,
            operation=operation,
            flow=flow,
            min_duration_ms=min_duration_ms,
            error=error,
            limit=limit,
            attributes=pairs,
            max_duration_ms=max_duration_ms,
            sort=sort,
        )
        return {"traces": [t.as_dict() for t in result], "window": window_dict(window)}

    @router.get(
        "/traces/{trace_id}",
        summary="One trace: span tree and critical path",
        response_model=None,
        responses=answers(TraceAnswer, 400, 404),
    )
    async def trace(
        trace_id: str,
        since: Annotated[
            str | None, Query(description="baseline window start for the step P50s; none: no P50s")
        ] = None,
        until: Annotated[str | None, Query(description="baseline window end")] = None,
    ) -> dict[str, Any]:
        baseline = window_or_400(since, until) if since or until else None
        result = await answer(analysis.trace, trace_id, baseline)
        return {**result.as_dict(), "window": window_dict(baseline) if baseline else None}

    @router.get(
        "/compare",
        summary="Compare two traces, a trace with its flow, two windows or two versions",
        response_model=None,
        responses=answers(Comparison, 400, 404),
    )
    async def compare(
        left: Annotated[str | None, Query(description="traces mode: the left trace id")] = None,
        right: Annotated[str | None, Query(description="traces mode: the right trace id")] = None,
        trace: Annotated[str | None, Query(description="baseline mode: the trace id")] = None,
        flow: Annotated[str | None, Query(description="windows/versions mode: flow id")] = None,
        since: Since = None,
        until: Until = None,
        left_since: Annotated[str | None, Query(description="windows mode")] = None,
        left_until: Annotated[str | None, Query(description="windows mode")] = None,
        right_since: Annotated[str | None, Query(description="windows mode")] = None,
        right_until: Annotated[str | None, Query(description="windows mode")] = None,
        left_version: Annotated[
            str | None, Query(description="versions mode: VERSION, or SERVICE=VERSION")
        ] = None,
        right_version: Annotated[
            str | None, Query(description="versions mode: VERSION, or SERVICE=VERSION")
        ] = None,
    ) -> dict[str, Any]:
        given = {
            "left": left,
            "right": right,
            "trace": trace,
            "flow": flow,
            # since/until are left out: a client may send its window with every question.
            "left_since": left_since,
            "left_until": left_until,
            "right_since": right_since,
            "right_until": right_until,
            "left_version": left_version,
            "right_version": right_version,
        }
        try:
            one_comparison(given, "python")  # before: another mode's were ignored
        except AnalysisError as exc:
            raise HTTPException(400, detail={"message": str(exc)}) from exc
        result: Comparison
        if left and right:
            result = await answer(analysis.compare_traces, left, right)
        elif trace:
            window = window_or_400(since, until) if since or until else None
            result = await answer(analysis.compare_baseline, trace, window)
        elif flow and (left_version or right_version):
            if not (left_version and right_version):
                raise HTTPException(
                    400, detail={"message": "give both left_version and right_version"}
                )
            window = window_or_400(since, until)
            result = await answer(
                analysis.compare_versions, flow, window, left_version, right_version
            )
        elif flow and (left_since or left_until or right_since or right_until):
            if not (left_since or left_until) or not (right_since or right_until):
                # A side with no bound would be the default last hour, often the other
                # side's window too: a 200 of zero deltas that reads as "no change".
                raise HTTPException(400, detail={"message": HALF_WINDOWS})
            # One "now" for both: left_until=30m&right_since=30m must meet exactly.
            now_ns = time.time_ns()
            left_window = window_or_400(left_since, left_until, "left_", now_ns)
            right_window = window_or_400(right_since, right_until, "right_", now_ns)
            result = await answer(analysis.compare_windows, flow, left_window, right_window)
        else:
            raise HTTPException(400, detail={"message": COMPARE_MODES})
        return result.as_dict()

    # Last, so they take only what no route above does: an id with a slash in it
    # (`%2F`, decoded before routing) got FastAPI's bare {"detail": "Not Found"}, not
    # the 404 that names the flow or trace every other unknown id gets.
    @router.get("/flows/{rest:path}", include_in_schema=False, response_model=None)
    async def flow_id_with_a_slash(rest: str) -> NoReturn:
        unknown = UnknownFlow(rest.removesuffix("/diagram"))
        raise HTTPException(404, detail={"message": str(unknown), "flow": unknown.flow_id})

    @router.get("/traces/{rest:path}", include_in_schema=False, response_model=None)
    async def trace_id_with_a_slash(rest: str) -> NoReturn:
        unknown = UnknownTrace(rest)
        raise HTTPException(404, detail={"message": str(unknown), "trace": unknown.trace_id})

    return router


HALF_WINDOWS = (
    "comparing two windows needs both: the left one (left_since, left_until or both) "
    "and the right one (right_since, right_until or both)"
)
COMPARE_MODES = (
    "say what to compare: left=TRACE&right=TRACE (two traces); trace=TRACE&since=&until= "
    "(a trace against its flow's baseline); flow=FLOW&left_since=&left_until=&right_since="
    "&right_until= (two windows); flow=FLOW&left_version=&right_version=&since=&until= "
    "(two service.versions)"
)
