"""``flowscope serve``: one process owning the DuckDB file (DESIGN.md §2).

Start order: database, writer, OTLP receivers, dashboard; shutdown in reverse,
and the writer commits everything already accepted before the file closes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flowscope.collector.auth import TOKEN_RULE, is_valid_token
from flowscope.collector.decode import DEFAULT_MAX_BYTES
from flowscope.collector.ingest import Ingest
from flowscope.collector.ingest_process import IngestProcess, IngestSettings
from flowscope.collector.receivers import Receivers, ReceiverSettings
from flowscope.dashboard.app import AppContext, create_app
from flowscope.durations import DEFAULT_RETENTION, MAX_RETENTION, TOO_LONG_RETENTION
from flowscope.http_server import HttpServer, binds_loopback, raise_open_file_limit
from flowscope.store.database import Database, StoreError, remove_new_database
from flowscope.store.dedup import pack_keys
from flowscope.store.retention import RetentionSweeper
from flowscope.store.wal_keeper import WalKeeper
from flowscope.store.writer import MAX_QUEUED_BYTES, SpanWriter

log = logging.getLogger(__name__)
# How long a stop waits for the writer's last commit (a commit of 30 GB of attributes
# took longer; the process then leaves without closing the database under it).
WRITER_STOP_S = 30.0
# And for the derive thread's last pass, after it: a pass over spans of 8 MB attributes
# spent most of a stop in its commit's checkpoint.
DERIVE_STOP_S = 60.0
# What DuckDB's memory_limit setting accepts (a positive size with a unit).
_MEMORY_LIMIT = re.compile(r"^\s*(?=[\d.]*[1-9])\d+(?:\.\d+)?\s*(?:[KMGT]i?B)\s*$", re.IGNORECASE)
# A web origin as a browser sends it: scheme://host[:port], nothing after.
_ORIGIN = re.compile(
    r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[^\s/?#:@\[\],]+)(:[0-9]{1,5})?", re.IGNORECASE
)
MAX_REQUEST_BYTES_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class ServeConfig:
    db: str = "flowscope.duckdb"
    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    ui_port: int = 8686
    token: str | None = None
    retention: timedelta | None = DEFAULT_RETENTION
    max_request_bytes: int = DEFAULT_MAX_BYTES
    max_queued_spans: int = 200_000
    max_queued_bytes: int = MAX_QUEUED_BYTES
    dedup_window: int = 1_000_000
    memory_limit: str = ""
    decode_workers: int = -1  # -1: one per core beyond the first, at least one
    flows: str | None = None  # flows.yaml naming and matching flows for the API
    cors_origins: tuple[str, ...] = ()  # web origins whose browsers may send OTLP/HTTP
    # The OTLP receivers in their own process (collector/ingest_process.py); False:
    # in this one. A database without a file (:memory:) has no journal to share.
    ingest_process: bool = True

    @property
    def decode_worker_count(self) -> int:
        if self.decode_workers >= 0:
            return self.decode_workers
        return max(1, (os.cpu_count() or 1) - 1)

    def validate(self) -> None:
        """Raise ValueError naming the option (as the CLI spells it) of the first bad value."""
        if self.flows is not None:
            from flowscope.analyzer.flows_config import FlowsConfig

            try:
                FlowsConfig.load(self.flows)
            except (OSError, ValueError) as exc:
                # FlowsConfigError messages start with the file already.
                raise ValueError(f"--flows {exc}") from exc
        ports: dict[int, str] = {}
        for name in ("grpc_port", "http_port", "ui_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ValueError(f"{name.replace('_', '-')} must be 0..65535, got {value}")
            if value and value in ports:
                raise ValueError(
                    f"{ports[value]} and {name.replace('_', '-')} are both {value}; "
                    "each port needs its own number"
                )
            ports[value] = name.replace("_", "-")
        if not self.host.strip():
            raise ValueError("host must be an address or host name, e.g. 127.0.0.1 or 0.0.0.0")
        if self.token == "":  # `--token "$UNSET"`: open to all, without a word
            raise ValueError("token is empty: give the token, or leave it out to require none")
        if self.token is not None and not is_valid_token(self.token):
            raise ValueError(f"token must be {TOKEN_RULE}")
        if not str(self.db).strip():
            raise ValueError("db must name a file (an empty path is an in-memory database)")
        if not 1024 <= self.max_request_bytes <= MAX_REQUEST_BYTES_LIMIT:
            raise ValueError(
                f"max-request-bytes must be 1024..{MAX_REQUEST_BYTES_LIMIT} "
                f"(gRPC takes a 32-bit size), got {self.max_request_bytes}"
            )
        if self.max_queued_spans < 1:
            raise ValueError(f"max-queued-spans must be at least 1, got {self.max_queued_spans}")
        if self.max_queued_bytes < 1024:
            raise ValueError(f"max-queued-bytes must be at least 1024, got {self.max_queued_bytes}")
        if self.dedup_window < 0:
            raise ValueError(f"dedup-window must be 0 (off) or more, got {self.dedup_window}")
        if self.decode_workers < -1:
            raise ValueError(
                f"decode-workers must be -1 (automatic), 0 or more, got {self.decode_workers}"
            )
        if self.memory_limit and not _MEMORY_LIMIT.match(self.memory_limit):
            raise ValueError(
                f"memory-limit {self.memory_limit!r} is not a size: use a number and a unit "
                "(KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 2GB"
            )
        if self.retention is not None and self.retention <= timedelta(0):
            raise ValueError("retention must be positive (or 'off')")
        for origin in self.cors_origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                # A browser sends exactly scheme://host[:port]: "https://a.com/" would
                # never match, and the page's spans be refused without a word here.
                raise ValueError(
                    f"cors-origin {origin!r} is not an origin: give scheme://host[:port] "
                    "as the page's address bar shows it, without a path (or * for any); "
                    "repeat the option for more, or separate them by spaces"
                )
        if self.retention is not None and self.retention > MAX_RETENTION:
            raise ValueError(TOO_LONG_RETENTION)

    @property
    def is_loopback(self) -> bool:
        return binds_loopback(self.host)


def server_info_path(db: str) -> Path:
    """Where a running server says how to reach it, for CLI commands on the same file:
    beside the file itself, so a reader naming it through a symbolic link finds it."""
    return Path(f"{os.path.realpath(db)}.server.json")


class FlowscopeServer:
    def __init__(self, config: ServeConfig) -> None:
        config.validate()
        self.config = config
        self.database: Database | None = None
        self.writer: SpanWriter | None = None
        self.ingest: Ingest | IngestProcess | None = None
        # Called with a message when the server cannot go on (its ingest process died).
        self.on_failure: Callable[[str], None] | None = None
        self.receivers: Receivers | None = None  # here, with --no-ingest-process
        self.ui: HttpServer | None = None
        self.retention: RetentionSweeper | None = None
        self.wal_keeper: WalKeeper | None = None
        self._info_written = False

    def start(self) -> None:
        if self.database is not None:  # started already (a second set of parts would leak)
            return
        cfg = self.config
        raise_open_file_limit()  # before the ingest process starts: it inherits it
        created = not os.path.lexists(cfg.db)
        try:
            self.database = Database(cfg.db, memory_limit=cfg.memory_limit)
            self.database.stop_reason = "the server is stopping"
            self.database.on_failed = self._failed
            separate = cfg.ingest_process and self.database.journal_dir is not None
            self.writer = SpanWriter(
                self.database,
                max_queued_spans=cfg.max_queued_spans,
                max_queued_bytes=cfg.max_queued_bytes,
                # The ingest process keeps the window for what it receives.
                dedup_window=0 if separate else cfg.dedup_window,
                external_journal=separate,
            )
            self.writer.start()
            if self.database.journal_dir is not None:  # a file, so a WAL
                # After the writer took the file's journal: this server alone writes it.
                self.wal_keeper = WalKeeper(self.database.path)
                self.wal_keeper.start()
            if separate:
                self._start_ingest_process()
            else:
                self._start_receivers()
            context = AppContext(self.database, self.writer, self.ingest, cfg.token)
            context.otlp_http_url = self.otlp_http_url
            if cfg.flows is not None:
                from flowscope.analyzer.flows_config import FlowsConfig

                context.flows_config = FlowsConfig.load(cfg.flows)
            self.ui = HttpServer(
                create_app(context),
                cfg.host,
                cfg.ui_port,
                "ui",
                token=cfg.token,
                port_label="API",
                http2_hint=": OTLP/gRPC goes to the OTLP/gRPC port",
            )
            self.ui.start()
            if cfg.retention is not None:
                self.retention = RetentionSweeper(self.writer, cfg.retention)
                context.retention = self.retention
                self.retention.start()
            self._write_info()
        except BaseException:
            # A start that failed (a port in use) left the file it made, empty, behind.
            self.shutdown(remove_if_empty=created)
            raise

    def _receiver_settings(self) -> ReceiverSettings:
        cfg = self.config
        return ReceiverSettings(
            host=cfg.host,
            grpc_port=cfg.grpc_port,
            http_port=cfg.http_port,
            token=cfg.token,
            max_request_bytes=cfg.max_request_bytes,
            decode_workers=cfg.decode_worker_count,
            retention=cfg.retention,
            # Browsers send an origin's scheme and host in lower case, compared exactly.
            cors_origins=tuple(origin.lower() for origin in cfg.cors_origins),
        )

    def _start_receivers(self) -> None:
        assert self.writer is not None
        receivers = self.receivers = Receivers(self.writer, self._receiver_settings())
        self.ingest = receivers.ingest
        receivers.start()

    def _start_ingest_process(self) -> None:
        cfg = self.config
        database, writer = self.database, self.writer
        assert database is not None and writer is not None and database.journal_dir is not None
        keys = pack_keys(database.recent_span_keys(cfg.dedup_window))
        settings = IngestSettings(
            receivers=self._receiver_settings(),
            max_queued_spans=cfg.max_queued_spans,
            max_queued_bytes=cfg.max_queued_bytes,
            journal_dir=str(database.journal_dir),
            first_seq=writer.next_seq,
            dedup_window=cfg.dedup_window,
            server_pid=os.getpid(),
            log_level=logging.getLogger().getEffectiveLevel(),
            dedup_keys=keys,
        )
        ingest = self.ingest = IngestProcess(writer, settings)
        ingest.on_exit = self._failed
        ingest.start()
        waits = database.await_writes

        def await_writes(trace_id: str | None = None) -> None:
            # Every span the child acknowledged is queued here first, then moved.
            ingest.sync()
            waits(trace_id)

        database.await_writes = await_writes

    @property
    def failure(self) -> str | None:
        """Why the server could not go on (its ingest process died), or could not stop
        cleanly (its writer still committing), once it could not."""
        if self.database is not None and self.database.failed:
            return self.database.failed
        if self.writer is not None and self.writer.stuck:
            return f"{self.writer.stuck} was still committing when it had to stop"
        if isinstance(self.ingest, IngestProcess):
            return self.ingest.failed or None
        return None

    def _failed(self, message: str) -> None:
        log.error("%s", message)
        if self.on_failure is not None:
            self.on_failure(message)

    @property
    def ui_url(self) -> str:
        assert self.ui is not None
        return f"http://{_url_host(self.config.host)}:{self.ui.port}"

    @property
    def otlp_http_url(self) -> str:
        return f"http://{_url_host(self.config.host)}:{self._otlp_ports()[1]}"

    @property
    def grpc_address(self) -> str:
        return f"{_url_host(self.config.host)}:{self._otlp_ports()[0]}"

    def _otlp_ports(self) -> tuple[int, int]:
        """(gRPC, HTTP): where the receivers listen, in the ingest process or here."""
        if isinstance(self.ingest, IngestProcess):
            return self.ingest.grpc_port, self.ingest.http_port
        assert self.receivers is not None
        return self.receivers.ports

    def _write_info(self) -> None:
        info = {
            "pid": os.getpid(),
            "ui_url": self.ui_url,
            "otlp_http_url": self.otlp_http_url,
            "otlp_grpc": self.grpc_address,
            "token_required": bool(self.config.token),
        }
        server_info_path(self.config.db).write_text(json.dumps(info), encoding="utf-8")
        self._info_written = True

    def shutdown(self, remove_if_empty: bool = False) -> None:
        """Stop receiving, commit what was accepted, close the file. Safe twice.
        ``remove_if_empty``: then delete the file if it holds no span."""
        separate = self.ingest if isinstance(self.ingest, IngestProcess) else None
        if separate is not None:
            separate.stop_receiving()
        if self.receivers is not None:
            self.receivers.shutdown()
        if self.retention is not None:
            self.retention.shutdown()
            self.retention = None
        if self.writer is not None:
            self.writer.shutdown(WRITER_STOP_S, DERIVE_STOP_S)
        stuck = self.writer.stuck if self.writer is not None else None
        if separate is not None:
            separate.shutdown()  # after the writer's last commit: the journal is empty
        if self.ui is not None:
            if self.database is not None:
                # Reads in progress (a long /api/sql) end now, not after uvicorn's
                # graceful wait, and no worker thread is left in a query at the close.
                self.database.stop_reads()
            self.ui.shutdown()
            self.ui = None
        if stuck:
            # Closing under a commit in progress crashed the process (DuckDB: the
            # connection is busy). Its spans are in the span journal, replayed at the
            # next open; the process leaves without the close.
            log.error(
                "%s: %s was still committing when it had to stop; the file is left "
                "unclosed: spans not committed stay in the span journal, and the WAL is "
                "replayed, at the next open",
                self.config.db,
                stuck,
            )
        empty = False
        try:
            if self.database is not None and not stuck:
                empty = remove_if_empty and self._holds_no_span()
                self.database.close()
        except StoreError as exc:  # reads that would not stop: no close, as for a stuck writer
            log.error(
                "%s; leaving without closing the file (its WAL is replayed at the next open)", exc
            )
        finally:
            if self.wal_keeper is not None:  # after the close: its checkpoint drops the WAL
                self.wal_keeper.shutdown()
                self.wal_keeper = None
        if self._info_written:
            server_info_path(self.config.db).unlink(missing_ok=True)
            self._info_written = False
        if empty:
            remove_new_database(self.config.db)

    def _holds_no_span(self) -> bool:
        assert self.database is not None
        try:
            return self.database.stored_span_count() == 0
        except Exception:  # a file it cannot read is no file to delete
            return False


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
