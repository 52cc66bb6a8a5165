"""serve's memory cap (--max-memory): a query that needs more memory than the server
may use fails alone, and the server goes on taking and answering."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flowscope.memory_cap import MIN_MAX_MEMORY, duckdb_memory_limit, parse_max_memory
from flowscope.testing.otlp import realistic_request
from flowscope.testing.server import start_server_process

GIB = 2**30


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("off", None),
        (" OFF ", None),
        ("80%", 8 * GIB),
        ("100%", 10 * GIB),
        ("10%", MIN_MAX_MEMORY),  # a small machine's share is raised to the least cap
        ("12GB", 12 * 10**9),
        ("5GiB", 5 * GIB),
        ("4096 MiB", 4 * GIB),
        ("1.5tb", int(1.5 * 10**12)),
    ],
)
def test_sizes_and_shares(text: str, size: int | None) -> None:
    assert parse_max_memory(text, machine=10 * GIB) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lots", "max-memory 'lots' is not a size: use off, a share"),
        ("12", "max-memory '12' is not a size"),
        ("-1GB", "is not a size"),
        ("0%", "a share must be over 0% and at most 100%"),
        ("150%", "a share must be over 0% and at most 100%"),
        ("1GB", "max-memory '1GB' is 0.93 GiB; the server needs at least 4 GiB"),
    ],
)
def test_bad_values_say_what_is_taken(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="max-memory") as refused:
        parse_max_memory(text, machine=10 * GIB)
    assert message in str(refused.value)


def test_duckdb_gets_most_of_the_cap_for_its_buffers() -> None:
    assert duckdb_memory_limit(10 * GIB) == "6144MiB"


def _data_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max data size"):
            return line.split()[3]
    raise AssertionError(f"no data size limit line for {pid}")


def test_a_query_over_the_cap_fails_alone_and_the_server_goes_on(tmp_path: Path) -> None:
    """Before: `SELECT len(range(2147483647))` had DuckDB build a 16 GB list, past its
    memory_limit (which holds its buffers, not such values); with bigger ones the
    kernel's out-of-memory killer ended the server."""
    server = start_server_process(
        tmp_path / "capped.duckdb", "--retention", "off", "--max-memory", "4GiB"
    )
    try:
        said = "memory     at most 4.0 GiB (--max-memory), DuckDB's buffers 2.4 GiB of it"
        assert any(said in line for line in server.output), server.output
        pid = server.process.pid
        assert _data_limit(pid) == str(4 * GIB)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert children and all(_data_limit(int(child)) == str(4 * GIB) for child in children)
        with httpx.Client(timeout=60) as client:
            sql = f"{server.endpoints.ui}/api/sql"
            answer = client.post(sql, json={"sql": "SELECT len(range(2147483647)) AS n"})
            assert answer.status_code == 400, answer.text
            message = answer.json()["detail"]["message"]
            assert message.startswith("the query needs more memory than the server may use")
            assert "--max-memory" in message and "SET " not in message
            body = realistic_request(40, seed=3).SerializeToString()
            sent = client.post(
                f"{server.endpoints.http}/v1/traces",
                content=body,
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert sent.status_code == 200, sent.text
            count = client.post(sql, json={"sql": "SELECT count(*) AS n FROM otel_traces"})
            assert count.json()["rows"] == [[40 * 8]]
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_serve_and_demo_refuse_a_bad_cap_before_they_start(tmp_path: Path, command: str) -> None:
    from click.testing import CliRunner

    from flowscope.cli import main

    db = tmp_path / "never-created.duckdb"
    result = CliRunner().invoke(main, [command, "--db", str(db), "--max-memory", "1GB"])
    assert result.exit_code == 2
    assert "Invalid value for '--max-memory': max-memory '1GB' is 0.93 GiB" in result.output
    assert not db.exists()
