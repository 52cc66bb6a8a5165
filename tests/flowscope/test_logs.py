"""How repeated failures are logged."""

from __future__ import annotations

import logging

import pytest

from flowscope.logs import RepeatedFailures, error_line


def _records(caplog: pytest.LogCaptureFixture, errors: list[BaseException]) -> list[bool]:
    failures = RepeatedFailures(logging.getLogger("t.repeated"))
    with caplog.at_level(logging.ERROR, logger="t.repeated"):
        for error in errors:
            failures.failed(error, "pass failed")
    return [r.exc_info is not None for r in caplog.records if r.name == "t.repeated"]


def test_an_error_that_differs_only_in_its_numbers_is_the_same_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An out-of-memory error quotes the memory in use, other each time: every pass
    logged its traceback again."""
    errors: list[BaseException] = [
        MemoryError(f"could not allocate block of 256.0 KiB ({used}.5 GiB/2.0 GiB used)")
        for used in (1, 2, 1)
    ]
    assert _records(caplog, errors) == [True, False, False]


def test_another_error_or_type_gets_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[BaseException] = [OSError("disk full"), OSError("disk full")]
    errors += [ValueError("disk full"), OSError("permission denied")]
    assert _records(caplog, errors) == [True, False, True, True]


def test_a_full_disk_is_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing in flowscope to debug: an import onto a full disk printed two tracebacks
    around the line that said so."""
    full = OSError('Failed to commit: Could not write file "a.duckdb.wal": No space left on device')
    assert _records(caplog, [full, full]) == [False, False]
    assert "pass failed: Failed to commit" in caplog.records[0].getMessage()
    caplog.clear()
    # DuckDB's fatal error after a full disk names the cause on its second line.
    fatal = OSError(
        "FATAL Error: Failed: database has been invalidated because of a previous fatal "
        'error.\nOriginal error: "Could not write file: No space left on device"'
    )
    assert _records(caplog, [fatal]) == [False]
    assert (
        caplog.records[0]
        .getMessage()
        .endswith('(Original error: "Could not write file: No space left on device")')
    )


def test_a_success_ends_the_repeat() -> None:
    failures = RepeatedFailures(logging.getLogger("t.repeated"))
    failures.failed(OSError("disk full\nmore"), "x")
    assert failures.last == "disk full" == error_line(OSError("disk full\nmore"))
    failures.succeeded()
    assert failures.last is None


def test_the_end_of_failures_is_said_with_their_count(caplog: pytest.LogCaptureFixture) -> None:
    """A full disk's commits logged an error every retry, and nothing once they landed
    again: the log read as if they still failed (ops review)."""
    failures = RepeatedFailures(logging.getLogger("t.repeated"))
    with caplog.at_level(logging.WARNING, logger="t.repeated"):
        failures.succeeded("commits land again")  # nothing failed: nothing to say
        for _ in range(3):
            failures.failed(OSError("No space left on device"), "commit failed")
        failures.succeeded("commits land again")
        failures.succeeded("commits land again")
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == ["commits land again, after 3 failed"]
