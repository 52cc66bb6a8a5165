"""Which columns a read command's table shows (``--columns``), and a hint on stderr
when the table is wider than the terminal it is printed on.

The default tables hold every number a flow or step has: 11 to 13 columns, 150 to
230 characters wide, which a terminal of 80 or 120 wraps into unreadable lines.
Cutting values to fit would hide digits and names; the user picks instead.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from flowscope.cli_common import display_width

F = TypeVar("F", bound=Callable[..., Any])


def _split(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise click.BadParameter(f"{value!r} has an empty name: give names between commas")
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise click.BadParameter(f"{', '.join(twice)} given twice")
    return names


def columns_option(function: F) -> F:
    return click.option(
        "--columns",
        "columns",
        default=None,
        callback=_split,
        metavar="NAMES",
        help="Table columns to show, comma-separated, in this order (a wrong name lists "
        "the names there are).",
    )(function)


def scalar_fields(record_type: type) -> list[str]:
    """The fields of a record that a table cell can hold: not its dicts and lists
    (``group`` has its own columns, a span's events their own table)."""
    hints = typing.get_type_hints(record_type)
    return [f.name for f in dataclasses.fields(record_type) if not _is_container(hints[f.name])]


def _is_container(hint: Any) -> bool:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return all(_is_container(arg) for arg in typing.get_args(hint) if arg is not type(None))
    return (typing.get_origin(hint) or hint) in (dict, list)


def pick(
    chosen: Sequence[str] | None, default: list[str], known: Sequence[str], fmt: str
) -> list[str]:
    """The columns to show: ``default`` unless the user chose, every chosen name known."""
    if chosen is None:
        return default
    if fmt != "table":
        raise click.UsageError(f"--columns picks a table's columns: --format {fmt} has no table")
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise click.UsageError(
            f"no column {', '.join(unknown)}: --columns takes {', '.join(known)}"
        )
    return list(chosen)


def echo_table(text: str) -> None:
    """Print a table; on a terminal narrower than it, say on stderr how to narrow it
    (once per command: ``map`` prints two tables)."""
    click.echo(text)
    if not sys.stdout.isatty():
        return
    width = shutil.get_terminal_size().columns
    widest = max((display_width(line) for line in text.splitlines()), default=0)
    context = click.get_current_context(silent=True)
    meta = context.meta if context is not None else {}
    if widest <= width or meta.get("flowscope.wide_hint"):
        return
    meta["flowscope.wide_hint"] = True
    click.echo(
        f"(the table is {widest} columns wide, the terminal {width}: "
        "--columns picks which to show, --format json has them all)",
        err=True,
    )
