"""A real HTTP proxy on loopback for the egress-proxy tests (asyncio streams, nothing mocked), that records
what it is asked for.

    async with ConnectProxy() as proxy:
        proxy.url                         # http://127.0.0.1:<port>
        proxy.asked                       # [Asked("CONNECT", "127.0.0.1:8443", {...}), ...]
        proxy.upstream_ports              # local ports of the connections it opened onwards

``CONNECT host:port`` opens a TCP connection there and relays bytes both ways (TLS passes through it
untouched). An absolute-form request (``POST http://host:port/path``, how proxies are given plain HTTP)
is forwarded in origin form, one per connection, without the ``Proxy-*`` headers. Options:
``credentials`` (user, password) to require ``Proxy-Authorization: Basic`` (407 otherwise), ``answer`` a
status to refuse everything with (403, 502...), ``route`` an address to connect to whatever the target
(it stands in for the internet: a "public" address the test chose is reached on loopback).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Asked:
    method: str
    target: str  # "127.0.0.1:8443" (CONNECT) or "http://127.0.0.1:8080/hook" (absolute form)
    headers: dict[str, str]  # lower-cased names


class ConnectProxy:
    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        answer: int | None = None,
        route: tuple[str, int] | None = None,
    ) -> None:
        self.credentials = credentials
        self.answer = answer
        self.route = route
        self.asked: list[Asked] = []
        self.connections = 0  # client connections accepted
        self.upstream_ports: set[int] = set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def targets(self) -> list[str]:
        return [asked.target for asked in self.asked]

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        raw_headers = [tuple(line.split(":", 1)) for line in lines if ":" in line]
        headers = {name.strip().lower(): value.strip() for name, value in raw_headers}
        self.asked.append(Asked(method, target, headers))
        if self.credentials is not None and not self._authorized(headers):
            await _refuse(writer, 407, 'Proxy-Authenticate: Basic realm="test"\r\n')
            return
        if self.answer is not None:
            await _refuse(writer, self.answer)
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = await self._open(host.strip("[]"), int(port))
            if upstream is None:
                await _refuse(writer, 502)
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _relay(reader, writer, *upstream)
            return
        url = urlsplit(target)
        assert url.hostname is not None, target
        upstream = await self._open(url.hostname, url.port or 80)
        if upstream is None:
            await _refuse(writer, 502)
            return
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        kept = [
            f"{name}:{value}"
            for name, value in raw_headers
            if not name.strip().lower().startswith("proxy-") and name.strip().lower() != "connection"
        ]
        path = url.path + (f"?{url.query}" if url.query else "")
        forwarded = "\r\n".join([f"{method} {path} HTTP/1.1", *kept, "Connection: close", "", ""])
        upstream[1].write(forwarded.encode("latin-1") + body)
        await upstream[1].drain()
        await _relay(reader, writer, *upstream)

    def _authorized(self, headers: dict[str, str]) -> bool:
        assert self.credentials is not None
        user, password = self.credentials
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return headers.get("proxy-authorization") == expected

    async def _open(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            reader, writer = await asyncio.open_connection(*(self.route or (host, port)))
        except OSError:
            return None
        self.upstream_ports.add(writer.get_extra_info("sockname")[1])
        self._writers.add(writer)
        return reader, writer


async def _refuse(writer: asyncio.StreamWriter, status: int, extra: str = "") -> None:
    phrase = HTTPStatus(status).phrase
    writer.write(
        f"HTTP/1.1 {status} {phrase}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if sink.can_write_eof():
                sink.write_eof()

    try:
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
    finally:
        upstream_writer.close()
