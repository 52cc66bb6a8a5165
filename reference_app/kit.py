"""What every service of the platform is built from: a traced FastAPI app, a traced HTTP
client for calling the others, and the shared faults and event channel.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor, RequestInfo
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span

from flowscope import __version__
from flowscope.reference_app.channels import EventChannel
from flowscope.reference_app.faults import Faults

# Operational endpoints are not business flows: the instrumentation skips them.
UNTRACED_URLS = "admin/faults,healthz"

Hook = Callable[[], Awaitable[None]]
# Services speak plain HTTP on loopback; one TLS context for all clients spares
# each of them loading the CA bundle.
_TLS_CONTEXT = ssl.create_default_context()


@dataclass
class Service:
    """One service: its FastAPI app and what runs on the event loop around serving it."""

    name: str
    app: FastAPI
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)


async def _name_client_span(span: Span, request: RequestInfo) -> None:
    # The instrumentation names client spans by method alone ("GET"), which would
    # merge a gateway's GET /me and GET /balance into one step. OTel's HTTP
    # conventions name them "{method} {url.template}" when the template is known.
    extensions = request.extensions or {}
    template = extensions.get("url_template")
    if template and span.is_recording():
        span.update_name(f"{request.method.decode()} {template}")
        span.set_attribute("url.template", template)
        span.set_attribute("peer.service", extensions.get("peer_service", ""))


class ServiceKit:
    def __init__(
        self,
        name: str,
        provider: TracerProvider,
        faults: Faults,
        channel: EventChannel,
        urls: dict[str, str],
        data_dir: Path,
    ) -> None:
        self.name = name
        self.provider = provider
        self.tracer = provider.get_tracer(f"flowscope.reference_app.{name}", __version__)
        self.faults = faults
        self.channel = channel
        self.urls = urls
        self.data_dir = data_dir
        self.client = httpx.AsyncClient(
            timeout=30.0,
            verify=_TLS_CONTEXT,
            trust_env=False,  # services talk on loopback; never through a proxy
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        HTTPXClientInstrumentor.instrument_client(
            self.client, tracer_provider=provider, request_hook=_name_client_span
        )

    def app(self) -> FastAPI:
        app = FastAPI(title=self.name, version=__version__)
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=UNTRACED_URLS,
            # The per-message ASGI receive/send spans are noise in a flow's steps.
            exclude_spans=["receive", "send"],
        )
        return app

    async def call(
        self,
        target: str,
        method: str,
        template: str,
        *,
        path: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Call ``target`` at ``template`` (e.g. ``/balance/{user_id}``) over HTTP."""
        url = self.urls[target] + template.format(**(path or {}))
        try:
            return await self.client.request(
                method,
                url,
                params=query,
                json=body,
                headers=headers,
                extensions={"url_template": template, "peer_service": target},
            )
        except httpx.HTTPError as exc:
            raise HTTPException(502, f"{target} unreachable: {exc}") from exc

    async def close(self) -> None:
        await self.client.aclose()


def annotate(attributes: Mapping[str, str | int | float | bool]) -> None:
    """Business attributes on the current span (the request's server span in a handler)."""
    trace.get_current_span().set_attributes(attributes)


def passthrough(response: httpx.Response, *ok: int) -> dict[str, Any]:
    """The JSON body of a downstream answer, or that answer's error re-raised."""
    if response.status_code in ok:
        body: dict[str, Any] = response.json()
        return body
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    raise HTTPException(response.status_code, detail)
