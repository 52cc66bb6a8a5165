"""flowscope: OTLP traces in, business flows out."""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from flowscope.client import open as open


def __getattr__(name: str) -> Any:
    # flowscope.open is loaded on first use so `import flowscope` (the CLI, the
    # server's worker processes) stays light.
    if name == "open":
        from flowscope.client import open

        return open
    raise AttributeError(f"module 'flowscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    # `open` is loaded on first use: without it here tab completion and help()
    # did not show it.
    return sorted({*globals(), "open"})
