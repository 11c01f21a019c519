"""The ``hookline`` command: the server's roles, and client commands that talk to a running service.

One module a command group. Each exposes ``register(app: typer.Typer) -> None``, which adds its
commands (``app.command()(fn)``) or its group (``app.add_typer(group, name=...)``) to the program;
``COMMAND_MODULES`` names them, in the order ``hookline --help`` lists them, so adding a group is one
line there. A module imports only what its commands need at the top (typer, ``connection``,
``output``): the server (uvicorn, SQLAlchemy, FastAPI) loads inside the server's commands, so a client
command such as ``hookline webhooks list`` starts without it.

The client commands talk to the service only through the SDK (``hookline.Client``); ``connection``
holds what they share: the ``--url``/``--key``/``--profile``/``--tenant`` options (``UrlOption``...),
the profiles file, ``resolve_connection`` (those options to a URL and key) and ``run_command`` (SDK
errors to one line on stderr and an exit code: 0 ok, 1 refused by the API, 2 usage or configuration,
3 server unreachable or failing, 4 not found); ``client_command`` puts them around a body that takes
a ``hookline.Client``. ``output`` prints tables, or JSON with ``--json``.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from hookline import __version__
from hookline.cli.connection import EXIT_CODES

COMMAND_MODULES = (
    "server",
    "prune",
    "secret_keys",
    "listen",
    "events",
    "webhooks",
    "deliveries",
    "tenants",
    "profiles",
)

app = typer.Typer(
    help="hookline: self-hosted webhook delivery. The server's roles (serve, api, worker, migrate) and "
    f"commands for a running service.\n\nExit codes of the commands for a service: {EXIT_CODES}",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """hookline: self-hosted webhook delivery."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"hookline.cli.{_name}").register(app)


def main() -> None:
    app(prog_name="hookline")
