"""Counts every HTTP request by route template, method and status (``hookline_api_requests``) and
times it (``hookline_api_request_duration_seconds``). Outermost, so it sees every answer, including
those of the lean ingest path and of the body limit. The route is the template FastAPI matched
(``/v1/webhooks/{webhook_id}``), never the raw path: ids would make a series per resource."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookline import metrics

# Paths served before FastAPI's routing (hookline.api.ingest.FastIngest) are their own templates.
_DIRECT = frozenset({"/v1/events", "/v1/events/batch"})


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler ends as uvicorn's 500

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            if template is None:
                template = scope["path"] if scope["path"] in _DIRECT else "unmatched"
            method = scope["method"]
            metrics.api_requests.labels(template, method, str(status)).inc()
            metrics.api_request_duration.labels(template, method).observe(time.perf_counter() - started)
