"""How flowscope's processes log: the CLI and the ingest process it starts write alike."""

from __future__ import annotations

import logging
import re

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def error_line(exc: BaseException) -> str:
    """An error in one line: its message's first, or its type's name when it has none."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


class RepeatedFailures:
    """Log a failure with its traceback, and the same error again (a full disk fails
    every retry) in one line: a traceback each time flooded the log. The same error is
    of the same type, with the same message but for its numbers: an out-of-memory
    error quotes the bytes in use, different each time."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.last: str | None = None  # the last failure's error line; None after a success
        self._last_kind: tuple[str, str] | None = None
        self.in_row = 0  # failures since the last success

    def failed(self, exc: BaseException, message: str) -> None:
        error = error_line(exc)
        kind = (type(exc).__qualname__, _NUMBER.sub("#", error))
        if kind == self._last_kind:
            self.logger.error("%s (again: %s)", message, error)
        elif (machine := _machine_line(str(exc))) is not None:
            # Nothing in flowscope to debug: its traceback buried the one line saying
            # the disk is full (an import printed two of them). DuckDB may say so on
            # a later line ("database has been invalidated ...", then the cause).
            cause = "" if machine == error else f" ({machine})"
            self.logger.error("%s: %s%s", message, error, cause)
        else:
            self.logger.error("%s", message, exc_info=exc)
        self.last, self._last_kind = error, kind
        self.in_row += 1

    def succeeded(self, recovered: str = "") -> None:
        """Forget the failures; after some, log ``recovered`` with how many there were
        (their end went unsaid, and the log read as if they went on)."""
        if self.in_row and recovered:
            self.logger.warning("%s, after %d failed", recovered, self.in_row)
        self.last = self._last_kind = None
        self.in_row = 0


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Errors of the machine, not of flowscope (the OS's strerror texts, as DuckDB quotes them).
_MACHINE = re.compile(
    "No space left on device|Disk quota exceeded|Read-only file system|Permission denied"
)


def _machine_line(text: str) -> str | None:
    """The line of an error's text that names a failure of the machine, if one does."""
    return next((line.strip() for line in text.splitlines() if _MACHINE.search(line)), None)


def is_machine_error(exc: BaseException) -> bool:
    """Does ``exc`` name a failure of the machine (a full disk), not of flowscope?"""
    return _machine_line(str(exc)) is not None
