"""Choosing the HTTP client that sends deliveries (``HOOKLINE_SENDER``): the one module that knows both
implementations. They import ``hookline.dispatch.sender`` (the shared types and rules); nothing imports
back, so the imports go one way."""

from __future__ import annotations

from hookline.dispatch.sender import Sender, SenderKind
from hookline.dispatch.sender_aiohttp import AiohttpSender
from hookline.dispatch.sender_reqwest import ReqwestSender
from hookline.egress import UrlPolicy
from hookline.signing import SignatureStyle


def make_sender(
    kind: SenderKind,
    policy: UrlPolicy,
    *,
    style: SignatureStyle = SignatureStyle(),
    body_limit: int = 64 * 1024,
) -> Sender:
    if kind == "aiohttp":
        return AiohttpSender(policy, style=style, body_limit=body_limit)
    return ReqwestSender(policy, style=style, body_limit=body_limit)
