"""The FastAPI, Flask and Django helpers of hookline_receiver, each under its framework's test client, fed
by hookline's own request builder (``dispatch.sender.Headers``) and its verification handshake."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import django
import httpx
import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient as DjangoAsyncClient
from django.test import Client as DjangoClient
from django.urls import path
from fastapi import Depends, FastAPI, Response
from flask import Flask

from hookline.dispatch.sender import AttemptResult, Headers, Request
from hookline.dispatch.verification import handshake
from hookline.signing import generate_secret
from hookline.store.events import delivered_body
from hookline_receiver import VerifiedWebhook
from hookline_receiver.django import verify_webhook as django_verify_webhook
from hookline_receiver.fastapi import webhook_dependency
from hookline_receiver.flask import verify_webhook as flask_verify_webhook

SECRET = generate_secret()
EVENT_ID = "evt_01JFRAMEWORK"
DATA = {"order_id": 7}
BODY = delivered_body(EVENT_ID, "order.created", "2026-01-01T00:00:00.000Z", DATA)

# --- the three receivers ---------------------------------------------------------------------------

received: list[VerifiedWebhook] = []


def fastapi_app() -> FastAPI:
    app = FastAPI()
    verified = webhook_dependency(app, SECRET)

    @app.post("/webhook")
    async def receive(event: VerifiedWebhook = Depends(verified)) -> Response:
        received.append(event)
        return Response(status_code=204)

    return app


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhook/<tenant>")
    @flask_verify_webhook([generate_secret(), SECRET])  # during a rotation
    def receive(event: VerifiedWebhook, tenant: str) -> tuple[str, int]:
        assert tenant == "t1"
        received.append(event)
        return "", 204

    return app


@django_verify_webhook(SECRET)
def django_view(request: HttpRequest, event: VerifiedWebhook) -> HttpResponse:
    received.append(event)
    return HttpResponse(status=204)


@django_verify_webhook(SECRET)
async def django_async_view(request: HttpRequest, event: VerifiedWebhook) -> HttpResponse:
    received.append(event)
    return HttpResponse(status=204)


urlpatterns = [path("webhook", django_view), path("async-webhook", django_async_view)]

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware"],
        INSTALLED_APPS=[],
    )
    django.setup()


# (url, body, headers) -> (status, body text), or an awaitable of it (Django's async client).
Answer = tuple[int, str]
Post = Callable[[str, bytes, dict[str, str]], Answer | Awaitable[Answer]]


async def posted(post: Post, url: str, body: bytes, headers: dict[str, str]) -> Answer:
    answer = post(url, body, headers)
    return await answer if inspect.isawaitable(answer) else answer


def fastapi_post() -> Post:
    app = fastapi_app()

    async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver.test") as client:
            answer = await client.post("/webhook", content=body, headers=headers)
        return answer.status_code, answer.text

    return post


def flask_post() -> Post:
    client = flask_app().test_client()

    def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        answer = client.post("/webhook/t1", data=body, headers=headers)
        return answer.status_code, answer.get_data(as_text=True)

    return post


def django_post() -> Post:
    client = DjangoClient(enforce_csrf_checks=True)  # the decorator exempts the view

    def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        others = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        answer = client.post("/webhook", data=body, content_type=headers["Content-Type"], headers=others)
        return answer.status_code, answer.content.decode()

    return post


def django_async_post() -> Post:
    client = DjangoAsyncClient(enforce_csrf_checks=True)

    async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        others = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        answer = await client.post(
            "/async-webhook", data=body, content_type=headers["Content-Type"], headers=others
        )
        return answer.status_code, answer.content.decode()

    return post


FRAMEWORKS = {
    "fastapi": fastapi_post,
    "flask": flask_post,
    "django": django_post,
    "django-async": django_async_post,
}


@pytest.fixture(params=list(FRAMEWORKS))
def post(request: pytest.FixtureRequest) -> Iterator[Post]:
    received.clear()
    yield FRAMEWORKS[request.param]()
    received.clear()


# --- hookline's side -------------------------------------------------------------------------------


@dataclass
class ClientSender:
    """A ``dispatch.sender.Sender`` that hands hookline's requests (headers built as the worker builds
    them) to a framework's test client."""

    post: Post
    timestamp: Callable[[], int] = lambda: int(time.time())
    sent: list[dict[str, str]] = field(default_factory=list)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, request: Request) -> AttemptResult:
        headers, _ = Headers().build(request, self.timestamp())
        self.sent.append(headers)
        status, text = await posted(self.post, request.url, request.body, headers)
        return AttemptResult(time.time(), 1, status, text, None, None, headers)


def deliver(post: Post, body: bytes = BODY, **sender: Any) -> tuple[int, Any]:
    request = Request(
        url="https://receiver.test/webhook",
        event_id=EVENT_ID,
        event_type="order.created",
        body=body,
        secrets=[SECRET],
        custom_headers={},
        timeout=5,
    )
    result = asyncio.run(ClientSender(post, **sender).send(request))
    text = result.response_body or ""
    return result.status_code or 0, json.loads(text) if text else None


# --- behaviour -------------------------------------------------------------------------------------


def test_a_delivery_reaches_the_handler(post: Post) -> None:
    status, _ = deliver(post)
    assert status == 204
    [event] = received
    assert (event.id, event.type, event.data, event.scheme) == (EVENT_ID, "order.created", DATA, "v1")


def test_the_handshake_is_answered_without_the_handler(post: Post) -> None:
    sender = ClientSender(post)
    outcome = asyncio.run(
        handshake(
            sender, url="https://receiver.test/webhook", signing_secrets=[SECRET], headers={}, timeout=5
        )
    )
    assert outcome.verified, outcome.error
    assert received == []
    assert sender.sent[0]["X-Webhook-Event"] == "verification"


def test_an_unsigned_handshake_is_refused(post: Post) -> None:
    body = b'{"type":"verification","challenge":"x"}'
    status, text = asyncio.run(posted(post, "/webhook", body, {"Content-Type": "application/json"}))
    assert status == 401 and "missing header" in json.loads(text)["error"]
    assert received == []


def test_rejections_are_401_with_a_json_error(post: Post) -> None:
    stale = int(time.time()) - 3600
    assert deliver(post, timestamp=lambda: stale) == (
        401,
        {"error": "timestamp outside the tolerance of 300 s"},
    )

    def tampered(url: str, body: bytes, headers: dict[str, str]) -> Answer | Awaitable[Answer]:
        return post(url, body.replace(b"7", b"8"), headers)

    assert deliver(tampered) == (401, {"error": "no signature matched"})
    assert received == []


def test_a_signed_body_that_is_not_json_is_400(post: Post) -> None:
    assert deliver(post, body=b"not json") == (400, {"error": "the body is not JSON"})
    assert received == []
