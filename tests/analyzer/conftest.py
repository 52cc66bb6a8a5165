from __future__ import annotations

from collections.abc import Callable

import pytest

from flowscope.analyzer.analysis import Analysis
from flowscope.analyzer.flows_config import FlowsConfig
from flowscope.analyzer.model import Window
from flowscope.store.database import Database
from flowscope.testing.traces import TraceKit, at_ms

# Every hand-built trace in these tests starts within the first hour of 2026.
HOUR = Window(at_ms(0), at_ms(3_600_000))

Analyze = Callable[..., Analysis]


@pytest.fixture
def analyze(database: Database) -> Analyze:
    """Write a kit's spans (one commit, derived on writer shutdown) and analyze them."""

    def run(kit: TraceKit, config: FlowsConfig | None = None) -> Analysis:
        kit.write(database)
        return Analysis(database, config)

    return run
