"""The server's commands: ``serve``, ``api``, ``worker``, ``migrate``, ``admin-key reset``, ``version``.

Everything of the server (uvicorn, settings, the store) is imported inside the commands, so that the
client commands of the same ``hookline`` program start without loading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hookline import __version__

if TYPE_CHECKING:
    import uvicorn

    from hookline.api.services import Services
    from hookline.config import Settings


def register(app: typer.Typer) -> None:
    for command in (serve, api, worker, migrate):
        app.command()(command)
    app.add_typer(admin_key, name="admin-key")
    app.command()(version)


HostOpt = Annotated[
    str | None, typer.Option(metavar="ADDRESS", help="address to listen on [env: HOOKLINE_HOST]")
]
PortOpt = Annotated[int | None, typer.Option(metavar="PORT", help="port to listen on [env: HOOKLINE_PORT]")]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="sqlite:///path.db or postgresql://user:pass@host/db [env: HOOKLINE_DATABASE_URL]",
    ),
]
DevOpt = Annotated[
    bool,
    typer.Option(
        "--dev",
        help="local development: http:// and loopback receivers allowed, never in production "
        "[env: HOOKLINE_DEV]",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        metavar="N",
        help="API processes sharing the port (PostgreSQL) [env: HOOKLINE_API_WORKERS]",
    ),
]


def _settings(**overrides: Any) -> Settings:
    from hookline.config import ConfigError, load_settings
    from hookline.logs import configure_logging

    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        typer.echo(f"hookline: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    from hookline import tracing

    tracing.configure_from_environment()
    return settings


@contextlib.contextmanager
def _database_errors(settings: Settings) -> Iterator[None]:
    """A database that cannot be reached or opened ends the command with one clear line, not a traceback."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except (OSError, DBAPIError) as exc:
        where = make_url(settings.effective_database_url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc)
        typer.echo(f"hookline: database error ({where}): {reason}", err=True)
        raise typer.Exit(1) from None


def _run(coro: Coroutine[Any, Any, None]) -> None:
    # Only the import is guarded: an ImportError raised while the command runs is its own error, not a
    # reason to run the (already awaited) coroutine a second time.
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)


def _server(config: uvicorn.Config) -> uvicorn.Server:
    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn, minus its own signal handling: hookline stops the API and the worker together."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return _Server(config)


@contextlib.contextmanager
def _key_errors() -> Iterator[None]:
    """No secret key, or one that cannot open the stored secrets: one clear line and exit code 2."""
    from hookline.secret_key import MissingSecretKey
    from hookline.store.credentials import WrongSecretKey

    try:
        yield
    except (MissingSecretKey, WrongSecretKey) as exc:
        typer.echo(f"hookline: {exc}", err=True)
        raise typer.Exit(2) from None


async def _open_services(settings: Settings, *, api: bool, auto_migrate: bool, role: str) -> Services:
    from hookline.runtime import SchemaOutOfDate, open_services

    try:
        with _database_errors(settings), _key_errors():
            services, new_admin_key = await open_services(
                settings, auto_migrate=auto_migrate, create_admin_key=api, role=role
            )
    except SchemaOutOfDate as exc:
        typer.echo(f"hookline: {exc}", err=True)
        raise typer.Exit(2) from None
    if new_admin_key:
        _announce_admin_key(new_admin_key)
    return services


def _announce_admin_key(key: str) -> None:
    typer.echo(
        "hookline: generated the admin key. It is shown only this once; store it now:\n"
        f"  {key}\n"
        "(set HOOKLINE_ADMIN_KEY to choose your own; `hookline admin-key reset` makes a new one)",
        err=True,
    )


def _bind(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before anything else starts: a port in use is one line and
    exit code 1, not uvicorn's SystemExit inside a task (a 66-line traceback)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        typer.echo(f"hookline: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        typer.echo(f"hookline: cannot listen on {host}:{port}: {reason}", err=True)
        raise typer.Exit(1) from None
    sock.set_inheritable(True)
    return sock


async def _run_roles(
    settings: Settings,
    *,
    api: bool,
    worker: bool,
    auto_migrate: bool,
    sockets: list[socket.socket] | None = None,
) -> None:
    import uvicorn

    from hookline.api.app import create_app
    from hookline.api.operations import Operations, worker_app
    from hookline.api.protocol import EnvelopeHttpToolsProtocol
    from hookline.dispatch.worker import Worker

    if settings.dev:
        log_dev_mode(settings)
    bound = [_bind(settings.host, settings.port)] if api and sockets is None else []
    try:
        role = "serve" if api and worker else "api" if api else "worker"
        services = await _open_services(settings, api=api, auto_migrate=auto_migrate, role=role)
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    sockets = sockets or bound or None
    dispatcher = Worker(services.store, settings) if worker else None
    probes = Operations(services, dispatcher)
    server = (
        _server(
            uvicorn.Config(
                create_app(services, worker=dispatcher),
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                log_config=None,  # its lines go through hookline.logs (JSON like every other)
                access_log=False,
                http=EnvelopeHttpToolsProtocol,
                # The client's address is the socket's peer; X-Forwarded-For counts only from
                # HOOKLINE_TRUSTED_PROXIES, by hookline's own rule (hookline.api.client_address).
                proxy_headers=False,
            )
        )
        if api
        else None
    )
    # `hookline worker` answers its probes (and /metrics) on a port of its own, if given one.
    worker_server = (
        _server(
            uvicorn.Config(
                worker_app(probes),
                host=settings.host,
                port=settings.worker_port,
                log_level=settings.log_level,
                log_config=None,  # its lines go through hookline.logs (JSON like every other)
                access_log=False,
                proxy_headers=False,
            )
        )
        if not api and settings.worker_port is not None
        else None
    )
    # What is built by now (modules, app, settings) lives as long as the process: frozen, the collector's
    # full passes skip it. Walking it took ~120 ms every few hundred stats answers, their p99 (measured).
    gc.collect()
    gc.freeze()
    stopped = asyncio.Event()

    def stop() -> None:
        stopped.set()
        if server is not None:
            server.should_exit = True
        if dispatcher is not None:
            dispatcher.stop()
        if worker_server is not None:
            worker_server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        roles = []
        if dispatcher is not None:
            roles.append(asyncio.create_task(dispatcher.run(), name="worker"))
        if server is not None:
            roles.append(asyncio.create_task(server.serve(sockets), name="api"))
        if worker_server is not None:
            roles.append(asyncio.create_task(worker_server.serve(), name="worker-probes"))
        chores = [asyncio.create_task(probes.sample_pool_forever(), name="pool-sampler")]
        if server is not None:  # API keys' last_used_at, written once a minute (and at the end)
            chores.append(asyncio.create_task(services.key_usage.flush_forever(services.store)))
        # Whichever role ends first (a signal, or the API failing to bind) ends the other.
        await asyncio.wait(roles, return_when=asyncio.FIRST_COMPLETED)
        stop()
        await asyncio.gather(*roles)
        for chore in chores:
            chore.cancel()
        await asyncio.gather(*chores, return_exceptions=True)
        if worker_server is not None and not worker_server.started and not stopped.is_set():
            raise typer.Exit(1)
        if server is not None and not server.started and not stopped.is_set():
            raise typer.Exit(1)
    finally:
        await services.store.close()


def log_dev_mode(settings: Settings) -> None:
    """The loud line at the start of ``--dev`` (HOOKLINE_DEV): it says what is now allowed, as the two
    settings really are (either may have been given explicitly, and then wins over ``--dev``)."""
    import ipaddress

    import structlog

    loopback = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    allowed = ["http:// URLs"] if settings.allow_http else []
    if any(address in network for network in settings.allowed_networks for address in loopback):
        allowed.append("loopback receivers (127.0.0.0/8, ::1, localhost)")
    if allowed:
        what = " and ".join(allowed) + " are allowed"
    else:
        what = (
            "nothing beyond production's rules is allowed "
            "(HOOKLINE_ALLOW_HTTP and HOOKLINE_ALLOWED_NETWORKS are set explicitly)"
        )
    structlog.get_logger("hookline").warning(
        f"DEVELOPMENT MODE: {what}; never use this in production",
        allow_http=settings.allow_http,
        allowed_networks=[str(network) for network in settings.allowed_networks],
    )


def serve(
    host: HostOpt = None, port: PortOpt = None, database_url: DbOpt = None, dev: DevOpt = False
) -> None:
    """Run the API and the delivery worker in one process (on SQLite, migrations are applied first)."""
    settings = _settings(host=host, port=port, database_url=database_url, dev=dev or None)
    is_sqlite = settings.effective_database_url.startswith("sqlite")
    _run(_run_roles(settings, api=True, worker=True, auto_migrate=is_sqlite))


def api(
    host: HostOpt = None,
    port: PortOpt = None,
    database_url: DbOpt = None,
    workers: WorkersOpt = None,
    dev: DevOpt = False,
) -> None:
    """Run only the HTTP API (production: as many as you like against one PostgreSQL)."""
    overrides = {
        "host": host,
        "port": port,
        "database_url": database_url,
        "api_workers": workers,
        "dev": dev or None,
    }
    settings = _settings(**overrides)
    if settings.api_workers == 1:
        _run(_run_roles(settings, api=True, worker=False, auto_migrate=False))
        return
    if settings.effective_database_url.startswith("sqlite"):
        typer.echo("hookline: invalid configuration: HOOKLINE_API_WORKERS above 1 needs PostgreSQL", err=True)
        raise typer.Exit(2)
    _serve_api_processes(settings, overrides)


def _serve_api_processes(settings: Settings, overrides: dict[str, Any]) -> None:
    """``hookline api --workers N``: N API processes accepting on one socket bound here (the kernel
    spreads the connections), each with its own event loop, pool and group-commit writer. This process
    only supervises: a stop signal stops them all; if one of them ends, so do the others, and the
    command fails (leave restarts to the service manager)."""
    import multiprocessing
    from multiprocessing.connection import wait

    async def check() -> None:  # schema and admin key once, before any process is started
        services = await _open_services(settings, api=True, auto_migrate=False, role="api")
        await services.store.close()

    sock = _bind(settings.host, settings.port)
    try:
        _run(check())
    except BaseException:
        sock.close()
        raise
    from hookline import metrics

    shared = metrics.share_between_processes()  # before they start: they read it when they import
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_api_process, args=(overrides, sock), name=f"hookline-api-{n}")
        for n in range(settings.api_workers)
    ]
    signalled = False

    def stop() -> None:
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: each stops as a single `hookline api` does

    def on_signal(*_: Any) -> None:
        nonlocal signalled
        signalled = True
        stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            child.start()
        wait([child.sentinel for child in children])  # a stop signal, or one of them ended
        stop()
        for child in children:
            child.join()
            if child.pid is not None:
                metrics.process_stopped(child.pid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        metrics.remove_shared(shared)
    if not signalled or any(child.exitcode not in (0, -signal.SIGTERM) for child in children):
        raise typer.Exit(1)


def _api_process(overrides: dict[str, Any], sock: socket.socket) -> None:
    """One of the ``hookline api --workers N`` processes (started by multiprocessing, spawn)."""
    settings = _settings(**overrides)
    try:
        _run(_run_roles(settings, api=True, worker=False, auto_migrate=False, sockets=[sock]))
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None


def worker(database_url: DbOpt = None, dev: DevOpt = False) -> None:
    """Run only the delivery worker (production: as many as you like against one PostgreSQL)."""
    settings = _settings(database_url=database_url, dev=dev or None)
    _run(_run_roles(settings, api=False, worker=True, auto_migrate=False))


def migrate(database_url: DbOpt = None) -> None:
    """Create or upgrade the database schema, and encrypt any webhook secret still stored in clear
    (needs HOOKLINE_SECRET_KEY on PostgreSQL)."""
    from datetime import UTC, datetime

    from hookline.runtime import open_store, seal_plaintext
    from hookline.store import credentials
    from hookline.store import migrate as migrations
    from hookline.store.meta import ensure_admin_key_hash

    settings = _settings(database_url=database_url)

    async def run() -> None:
        new_key = None
        with _database_errors(settings), _key_errors():
            store = open_store(settings, sealing=True, role="migrate")
            try:
                await migrations.upgrade(store)
                await credentials.check_key(store, datetime.now(UTC))
                await seal_plaintext(store)
                revision = await migrations.current_revision(store)
                if not settings.admin_key:  # the key is made where it can be shown: here or by the API
                    async with store.write() as conn:
                        _, new_key = await ensure_admin_key_hash(conn, datetime.now(UTC))
            finally:
                await store.close()
        typer.echo(f"hookline: database schema at revision {revision}")
        if new_key:
            _announce_admin_key(new_key)

    _run(run())


admin_key = typer.Typer(help="Manage the operator's admin key.")


@admin_key.command("reset")
def admin_key_reset(database_url: DbOpt = None) -> None:
    """Replace the stored admin key with a new one and print it (once)."""
    from datetime import UTC, datetime

    from hookline.runtime import open_store
    from hookline.store.meta import ADMIN_KEY_HASH, generate_admin_key, set_value
    from hookline.store.tenants import hash_key

    settings = _settings(database_url=database_url)
    key = generate_admin_key()

    async def run() -> None:
        with _database_errors(settings):
            store = open_store(settings)
            try:
                async with store.write() as conn:
                    await set_value(conn, ADMIN_KEY_HASH, hash_key(key), datetime.now(UTC))
            finally:
                await store.close()

    _run(run())
    typer.echo(key)
    if settings.admin_key:
        typer.echo("hookline: note: HOOKLINE_ADMIN_KEY is set and takes precedence over this key", err=True)


def version() -> None:
    """Print the version."""
    typer.echo(__version__)
