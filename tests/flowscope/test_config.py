"""ServeConfig.validate() refuses bad values with a message naming the option (STYLE habit 3)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flowscope.cli import main
from flowscope.server import FlowscopeServer, ServeConfig

GOOD: list[dict[str, Any]] = [
    {},
    {"grpc_port": 0, "http_port": 0, "ui_port": 0},  # 0: any free port, for each of them
    {"grpc_port": 65535, "http_port": 1, "ui_port": 8080},
    {"host": "0.0.0.0", "token": "abc-DEF_123.~!"},
    {"host": "::1"},
    {"retention": None},
    {"retention": timedelta(minutes=15)},
    {"max_request_bytes": 1024},
    {"max_queued_spans": 1},
    {"max_queued_bytes": 1024},
    {"dedup_window": 0},
    {"decode_workers": -1},
    {"decode_workers": 0},
    {"decode_workers": 3},
    {"memory_limit": ""},
    {"memory_limit": "2GB"},
    {"memory_limit": "512 MiB"},
    {"memory_limit": "1.5gb"},
]

BAD: list[tuple[dict[str, Any], str]] = [
    ({"grpc_port": -1}, "grpc-port must be 0..65535, got -1"),
    ({"http_port": 65536}, "http-port must be 0..65535, got 65536"),
    ({"ui_port": -8686}, "ui-port must be 0..65535"),
    ({"grpc_port": 5000, "http_port": 5000}, "grpc-port and http-port are both 5000"),
    ({"http_port": 7000, "ui_port": 7000}, "http-port and ui-port are both 7000"),
    ({"host": ""}, "host must be"),
    ({"host": "  "}, "host must be"),
    ({"token": "two words"}, "token must be printable ASCII"),
    ({"token": "naïve"}, "token must be printable ASCII"),
    # "$" matched before a final newline: taken, and no request could match it.
    ({"token": "s3cret\n"}, "token must be printable ASCII"),
    ({"token": ""}, "token is empty: give the token, or leave it out"),
    ({"retention": timedelta(0)}, "retention must be positive"),
    ({"retention": timedelta(days=-7)}, "retention must be positive"),
    ({"retention": timedelta(days=1_000_000)}, "retention over 100 years keeps everything"),
    ({"max_request_bytes": 0}, "max-request-bytes must be 1024..2147483647 (gRPC takes"),
    ({"max_request_bytes": 1023}, "max-request-bytes must be 1024..2147483647"),
    # past 2**31 gRPC raised OverflowError: a traceback without the ingest process
    ({"max_request_bytes": 3_000_000_000}, "max-request-bytes must be 1024..2147483647"),
    # DuckDB opens "" in memory: serve acknowledged spans it then lost
    ({"db": ""}, "db must name a file (an empty path is an in-memory database)"),
    ({"max_queued_spans": 0}, "max-queued-spans must be at least 1, got 0"),
    ({"max_queued_spans": -5}, "max-queued-spans must be at least 1"),
    ({"max_queued_bytes": 1023}, "max-queued-bytes must be at least 1024, got 1023"),
    ({"dedup_window": -1}, "dedup-window must be 0 (off) or more, got -1"),
    ({"decode_workers": -2}, "decode-workers must be -1 (automatic), 0 or more, got -2"),
    ({"memory_limit": "lots"}, "memory-limit 'lots' is not a size"),
    ({"memory_limit": "1000"}, "memory-limit '1000' is not a size"),
    ({"memory_limit": "-1GB"}, "memory-limit '-1GB' is not a size"),
    ({"memory_limit": "0GB"}, "memory-limit '0GB' is not a size"),
]


@pytest.mark.parametrize("overrides", GOOD, ids=lambda o: ",".join(o) or "defaults")
def test_good_values_pass(overrides: dict[str, Any]) -> None:
    replace(ServeConfig(), **overrides).validate()


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_values_are_refused_naming_the_option(overrides: dict[str, Any], message: str) -> None:
    config = replace(ServeConfig(), **overrides)
    with pytest.raises(ValueError) as refused:
        config.validate()
    assert message in str(refused.value)
    # The server refuses the config before it opens or binds anything.
    with pytest.raises(ValueError) as refused_by_server:
        FlowscopeServer(config)
    assert str(refused_by_server.value) == str(refused.value)


def test_decode_worker_count() -> None:
    assert ServeConfig(decode_workers=0).decode_worker_count == 0
    assert ServeConfig(decode_workers=3).decode_worker_count == 3
    assert ServeConfig(decode_workers=-1).decode_worker_count >= 1


def _serve(tmp_path: Path, *args: str) -> Any:
    db = tmp_path / "never-created.duckdb"
    result = CliRunner().invoke(
        main, ["serve", "--db", str(db), *args], env={"FLOWSCOPE_TOKEN": ""}
    )
    # A refused option must stop serve before it creates the database.
    assert not db.exists()
    return result


@pytest.mark.parametrize("value", ["7x", "-1d", "week", "7 days"])
def test_serve_refuses_a_bad_retention(tmp_path: Path, value: str) -> None:
    result = _serve(tmp_path, "--retention", value)
    assert result.exit_code == 2
    assert "Invalid value for '--retention'" in result.output
    assert f"invalid duration {value!r}" in result.output and "or 'off'" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grpc-port", "-1"], "grpc-port must be 0..65535, got -1"),
        (["--ui-port", "70000"], "ui-port must be 0..65535, got 70000"),
        (["--grpc-port", "5000", "--http-port", "5000"], "grpc-port and http-port are both 5000"),
        (["--max-queued-spans", "0"], "max-queued-spans must be at least 1, got 0"),
        (["--max-request-bytes", "10"], "max-request-bytes must be 1024..2147483647"),
        (["--max-request-bytes", "99999999999999999999"], "max-request-bytes must be 1024.."),
        (["--dedup-window", "-1"], "dedup-window must be 0 (off) or more"),
        (["--decode-workers", "-3"], "decode-workers must be -1 (automatic), 0 or more"),
        (["--memory-limit", "lots"], "memory-limit 'lots' is not a size"),
        (["--token", "has space"], "token must be printable ASCII"),
        # `--token "$UNSET"` served everything to everyone, without a word.
        (["--token", ""], "token is empty"),
        (["--token", " \n"], "token is empty"),
        # A token file's final newline is dropped, as clients drop it: the error is
        # the port's, not the token's.
        (["--token", "s3cret\n", "--grpc-port", "-1"], "grpc-port must be 0..65535"),
    ],
)
def test_serve_refuses_bad_options_naming_them(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Exit status 2, as for the values click checks itself (docs/cli.md): these were 1."""
    result = _serve(tmp_path, *args)
    assert result.exit_code == 2
    assert f"Error: {message}" in result.output


def test_serve_refuses_a_non_number(tmp_path: Path) -> None:
    result = _serve(tmp_path, "--max-queued-spans", "many")
    assert result.exit_code == 2
    assert "Invalid value for '--max-queued-spans'" in result.output


def test_an_empty_flowscope_db_means_the_default_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowscope.cli_common import DEFAULT_DB, default_db

    monkeypatch.setenv("FLOWSCOPE_DB", "")
    assert default_db() == DEFAULT_DB


def test_an_empty_database_path_is_refused() -> None:
    from flowscope.store.database import Database, StoreError

    with pytest.raises(StoreError, match="no database file named"):
        Database("")


def test_a_host_is_taken_as_the_socket_takes_it() -> None:
    """ "[::1]" (as written in a URL) and a pasted trailing space were warned about as
    non-loopback addresses and then failed to resolve."""
    from flowscope.cli_common import _plain_host

    assert [_plain_host(None, None, h) for h in ("[::1]", "127.0.0.1 ", " ::", "h")] == [  # type: ignore[arg-type]
        "::1",
        "127.0.0.1",
        "::",
        "h",
    ]
