"""flowscope: OTLP traces in, business flows out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from flowscope.analyzer.flows_config import FlowsConfig
    from flowscope.client import Flowscope


def open(
    path_or_url: str | Path,
    token: str | None = None,
    flows: str | Path | FlowsConfig | None = None,
) -> Flowscope:
    """Open a flowscope store: a DuckDB file (read-only) or a server URL.

    ``token``: the server's bearer token (default ``$FLOWSCOPE_TOKEN``).
    ``flows``: a flows.yaml (path or ``FlowsConfig``) for a file read here.
    Raises ``flowscope.analyzer.errors.AnalysisError`` with a message when the
    store cannot be used. See docs/python_api.md.
    """
    # The client (pandas, DuckDB, httpx) loads on first use, so that `import flowscope`
    # (the CLI, the server's worker processes) stays light. Defined here, not loaded
    # by a module __getattr__, so that help(flowscope) and tab completion show it.
    from flowscope.client import open_store

    return open_store(path_or_url, token, flows)
