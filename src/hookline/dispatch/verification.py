"""The verification handshake (seed 003): proof that the receiver at a URL wants our events.

hookline POSTs ``{"type": "verification", "challenge": "<random>"}``, signed like any delivery (so the
receiver's signature check runs on it too), and the endpoint is verified only when the answer is a
200 whose JSON body holds the same ``challenge``. Until then its deliveries are held. The answer is
compared in constant time; what went wrong is said in words, never quoting the receiver's body.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from hookline.dispatch.sender import Request, Sender

VERIFICATION_TYPE = "verification"


@dataclass(frozen=True, slots=True)
class Outcome:
    verified: bool
    error: str | None = None  # why not, in words
    status_code: int | None = None
    duration_ms: int = 0


def challenge_body(challenge: str) -> bytes:
    return orjson.dumps({"type": VERIFICATION_TYPE, "challenge": challenge})


async def handshake(
    sender: Sender,
    *,
    url: str,
    signing_secrets: list[str],
    headers: dict[str, str],
    timeout: float,  # noqa: ASYNC109 (the request's own deadline, enforced by the sender)
    signing_keys: Sequence[str] = (),
) -> Outcome:
    challenge = secrets.token_urlsafe(24)
    request = Request(
        url=url,
        event_id=f"verify_{secrets.token_hex(12)}",
        event_type=VERIFICATION_TYPE,
        body=challenge_body(challenge),
        secrets=signing_secrets,
        custom_headers=headers,
        timeout=timeout,
        signing_keys=signing_keys,
    )
    result = await sender.send(request)
    code = result.status_code
    if result.error is not None and code is None:
        return Outcome(False, f"the endpoint could not be reached: {result.error}", None, result.duration_ms)
    if code != 200:
        return Outcome(False, f"the endpoint answered {code}, not 200", code, result.duration_ms)
    answered = _challenge_in(result.response_body)
    if answered is None:
        return Outcome(False, 'the answer is not JSON with a "challenge" string', code, result.duration_ms)
    if not hmac.compare_digest(answered.encode(), challenge.encode()):
        return Outcome(False, "the answer's challenge does not match the one sent", code, result.duration_ms)
    return Outcome(True, None, code, result.duration_ms)


def _challenge_in(body: str | None) -> str | None:
    if not body:
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, dict) and isinstance(value.get("challenge"), str):
        challenge: str = value["challenge"]
        return challenge
    return None
