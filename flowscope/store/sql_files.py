"""SQL lives in ``flowscope/store/sql/*.sql``, loaded by name (STYLE habit 6).

Files named ``NNN_*.sql`` create the schema, in the order of their number;
every other file is a query, loaded by its stem.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_SCHEMA_FILE = re.compile(r"^\d{3}_.+\.sql$")


def _directory() -> resources.abc.Traversable:
    return resources.files("flowscope.store").joinpath("sql")


@cache
def query(name: str) -> str:
    """The text of ``sql/NAME.sql``; KeyError names the missing file."""
    path = _directory().joinpath(f"{name}.sql")
    if not path.is_file():
        raise KeyError(f"no SQL file {name}.sql in flowscope/store/sql")
    return path.read_text(encoding="utf-8")


@cache
def statements(text: str) -> tuple[str, ...]:
    """The statements of a SQL file; each ends with ';' at the end of a line.

    Cached: the writer runs the same script in every commit.
    """
    parts: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            parts.append("\n".join(current))
            current = []
    rest = "\n".join(current).strip()
    if rest and not all(x.strip().startswith("--") for x in rest.splitlines() if x.strip()):
        parts.append(rest)
    return tuple(parts)


def query_names() -> list[str]:
    return sorted(
        p.name[:-4]
        for p in _directory().iterdir()
        if p.name.endswith(".sql") and not _SCHEMA_FILE.match(p.name)
    )


def schema_scripts() -> list[tuple[str, str]]:
    """(file name, text) of the schema files, in creation order."""
    files = sorted(
        (p for p in _directory().iterdir() if _SCHEMA_FILE.match(p.name)), key=lambda p: p.name
    )
    return [(p.name, p.read_text(encoding="utf-8")) for p in files]
