"""The named pathologies of the trading platform: each a documented knob with a magnitude.

Like HotROD's, every fault is something a real shop has shipped by accident, and
each one should be obvious in exactly one place of the analyzer's output (the
"where it shows" column, asserted by the end-to-end test). Faults are read at
the moment they act, so switching one at runtime takes effect on the next
request. See docs/reference_app.md.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Literal

Unit = Literal["ms", "fraction"]


@dataclass(frozen=True)
class FaultSpec:
    name: str
    unit: Unit
    default: float  # magnitude used when the fault is switched on without one
    what: str  # what the fault does to the platform
    shows: str  # where the analyzer shows it

    def check(self, magnitude: float) -> float:
        if not math.isfinite(magnitude):
            raise ValueError(f"fault {self.name}: magnitude must be a number, got {magnitude}")
        if self.unit == "fraction" and not 0.0 <= magnitude <= 1.0:
            raise ValueError(f"fault {self.name}: magnitude is a fraction 0..1, got {magnitude}")
        if self.unit == "ms" and not 0.0 <= magnitude <= 60_000.0:
            raise ValueError(f"fault {self.name}: magnitude is 0..60000 ms, got {magnitude}")
        return float(magnitude)


FAULTS: dict[str, FaultSpec] = {
    spec.name: spec
    for spec in (
        FaultSpec(
            "wallet-lock",
            "ms",
            60.0,
            "wallet-service takes one global lock for every balance change (instead of one per "
            "wallet) and holds it this long, as if syncing a ledger inside the lock",
            "wallet-service 'acquire wallet lock' and the POST /block-funds, "
            "/unblock-funds and /update-balance steps: P95 grows with load",
        ),
        FaultSpec(
            "slow-risk",
            "ms",
            200.0,
            "risk-manager's rule evaluation takes this much longer for every order",
            "risk-manager 'validate_order' (under risk-manager POST /validate): P95 up by the "
            "magnitude",
        ),
        FaultSpec(
            "failing-matching",
            "fraction",
            0.3,
            "matching-engine fails to process this share of order events (the order is accepted "
            "but never reaches the book)",
            "matching-engine 'process order-events' (Consumer) error rate; the flow's root stays "
            "healthy because the failure is asynchronous",
        ),
        FaultSpec(
            "n-plus-one",
            "fraction",
            1.0,
            "this share of portfolio reports loads positions with one query per symbol instead of "
            "one aggregate query (a feature flag rolled out to that share)",
            "reporting-service 'SELECT' calls_per_trace in the portfolio flow grows from 1 to "
            "1 + number of symbols",
        ),
        FaultSpec(
            "slow-user-db",
            "ms",
            100.0,
            "every statement on the user database takes this much longer",
            "user-service 'SELECT' / 'INSERT' steps (login, registration, GET /me): P95 up by "
            "the magnitude",
        ),
        FaultSpec(
            "order-manager-503",
            "fraction",
            0.3,
            "order-manager refuses this share of order placements with 503; the gateway tries "
            "up to 3 times (2 retries)",
            "client-gateway 'POST /order' (Client) calls_per_trace > 1 and order-manager "
            "'POST /order' error rate; the flow's error rate moves only when all 3 attempts fail",
        ),
    )
}


def parse_fault(text: str) -> tuple[str, float]:
    """``NAME`` or ``NAME=MAGNITUDE`` -> (name, magnitude), checked against the registry."""
    name, sep, value = text.partition("=")
    name = name.strip()
    spec = FAULTS.get(name)
    if spec is None:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
    if not sep:
        return name, spec.default
    try:
        magnitude = float(value)
    except ValueError:
        raise ValueError(f"fault {name}: magnitude {value!r} is not a number") from None
    return name, spec.check(magnitude)


class Faults:
    """The faults switched on now, shared by every service of one app. Thread-safe."""

    def __init__(self, active: dict[str, float] | None = None) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, float] = {}
        # Deterministic "every k-th" counters for the fraction faults, so a share
        # of 0.3 fails exactly 3 calls in 10 instead of "about" that many.
        self._counters: dict[str, int] = {}
        for name, magnitude in (active or {}).items():
            self.set(name, magnitude)

    def set(self, name: str, magnitude: float | None = None) -> float:
        spec = FAULTS.get(name)
        if spec is None:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
        value = spec.default if magnitude is None else spec.check(magnitude)
        with self._lock:
            self._active[name] = value
            self._counters[name] = 0
        return value

    def clear(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._active.clear()
            else:
                self._active.pop(name, None)

    def active(self) -> dict[str, float]:
        with self._lock:
            return dict(self._active)

    def magnitude(self, name: str) -> float:
        """The fault's magnitude, 0 when it is off."""
        with self._lock:
            return self._active.get(name, 0.0)

    def delay_s(self, name: str) -> float:
        return self.magnitude(name) / 1000.0

    def hits(self, name: str) -> bool:
        """Whether this call is one of the fraction ``magnitude`` a fraction fault affects."""
        with self._lock:
            share = self._active.get(name, 0.0)
            if share <= 0.0:
                return False
            count = self._counters.get(name, 0) + 1
            self._counters[name] = count
            # Bresenham: the n-th call is hit when floor(n * share) steps up.
            return math.floor(count * share) > math.floor((count - 1) * share)
