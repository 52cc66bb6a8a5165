"""Health levels that colour diagram nodes and edges (thresholds in docs/diagrams.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Health = Literal["ok", "warn", "bad"]
LEVELS: tuple[Health, ...] = ("ok", "warn", "bad")


@dataclass(frozen=True)
class HealthThresholds:
    """A thing is ``bad`` at or above either bad threshold, else ``warn`` at or above
    either warn threshold, else ``ok``. Error rates are ratios (0..1)."""

    warn_error_rate: float = 0.01
    bad_error_rate: float = 0.05
    warn_p95_ms: float = 500.0
    bad_p95_ms: float = 2000.0

    def validate(self) -> None:
        if not 0 <= self.warn_error_rate <= self.bad_error_rate <= 1:
            raise ValueError(
                "warn_error_rate and bad_error_rate: need 0 <= warn_error_rate <= bad_error_rate <= 1"
            )
        if not 0 <= self.warn_p95_ms <= self.bad_p95_ms:
            raise ValueError("warn_p95_ms and bad_p95_ms: need 0 <= warn_p95_ms <= bad_p95_ms")

    def level(self, error_rate: float, p95_ms: float | None) -> Health:
        p95 = p95_ms if p95_ms is not None else 0.0
        if error_rate >= self.bad_error_rate or p95 >= self.bad_p95_ms:
            return "bad"
        if error_rate >= self.warn_error_rate or p95 >= self.warn_p95_ms:
            return "warn"
        return "ok"


DEFAULT_THRESHOLDS = HealthThresholds()

# Fill, stroke and text colours per level, shared by the Mermaid and DOT output.
COLOURS: dict[Health, tuple[str, str]] = {
    "ok": ("#e8f5e9", "#2e7d32"),
    "warn": ("#fff8e1", "#f9a825"),
    "bad": ("#ffebee", "#c62828"),
}
