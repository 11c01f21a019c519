"""``hookline prune``: run retention now, against the database (hookline.store.retention does the work).

A server command, like ``migrate``: it opens the database itself, so it works with no API running. It
waits for nothing: if a worker's run holds the retention lock, it says so and exits 1.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hookline.cli.server import DbOpt, _database_errors, _run, _settings


def register(app: typer.Typer) -> None:
    app.command()(prune)


def _duration(text: str | None) -> float | None:
    from hookline.config import MIN_RETENTION, parse_duration

    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    if seconds < MIN_RETENTION:
        raise typer.BadParameter(f"{text!r} is less than 1h", param_hint="--older-than")
    return seconds


def prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="remove payloads and attempts of deliveries finished longer ago than this (e.g. 30d, at "
            "least 1h), for every tenant selected; default: each tenant's own retention, else "
            "HOOKLINE_RETENTION",
        ),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", metavar="ID", help="only this tenant's data (default: all)")
    ] = None,
    database_url: DbOpt = None,
) -> None:
    """Remove what is older than the retention period now, in small batches, and print what went.

    Finished deliveries keep their summary (status, attempts, last status code, times; shown with
    "pruned": true); pending ones are never touched. Summaries older than HOOKLINE_SUMMARY_RETENTION
    are deleted too.

    Exit codes: 0 done; 1 database error, or another prune is running; 2 usage or configuration error;
    4 no such tenant.
    """
    from datetime import UTC, datetime, timedelta

    from hookline.runtime import open_store
    from hookline.store import migrate, retention
    from hookline.store.tenants import get_tenant

    seconds = _duration(older_than)
    settings = _settings(database_url=database_url)

    result: list[retention.Pruned] = []

    async def run() -> None:
        with _database_errors(settings):
            store = open_store(settings)
            try:
                if not await migrate.is_up_to_date(store):
                    typer.echo(
                        "hookline: the database schema is not up to date: run 'hookline migrate'", err=True
                    )
                    raise typer.Exit(2)
                if tenant is not None:
                    async with store.read() as conn:
                        if await get_tenant(conn, tenant) is None:
                            typer.echo(f"hookline: tenant '{tenant}' not found", err=True)
                            raise typer.Exit(4)
                done = await retention.prune(
                    store,
                    datetime.now(UTC),
                    retention=timedelta(seconds=settings.retention),
                    summary_retention=timedelta(seconds=settings.summary_retention),
                    tenant_id=tenant,
                    older_than=timedelta(seconds=seconds) if seconds is not None else None,
                )
                result.append(done)
            finally:
                await store.close()

    _run(run())
    done = result[0]
    if not done.complete:
        typer.echo("hookline: another prune is running (a worker's housekeeping?); try again later", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"pruned: {done.attempts} attempts, {done.deliveries} deliveries (summaries kept), "
        f"{done.payloads} payloads; deleted: {done.events_deleted} events, "
        f"{done.summaries_deleted} expired delivery summaries ({done.tenants} tenants)"
    )
