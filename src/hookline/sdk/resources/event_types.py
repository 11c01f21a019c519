"""``client.event_types``: the catalog webhooks subscribe to; the operator adds custom types."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookline.sdk.models import EventType
from hookline.sdk.pagination import AsyncPager, Page, Pager, page_parser
from hookline.sdk.resources._base import AsyncResource, Ops, SyncResource, body
from hookline.sdk.routes import Call, Route

LIST = Route("GET", "/v1/event-types", "event_types.list")
GET = Route("GET", "/v1/event-types/{name}", "event_types.get")
CREATE = Route("POST", "/v1/event-types", "event_types.create")


def _page(cursor: str | None) -> Call[Page[EventType]]:
    # One page holds the whole catalog today; a cursor is followed if the API ever pages it.
    return LIST.call(page_parser(EventType.from_dict), params={"cursor": cursor})


def _create(
    name: str,
    description: str | None,
    group: str | None,
    schema: Mapping[str, Any] | None,
    example: Mapping[str, Any] | None,
) -> Call[EventType]:
    json = body(
        name=name,
        description=description,
        group=group,
        schema=dict(schema) if schema is not None else None,
        example=dict(example) if example is not None else None,
    )
    return CREATE.call(EventType.from_dict, json=json)


class EventTypes(SyncResource, Ops):
    def list(self) -> Pager[EventType]:
        return Pager(self._run, _page, None)

    def get(self, name: str) -> EventType:
        return self._run(GET.call(EventType.from_dict, path={"name": name}))

    def create(
        self,
        name: str,
        *,
        description: str | None = None,
        group: str | None = None,
        schema: Mapping[str, Any] | None = None,
        example: Mapping[str, Any] | None = None,
    ) -> EventType:
        """Add a custom type (admin key): ``schema`` is the JSON Schema of its ``data``."""
        return self._run(_create(name, description, group, schema, example))


class AsyncEventTypes(AsyncResource, Ops):
    def list(self) -> AsyncPager[EventType]:
        return AsyncPager(self._run, _page, None)

    async def get(self, name: str) -> EventType:
        return await self._run(GET.call(EventType.from_dict, path={"name": name}))

    async def create(
        self,
        name: str,
        *,
        description: str | None = None,
        group: str | None = None,
        schema: Mapping[str, Any] | None = None,
        example: Mapping[str, Any] | None = None,
    ) -> EventType:
        return await self._run(_create(name, description, group, schema, example))
