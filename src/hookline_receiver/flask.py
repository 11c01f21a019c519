"""Flask: a view decorator that hands the view a verified webhook.

    @app.post("/webhook")
    @verify_webhook("whsec_...")
    def receive(event: VerifiedWebhook):
        ...
        return "", 204

The decorator reads the raw body and verifies it; it answers the verification handshake itself (200
``{"challenge": ...}``, the view is not called) and rejects what does not verify (401 ``{"error": ...}``).
The view gets the event first, then the URL's variables.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, Literal

from flask import current_app, jsonify, request

from hookline_receiver._answer import Answer, answer_or_event
from hookline_receiver._verify import DEFAULT_PREFIX, DEFAULT_TOLERANCE, Scheme, Secret, Verifier

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
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            outcome = answer_or_event(verifier, request.get_data(), request.headers)
            if isinstance(outcome, Answer):
                return jsonify(outcome.body), outcome.status
            return current_app.ensure_sync(view)(outcome, *args, **kwargs)

        return wrapper

    return decorate
