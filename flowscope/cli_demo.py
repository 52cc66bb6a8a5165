"""``flowscope demo`` and ``flowscope reference-app``: the trading platform under load.

``demo`` runs everything a first-time user needs in one foreground process: a
flowscope server, the platform exporting to it, and the load generator; it
prints where to look and stops cleanly on Ctrl-C or after ``--duration``.
``reference-app`` runs the platform alone, exporting wherever it is pointed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flowscope import __version__
from flowscope.cli_common import (
    STOP_POLL_S,
    DurationType,
    StopRequest,
    exit_after_clean_stop,
    fail,
    say,
    server_options,
    serving,
    start_server,
)
from flowscope.reference_app.faults import FAULTS, parse_fault

if TYPE_CHECKING:  # the platform's modules load when a command runs, not for --help
    from flowscope.reference_app.loadgen import LoadConfig, LoadReport
    from flowscope.reference_app.telemetry import ExportConfig

FAULT_HELP = "Switch a fault on at start, e.g. slow-risk=300 (repeatable): " + ", ".join(
    f"{name} ({spec.unit}, default {spec.default:g})" for name, spec in FAULTS.items()
)


def _faults(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, float]:
    active: dict[str, float] = {}
    for text in values:
        try:
            name, magnitude = parse_fault(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
        active[name] = magnitude
    return active


def _load_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options both commands share: the load, the faults, the platform's data."""
    options = [
        click.option(
            "--rate",
            default=10.0,
            show_default=True,
            type=float,
            help="Business flows started per second (0: no load, only serve the platform).",
        ),
        click.option(
            "--concurrency",
            default=16,
            show_default=True,
            type=int,
            help="Most flows in flight at once.",
        ),
        click.option(
            "--duration",
            default=None,
            type=DurationType(off=False),
            help="Stop after this long, e.g. 30s or 5m (default: run until Ctrl-C).",
        ),
        click.option("--seed", default=1, show_default=True, type=int, help="Seed of the load."),
        click.option(
            "--users",
            default=20,
            show_default=True,
            type=int,
            help="Traders the load registers and funds before it starts.",
        ),
        click.option(
            "--fault",
            "faults",
            multiple=True,
            callback=_faults,
            metavar="NAME[=MAGNITUDE]",
            help=FAULT_HELP,
        ),
        click.option(
            "--data-dir",
            default=None,
            type=click.Path(file_okay=False, path_type=Path),
            help="Keep the platform's SQLite databases here (default: a temporary directory).",
        ),
        click.option(
            "--progress/--no-progress",
            default=None,
            help="Show a progress bar (default: when stderr is a terminal).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def register_demo_commands(group: click.Group) -> None:
    group.add_command(demo)
    group.add_command(reference_app)


@click.command()
@server_options
@_load_options
def demo(
    db: str,
    host: str,
    grpc_port: int,
    http_port: int,
    ui_port: int,
    token: str | None,
    flows: str | None,
    retention: timedelta | None,
    **load: Any,
) -> None:
    """Run flowscope, the trading platform and its load together, in the foreground."""
    from flowscope.reference_app.telemetry import ExportConfig
    from flowscope.server import ServeConfig

    # Checked before the server starts: a bad --rate created the database, bound the
    # ports, then failed.
    load_config = _load_config(load)
    config = ServeConfig(
        db=db,
        host=host,
        grpc_port=grpc_port,
        http_port=http_port,
        ui_port=ui_port,
        token=token,
        flows=flows,
        retention=retention,
    )
    server, stop = start_server(config)
    with serving(server):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        export = ExportConfig(otlp_endpoint=server.otlp_http_url, otlp_headers=headers)
        click.echo(f"flowscope {__version__} demo: storing spans in {db}")
        click.echo(f"  OTLP/gRPC  {server.grpc_address}")
        click.echo(f"  OTLP/HTTP  {server.otlp_http_url}/v1/traces")
        click.echo(f"  API        {server.ui_url}")
        guide = _guide(server.ui_url, db, load["faults"], token=bool(token))
        if not stop.requested.is_set():  # a signal during the start: stop at once
            _run_platform(export, load, load_config, stop, what_to_look_at=guide, host=host)


@click.command("reference-app")
@click.option(
    "--otlp-endpoint",
    default=None,
    help="OTLP/HTTP base URL to export to, e.g. http://localhost:4318 (Jaeger, a Collector, "
    "flowscope); /v1/traces is appended.",
)
@click.option(
    "--otlp-header",
    "otlp_headers",
    multiple=True,
    metavar="KEY=VALUE",
    help="Header sent with every export, e.g. 'Authorization=Bearer TOKEN' (repeatable).",
)
@click.option(
    "--otlp-file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write spans to this file as OTLP JSON lines instead (the Collector file exporter's format).",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address the services bind to."
)
@_load_options
def reference_app(
    otlp_endpoint: str | None,
    otlp_headers: tuple[str, ...],
    otlp_file: Path | None,
    host: str,
    **load: Any,
) -> None:
    """Run the trading platform alone (with its load), exporting its spans over OTLP."""
    from flowscope.reference_app.telemetry import ExportConfig

    if (otlp_endpoint is None) == (otlp_file is None):
        raise click.UsageError("give exactly one of --otlp-endpoint URL and --otlp-file PATH")
    headers: dict[str, str] = {}
    for item in otlp_headers:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"--otlp-header must be KEY=VALUE, got {item!r}")
        headers[key.strip()] = value.strip()
    try:
        export = ExportConfig(
            otlp_endpoint=otlp_endpoint, otlp_headers=headers, otlp_file=otlp_file
        )
        export.validate()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    target = otlp_endpoint or f"file {otlp_file}"
    click.echo(f"flowscope {__version__} reference app: exporting spans to {target}")
    load_config = _load_config(load)
    stop = StopRequest(stopping="exporting the last spans")
    stop.install()
    undelivered = _run_platform(export, load, load_config, stop, what_to_look_at="", host=host)
    # As serve and demo leave: past the interpreter's teardown, where a second Ctrl-C
    # found Python's default handler back and killed the process by the signal.
    exit_after_clean_stop(1 if undelivered else 0)


def _guide(ui_url: str, db: str, faults: dict[str, float], token: bool = False) -> str:
    lines = [
        "What to look at:",
        f"  service map       {ui_url}/api/map         (flowscope map --db {db})",
        "                    client-gateway -> wallet-service errors with no fault: a new "
        "wallet's GET /balance is a 404, an error on the client span (OpenTelemetry's rule)",
        f"  business flows    {ui_url}/api/flows       (flowscope flows --db {db})",
        # Not "slowest": without a fault, funding is as slow (a reviewer measured it
        # slower), and the order flow is the one with the most to see.
        "  richest flow      POST /v1/order: risk check, funds blocking, order insert, "
        "then matching-engine and market-data asynchronously",
    ]
    for name, magnitude in faults.items():
        lines.append(f"  fault {name}={magnitude:g}: look at {FAULTS[name].shows}")
    if token:  # else each of these gets a 401
        lines.append(
            "  (with --token: set FLOWSCOPE_TOKEN for the commands, and send "
            "'Authorization: Bearer <token>' to the API)"
        )
    return "\n".join(lines)


def _load_config(load: dict[str, Any]) -> LoadConfig:
    """The load options as a LoadConfig; a usage error for bad ones."""
    from flowscope.reference_app.loadgen import LoadConfig

    if not (0 <= load["rate"] < math.inf):  # NaN too: it ran with no load, silently
        raise click.UsageError(
            f"rate must be 0 (no load) or more flows per second, got {load['rate']:g}"
        )
    duration: timedelta | None = load["duration"]
    load_config = LoadConfig(
        rate=load["rate"] if load["rate"] > 0 else 1.0,
        concurrency=load["concurrency"],
        duration_s=duration.total_seconds() if duration else None,
        seed=load["seed"],
        users=load["users"],
        # A reused --data-dir still holds the last run's traders: new e-mail addresses,
        # or every registration is a 409 and the warm-up gives up.
        run_id=f"{time.time_ns():x}" if load["data_dir"] else "",
    )
    try:
        load_config.validate()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    return load_config


def _run_platform(
    export: ExportConfig,
    load: dict[str, Any],
    load_config: LoadConfig,
    stop: StopRequest,
    what_to_look_at: str,
    host: str = "127.0.0.1",
) -> int:
    """Run the platform and its load until done or stopped; the spans not delivered."""
    from flowscope.reference_app.app import AppConfig, TradingApp
    from flowscope.reference_app.loadgen import format_report

    app = TradingApp(
        AppConfig(
            export=export,
            host=host,
            data_dir=load["data_dir"],
            faults=load["faults"],
            seed=load["seed"],
        )
    )
    try:
        app.start()
    except (OSError, RuntimeError) as exc:
        fail(str(exc))
    try:
        click.echo(f"  trading gateway {app.gateway_url}")
        click.echo(
            f"  switch faults   curl -X POST {app.gateway_url}/admin/faults "
            '-H \'Content-Type: application/json\' -d \'{"fault": "slow-risk", "magnitude": 300}\''
        )
        if what_to_look_at:
            click.echo(what_to_look_at)
        click.echo("ready; Ctrl-C stops and flushes")
        sys.stdout.flush()
        show = sys.stderr.isatty() if load["progress"] is None else load["progress"]
        report = asyncio.run(_drive(app.gateway_url, load_config, load["rate"] > 0, show, stop))
        if report is not None:
            click.echo(format_report(report))
    finally:
        click.echo("reference app: stopping; exporting the last spans", err=True)
        app.shutdown()
    undelivered = app.telemetry.undelivered if app.telemetry is not None else 0
    if undelivered:
        where = export.otlp_endpoint or f"file {export.otlp_file}"
        say(
            f"reference app: {undelivered:,} spans were not delivered to {where} "
            "(the exporter's messages above say why)"
        )
    return undelivered


async def _until(stop: asyncio.Event, duration_s: float | None) -> None:
    """Until ``stop`` is set or ``duration_s`` has passed, this loop waking every
    STOP_POLL_S: the kernel may hand a signal to another thread, and its handler runs
    only when this, the main thread, runs Python code. Without load nothing else woke
    the loop, and such a SIGTERM left the demo up for good."""
    loop = asyncio.get_running_loop()
    deadline = None if duration_s is None else loop.time() + duration_s
    while not stop.is_set():
        left = STOP_POLL_S if deadline is None else min(STOP_POLL_S, deadline - loop.time())
        if left <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), left)


async def _drive(
    gateway_url: str, config: LoadConfig, with_load: bool, progress: bool, request: StopRequest
) -> LoadReport | None:
    """The load in the foreground until its duration is over or a stop is requested."""
    from flowscope.reference_app.loadgen import LoadGenerator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wake() -> None:
        # Called from a signal handler (between this loop's steps), maybe after the loop
        # has ended: the shutdown that follows must not fail on it.
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    request.on_stop(wake)
    if not with_load:
        await _until(stop, config.duration_s)
        return None
    bar = _progress_bar(config) if progress else None
    done = 0

    def advance(report: LoadReport) -> None:
        nonlocal done
        if bar is not None:
            bar.update(report.requests - done)
            bar.set_postfix(errors=report.errors, refresh=False)
        done = report.requests

    try:
        return await LoadGenerator(gateway_url, config).run(stop, advance)
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(config: LoadConfig) -> Any:
    from tqdm import tqdm

    total = (
        None if config.duration_s is None else int(config.duration_s * config.rate) + config.users
    )
    return tqdm(total=total, unit="flow", desc="load", file=sys.stderr, dynamic_ncols=True)
