"""What the framework helpers share: verify a request, then either answer it for the handler (the
verification handshake, a rejection) or hand the handler the verified event."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hookline_receiver._verify import VerifiedWebhook, Verifier, WebhookVerificationError

logger = logging.getLogger("hookline_receiver")


@dataclass(frozen=True)
class Answer:
    """A response the helper gives without calling the handler: its status and JSON body."""

    status: int
    body: dict[str, Any]


def answer_or_event(
    verifier: Verifier, body: bytes, headers: Mapping[str, str] | Iterable[tuple[str, str]]
) -> Answer | VerifiedWebhook:
    """A rejection (401, or 400 for a body that is not JSON, with ``{"error": why}``: the sender records
    it with the attempt), the handshake's answer (200 ``{"challenge": ...}``, the handshake being signed
    like any delivery), or the verified event for the handler."""
    try:
        event = verifier.verify(body, headers)
    except WebhookVerificationError as exc:
        logger.warning("webhook rejected: %s", exc)
        return Answer(exc.status_code, {"error": str(exc)})
    if event.challenge is not None:
        return Answer(200, {"challenge": event.challenge})
    return event
