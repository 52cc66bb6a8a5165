"""The ``flowscope`` console script's entry point, kept apart from the CLI so that a
Ctrl-C while the CLI's modules load is answered as one during a command is."""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Callable, Set

from flowscope.interrupts import exit_interrupted, interrupts_deferred

_ASKS_FOR_HELP = frozenset({"-h", "--help", "--version"})
# The FLOWSCOPE_ variables options are read from (their envvar=; the tests keep this
# whole against the commands' options), and the others flowscope reads (the fast
# path's switch, CI's demand for it).
OPTION_VARIABLES = frozenset({"FLOWSCOPE_DB", "FLOWSCOPE_TOKEN", "FLOWSCOPE_CORS_ORIGIN"})
KNOWN_VARIABLES = OPTION_VARIABLES | {"FLOWSCOPE_PURE_PYTHON", "FLOWSCOPE_REQUIRE_FAST_PATH"}


def _load_duckdb() -> None:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        pass  # the command that needs it says so; --version and the rest go on


def _tolerant_streams() -> None:
    """Output in a legacy encoding (a de_DE.ISO-8859-1 terminal, PYTHONIOENCODING=
    latin-1) writes what it cannot encode as escapes: a service named in CJK or with
    an emoji ended the command with a UnicodeEncodeError traceback."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


def _undecodable_argument() -> str | None:
    """The first argument (or FLOWSCOPE_ variable) that is not valid UTF-8, named, with
    its bad bytes escaped.
    Python keeps such bytes as lone surrogates, which met a TypeError in DuckDB, a
    UnicodeEncodeError on the way to a server, or a warning that derivation failed."""
    named = [("argument", argument) for argument in sys.argv[1:]]
    # The variables options are read from (FLOWSCOPE_DB=...): a traceback from DuckDB.
    named += [
        (f"${name}", value) for name, value in os.environ.items() if name.startswith("FLOWSCOPE_")
    ]
    for what, text in named:
        if any("\udc80" <= character <= "\udcff" for character in text):
            raw = text.encode("utf-8", "surrogateescape")
            return f"{what} '{raw.decode('utf-8', 'backslashreplace')}'"
    return None


def unread_variables(
    options: Set[str], elsewhere: dict[str, list[str]], before: Set[str] = frozenset()
) -> list[str]:
    """A warning for each FLOWSCOPE_ variable no option reads that looks like one of
    ``options`` (long names, ``--retention``: the running command's), of flowscope
    itself (``before``, given before the command) or of another command
    (``elsewhere``: option to the commands that take it): a guess such as
    FLOWSCOPE_RETENTION=off was ignored without a word, and serve's default retention
    then deleted an imported file's older spans. Others (Kubernetes'
    FLOWSCOPE_SERVICE_HOST, a Dockerfile's FLOWSCOPE_VERSION) are not flowscope's
    business."""
    read = ", ".join(sorted(OPTION_VARIABLES))
    warnings = []
    for name in sorted(os.environ):
        if not name.startswith("FLOWSCOPE_") or name in KNOWN_VARIABLES:
            continue
        option = "--" + name.removeprefix("FLOWSCOPE_").lower().replace("_", "-")
        if option in {"--version", "--help"}:
            continue
        if option in before:  # flowscope's own (-v): `import --verbose` is refused
            advice = f"give {option} before the command instead (flowscope {option} ...)"
        elif option in options:
            advice = f"give {option} instead"
        elif option in elsewhere:
            # Not this command's: "give --retention instead" named an option `flows`
            # refused (docs review).
            advice = f"{option} is an option of {' and '.join(elsewhere[option])}"
        else:
            continue
        warnings.append(
            f"flowscope: warning: ${name} is not read (options are read from {read} only); {advice}"
        )
    return warnings


def run(command: Callable[[], object] | None = None) -> None:
    """Load the CLI and run it; then exit with Ctrl-C ignored.

    The script's own ``from ... import run`` loads only this module: a Ctrl-C while
    click, DuckDB and the commands' modules were imported printed a KeyboardInterrupt
    traceback with status 1. Past the answer, a Ctrl-C in the interpreter's teardown,
    where Python's own handler is gone, killed the process by the signal without a
    word. ``python -m flowscope.cli`` passes its own ``main`` as ``command``.
    """
    _tolerant_streams()
    bad = _undecodable_argument()
    if bad is not None:
        print(f"flowscope: {bad} is not valid UTF-8", file=sys.stderr)
        sys.exit(2)
    try:
        if not _ASKS_FOR_HELP.intersection(sys.argv[1:]):
            with interrupts_deferred():
                # DuckDB's native import turns a Ctrl-C that lands in it into an
                # ImportError ("error while initializing the extension") or a process
                # abort; it came later, in the command, where the first read took it.
                # (--help and --version need no DuckDB: 70 ms saved.)
                _load_duckdb()
        if command is None:
            from flowscope.cli import main

            command = main
        command()
    except KeyboardInterrupt:
        # Only the imports reach here: a command's own Ctrl-C, and one while its
        # arguments are read, are answered in flowscope.cli._Commands.
        exit_interrupted()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
