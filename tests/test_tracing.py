"""OpenTelemetry traces (optional): an event's ingest and every attempt at its deliveries are one trace,
whichever process made them, and each claim links to the events it leased. Off unless the environment
asks for it; the sampler decides per event, the same way everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, TraceIdRatioBased
from opentelemetry.trace import StatusCode

from hookline import tracing
from hookline.api.services import Services
from hookline.dispatch.worker import Worker
from tests.conftest import Api
from tests.receivers import Receiver, Reply
from tests.samples import MESSAGE


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"allow_http": True, "allowed_networks": "127.0.0.0/8", "retry_schedule": "100ms,100ms"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


async def test_an_events_ingest_and_attempts_are_one_trace(
    api: Api, services: Services, rx: Receiver, spans: InMemorySpanExporter
) -> None:
    tenant, auth = await api.tenant()
    rx.plan("/t", Reply(503))  # then 200: two attempts
    hook = await api.http.post(
        "/v1/webhooks", headers=auth, json={"url": rx.url("/t"), "events": ["message.received"]}
    )
    assert hook.status_code == 201, hook.text
    posted = await api.http.post(
        "/v1/events", headers=auth, json={"event": "message.received", "data": MESSAGE}
    )
    event_id = posted.json()["data"]["id"]
    batch = [{"event": "message.received", "data": {**MESSAGE, "message_id": f"b{i}"}} for i in range(3)]
    assert (await api.http.post("/v1/events/batch", headers=auth, json={"events": batch})).status_code == 202
    worker = Worker(services.store, services.settings)
    task = asyncio.create_task(worker.run())
    try:
        await rx.wait_for(5, "/t", timeout=20)
        await asyncio.sleep(0.3)
    finally:
        worker.stop()
        await task

    finished = spans.get_finished_spans()
    ingest = [s for s in finished if s.name == "hookline.ingest"]
    attempts = [s for s in finished if s.name == "hookline.attempt"]
    claims = [s for s in finished if s.name == "hookline.claim"]
    assert len(ingest) == 4 and {s.attributes["hookline.batch_size"] for s in ingest} == {1, 3}
    [first] = [s for s in ingest if s.attributes["hookline.event_id"] == event_id]
    assert first.attributes["hookline.tenant_id"] == tenant
    mine = [s for s in attempts if s.attributes["hookline.event_id"] == event_id]
    # The first event: a 503 (retried), then a 200, both in its ingest's trace.
    assert sorted(s.attributes["hookline.attempt"] for s in mine) == [1, 2]
    assert {s.context.trace_id for s in mine} == {first.context.trace_id}
    assert {s.parent.span_id for s in mine} == {first.parent.span_id}
    by_attempt = {s.attributes["hookline.attempt"]: s for s in mine}
    assert by_attempt[1].attributes["http.response.status_code"] == 503
    assert by_attempt[1].attributes["hookline.outcome"] == "pending"
    assert by_attempt[2].attributes["hookline.outcome"] == "succeeded"
    assert by_attempt[1].status.status_code is StatusCode.ERROR
    assert by_attempt[2].status.status_code is StatusCode.UNSET
    # Four events, four traces; the claims link to them.
    assert len({s.context.trace_id for s in ingest}) == 4
    linked = {link.context.trace_id for c in claims for link in c.links}
    assert {s.context.trace_id for s in ingest} <= linked


def test_the_trace_of_an_event_is_the_same_in_every_process() -> None:
    """Derived from the tenant and the event id alone; another event or tenant is another trace."""
    provider = TracerProvider()
    tracing.install(provider)
    try:
        from opentelemetry import trace

        def trace_id(tenant: str, event: str) -> int:
            return trace.get_current_span(tracing.event_context(tenant, event)).get_span_context().trace_id

        assert trace_id("t1", "evt_1") == trace_id("t1", "evt_1")
        assert len({trace_id("t1", "evt_1"), trace_id("t1", "evt_2"), trace_id("t2", "evt_1")}) == 3
    finally:
        tracing.uninstall()


def test_the_sampler_decides_per_event() -> None:
    from opentelemetry import trace

    for sampler, expected in ((ALWAYS_OFF, 0), (TraceIdRatioBased(0.5), None)):
        tracing.install(TracerProvider(sampler=sampler))
        try:
            sampled = [
                trace.get_current_span(tracing.event_context("t", f"evt_{i}"))
                .get_span_context()
                .trace_flags.sampled
                for i in range(200)
            ]
        finally:
            tracing.uninstall()
        if expected == 0:
            assert not any(sampled)
        else:
            assert 40 < sum(sampled) < 160  # about half, decided by the trace id


def test_off_unless_the_environment_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert tracing.configure_from_environment() is False and not tracing.enabled()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.configure_from_environment() is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.configure_from_environment() is False
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    try:
        assert tracing.configure_from_environment() is True and tracing.enabled()
    finally:
        tracing.uninstall()
