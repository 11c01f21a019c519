"""Verify webhooks from hookline (or any Standard Webhooks sender) where they arrive.

    from hookline_receiver import verify, WebhookVerificationError

    event = verify(raw_body, headers, "whsec_...")   # raises WebhookVerificationError subclasses
    event.id, event.type, event.data                 # de-duplicate on event.id

Helpers for FastAPI, Flask and Django live in ``hookline_receiver.fastapi``, ``.flask`` and ``.django``
(each imports its framework only when imported). Standard library only; ``v1a`` (ed25519) signatures
need ``cryptography`` (``pip install 'hookline-receiver[ed25519]'``).
"""

from hookline_receiver._verify import (
    DEFAULT_PREFIX,
    DEFAULT_TOLERANCE,
    PUBLIC_KEY_PREFIX,
    SECRET_KEY_PREFIX,
    SECRET_PREFIX,
    STANDARD_ID_HEADER,
    STANDARD_SIGNATURE_HEADER,
    STANDARD_TIMESTAMP_HEADER,
    MalformedHeader,
    MalformedPayload,
    MissingHeader,
    NoMatchingSignature,
    Scheme,
    SignatureCheck,
    TimestampExpired,
    VerifiedWebhook,
    Verifier,
    WebhookVerificationError,
    decode_base64,
    standard_hmac_key,
    utf8_key,
    verify,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_TOLERANCE",
    "PUBLIC_KEY_PREFIX",
    "SECRET_KEY_PREFIX",
    "SECRET_PREFIX",
    "STANDARD_ID_HEADER",
    "STANDARD_SIGNATURE_HEADER",
    "STANDARD_TIMESTAMP_HEADER",
    "MalformedHeader",
    "MalformedPayload",
    "MissingHeader",
    "NoMatchingSignature",
    "Scheme",
    "SignatureCheck",
    "TimestampExpired",
    "VerifiedWebhook",
    "Verifier",
    "WebhookVerificationError",
    "__version__",
    "decode_base64",
    "standard_hmac_key",
    "utf8_key",
    "verify",
]
