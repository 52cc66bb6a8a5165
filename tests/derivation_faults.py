"""A derivation that fails for one trace, as a trace the rules cannot take would."""

from __future__ import annotations

from typing import Any

import pytest


def failing_for(monkeypatch: pytest.MonkeyPatch, poison: str) -> None:
    """Derivation fails for any load that holds trace ``poison``."""
    from flowscope.analyzer import derived_rows

    real = derived_rows.derive_rows

    def picky(spans: Any, ids: dict[int, str]) -> Any:
        if poison in {ids.get(key) for key in spans.column("TraceKey").to_pylist()}:
            raise ValueError("the rules cannot take this trace")
        return real(spans, ids)

    monkeypatch.setattr(derived_rows, "derive_rows", picky)
