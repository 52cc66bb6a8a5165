"""The console script's entry point: what it does before any command runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flowscope.store.database import Database


def _flowscope(*args: str | bytes, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "flowscope.cli", *args],
        capture_output=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def test_a_legacy_output_encoding_writes_escapes_not_a_traceback(tmp_path: Path) -> None:
    """A de_DE.ISO-8859-1 terminal met a UnicodeEncodeError traceback for a name in CJK."""
    db = tmp_path / "a.duckdb"
    Database(db).close()
    result = _flowscope(
        "sql", "SELECT '漢字 é' AS name", "--db", str(db), PYTHONIOENCODING="latin-1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("latin-1").splitlines()[-1].strip() == "\\u6f22\\u5b57 é"


def test_an_argument_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    """It met a TypeError traceback in DuckDB, or a warning that derivation failed."""
    db = tmp_path / "a.duckdb"
    Database(db).close()
    for args in ((b"sql", b"select \xff", b"--db", str(db).encode()), (b"trace", b"\xff")):
        result = _flowscope(*args)
        assert result.returncode == 2
        assert (
            result.stderr.decode()
            == "flowscope: argument '"
            + args[1].decode("utf-8", "backslashreplace")
            + "' is not valid UTF-8\n"
        )
