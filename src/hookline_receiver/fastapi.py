"""FastAPI: a dependency that hands the handler a verified webhook.

    app = FastAPI()
    verified = webhook_dependency(app, "whsec_...")

    @app.post("/webhook")
    async def receive(event: VerifiedWebhook = Depends(verified)) -> None: ...

The dependency reads the raw body and verifies it. A dependency cannot answer by itself, so it raises
an exception that ``webhook_dependency`` teaches ``app`` to turn into the response: the verification
handshake's 200 ``{"challenge": ...}`` (the handler is not called) or a 401 ``{"error": ...}``.
"""

# No `from __future__ import annotations`: FastAPI reads the dependency's annotations at run time.

from collections.abc import Iterable
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hookline_receiver._answer import Answer, answer_or_event
from hookline_receiver._verify import (
    DEFAULT_PREFIX,
    DEFAULT_TOLERANCE,
    Scheme,
    Secret,
    VerifiedWebhook,
    Verifier,
)

__all__ = ["WebhookDependency", "webhook_dependency"]


class _Answered(Exception):
    """Carries the response the dependency gives instead of the handler's."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


async def _respond(request: Request, exc: Exception) -> Response:
    answer = exc.answer if isinstance(exc, _Answered) else Answer(500, {"error": "internal error"})
    return JSONResponse(answer.body, status_code=answer.status)


class WebhookDependency:
    """Use with ``Depends``: returns the ``VerifiedWebhook`` of an authentic, fresh request."""

    def __init__(self, app: Starlette, verifier: Verifier) -> None:
        self.verifier = verifier
        app.add_exception_handler(_Answered, _respond)

    async def __call__(self, request: Request) -> VerifiedWebhook:
        outcome = answer_or_event(self.verifier, await request.body(), request.headers)
        if isinstance(outcome, Answer):
            raise _Answered(outcome)
        return outcome


def webhook_dependency(
    app: Starlette,
    secrets: Secret | Iterable[Secret],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    scheme: Scheme = "auto",
    prefix: str = DEFAULT_PREFIX,
    hex_form: Literal["sha256=", "hex"] | None = None,
) -> WebhookDependency:
    """A dependency verifying with ``secrets`` (see ``hookline_receiver.Verifier`` for the options);
    call it when building ``app``, before it serves."""
    verifier = Verifier(secrets, tolerance=tolerance, scheme=scheme, prefix=prefix, hex_form=hex_form)
    return WebhookDependency(app, verifier)
