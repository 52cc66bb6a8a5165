"""The dashboard's FastAPI app: JSON API and health (pages come with the dashboard issue)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from flowscope import __version__
from flowscope.analyzer.flows_config import FlowsConfig
from flowscope.collector.auth import BEARER_CHALLENGE, token_matches
from flowscope.collector.ingest import Ingest
from flowscope.collector.ingest_process import IngestProcess
from flowscope.dashboard.api_schemas import AuthAnswer, Health, SqlAnswer, answers
from flowscope.dashboard.body_limit import BodyLimit
from flowscope.dashboard.query_parameters import EmptyValuesNotGiven, known_query_parameters
from flowscope.durations import format_duration
from flowscope.http_server import CLIENT_GONE, HeadAsGet
from flowscope.store.database import Database, DatabaseFailed, WritesBehind, read_failure
from flowscope.store.retention import RetentionSweeper
from flowscope.store.writer import SpanWriter

log = logging.getLogger(__name__)


@dataclass
class AppContext:
    database: Database
    writer: SpanWriter | None = None
    ingest: Ingest | IngestProcess | None = None
    token: str | None = None
    sql_row_limit: int = 10_000
    sql_timeout_s: float = 10.0
    flows_config: FlowsConfig | None = None
    started: float = field(default_factory=time.time)
    otlp_http_url: str | None = None  # where this server's OTLP/HTTP receiver listens
    retention: RetentionSweeper | None = None  # None: --retention off, or no writer


STATIC = Path(__file__).parent / "static"
# /healthz waits this long for the spans acknowledged before it to be committed, so
# its count includes them; past it, it answers with those committed (a liveness probe
# with a 1 s timeout restarted an overloaded server, whose health took 5-13 s).
HEALTH_WAIT_S = 0.5
MAX_HEALTH_WAITS = 4


class _Waits:
    """Waits for acknowledged spans to be committed, each on a thread of its own that
    ends with its wait (a health request that times out leaves it to finish); at most
    ``MAX_HEALTH_WAITS`` at once, past which a request answers without waiting."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._running = threading.BoundedSemaphore(MAX_HEALTH_WAITS)

    def caught_up(self, timeout_s: float) -> bool:
        if not self._running.acquire(blocking=False):
            return False
        done = threading.Event()

        def wait() -> None:
            try:
                self._database.await_writes()
                done.set()
            except WritesBehind:
                pass  # not caught up: spans_exact stays false
            finally:
                self._running.release()

        threading.Thread(target=wait, name="health-wait", daemon=True).start()
        return done.wait(timeout_s)


def _json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot hold (NaN, infinities, other objects) as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class SqlQuery(BaseModel):
    # A misspelt key ("timeout" for timeout_s) was dropped without a word, and the
    # query ran to the server's limit instead (docs review).
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(description="one SELECT or WITH statement")
    limit: int | None = Field(default=None, ge=1, description="row limit (capped by the server's)")
    timeout_s: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="time limit (capped by the server's)"
    )


WRITES_BEHIND_RETRY_S = 5
# SQL queries run at once; one past them waits SQL_WAIT_S for its turn, then is told to
# retry. Uncapped, 40 slow queries took every worker thread, and /healthz and the
# analysis routes waited 8.6 s for one.
MAX_SQL_QUERIES = 4
SQL_WAIT_S = 2.0
# Analysis requests (map, flows, traces, ...) running at once; more wait their turn,
# up to ANALYSIS_WAIT_S, holding no worker thread.
MAX_ANALYSES = 8
ANALYSIS_WAIT_S = 30.0
SQL_RETRY_S = 1
# A query stopped by the server stopping: a restart takes a few seconds.
SQL_STOPPED_RETRY_S = 5


class RequireToken:
    """401 for an /api/ request without the server's bearer token (DESIGN.md §6).

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's wrapper hands the
    app the body through ``Request.stream()``, which skips an empty message, so the
    wake-up a stopping server gives a request whose body still comes
    (http_server.SERVER_STOPPING) never reached ``BodyLimit``, and the request
    waited out uvicorn's grace to a 500."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith("/api/")
            and not token_matches(self.token, _header_values(scope, b"authorization"))
        ):
            refusal = JSONResponse(
                {"detail": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": BEARER_CHALLENGE},
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _header_values(scope: Any, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope["headers"] if key.lower() == name]


def create_app(context: AppContext) -> FastAPI:
    # /docs from files shipped in the package: FastAPI's own page loads Swagger UI from
    # a CDN, and without the internet it stayed blank. (ReDoc would need one too: off.)
    app = FastAPI(title="flowscope", version=__version__, docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(HeadAsGet)
    app.add_middleware(EmptyValuesNotGiven)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="flowscope API",
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
            # The default validator badge is an image from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        body_refused = any(tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors())
        if body_refused and not _is_json(media_type):
            # curl -d sends a form, requests' data= no Content-Type at all: the 422
            # quoted the body as Python bytes and said nothing of the header to add
            # (docs review, diff review).
            sent = media_type or "a body without a Content-Type"
            return JSONResponse(
                {
                    "detail": {
                        "message": f"the body is read as JSON, not {sent}: send it "
                        'with Content-Type: application/json, as {"sql": "SELECT 1"}'
                    }
                },
                status_code=415,
            )
        # FastAPI's own answer echoes the input; a NaN there (Python's JSON reads it)
        # cannot be written as JSON, and the 422 became a 500.
        return JSONResponse({"detail": _json_safe(exc.errors())}, status_code=422)

    @app.exception_handler(DatabaseFailed)
    async def database_failed(_request: Request, exc: DatabaseFailed) -> JSONResponse:
        # DuckDB invalidated the database: no read can be answered until the server is
        # started again (the server stops; its acknowledged spans are in the journal).
        context.database.note_error(exc)
        return JSONResponse({"detail": {"message": context.database.failed}}, status_code=503)

    @app.exception_handler(duckdb.IOException)
    async def file_unreadable(_request: Request, exc: duckdb.IOException) -> JSONResponse:
        # A damaged file (cut short) opens and fails at the reads that reach the lost
        # blocks: each was a 500 with a traceback in the log (diff review).
        message = read_failure(context.database.path, exc)
        log.error("a read failed: %s", message)
        return JSONResponse({"detail": {"message": message}}, status_code=500)

    @app.exception_handler(duckdb.InterruptException)
    async def read_stopped(_request: Request, exc: duckdb.InterruptException) -> JSONResponse:
        # The server is stopping: its shutdown interrupts the reads in progress. They
        # were a 500 with a traceback in the log, where a stopped SQL query is a 503.
        stopping = context.database.reads_stopped.is_set()
        why = "the server is stopping" if stopping else "the read was interrupted"
        return JSONResponse(
            {"detail": {"message": f"the read was stopped: {why}"}},
            status_code=503,
            headers={"Retry-After": str(SQL_STOPPED_RETRY_S)},
        )

    @app.exception_handler(duckdb.OutOfMemoryException)
    async def out_of_memory(_request: Request, exc: duckdb.OutOfMemoryException) -> JSONResponse:
        # DuckDB's memory_limit (--memory-limit) was reached, by this read or by what runs
        # beside it (a derive pass over spans of megabyte attributes took 1 GB): a 500
        # with a traceback in the log for each read, where a later try may succeed.
        first_line = str(exc).split("\n", 1)[0]
        log.warning("a read ran out of memory: %s", first_line)
        return JSONResponse(
            {
                "detail": {
                    "message": f"the database ran out of memory for this read ({first_line}); "
                    "try again shortly, or start the server with a larger --memory-limit"
                }
            },
            status_code=503,
            headers={"Retry-After": str(SQL_STOPPED_RETRY_S)},
        )

    @app.exception_handler(WritesBehind)
    async def writes_behind(_request: Request, exc: WritesBehind) -> JSONResponse:
        # The writer cannot commit: no answer rather than one that misses acknowledged
        # spans without saying so.
        return JSONResponse(
            {"detail": {"message": str(exc)}},
            status_code=503,
            headers={"Retry-After": str(WRITES_BEHIND_RETRY_S)},
        )

    analysis_turns = asyncio.Semaphore(MAX_ANALYSES)  # waiting holds no worker thread
    from flowscope.dashboard.api_analysis import CLIENT_POLL_S, CLIENT_WATCH, ClientWatch

    def stop_thread_reads(thread: threading.Thread) -> None:
        context.database.interrupt_reads(only=thread)

    @app.middleware("http")
    async def analysis_gate(request: Request, call_next: Any) -> Any:
        # The analysis routes take a worker thread each for as long as they run, and
        # /healthz needs one too: 41 slow trace searches (attr= repeated) left it
        # unanswered for minutes (network review). SQL has its own turns.
        path = request.url.path
        if not path.startswith("/api/") or path == "/api/sql":
            return await call_next(request)
        try:
            await asyncio.wait_for(analysis_turns.acquire(), ANALYSIS_WAIT_S)
        except TimeoutError:
            return JSONResponse(
                {
                    "detail": {
                        "message": f"{MAX_ANALYSES} analyses are running, the server's "
                        f"limit, and none ended within {ANALYSIS_WAIT_S:g} s; retry in a moment"
                    }
                },
                status_code=503,
                headers={"Retry-After": str(SQL_RETRY_S)},
            )
        try:
            client_gone = (request.scope.get("extensions") or {}).get(CLIENT_GONE)
            if client_gone is not None and client_gone():
                # Gave up while waiting: its turn ran for nobody, and live requests got
                # 503 behind such ones (diff review).
                return Response(status_code=499)
            watch = None
            if client_gone is not None:
                watch = ClientWatch(client_gone, stop_thread_reads)
            token = CLIENT_WATCH.set(watch)
            try:
                return await call_next(request)
            finally:
                CLIENT_WATCH.reset(token)
        finally:
            analysis_turns.release()

    # After the token check (a body is not read for a wrong token), before a turn is taken.
    app.add_middleware(BodyLimit)

    # Added last, so it runs first: no turn for a wrong token.
    app.add_middleware(RequireToken, token=context.token)

    @app.api_route("/v1/traces", methods=["POST", "PUT", "GET"], include_in_schema=False)
    def not_the_otlp_port() -> JSONResponse:
        # An exporter pointed at the API port got a bare "Not Found"; exporters log the
        # body of a refusal, so it says where spans go.
        where = f"{context.otlp_http_url}/v1/traces" if context.otlp_http_url else "its OTLP port"
        return JSONResponse(
            {"detail": f"this is flowscope's API port: send OTLP/HTTP to {where}"},
            status_code=404,
        )

    @app.get("/")
    def index(request: Request) -> dict[str, Any]:
        """Where to go: the HTML dashboard pages are not built yet, the JSON API is."""
        base = str(request.base_url).rstrip("/")
        return {
            "flowscope": __version__,
            "pages": "not built yet; use the JSON API below, the CLI or flowscope.open",
            "api_docs": f"{base}/docs",
            "health": f"{base}/healthz",
            "service_map": f"{base}/api/map",
            "service_map_mermaid": f"{base}/api/map/diagram?format=mermaid",
            "flows": f"{base}/api/flows",
            "traces": f"{base}/api/traces",
            "sql": f"POST {base}/api/sql",
        }

    waits = _Waits(context.database)

    @app.get(
        "/healthz",
        response_model=None,
        responses={200: {"model": Health}, 503: {"model": Health, "description": "failed"}},
    )
    def healthz(
        wait_s: float = Query(
            HEALTH_WAIT_S,
            ge=0,
            le=60,
            allow_inf_nan=False,
            description="how long to wait for acknowledged spans to be committed and counted, "
            "and for DuckDB's block counts",
        ),
    ) -> Any:
        if context.database.failed is None:  # DuckDB refuses every statement after it
            try:
                return _health(wait_s)
            except DatabaseFailed as exc:
                context.database.note_error(exc)
            except duckdb.OutOfMemoryException as exc:
                # DuckDB's memory limit met by a count here (a derive pass or query beside
                # it holding the rest): the app's 503 for reads, without a status, made
                # a liveness probe see a server that is up and storing as down (1 answer
                # in 200 under --memory-limit 20MB and a load).
                first_line = str(exc).split("\n", 1)[0]
                partial = f"the database ran out of memory for this answer ({first_line})"
                head = _health_head() | {
                    "spans": None,
                    "partial": f"{partial}: its statistics are left out; ask again shortly",
                }
                if head["status"] == "failed":  # a dead ingest process stays that
                    return JSONResponse(head, status_code=503)
                if head["status"] == "ok":  # "stopping" stays
                    head["status"] = "degraded"
                return head
            except duckdb.InterruptException:
                # The server is stopping (its shutdown interrupts reads): a 500 with a
                # traceback reached a probe polling as the ingest process died.
                head = _health_head() | {"spans": None}
                if head["status"] != "failed":
                    head["status"] = "stopping"
                return JSONResponse(head, status_code=503)
        failed = {"status": "failed", "failure": context.database.failed, "spans": None}
        return JSONResponse(_health_head() | failed, status_code=503)

    def _health_head() -> dict[str, Any]:
        """The fields every health answer has, none of them from DuckDB."""
        writer = context.writer
        head: dict[str, Any] = {
            "status": "ok" if writer is None or writer.running else "stopping",
            "version": __version__,
            "pid": os.getpid(),
            "database": context.database.path,
            "spans_exact": False,
            "writer_queue_spans": writer.queued_spans if writer else 0,
            "writer_queue_bytes": writer.queued_bytes if writer else 0,
            "uptime_s": round(time.time() - context.started, 3),
        }
        ingest = context.ingest
        if isinstance(ingest, IngestProcess) and ingest.failed:
            # No OTLP receivers: whatever else the answer says, a probe must see it.
            head |= {"status": "failed", "failure": ingest.failed}
        return head

    def _health(wait_s: float) -> Any:
        writer = context.writer
        deadline = time.monotonic() + wait_s
        caught_up = waits.caught_up(wait_s)
        body = _health_head() | {
            "spans": context.database.stored_span_count(),
            "spans_exact": caught_up,
        }
        # A checkpoint holds DuckDB's block counts (16 s under a flood of big spans):
        # past what is left of the request's wait the last counts read are given, with
        # their age.
        disk = context.database.disk_usage(max(0.0, deadline - time.monotonic()))
        if disk is not None:
            body["disk"] = asdict(disk) | {
                "bytes_per_span": round(disk.file_bytes / body["spans"], 1)
                if body["spans"]
                else None
            }
        if writer is not None:
            stats = writer.stats
            body["writer"] = {
                "committed_spans": stats.committed_spans,
                "duplicate_spans": stats.duplicate_spans,
                "commits": stats.commits,
                "failed_commits": stats.failed_commits,
                "dedup_window_spans": writer.dedup_window_size,
                "last_error": writer.last_error,
            }
            if writer.last_error is not None and body["status"] == "ok":
                # Its commits are failing (a full disk, say) and being retried: alive,
                # and a restart would not help, but the spans are not getting stored.
                body["status"] = "degraded"
            if writer.deriver is not None:
                # How far the analysis tables lag the spans (readers make up for it).
                body["derivation"] = {
                    "pending_traces": int(context.database.fetch("derive_queue_size")[0][0]),
                    "passes": writer.deriver.passes,
                    "failures": writer.deriver.failures,
                    # Traces taken out of the queue because deriving them failed (logged).
                    "set_aside_traces": writer.deriver.set_aside,
                    # How old a settled read's answer may be (None: reads are exact).
                    "last_pass_age_s": _rounded(writer.deriver.lag()),
                    "last_error": writer.deriver.failing,
                }
                if writer.deriver.failing is not None and body["status"] == "ok":
                    # Passes keep failing (short of memory, say), and reads, which derive
                    # the queue themselves, with them: "ok" beside every /api/flows a 503
                    # (cap review).
                    body["status"] = "degraded"
        sweeper = context.retention
        if sweeper is not None:
            # Sweeps log at INFO (hidden by default): whether retention runs was a
            # question for SQL.
            body["retention"] = {
                "keep": format_duration(sweeper.keep),
                "every_s": sweeper.interval.total_seconds(),
                "last_sweep": _utc_text(sweeper.last_sweep),
                "last_cutoff": _utc_text(sweeper.last_cutoff),
                "last_deleted_spans": sweeper.last_deleted,
                "deleted_spans": sweeper.deleted,
            }
        if isinstance(context.ingest, IngestProcess):
            # The receivers, their queue and the dedup window live in the ingest process.
            # The wait for the spans above asked it (a ping), and its answer carries
            # these; when that wait ran past wait_s, they are the last answer's, a
            # moment older than the span count.
            child = context.ingest.last_stats
            counters = child.counters
            body["writer_queue_spans"] = child.queued_spans
            body["writer_queue_bytes"] = child.queued_bytes
            if "writer" in body:
                body["writer"]["duplicate_spans"] += child.duplicate_spans
                body["writer"]["dedup_window_spans"] = child.dedup_window_spans
        elif context.ingest is not None:
            counters = context.ingest.counters
        if context.ingest is not None:
            body["ingest"] = {
                "requests": counters.requests,
                "accepted_spans": counters.accepted_spans,
                "rejected_spans": counters.rejected_spans,
                "refused_requests": counters.refused_requests,
                "storage_error": counters.storage_error,
            }
            if counters.storage_error is not None and body["status"] == "ok":
                # The journal cannot be written (a full disk while the writer was idle):
                # every request is answered "retry later".
                body["status"] = "degraded"
        if body["status"] == "failed":  # no OTLP receivers: a probe must see it
            return JSONResponse(body, status_code=503)
        return body

    sql_turns = asyncio.Semaphore(MAX_SQL_QUERIES)  # waiting holds no worker thread

    @app.post(
        "/api/sql",
        response_model=None,
        responses=answers(SqlAnswer, 400, 408, 413, 415, 503),
        dependencies=[Depends(known_query_parameters)],
    )
    async def sql(query: SqlQuery, request: Request) -> Any:
        from flowscope.store.sandbox import (
            SqlError,
            SqlRefused,
            SqlStopped,
            run_sandboxed,
            stopped_by_close,
        )

        limit = min(query.limit or context.sql_row_limit, context.sql_row_limit)
        timeout_s = min(query.timeout_s or context.sql_timeout_s, context.sql_timeout_s)
        try:
            await asyncio.wait_for(sql_turns.acquire(), SQL_WAIT_S)
        except TimeoutError:
            raise HTTPException(
                503,
                detail={
                    "message": f"{MAX_SQL_QUERIES} SQL queries are running, the server's "
                    f"limit, and none ended within {SQL_WAIT_S:g} s; retry in a moment"
                },
                headers={"Retry-After": str(SQL_RETRY_S)},
            ) from None
        gone = threading.Event()
        try:
            # The worker thread is waited for even if the client goes, but the query is
            # stopped then: a client's Ctrl-C left it running to its time limit (four
            # such held every turn), using the CPU for an answer nobody would read.
            work = asyncio.ensure_future(
                run_in_threadpool(
                    run_sandboxed,
                    context.database,
                    query.sql,
                    row_limit=limit,
                    timeout_s=timeout_s,
                    cancel=gone,
                )
            )
            client_gone = (request.scope.get("extensions") or {}).get(CLIENT_GONE)
            while not work.done():
                await asyncio.wait({work}, timeout=CLIENT_POLL_S)
                if work.done():
                    break
                if context.database.reads_stopped.is_set():
                    # As the server stops: a query DuckDB cannot interrupt (one huge value
                    # built in one function call) was a 500 after uvicorn's graceful wait.
                    # Its thread is left to it (the close then leaves the file to its
                    # WAL, as for any read that would not stop).
                    raise stopped_by_close(context.database)
                if await request.is_disconnected() or (client_gone and client_gone()):
                    gone.set()
            result = work.result()
        except SqlRefused as exc:
            raise HTTPException(400, detail={"rule": exc.rule, "message": exc.message}) from exc
        except SqlStopped as exc:  # nothing wrong with the query: ask again later
            raise HTTPException(
                503,
                detail={"rule": None, "message": str(exc)},
                headers={"Retry-After": str(SQL_STOPPED_RETRY_S)},
            ) from exc
        except SqlError as exc:
            raise HTTPException(400, detail={"rule": None, "message": str(exc)}) from exc
        finally:
            sql_turns.release()
        return {
            "columns": result.columns,
            "types": result.types,
            "rows": result.rows,
            "truncated": result.truncated,
            "row_limit": limit,
            "elapsed_ms": round(result.elapsed_ms, 3),
        }

    from flowscope.analyzer.analysis import Analysis
    from flowscope.dashboard.api_analysis import analysis_router

    app.include_router(analysis_router(Analysis(context.database, context.flows_config)))
    _declare_bearer_auth(app, required=bool(context.token))
    return app


# The answers' records whose every field is always sent (as_dict() of a dataclass),
# null when it has no value, though the field has a default.
ALWAYS_SENT = ("Edge", "Flow", "Step", "StepDelta", "TraceAnswer", "TraceSpan")


def _is_json(media_type: str) -> bool:
    """Whether FastAPI reads a body of ``media_type`` as JSON (``application/*+json``)."""
    main, _, sub = media_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _declare_bearer_auth(app: FastAPI, *, required: bool) -> None:
    """Say in the OpenAPI description what the token middleware enforces, so clients
    generated from it, and /docs's Authorize button, send the token."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        scheme = {
            "type": "http",
            "scheme": "bearer",
            "description": "the server's --token; required on /api/* when it has one",
        }
        components = schema.setdefault("components", {})
        for name in ALWAYS_SENT:
            # Fields with a default (None: an async edge's lag, a group) came out as
            # optional, and clients generated from the description took them so; the
            # answers always carry every field of these records.
            record = components.get("schemas", {}).get(name)
            if record is not None:
                record["required"] = list(record.get("properties", {}))
        components.setdefault("securitySchemes", {})["bearer"] = scheme
        components.setdefault("schemas", {})["AuthAnswer"] = AuthAnswer.model_json_schema()
        auth = {"$ref": "#/components/schemas/AuthAnswer"}
        refusal = {"$ref": "#/components/schemas/RefusalAnswer"}
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/api/"):
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}] if required else [{}, {"bearer": []}]
                    responses = operation.setdefault("responses", {})
                    responses["401"] = {
                        "description": "missing or wrong bearer token",
                        "content": {"application/json": {"schema": auth}},
                    }
                    responses["403"] = {
                        "description": "a loopback server without --token answers only "
                        "requests whose Host names this machine (DNS rebinding guard)",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                    busy = ", or the SQL queries running at once are at their limit"
                    responses["503"] = {
                        "description": "acknowledged spans cannot be committed yet "
                        f"(the writer's last error){busy if path == '/api/sql' else ''}; "
                        "Retry-After says when to ask again",
                        "content": {"application/json": {"schema": refusal}},
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _utc_text(moment: datetime | None) -> str | None:
    """A naive UTC time as RFC 3339 with a Z (None stays None)."""
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"
