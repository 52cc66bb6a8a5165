"""flowscope.reference_app: the trading platform whose traffic flowscope inspects (docs/reference_app.md)."""
