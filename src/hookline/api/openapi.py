"""The OpenAPI document, made to tell the truth about every operation in one place.

FastAPI documents the success answer of each route (the ``response_model`` on its decorator, an
``Envelope`` from ``hookline.api.responses``) and a ``422`` that hookline never sends. This module
post-processes FastAPI's document once, when it is first asked for:

* the ``422`` is dropped, and each operation gets the error statuses it can really answer, derived
  from what the route declares rather than pasted on each one: a route that authenticates can answer
  401 and 503 (the key is looked up in the database), 403 (a scope the key lacks, an address outside
  its ``allowed_ips``) and 429 (a rate limit, with ``Retry-After``); every route 400 and 414 (the edge
  refuses control characters in a path or query, and over-long paths); one that acts
  on a tenant (a ``tenant_id`` query parameter or body field) 400, 403 and 404; one with query or
  header parameters 400; one with path parameters 404; one with a body 400, 413 and 415. Statuses only
  a route knows (409 for a taken id) are listed in its decorator's ``responses`` and get the same
  schema here. Every error answer is the error envelope;
* the bearer security scheme is declared and applied to every operation that authenticates, with the
  scope the operation needs (``hookline.api.access``) as its role, also said in its description.

``tests/test_openapi.py`` and ``tests/test_schemathesis.py`` hold the document to its word.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute

from hookline.api.access import RequireScope, decisions
from hookline.api.auth import authenticate
from hookline.api.envelope import REASONS
from hookline.api.responses import ErrorEnvelope

__all__ = ["install_openapi"]

SCHEME = "bearer"
_ERROR_REF = {"$ref": f"#/components/schemas/{ErrorEnvelope.__name__}"}
_WHAT = {
    400: "the request is malformed or breaks a rule; `error` says which",
    401: "no key, or a key that is invalid or revoked",
    403: "the key may not do this: it lacks the scope, is used from outside its allowed_ips, or names "
    "another tenant",
    404: "no such resource (for this tenant)",
    409: "it already exists",
    413: "the body is larger than HOOKLINE_MAX_BODY_BYTES",
    414: "the request path is too long",
    415: "the body is not application/json",
    429: "the key, or its tenant, is over its rate limit; retry after the Retry-After delay",
    503: "the database is unavailable; retry after the Retry-After delay",
}


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with the post-processed document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            _tell_the_truth(app, document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _tell_the_truth(app: FastAPI, document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas[ErrorEnvelope.__name__] = ErrorEnvelope.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    document["components"]["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "the operator's admin key, or a tenant's API key",
        }
    }
    for route in _api_routes(app.routes):
        if not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            secured, statuses = _error_statuses(route)
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in statuses | {int(s) for s in responses if s.startswith(("4", "5"))}:
                responses[str(status)] = _error_response(status, responses.get(str(status), {}))
            operation["responses"] = dict(sorted(responses.items()))
            if secured:
                # OpenAPI 3.1 lets a bearer requirement list roles: the scope the key needs.
                needed = [d.scope for d in decisions(route.dependant) if isinstance(d, RequireScope)]
                operation["security"] = [{SCHEME: needed}]
                if needed:
                    note = f"Needs a key with the `{needed[0]}` scope."
                    described = operation.get("description")
                    operation["description"] = f"{described}\n\n{note}" if described else note


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI keeps those as one entry holding the
    router; the routers here carry their whole path in their own prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(router.routes)


def _error_statuses(route: APIRoute) -> tuple[bool, set[int]]:
    """(whether the route authenticates, the error statuses it can answer)."""
    seen = _Seen()
    seen.visit(route.dependant)
    # Every route reads the database (503), and the edge answers any request whose path or query holds
    # control characters (400) or whose path is too long (414) before a route sees it.
    statuses = {400, 414, 503}
    secured = authenticate in seen.calls
    if secured:
        statuses |= {401, 403, 429}
    if "tenant_id" in seen.query or "tenant_id" in _body_field_names(route):
        statuses |= {400, 403, 404}
    if seen.query or seen.header:
        statuses |= {400}
    if seen.path:
        statuses |= {404}
    if route.body_field is not None:
        statuses |= {400, 413, 415}
    return secured, statuses


class _Seen:
    """What a route's dependency tree declares: the functions it calls and its parameters."""

    def __init__(self) -> None:
        self.calls: set[Any] = set()
        self.path: set[str] = set()
        self.query: set[str] = set()
        self.header: set[str] = set()

    def visit(self, dependant: Dependant) -> None:
        if dependant.call is not None:
            self.calls.add(dependant.call)
        self.path |= {p.name for p in dependant.path_params}
        self.query |= {p.name for p in dependant.query_params}
        self.header |= {p.name for p in dependant.header_params}
        for sub in dependant.dependencies:
            self.visit(sub)


def _body_field_names(route: APIRoute) -> set[str]:
    if route.body_field is None:
        return set()
    model = route.body_field.field_info.annotation
    return set(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else set()


def _error_response(status: int, declared: dict[str, Any]) -> dict[str, Any]:
    reason = REASONS.get(status, "Error")
    response: dict[str, Any] = {
        "description": declared.get("description") or f"{reason}: {_WHAT.get(status, reason.lower())}",
        "content": {"application/json": {"schema": _ERROR_REF}},
    }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"description": "always `Bearer`", "schema": {"type": "string"}}
        }
    if status in (429, 503):
        response["headers"] = {
            "Retry-After": {
                "description": "seconds to wait before trying again",
                "schema": {"type": "string"},
            }
        }
    return response
