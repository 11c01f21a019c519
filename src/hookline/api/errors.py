"""Every failure becomes an error envelope with a specific message: never a stack trace, never a
pydantic dump. A browser on the dashboard's pages (``/ui``, asking for HTML) gets the same message as a
plain page instead (``_for_browsers``): the dashboard renders its own refusals; these are the rest (an
unknown page, the database away, a crash)."""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response
from starlette.routing import Match

from hookline.api.envelope import ApiError, error
from hookline.sealing import SealError

log = structlog.get_logger("hookline.api")


def _field(loc: Sequence[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path


def describe_validation_error(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    where, loc = (err["loc"][0], err["loc"][1:]) if err.get("loc") else ("body", ())
    field = _field(loc)
    message = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
    if kind == "json_invalid":
        return "request body is not valid JSON"
    if where == "body" and not field:
        if kind == "missing":
            return "request body is required"
        return "request body must be a JSON object"
    label = f"query parameter '{field}'" if where == "query" else f"'{field}'"
    if where == "header":
        label = f"header '{field}'"
    if kind == "missing":
        return f"{label} is required"
    if kind == "extra_forbidden":
        return f"unknown field '{field}'"
    if kind == "value_error":
        return message
    return f"{label}: {message[:1].lower()}{message[1:]}"


def _for_browsers(request: Request, response: Response) -> Response:
    if not request.url.path.startswith("/ui") or "text/html" not in request.headers.get("accept", ""):
        return response
    message = html.escape(orjson.loads(response.body)["error"])
    page = (
        '<!doctype html><html lang="en"><meta charset="utf-8"><title>hookline</title>'
        f'<main><h1>{message}</h1><p><a href="/ui">hookline</a></p></main></html>'
    )
    headers = {k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "allow")}
    return HTMLResponse(page, status_code=response.status_code, headers=headers)


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error(exc.code, exc.error, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        text = f"no such route: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        text = f"method {request.method} is not allowed on {request.url.path}"
    else:
        text = str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        # Starlette's Allow names only the first route on this path; list every method the path has.
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return _for_browsers(request, error(exc.status_code, text, headers))


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the routes whose path matches. A fixed path beats a parametrised one, as in the
    routing of the answered methods: /v1/events/batch is POST only, not GET of an event named "batch"."""
    matching = [route for route in _flat(request.app.router.routes) if _path_matches(route, request)]
    fixed = [route for route in matching if not getattr(route, "param_convertors", None)]
    routes = fixed or matching
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


def _flat(routes: Sequence[Any]) -> Iterator[Any]:
    """Every route, with the routers FastAPI includes (each holding its routers' routes) opened up."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flat(included.routes)
        else:
            yield route


def _path_matches(route: Any, request: Request) -> bool:
    return bool(route.matches(request.scope)[0] != Match.NONE)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    content_type = request.headers.get("content-type", "")
    if errors and errors[0].get("loc", ("",))[0] == "body" and "json" not in content_type:
        return error(415, "Content-Type must be application/json")
    return error(400, describe_validation_error(errors[0]) if errors else "invalid request")


# SQLSTATEs that mean "the server is not there right now", not "this request is wrong": connection
# exceptions (class 08), too many connections, and a server shutting down, crashed or still starting up
# (57P03 "cannot connect now" is what PostgreSQL answers while `pg_ctl stop` or `start` is under way).
_UNAVAILABLE_SQLSTATES = ("08", "53300", "57P01", "57P02", "57P03")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (a 503), rather than a bug (a 500)."""
    if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    # The asyncpg dialect turns every server error into a plain DBAPIError; its SQLSTATE tells them apart.
    for cause in (exc.orig, getattr(exc.orig, "__cause__", None)):
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if isinstance(cause, ConnectionError | TimeoutError):
            return True
    return False


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable", path=request.url.path, error=type(exc).__name__)
    return _for_browsers(
        request, error(503, "the database is unavailable; try again shortly", {"Retry-After": "5"})
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    if database_unavailable(exc):
        return await _database_unavailable(request, exc)
    return _logged_500(request)


async def _sealed(request: Request, exc: Exception) -> Response:
    """A stored credential that does not open: this server lacks the key that sealed it (or the row
    was altered). The operator's to fix; the message names at most the key's id."""
    assert isinstance(exc, SealError)
    log.error("a stored secret could not be opened", path=request.url.path, error=str(exc))
    message = f"a stored secret cannot be read with this server's HOOKLINE_SECRET_KEY: {exc}"
    return _for_browsers(request, error(503, message))


def _logged_500(request: Request) -> Response:
    # A WebSocket (whose refusals these handlers answer too) has no method.
    log.exception("unhandled error", path=request.url.path, method=getattr(request, "method", "WEBSOCKET"))
    return _for_browsers(request, error(500, "an unexpected error occurred; it has been logged"))


async def _unexpected(request: Request, exc: Exception) -> Response:
    if database_unavailable(exc):
        return await _database_unavailable(request, exc)
    return _logged_500(request)


# The same handlers, for the lean ingest path (hookline.api.ingest), which answers outside FastAPI.
database_error = _database_error
database_unavailable_error = _database_unavailable
unexpected_error = _unexpected


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Database errors are sorted here rather than in the catch-all: a 503 for an unreachable database
    # is an answer, not a crash to log with a traceback.
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(ConnectionError, _database_unavailable)
    app.add_exception_handler(TimeoutError, _database_unavailable)
    app.add_exception_handler(SealError, _sealed)
    app.add_exception_handler(Exception, _unexpected)
