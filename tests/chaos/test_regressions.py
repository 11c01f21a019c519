"""Regression tests for the bugs the chaos suite found: small and fast, they run with the rest of CI.

1. While PostgreSQL is shutting down or starting up it refuses new connections with SQLSTATE 57P03
   ("the database system is shutting down" / "... is starting up"). The asyncpg dialect raises that as a
   plain DBAPIError, which the API answered with a 500. It must be the 503 envelope, like a refused
   connection. A fake server on loopback answers every connection the way PostgreSQL does then.
2. An ImportError raised inside a `hookline` command made it run its coroutine a second time (below).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

import httpx
import pytest

from hookline.api.app import create_app
from hookline.api.services import Services
from hookline.config import load_settings
from hookline.store.engine import Store
from hookline.store.event_types import EventTypeRegistry
from hookline.store.tenants import hash_key
from tests.conftest import assert_error

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def _error_response(sqlstate: str, message: str) -> bytes:
    fields = b"".join(
        tag + value.encode() + b"\0"
        for tag, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", sqlstate), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


@contextlib.asynccontextmanager
async def refusing_postgres(sqlstate: str, message: str) -> AsyncIterator[int]:
    """A loopback server that answers every PostgreSQL startup with a FATAL error."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!I", await reader.readexactly(4))
                packet = await reader.readexactly(length - 4)
                (code,) = struct.unpack("!I", packet[:4])
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    writer.write(b"N")  # no encryption: go on in plain text
                    continue
                writer.write(_error_response(sqlstate, message))
                await writer.drain()
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "message", ["the database system is shutting down", "the database system is starting up"]
)
async def test_database_refusing_connections_is_503_not_500(message: str) -> None:
    async with refusing_postgres("57P03", message) as port:
        url = f"postgresql://postgres@127.0.0.1:{port}/hookline"
        settings = load_settings(database_url=url, admin_key="hk_admin_regression")
        store = Store.from_url(url, pool_pre_ping=False)
        services = Services(
            settings=settings,
            store=store,
            registry=EventTypeRegistry(store),
            admin_key_hash=hash_key("hk_admin_regression"),
        )
        transport = httpx.ASGITransport(app=create_app(services), raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as http:
                body = {"event": "message.incoming", "data": {"messageId": "m1"}}
                posted = await http.post(
                    "/v1/events", json=body, headers={"Authorization": "Bearer hk_tenant_key"}
                )
                assert_error(posted, 503, "the database is unavailable; try again shortly")
                assert posted.headers["retry-after"] == "5"
                assert_error(await http.get("/health"), 503)
        finally:
            await store.close()


# 2. `hookline` ran its coroutine under uvloop inside ``try: ... except ImportError: asyncio.run(coro)``,
#    so an ImportError raised by the command itself (a chaos run met one: a worker started while its code
#    was half-updated) re-ran the already-awaited coroutine and the process died with "cannot reuse
#    already awaited coroutine", hiding the real error.


def test_an_import_error_inside_a_command_is_reported_as_itself() -> None:
    from hookline.cli.server import _run

    async def command() -> None:
        raise ImportError("cannot import name 'X' from 'hookline.store.engine'")

    with pytest.raises(ImportError, match="cannot import name 'X'"):
        _run(command())
