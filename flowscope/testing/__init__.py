"""flowscope's test kit: deterministic OTLP requests, free ports, a running server."""
