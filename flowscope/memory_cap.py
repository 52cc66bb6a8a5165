"""The server process's memory cap (``--max-memory``): a ceiling on its data memory
(RLIMIT_DATA), under which an allocation over it fails in the process instead of the
kernel's out-of-memory killer ending the process.

DuckDB's memory_limit holds its buffer pool, not the values a function builds: one
``SELECT range(2147483647)`` over /api/sql asked for 16 GB at once, and a recursive
query doubling a string grew until the machine's memory was gone; the kernel then
killed the server. Under the cap such an allocation fails: DuckDB answers it as an
out-of-memory error of that query (a 400), Python as a MemoryError, and the server
goes on; acknowledged spans are durable either way (committed or in the journal)."""

from __future__ import annotations

import os
import re
import resource

# The part of the machine's memory the server may take unless told otherwise: the
# rest is left to the system, and the OTLP ingest process (which has its own cap).
DEFAULT_MAX_MEMORY = "80%"
# The least cap: the server's data memory is ~1.4 GB idle (thread stacks, the
# allocators' reserves), most of it never touched, and grows with its threads. A share
# of a small machine's memory is raised to it; a size under it is refused.
MIN_MAX_MEMORY = 4 * 2**30
# The share of the cap DuckDB's buffer pool gets when --memory-limit is not given:
# DuckDB spills to disk at its limit, and at the cap it would fail instead.
DUCKDB_SHARE = 0.6
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|%)\s*$", re.IGNORECASE)


def physical_memory() -> int:
    """The machine's memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_max_memory(text: str, machine: int | None = None) -> int | None:
    """``text`` as bytes: ``off`` (None), a share of the machine's memory (``80%``, at
    least ``MIN_MAX_MEMORY``) or a size (``12GB``, ``512MiB``); ValueError saying what
    is accepted otherwise, or for a size under ``MIN_MAX_MEMORY``."""
    if text.strip().lower() == "off":
        return None
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(
            f"max-memory {text!r} is not a size: use off, a share of the machine's memory "
            "(80%) or a number and a unit (MB, GB, TB, MiB, GiB, TiB), e.g. 12GB"
        )
    number, unit = float(match[1]), match[2].upper()
    if unit == "%":
        if not 0 < number <= 100:
            raise ValueError(f"max-memory {text!r}: a share must be over 0% and at most 100%")
        share = int((physical_memory() if machine is None else machine) * number / 100)
        return max(share, MIN_MAX_MEMORY)
    base = 2**10 if unit[1:2] == "I" else 10**3
    size = int(number * base ** (" KMGT".index(unit[0])))
    if size < MIN_MAX_MEMORY:
        raise ValueError(
            f"max-memory {text!r} is {size / 2**30:.2f} GiB; the server needs at least "
            f"{MIN_MAX_MEMORY / 2**30:.0f} GiB (its threads' stacks and allocators' "
            "reserves alone take ~1.4 GiB)"
        )
    return size


def cap_memory(size: int) -> int:
    """Cap this process's data memory (and its children's: the ingest process) at
    ``size`` bytes, or at the hard limit when that is lower; the cap taken."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        size = min(size, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (size, hard))
    return size


def current_cap() -> int | None:
    """This process's data memory cap in bytes; None without one."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_DATA)
    return None if soft == resource.RLIM_INFINITY else soft


def duckdb_memory_limit(cap: int) -> str:
    """The memory_limit DuckDB gets under ``cap`` when the user names none."""
    return f"{int(cap * DUCKDB_SHARE) // 2**20}MiB"


def format_size(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"
