"""Who may call each route: every route declares it once, next to the route, as one dependency.

* a scope: ``principal: Read`` (``Annotated[Principal, Depends(scope("read"))]``), ``EventsWrite``,
  ``Manage`` (``tenant:manage``) or ``AdminOnly``: the key must hold that scope (scopes imply others:
  see ``hookline.api.key_policy``), else 403 ``this API key lacks the 'read' scope``;
* ``dependencies=[Depends(no_key("why"))]``: anyone, without a key (the probes);
* ``dependencies=[Depends(own_token("what"))]``: a credential of the route's own, which it checks itself
  (``/metrics``).

The lean ingest path (``hookline.api.ingest``) reads the decision of the route it serves from here too
(``required_scope``), so the declaration on the route is the rule for both ways in. The routes FastAPI
makes itself (the OpenAPI document, the docs page) cannot take a dependency; ``hookline.api.app``
declares them in ``FRAMEWORK_ROUTES``. ``tests/test_access.py`` fails for any route without a
decision, and calls every operation with a key of each scope.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute

from hookline.api.auth import authenticate
from hookline.api.envelope import ApiError
from hookline.api.key_policy import ADMIN, EVENTS_WRITE, MANAGE, READ, SCOPES
from hookline.api.principal import Principal

HOW_TO_DECIDE = (
    "declare who may call it next to the route: a parameter `principal: Read` (or EventsWrite, Manage, "
    "AdminOnly from hookline.api.access; they are Annotated[Principal, Depends(scope('read'))] and so "
    "on), or `dependencies=[Depends(no_key('why'))]` on the decorator for a route anyone may call"
)


class RequireScope:
    """The route needs a key holding ``scope``; as a dependency, it answers with the caller."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(self, principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        self.check(principal)
        return principal

    def check(self, principal: Principal) -> None:
        if self.scope not in principal.scopes:
            raise ApiError(403, f"this API key lacks the '{self.scope}' scope")

    def __repr__(self) -> str:
        return f"scope({self.scope!r})"


@dataclass(frozen=True, eq=False)
class NoKey:
    """The route takes no key: anyone may call it (``reason`` says why that is safe)."""

    reason: str

    async def __call__(self) -> None:
        return None


@dataclass(frozen=True, eq=False)
class OwnToken:
    """The route checks a credential of its own, not an API key's scope (``what`` says which)."""

    what: str

    async def __call__(self) -> None:
        return None


Decision = RequireScope | NoKey | OwnToken


@functools.cache
def scope(name: str) -> RequireScope:
    """The dependency that requires ``name`` (one object per scope, so FastAPI runs it once a request)."""
    if name not in SCOPES:
        raise ValueError(f"unknown scope {name!r} (one of {', '.join(SCOPES)})")
    return RequireScope(name)


def no_key(reason: str) -> NoKey:
    return NoKey(reason)


def own_token(what: str) -> OwnToken:
    return OwnToken(what)


Read = Annotated[Principal, Depends(scope(READ))]
EventsWrite = Annotated[Principal, Depends(scope(EVENTS_WRITE))]
Manage = Annotated[Principal, Depends(scope(MANAGE))]
AdminOnly = Annotated[Principal, Depends(scope(ADMIN))]


# --- reading the decisions back -------------------------------------------------------------------------


def decisions(dependant: Dependant) -> list[Decision]:
    """Every decision in a route's dependency tree (a route should have exactly one)."""
    found: list[Decision] = []
    if isinstance(dependant.call, RequireScope | NoKey | OwnToken):
        found.append(dependant.call)
    for sub in dependant.dependencies:
        found += decisions(sub)
    return found


@dataclass(frozen=True)
class RouteAccess:
    methods: tuple[str, ...]  # ("WEBSOCKET",) for a WebSocket route
    path: str
    decisions: tuple[Decision, ...]  # exactly one, unless the route is missing its decision (or has two)
    published: bool  # in the OpenAPI document


def route_access(
    routes: Sequence[BaseRoute], framework: Mapping[str, Decision] | None = None
) -> Iterator[RouteAccess]:
    """Every route of an app with its decisions: APIRoutes and WebSocket routes from their dependencies,
    the routes FastAPI makes itself (plain Starlette routes) from ``framework`` (path -> decision)."""
    for route in routes:
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from route_access(router.routes, framework)
        elif isinstance(route, APIRoute):
            methods = tuple(sorted(route.methods or ()))
            found = tuple(decisions(route.dependant))
            yield RouteAccess(methods, route.path_format, found, route.include_in_schema)
        elif isinstance(route, APIWebSocketRoute):
            yield RouteAccess(("WEBSOCKET",), route.path_format, tuple(decisions(route.dependant)), False)
        else:
            path: str = getattr(route, "path", repr(route))
            methods = tuple(sorted(getattr(route, "methods", None) or ()))
            declared = (framework or {}).get(path)
            yield RouteAccess(methods, path, (declared,) if declared else (), False)


def required_scope(routes: Sequence[BaseRoute], method: str, path: str) -> RequireScope:
    """The scope the route for ``method path`` declares (for the lean ingest path, which serves it
    without FastAPI); a LookupError if it declares none."""
    for access in route_access(routes):
        if access.path == path and method in access.methods:
            scoped = [d for d in access.decisions if isinstance(d, RequireScope)]
            if len(scoped) == 1:
                return scoped[0]
            raise LookupError(f"{method} {path} declares no scope: {HOW_TO_DECIDE}")
    raise LookupError(f"no route {method} {path}")


def lacks(route: Any) -> str:
    """The failure message for a route without exactly one decision (``RouteAccess``)."""
    methods = ", ".join(route.methods) or "?"
    found = len(route.decisions)
    what = "no access decision" if not found else f"{found} access decisions ({route.decisions})"
    return f"{methods} {route.path} has {what}: {HOW_TO_DECIDE}"
