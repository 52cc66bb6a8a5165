"""Diagrams of the analyzer's results: Mermaid and Graphviz DOT text.

Pure functions over ``flowscope.analyzer.model`` records. Output is
deterministic (sorted nodes and edges, ids derived from names) so it can be
golden-tested and diffed; any service or operation name gives a valid diagram
(ids are sanitized, labels escaped). A flow split by ``--by`` is drawn one
block per value (groups.py). docs/diagrams.md describes the shapes, arrows,
health thresholds and blocks.
"""

from flowscope.analyzer.diagrams.dot import flow_dot, service_map_dot
from flowscope.analyzer.diagrams.groups import MAX_GROUPS
from flowscope.analyzer.diagrams.health import DEFAULT_THRESHOLDS, Health, HealthThresholds
from flowscope.analyzer.diagrams.mermaid_flowchart import flow_flowchart_mermaid
from flowscope.analyzer.diagrams.mermaid_map import service_map_mermaid
from flowscope.analyzer.diagrams.mermaid_sequence import flow_sequence_mermaid

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MAX_GROUPS",
    "Health",
    "HealthThresholds",
    "flow_dot",
    "flow_flowchart_mermaid",
    "flow_sequence_mermaid",
    "service_map_dot",
    "service_map_mermaid",
]
