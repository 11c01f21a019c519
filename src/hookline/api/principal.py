"""``Principal``: who is calling, the one description of the caller every route and the lean ingest
path get (``hookline.api.auth`` makes it from the ``Authorization`` header)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

from hookline.api.key_policy import ADMIN, SCOPES, IPNetwork, effective
from hookline.dispatch.limiter import RateLimit
from hookline.store.tenants import ApiKey

ADMIN_KEY_ID = "admin"  # the key id of the operator's admin key, which has no row in api_keys
# The API's request limits allow a second's worth of requests at once (an endpoint's, a tenth).
REQUEST_BURST_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: the operator (admin key) or one tenant's key, and what that key allows."""

    tenant_id: str | None  # None: the operator, who acts on any tenant
    key_id: str  # the api_keys row's id; ADMIN_KEY_ID for the operator's admin key
    scopes: frozenset[str]  # held, implied ones included (``tenant:manage`` also holds ``read``...)
    expires_at: datetime | None = None
    allowed_ips: tuple[IPNetwork, ...] = ()  # empty: any address
    rate_limit: RateLimit | None = None  # this key's own requests per second (per API process)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    @classmethod
    def of_key(cls, key: ApiKey) -> Principal:
        return cls(
            tenant_id=key.tenant_id,
            key_id=key.id,
            scopes=effective(key.scopes),
            expires_at=key.expires_at,
            allowed_ips=tuple(ipaddress.ip_network(text) for text in key.allowed_ips or ()),
            rate_limit=RateLimit(key.rate_limit, REQUEST_BURST_SECONDS) if key.rate_limit else None,
        )


OPERATOR = Principal(tenant_id=None, key_id=ADMIN_KEY_ID, scopes=frozenset(SCOPES))
