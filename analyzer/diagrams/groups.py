"""A flow's steps split by their ``--by`` value, one block of the diagram per value.

With ``by=ATTR`` the analyzer gives every step once per value (``Step.group``),
so the same step id appears in several groups and the steps are not one tree:
each value's steps are drawn as a tree of their own. A flow without groups is
one group, drawn as before. An attribute with many values (a user id, an order
number) would give a diagram nobody can read, so at most ``MAX_GROUPS`` values
are drawn, those with the most traces, and a note says how many were left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowscope.analyzer.diagrams.labels import count
from flowscope.analyzer.model import Step

MAX_GROUPS = 12  # docs/diagrams.md
_EMPTY = '""'  # how the value "" (a trace without the attribute) is shown


@dataclass(frozen=True)
class StepGroup:
    group: dict[str, str]  # {} for a flow without --by
    steps: list[Step]

    @property
    def label(self) -> str:
        """``ATTR = value``, the block's title."""
        return ", ".join(f"{key} = {value or _EMPTY}" for key, value in sorted(self.group.items()))

    @property
    def traces(self) -> int:
        """The group's traces: those of its root steps (each trace has one root)."""
        roots = [s.traces for s in self.steps if s.parent_id is None]
        return sum(roots) if roots else max((s.traces for s in self.steps), default=0)


@dataclass(frozen=True)
class DrawnGroups:
    groups: list[StepGroup]  # in value order; one group {} for a flow without --by
    left_out: int  # values not drawn (past max_groups)
    attributes: list[str]

    @property
    def grouped(self) -> bool:
        return any(g.group for g in self.groups)

    def note(self) -> str | None:
        """What the diagram says about the values it leaves out, if any."""
        if not self.left_out:
            return None
        return (
            f"{count(self.left_out, 'more value')} of {', '.join(self.attributes)} not drawn "
            f"(drawn: the {len(self.groups)} with the most traces)"
        )


def split_steps(steps: list[Step]) -> list[StepGroup]:
    """Every group's steps (their order kept), groups in value order."""
    groups: dict[tuple[tuple[str, str], ...], list[Step]] = {}
    for step in steps:
        groups.setdefault(tuple(sorted(step.group.items())), []).append(step)
    if not groups:
        return [StepGroup({}, [])]
    return [StepGroup(dict(key), groups[key]) for key in sorted(groups)]


def drawn_groups(steps: list[Step], max_groups: int = MAX_GROUPS) -> DrawnGroups:
    """The groups a diagram draws: the ``max_groups`` with the most traces (values
    break ties), in value order."""
    if max_groups < 1:
        raise ValueError(f"max_groups must be at least 1, not {max_groups}")
    groups = split_steps(steps)
    attributes = sorted({key for g in groups for key in g.group})
    if len(groups) <= max_groups:
        return DrawnGroups(groups, 0, attributes)
    busiest = sorted(range(len(groups)), key=lambda i: (-groups[i].traces, i))[:max_groups]
    kept = [groups[i] for i in sorted(busiest)]
    return DrawnGroups(kept, len(groups) - len(kept), attributes)
