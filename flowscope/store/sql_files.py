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


def literal(value: str | None) -> str:
    """``value`` as a SQL string literal (NULL for None)."""
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def text_list(values: list[str]) -> str:
    """``values`` as a SQL VARCHAR[] literal."""
    return f"(CAST([{', '.join(literal(v) for v in values)}] AS VARCHAR[]))"


def filled(name: str, values: dict[str, str]) -> str:
    """``sql/NAME.sql`` with each ``$key`` of ``values`` replaced by its SQL text
    (``literal``, ``text_list``, a number), for a query that goes through the SQL
    sandbox, where a server's /api/sql binds nothing. One pass over the text: replaced
    one name after another, a value holding "$operation" had its own literal rewritten.
    Name no placeholder in the file's comments: a value holding a line break would end
    the comment, and the rest of it be read as SQL."""
    names = "|".join(re.escape(key) for key in values)
    return re.sub(rf"\$({names})\b", lambda m: values[m[1]], query(name))


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
