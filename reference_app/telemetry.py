"""One TracerProvider per service, and where their spans go.

The services share a process, so nothing here touches the global provider:
each service gets its own provider (its own ``service.name`` resource) and hands
it to the official instrumentations explicitly.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from flowscope import __version__

# Every service has its own release train, as in a real shop; `compare --versions`
# has something to tell apart.
SERVICE_VERSIONS: dict[str, str] = {
    "client-gateway": "2.7.1",
    "user-service": "1.12.0",
    "wallet-service": "3.2.4",
    "order-manager": "4.0.2",
    "risk-manager": "1.8.3",
    "matching-engine": "5.1.0",
    "market-data": "2.3.9",
    "reporting-service": "1.5.6",
}
SERVICES: tuple[str, ...] = tuple(SERVICE_VERSIONS)

ExporterFactory = Callable[[str], SpanExporter]


@dataclass(frozen=True)
class ExportConfig:
    """Where spans go: an OTLP/HTTP endpoint, an OTLP JSON lines file, or a test's exporter."""

    otlp_endpoint: str | None = (
        None  # base URL; /v1/traces is appended like OTEL_EXPORTER_OTLP_ENDPOINT
    )
    otlp_headers: Mapping[str, str] = field(default_factory=dict)
    otlp_file: Path | None = None
    exporter_factory: ExporterFactory | None = None
    schedule_delay_ms: int = 1000  # short, so a dashboard shows traffic within a second or two

    def validate(self) -> None:
        chosen = [self.otlp_endpoint, self.otlp_file, self.exporter_factory]
        if sum(x is not None for x in chosen) != 1:
            raise ValueError(
                "export: give exactly one of otlp_endpoint, otlp_file, exporter_factory"
            )
        if self.otlp_endpoint is not None and not self.otlp_endpoint.startswith(
            ("http://", "https://")
        ):
            raise ValueError(f"otlp-endpoint must be an http(s) URL, got {self.otlp_endpoint!r}")


def traces_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


class OtlpJsonLinesFile:
    """One OTLP JSON request per line, the OpenTelemetry Collector file exporter's format.

    Shared by every service's exporter; a lock keeps lines whole.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._handle: IO[str] | None = path.open("w", encoding="utf-8")

    def write(self, spans: Sequence[ReadableSpan]) -> None:
        document = otlp_json_document(spans)
        line = json.dumps(document, separators=(",", ":"), sort_keys=True)
        with self._lock:
            if self._handle is not None:
                self._handle.write(line + "\n")
                self._handle.flush()

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def otlp_json_document(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """Spans as OTLP/JSON: protobuf's JSON mapping, but hex ids and integer enums."""
    document: dict[str, Any] = json_format.MessageToDict(
        encode_spans(spans), use_integers_for_enums=True
    )
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                _ids_to_hex(span)
                for link in span.get("links", []):
                    _ids_to_hex(link)
    return document


def _ids_to_hex(item: dict[str, Any]) -> None:
    for key in ("traceId", "spanId", "parentSpanId"):
        if item.get(key):
            item[key] = base64.b64decode(item[key]).hex()


class _FileExporter(SpanExporter):
    def __init__(self, sink: OtlpJsonLinesFile) -> None:
        self._sink = sink

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self._sink.write(spans)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """The shared file is closed by Telemetry once every provider has flushed."""


class _Undelivered:
    """Spans whose export failed, across every provider's exporter (their batch
    processors export on threads of their own)."""

    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.spans += count


class _Counted(SpanExporter):
    """An exporter whose failed batches are counted: the SDK only logs them, and a run
    pointed where nothing listens ended with "0 errors" having delivered nothing."""

    def __init__(self, inner: SpanExporter, undelivered: _Undelivered) -> None:
        self._inner = inner
        self._undelivered = undelivered

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception:
            self._undelivered.add(len(spans))
            raise
        if result is not SpanExportResult.SUCCESS:
            self._undelivered.add(len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class Telemetry:
    """The eight TracerProviders of one app and their exporters."""

    def __init__(self, config: ExportConfig) -> None:
        config.validate()
        self.config = config
        self._file = OtlpJsonLinesFile(config.otlp_file) if config.otlp_file else None
        self._undelivered = _Undelivered()
        self.providers: dict[str, TracerProvider] = {
            name: self._provider(name) for name in SERVICES
        }
        self._closed = False

    def _exporter(self, service: str) -> SpanExporter:
        cfg = self.config
        if cfg.exporter_factory is not None:
            return cfg.exporter_factory(service)
        if self._file is not None:
            return _FileExporter(self._file)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        assert cfg.otlp_endpoint is not None
        return OTLPSpanExporter(
            endpoint=traces_url(cfg.otlp_endpoint), headers=dict(cfg.otlp_headers), timeout=10
        )

    def _provider(self, service: str) -> TracerProvider:
        resource = Resource.create(
            {
                "service.name": service,
                "service.version": SERVICE_VERSIONS[service],
                "service.namespace": "trading",
                "service.instance.id": f"{service}-{os.getpid()}",
                "deployment.environment.name": "demo",
                "flowscope.reference_app.version": __version__,
            }
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(
            BatchSpanProcessor(
                _Counted(self._exporter(service), self._undelivered),
                schedule_delay_millis=self.config.schedule_delay_ms,
                max_queue_size=16_384,
            )
        )
        return provider

    def provider(self, service: str) -> TracerProvider:
        return self.providers[service]

    @property
    def undelivered(self) -> int:
        """Spans in batches the exporters failed to deliver (after their retries)."""
        return self._undelivered.spans

    def force_flush(self, timeout_s: float = 30.0) -> bool:
        return all(p.force_flush(int(timeout_s * 1000)) for p in self.providers.values())

    def shutdown(self) -> None:
        """Export everything still queued, then stop. Safe twice."""
        if self._closed:
            return
        self._closed = True
        self.force_flush()
        for provider in self.providers.values():
            provider.shutdown()
        if self._file is not None:
            self._file.close()
