"""/v1/event-types: the catalog endpoints subscribe to (shipped defaults plus custom types)."""

from __future__ import annotations

from typing import Any

import jsonschema_specifications  # type: ignore[import-untyped]  # jsonschema's own dependency
from fastapi import APIRouter
from jsonschema import SchemaError
from pydantic import BaseModel, ConfigDict, Field
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from hookline.api.access import AdminOnly, Read
from hookline.api.audit import Who
from hookline.api.auth import ServicesDep
from hookline.api.envelope import ApiError, bad_request, not_found, ok
from hookline.api.responses import Envelope, EventTypeOut, Page
from hookline.api.routing import StrictJsonRoute
from hookline.catalog import (
    EVENT_NAME_PATTERN,
    MAX_EVENT_NAME_LENGTH,
    EventType,
    first_schema_error,
    suggest,
    validator_for,
)
from hookline.store import audit_log
from hookline.store.event_types import insert_event_type

router = APIRouter(prefix="/v1/event-types", tags=["event types"], route_class=StrictJsonRoute)


class EventTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=EVENT_NAME_PATTERN, max_length=MAX_EVENT_NAME_LENGTH)
    description: str = Field(default="", max_length=1000)
    group: str = Field(default="", max_length=100)
    schema_: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, alias="schema")
    example: dict[str, Any] = Field(default_factory=dict)


def unresolvable_ref(schema: dict[str, Any]) -> str | None:
    """The first ``$ref`` that validation could not follow (remote, or pointing nowhere), else None.

    jsonschema resolves references lazily and never fetches remote ones, so such a schema would fail
    (as a 500) on the first event that reaches the reference; it is refused when the type is created.
    """
    resource = DRAFT202012.create_resource(schema)
    stack = [(resource, jsonschema_specifications.REGISTRY.resolver_with_root(resource))]
    while stack:
        current, resolver = stack.pop()
        if isinstance(current.contents, dict):
            for keyword in ("$ref", "$dynamicRef"):
                ref = current.contents.get(keyword)
                if isinstance(ref, str):
                    try:
                        resolver.lookup(ref)
                    except Unresolvable:
                        return ref
        stack.extend((sub, resolver.in_subresource(sub)) for sub in current.subresources())
    return None


def event_type_view(t: EventType) -> dict[str, Any]:
    return {
        "name": t.name,
        "description": t.description,
        "group": t.group,
        "source": t.source,
        "schema": t.schema,
        "example": t.example,
    }


@router.get("", summary="List event types", response_model=Envelope[Page[EventTypeOut]])
async def list_event_types(services: ServicesDep, _: Read) -> Response:
    items = [event_type_view(t) for t in await services.registry.all()]
    return ok({"items": items, "next_cursor": None}, "Event types retrieved successfully")


@router.get("/{name}", summary="Get an event type", response_model=Envelope[EventTypeOut])
async def get_event_type(name: str, services: ServicesDep, _: Read) -> Response:
    found = await services.registry.get(name)
    if found is None:
        hints = suggest(name, await services.registry.names())
        hint = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
        raise not_found(f"unknown event type '{name}'{hint}")
    return ok(event_type_view(found), "Event type retrieved successfully")


@router.post(
    "",
    status_code=201,
    summary="Add a custom event type (admin)",
    response_model=Envelope[EventTypeOut],
    responses={409: {"description": "Conflict: an event type with this name already exists"}},
)
async def create_event_type(body: EventTypeCreate, services: ServicesDep, _: AdminOnly, who: Who) -> Response:
    try:
        validator_for(body.schema_)
    except SchemaError as exc:
        raise bad_request(f"'schema' is not a valid JSON Schema: {exc.message}") from None
    if (ref := unresolvable_ref(body.schema_)) is not None:
        raise bad_request(
            f"'schema' has a $ref that cannot be resolved: {ref!r} (remote refs are not fetched)"
        )
    if body.example and (problem := first_schema_error(body.schema_, body.example)):
        raise bad_request(f"'example' does not match 'schema': {problem}")
    event_type = EventType(
        name=body.name,
        description=body.description,
        schema=body.schema_,
        example=body.example,
        group=body.group or body.name.split(".")[0],
        source="custom",
    )
    try:
        now = services.now()
        async with services.store.write() as conn:
            await insert_event_type(conn, event_type, now)
            created = {"description": body.description, "group": event_type.group}
            await audit_log.record(
                conn, who.entry("event_type.created", None, "event_type", body.name, created), now
            )
    except IntegrityError:
        raise ApiError(409, f"event type '{body.name}' already exists") from None
    services.registry.add(event_type)
    return ok(event_type_view(event_type), "Event type created successfully", 201)
