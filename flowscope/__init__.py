"""flowscope: OTLP traces in, business flows out."""

__version__ = "0.1.0"
