"""Django: a view decorator that hands the view a verified webhook.

    @verify_webhook("whsec_...")
    def receive(request, event: VerifiedWebhook):
        ...
        return HttpResponse(status=204)

The decorator reads the raw body and verifies it; it answers the verification handshake itself (200
``{"challenge": ...}``, the view is not called) and rejects what does not verify (401 ``{"error": ...}``).
The view is exempt from CSRF checks (the signature is the proof of origin); sync and async views work.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, Literal, cast

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from hookline_receiver._answer import Answer, answer_or_event
from hookline_receiver._verify import (
    DEFAULT_PREFIX,
    DEFAULT_TOLERANCE,
    Scheme,
    Secret,
    VerifiedWebhook,
    Verifier,
)

__all__ = ["verify_webhook"]

View = Callable[..., Any]


def verify_webhook(
    secrets: Secret | Iterable[Secret],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    scheme: Scheme = "auto",
    prefix: str = DEFAULT_PREFIX,
    hex_form: Literal["sha256=", "hex"] | None = None,
) -> Callable[[View], View]:
    """Verify with ``secrets`` (see ``hookline_receiver.Verifier`` for the options)."""
    verifier = Verifier(secrets, tolerance=tolerance, scheme=scheme, prefix=prefix, hex_form=hex_form)

    def decorate(view: View) -> View:
        def check(request: HttpRequest) -> JsonResponse | VerifiedWebhook:
            outcome = answer_or_event(verifier, request.body, request.headers)
            if isinstance(outcome, Answer):
                return JsonResponse(outcome.body, status=outcome.status)
            return outcome

        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                outcome = check(request)
                if isinstance(outcome, JsonResponse):
                    return outcome
                return await view(request, outcome, *args, **kwargs)

            return cast(View, csrf_exempt(async_wrapper))

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            outcome = check(request)
            if isinstance(outcome, JsonResponse):
                return outcome
            return view(request, outcome, *args, **kwargs)

        return cast(View, csrf_exempt(wrapper))

    return decorate
