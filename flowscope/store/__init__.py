"""Span storage: the only package that opens DuckDB (DESIGN.md §2)."""
