"""``hookline secrets``: the key that encrypts webhook secrets in the database (``HOOKLINE_SECRET_KEY``).

``generate-key`` prints a new key; ``rotate-key`` re-encrypts every stored secret with the first key of
``HOOKLINE_SECRET_KEY``, online (``hookline.store.credentials`` does the work). Server commands, like
``migrate``: they open the database themselves.
"""

from __future__ import annotations

import typer

from hookline.cli.server import DbOpt, _database_errors, _key_errors, _run, _settings

secrets_app = typer.Typer(help="The key that encrypts webhook secrets in the database (HOOKLINE_SECRET_KEY).")


def register(app: typer.Typer) -> None:
    app.add_typer(secrets_app, name="secrets")


@secrets_app.command("generate-key")
def generate_key() -> None:
    """Print a new secret key (32 random bytes, base64url) for HOOKLINE_SECRET_KEY.

    Example: HOOKLINE_SECRET_KEY="$(hookline secrets generate-key)"
    """
    from hookline.sealing import generate_key as new_key

    typer.echo(new_key())


@secrets_app.command("rotate-key")
def rotate_key(database_url: DbOpt = None) -> None:
    """Re-encrypt every stored secret with the first key of HOOKLINE_SECRET_KEY, while the service runs.

    First put the new key first in HOOKLINE_SECRET_KEY, the old one after it ("NEW,OLD"), and restart
    every api and worker process; then run this (in batches of short transactions: deliveries go on);
    then remove the old key and restart again.

    Exit codes: 0 done; 1 database error, or secrets left that did not open or kept changing (run it
    again); 2 configuration error (no key, a key that cannot open the database, a schema that needs
    `hookline migrate`).
    """
    from datetime import UTC, datetime

    from hookline.runtime import open_store
    from hookline.store import credentials, migrate

    settings = _settings(database_url=database_url)
    result: list[tuple[credentials.Resealed, str]] = []

    async def run() -> None:
        with _database_errors(settings), _key_errors():
            store = open_store(settings, sealing=True)
            try:
                if not await migrate.is_up_to_date(store):
                    typer.echo(
                        "hookline: the database schema is not up to date: run 'hookline migrate'", err=True
                    )
                    raise typer.Exit(2)
                await credentials.check_key(store, datetime.now(UTC))
                done = await credentials.reseal(store, plaintext_only=False)
                if done.complete:
                    await credentials.reseal_key_check(store, datetime.now(UTC), done)
                result.append((done, store.keyring.primary or ""))
            finally:
                await store.close()

    _run(run())
    done, key = result[0]
    if done.unreadable:
        which = ", ".join(f"{n} sealed with key {kid}" for kid, n in sorted(done.unreadable.items()))
        typer.echo(
            f"hookline: re-sealed {done.values} secrets, but some do not open with HOOKLINE_SECRET_KEY "
            f"({which}): add the key that sealed them after the new one and run this again",
            err=True,
        )
        raise typer.Exit(1)
    if done.left:
        typer.echo(
            f"hookline: re-sealed {done.values} secrets; {done.left} changed while being re-sealed: "
            "run this again",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(
        f"re-sealed {done.values} secrets of {done.rows} webhooks; every stored secret is sealed with key "
        f"{key}. Remove the other keys from HOOKLINE_SECRET_KEY and restart the api and worker processes."
    )
