"""Which text each diagram format name draws: one table for the API and the Python API.

A flow's plain ``mermaid`` is its sequence diagram, as ``flowscope flow ID --format
mermaid`` draws by default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from flowscope.analyzer.diagrams.dot import flow_dot, service_map_dot
from flowscope.analyzer.diagrams.mermaid_flowchart import flow_flowchart_mermaid
from flowscope.analyzer.diagrams.mermaid_map import service_map_mermaid
from flowscope.analyzer.diagrams.mermaid_sequence import flow_sequence_mermaid
from flowscope.analyzer.model import FlowDetail, ServiceMap

MapFormat = Literal["mermaid", "dot"]
FlowFormat = Literal["mermaid-sequence", "mermaid-flowchart", "mermaid", "dot"]

MAP_DIAGRAMS: dict[str, Callable[[ServiceMap], str]] = {
    "mermaid": service_map_mermaid,
    "dot": service_map_dot,
}
FLOW_DIAGRAMS: dict[str, Callable[[FlowDetail], str]] = {
    "mermaid-sequence": flow_sequence_mermaid,
    "mermaid-flowchart": flow_flowchart_mermaid,
    "mermaid": flow_sequence_mermaid,
    "dot": flow_dot,
}
