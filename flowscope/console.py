"""The ``flowscope`` console script's entry point, kept apart from the CLI so that a
Ctrl-C while the CLI's modules load is answered as one during a command is."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


def run(command: Callable[[], object] | None = None) -> None:
    """Load the CLI and run it; then exit with Ctrl-C ignored.

    The script's own ``from ... import run`` loads only this module: a Ctrl-C while
    click, DuckDB and the commands' modules were imported printed a KeyboardInterrupt
    traceback with status 1. Past the answer, a Ctrl-C in the interpreter's teardown,
    where Python's own handler is gone, killed the process by the signal without a
    word. ``python -m flowscope.cli`` passes its own ``main`` as ``command``.
    """
    try:
        if command is None:
            from flowscope.cli import main

            command = main
        command()
    except KeyboardInterrupt:
        # Only the import reaches here: a command's own Ctrl-C is answered in its
        # invoke (flowscope.cli._Commands), and click answers one in its parsing.
        sys.stderr.write("flowscope: interrupted\n")
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
