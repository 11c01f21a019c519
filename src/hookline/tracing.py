"""Optional OpenTelemetry traces of an event's life: its ingest, the claims that leased its deliveries,
and every attempt.

Off unless the OpenTelemetry SDK is installed and its standard variables ask for traces
(``OTEL_TRACES_EXPORTER=otlp|console``, or an ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``); then the SDK's
own variables configure it (service name, resource attributes, OTLP endpoint, protocol and headers,
sampler). Off, every function here returns at its first line.

One trace per event, across processes, with nothing stored: the trace id is derived from the tenant and
the event id, so the API process that accepted the event and every worker that sends one of its
deliveries put their spans in the same trace. ``hookline.ingest`` and each ``hookline.attempt`` are
children of that trace's (unrecorded) root; a ``hookline.claim`` is its own span linking to the events
it leased. Whether an event is traced is decided by the configured sampler on that trace id, the same
way in every process.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

log = structlog.get_logger("hookline")

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def enabled() -> bool:
    return _tracer is not None


def configure_from_environment() -> bool:
    """Install tracing if the environment asks for it and the SDK is there. Returns whether it is on."""
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or exporters == "none":
        return False
    if not exporters and not endpoint:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        log.warning(
            "OTEL_* asks for traces but the OpenTelemetry SDK is not installed; tracing is off "
            "(pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http)"
        )
        return False
    chosen: list[SpanExporter] = []
    for name in [n.strip() for n in (exporters or "otlp").split(",") if n.strip()]:
        if name == "console":
            chosen.append(ConsoleSpanExporter(out=sys.stderr))
        elif name == "otlp":
            otlp = _otlp_exporter()
            if otlp is not None:
                chosen.append(otlp)
        else:
            log.warning("unknown OTEL_TRACES_EXPORTER; ignored", exporter=name)
    if not chosen:
        return False
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "hookline"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in chosen:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    install(provider)
    log.info("tracing on", exporters=exporters or "otlp")
    return True


def _otlp_exporter() -> Any:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    package = "grpc" if protocol == "grpc" else "http"
    try:
        module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{package}.trace_exporter")
    except ImportError:
        log.warning(
            "the OTLP exporter is not installed; tracing is off",
            install=f"pip install opentelemetry-exporter-otlp-proto-{package}",
        )
        return None
    return module.OTLPSpanExporter()


def install(provider: TracerProvider) -> None:
    """Trace through ``provider`` (the environment's, or a test's)."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("hookline")


def uninstall() -> None:
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def event_context(tenant_id: str, event_id: str) -> Context:
    """The context an event's spans are children of: its trace, sampled as the configured sampler
    decides for that trace id (the same decision in every process)."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    digest = hashlib.blake2b(f"{tenant_id}\x00{event_id}".encode(), digest_size=24).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:], "big") or 1
    assert _provider is not None
    decision = _provider.sampler.should_sample(None, trace_id, "hookline.event").decision
    sampled = decision.is_sampled()  # type: ignore[no-untyped-call]
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    root = SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(root))


def ingested(tenant_id: str, events: Sequence[tuple[str, str]], started_ns: int, ended_ns: int) -> None:
    """``hookline.ingest`` spans: one per accepted event (``(event_id, event_type)``), over the request."""
    if _tracer is None:
        return
    for event_id, event_type in events:
        span = _tracer.start_span(
            "hookline.ingest",
            context=event_context(tenant_id, event_id),
            start_time=started_ns,
            attributes={
                "hookline.tenant_id": tenant_id,
                "hookline.event_id": event_id,
                "hookline.event_type": event_type,
                "hookline.batch_size": len(events),
            },
        )
        span.end(end_time=ended_ns)


def claimed(jobs: Iterable[tuple[str, str]], started_ns: int, ended_ns: int, worker_id: str) -> None:
    """A ``hookline.claim`` span linking to each leased delivery's event (``(tenant_id, event_id)``)."""
    if _tracer is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Link

    links = [Link(trace.get_current_span(event_context(t, e)).get_span_context()) for t, e in jobs]
    span = _tracer.start_span(
        "hookline.claim",
        start_time=started_ns,
        links=links,
        attributes={"hookline.worker_id": worker_id, "hookline.deliveries": len(links)},
    )
    span.end(end_time=ended_ns)


def attempted(
    *,
    tenant_id: str,
    event_id: str,
    delivery_id: int,
    endpoint_id: int,
    attempt: int,
    outcome: str,
    status_class: str,
    status_code: int | None,
    started_ns: int,
    ended_ns: int,
) -> None:
    """A ``hookline.attempt`` span in the event's trace."""
    if _tracer is None:
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    attributes: dict[str, str | int] = {
        "hookline.tenant_id": tenant_id,
        "hookline.event_id": event_id,
        "hookline.delivery_id": delivery_id,
        "hookline.endpoint_id": endpoint_id,
        "hookline.attempt": attempt,
        "hookline.outcome": outcome,
        "hookline.status_class": status_class,
    }
    if status_code is not None:
        attributes["http.response.status_code"] = status_code
    span = _tracer.start_span(
        "hookline.attempt",
        context=event_context(tenant_id, event_id),
        kind=SpanKind.CLIENT,
        start_time=started_ns,
        attributes=attributes,
    )
    if status_class != "2xx":
        span.set_status(Status(StatusCode.ERROR, status_class))
    span.end(end_time=ended_ns)
