"""``hookline_receiver`` under the server's name: ``from hookline.receiver import verify`` works where the
server is installed. Receivers that do not run the server install the small ``hookline-receiver``
distribution (``receiver/`` in this repository), which pulls no server dependency."""

from hookline_receiver import (
    DEFAULT_PREFIX,
    DEFAULT_TOLERANCE,
    MalformedHeader,
    MalformedPayload,
    MissingHeader,
    NoMatchingSignature,
    SignatureCheck,
    TimestampExpired,
    VerifiedWebhook,
    Verifier,
    WebhookVerificationError,
    verify,
)

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_TOLERANCE",
    "MalformedHeader",
    "MalformedPayload",
    "MissingHeader",
    "NoMatchingSignature",
    "SignatureCheck",
    "TimestampExpired",
    "VerifiedWebhook",
    "Verifier",
    "WebhookVerificationError",
    "verify",
]
