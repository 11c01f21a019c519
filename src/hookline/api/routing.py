"""``StrictJsonRoute``: the route class of every router, so that FastAPI reads request bodies only
through hookline's one JSON decoder (``hookline.api.jsonbody``), never with Python's ``json``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from hookline.api.jsonbody import SCOPE_KEY, BodyRejected, check_content_type, decode


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if SCOPE_KEY in self.scope:  # decoded at the edge (BodyLimitMiddleware): the usual case
            return self.scope[SCOPE_KEY]
        raw = await self.body()
        try:
            check_content_type(self.headers.get("content-type", "").encode("latin-1") or None)
            value = decode(raw)
        except BodyRejected as exc:
            raise HTTPException(exc.status, exc.message) from None
        self.scope[SCOPE_KEY] = value
        return value


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict
