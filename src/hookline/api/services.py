"""What every request handler needs, built once per process and kept on ``app.state``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request

from hookline.config import Settings
from hookline.egress import UrlPolicy
from hookline.store.engine import Store
from hookline.store.event_types import EventTypeRegistry
from hookline.store.tenants import hash_key


@dataclass
class Services:
    settings: Settings
    store: Store
    registry: EventTypeRegistry
    admin_key_hash: str

    @property
    def url_policy(self) -> UrlPolicy:
        return UrlPolicy(allow_http=self.settings.allow_http, allowed_networks=self.settings.allowed_networks)

    def is_admin_key(self, token: str) -> bool:
        return hmac.compare_digest(hash_key(token), self.admin_key_hash)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
