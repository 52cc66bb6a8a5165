"""Query parameters a route does not take, or takes once and was given twice, are
refused with a 400 that names them.

FastAPI ignores both: ``/api/traces?min_duration=500`` (for ``min_duration_ms``)
answered every trace, and ``?since=1h&since=2d`` the last of the two, with nothing to
say the parameter a user meant had not been read.
"""

from __future__ import annotations

import types
import typing
from collections import Counter
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute


def _is_list(annotation: typing.Any) -> bool:
    """``list[str]``, ``list[str] | None`` and the like."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return origin in (list, tuple, set, frozenset)


def _query_names(dependant: Dependant, *, lists_only: bool = False) -> set[str]:
    """The query parameters a route reads; ``lists_only``: those it reads as a list,
    which may be given more than once (``/api/traces?attr=a=1&attr=b=2``)."""
    names = {
        param.alias
        for param in dependant.query_params
        if not lists_only or _is_list(param.field_info.annotation)
    }
    for sub in dependant.dependencies:
        names |= _query_names(sub, lists_only=lists_only)
    return names


async def known_query_parameters(request: Request) -> None:
    """A route dependency: refuse the query parameters the route does not read."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:
        return  # the hidden catch-alls answer a 404 whatever they are given
    names = sorted(_query_names(route.dependant))  # a few fields: no cache needed
    # Every parameter as sent, empty ones too (EmptyValuesNotGiven takes those out of
    # what the route reads): `min_duration=` is still a name the route does not take.
    sent = request.scope.get(SENT_QUERY, request.scope["query_string"])
    given = Counter(
        key for key, _value in parse_qsl(sent.decode("latin-1"), keep_blank_values=True)
    )
    unknown = sorted(key for key in given if key not in names)
    if unknown:
        takes = ", ".join(names) if names else "none"
        raise HTTPException(
            400,
            detail={
                "message": f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(key) for key in unknown)}; this route takes: {takes}"
            },
        )
    # A parameter that is not a list given twice is a slip, not a second value.
    lists = _query_names(route.dependant, lists_only=True)
    twice = sorted(key for key, times in given.items() if times > 1 and key not in lists)
    if twice:
        raise HTTPException(
            400,
            detail={
                "message": f"query parameter{'s' if len(twice) > 1 else ''} "
                f"{', '.join(repr(key) for key in twice)} given more than once"
            },
        )


# The scope key under which EmptyValuesNotGiven keeps the query string as sent.
SENT_QUERY = "flowscope.sent_query"


def without_empty_values(query: bytes) -> bytes:
    """``query`` without its parameters that have no value (``sort=``, ``error``)."""
    return b"&".join(part for part in query.split(b"&") if part.partition(b"=")[2])


class EmptyValuesNotGiven:
    """ASGI: an /api/ query parameter with an empty value is not given, as an HTML form
    sends a field left empty (``?service=&sort=&limit=``). Only some parameters were
    read so (``since``, ``service``, ...); ``sort=`` and ``limit=`` got a 422, and
    ``attr=`` a 400 (docs review)."""

    def __init__(self, app: typing.Any) -> None:
        self.app = app

    async def __call__(self, scope: typing.Any, receive: typing.Any, send: typing.Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/") and scope["query_string"]:
            sent = scope["query_string"]
            scope = {**scope, "query_string": without_empty_values(sent), SENT_QUERY: sent}
        await self.app(scope, receive, send)
