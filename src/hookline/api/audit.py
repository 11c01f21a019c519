"""What the API writes to the audit log (``hookline.store.audit_log``): who is acting (``Actor``, a
route's ``who: Who`` parameter) and what changed, secrets redacted (``diff``).

Actions, by resource:

* ``tenant.created``, ``tenant.updated``, ``tenant.deleted``
* ``api_key.created``, ``api_key.revoked``
* ``webhook.created``, ``webhook.updated``, ``webhook.deleted``, ``webhook.secret_revealed``,
  ``webhook.secret_rotated``, ``webhook.verification_requested``, ``webhook.circuit_breaker_reset``,
  ``webhook.replayed``; ``webhook.listen_opened`` (a ``hookline listen`` session's webhook),
  ``webhook.listen_expired`` (housekeeping deleted one no one held)
* ``delivery.retried``
* ``event_type.created``
* ``secret_key.rotated`` (``hookline secrets rotate-key``, service-wide)
* ``portal_link.created``, ``portal_link.revoked``

A portal link's session acts as ``portal_link:<link id>``.

An update's ``changes`` are ``{field: {"from": old, "to": new}}`` for each field that changed; a
creation's, the fields it was created with; an action's, what it was asked (a replay's window). A
secret is never written: its value is ``"[redacted]"`` (``null`` stays ``null``: whether there is one is
not a secret), and secret headers show their names with redacted values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends
from starlette.requests import HTTPConnection

from hookline.api.auth import authenticate
from hookline.api.client_address import FORWARDED_FOR, client_address
from hookline.api.principal import Principal
from hookline.api.services import Services, get_services
from hookline.dispatch.sender import REDACTED
from hookline.store.audit_log import Entry

ACTIONS = (
    "tenant.created",
    "tenant.updated",
    "tenant.deleted",
    "api_key.created",
    "api_key.revoked",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "webhook.secret_revealed",
    "webhook.secret_rotated",
    "webhook.verification_requested",
    "webhook.circuit_breaker_reset",
    "webhook.replayed",
    "webhook.listen_opened",
    "webhook.listen_expired",
    "delivery.retried",
    "event_type.created",
    "secret_key.rotated",
    "portal_link.created",
    "portal_link.revoked",
)
RESOURCE_TYPES = tuple(dict.fromkeys(action.partition(".")[0] for action in ACTIONS))

# Fields whose values are secrets, wherever they appear in changes.
SECRET_FIELDS = frozenset({"secret", "signing_key", "previous_secrets"})
# Fields whose values are {name: secret}: the names are shown, the values redacted.
SECRET_MAPS = frozenset({"secret_headers"})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is making a request's changes: the key and the address it came from."""

    key_id: str  # an API key's id, or "admin" for the operator's admin key
    address: str | None  # the client's address (HOOKLINE_TRUSTED_PROXIES applied)

    def entry(
        self,
        action: str,
        tenant_id: str | None,
        resource_type: str,
        resource_id: str | int | None,
        changes: Mapping[str, Any] | None = None,
    ) -> Entry:
        return Entry(
            action=action,
            tenant_id=tenant_id,
            actor=self.key_id,
            client_address=self.address,
            resource_type=resource_type,
            resource_id=str(resource_id) if resource_id is not None else None,
            # As JSON sees it (times as ISO 8601 text), the same on both backends.
            changes=orjson.loads(orjson.dumps(redacted(changes or {}))),
        )


async def actor(
    connection: HTTPConnection,
    principal: Annotated[Principal, Depends(authenticate)],
    services: Annotated[Services, Depends(get_services)],
) -> Actor:
    """The request's ``Actor`` (FastAPI runs ``authenticate`` once a request: this reuses its answer)."""
    peer = connection.scope.get("client")
    forwarded = [v.decode("latin-1") for name, v in connection.scope["headers"] if name == FORWARDED_FOR]
    address = client_address(peer[0] if peer else None, forwarded, services.settings.trusted_proxies)
    return Actor(principal.key_id, str(address) if address is not None else None)


Who = Annotated[Actor, Depends(actor)]


def _redact(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in SECRET_FIELDS:
        return [REDACTED for _ in value] if isinstance(value, list) else REDACTED
    if name in SECRET_MAPS and isinstance(value, Mapping):
        return dict.fromkeys(value, REDACTED)
    return value


def redacted(changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` with every secret value replaced (in ``{"from", "to"}`` pairs too)."""
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if isinstance(value, Change):
            out[name] = {"from": _redact(name, value.old), "to": _redact(name, value.new)}
        else:
            out[name] = _redact(name, value)
    return out


@dataclass(frozen=True, slots=True)
class Change:
    old: Any
    new: Any


def diff(
    before: Mapping[str, Any], after: Mapping[str, Any], fields: Iterable[str] | None = None
) -> dict[str, Any]:
    """``{field: Change(old, new)}`` for each of ``fields`` (default: ``after``'s) whose value differs;
    ``Actor.entry`` redacts them."""
    return {
        name: Change(before.get(name), after[name])
        for name in (fields if fields is not None else after)
        if name in after and before.get(name) != after[name]
    }
