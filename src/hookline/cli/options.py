"""Options that several command groups share, and the reading of their values."""

from __future__ import annotations

from typing import Annotated, Any, overload

import typer

from hookline.cli import values
from hookline.cli.connection import ConfigurationError, usage_errors

SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", metavar="TIME", help="ISO 8601 time with a timezone, or a duration ago: 30m, 2h, 7d"
    ),
]
UntilOption = Annotated[str | None, typer.Option("--until", metavar="TIME", help="as --since [default: now]")]
DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        metavar="JSON|@FILE",
        help="the event's data: a JSON object, @file, or @- for stdin [default: the type's example]",
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")]


@overload
def moment(option: str, value: str) -> str: ...
@overload
def moment(option: str, value: None) -> None: ...
@overload
def moment(option: str, value: str | None) -> str | None: ...


def moment(option: str, value: str | None) -> str | None:
    """A ``--since``/``--until`` value as the API takes it (see ``values.moment``)."""
    with usage_errors(option):
        return values.moment(value) if value is not None else None


def expiry(option: str, value: str | None) -> str | None:
    """An ``--expires`` value: ISO 8601 with a timezone, or a duration from now (``30d``)."""
    with usage_errors(option):
        return values.moment(value, ahead=True) if value is not None else None


def json_object(option: str, value: str | None) -> dict[str, Any] | None:
    with usage_errors(option):
        return values.json_object(value) if value is not None else None


def confirm(yes: bool, question: str) -> None:
    """Ask before destroying something, unless ``--yes``; with no terminal to ask on, ``--yes`` is
    required (a usage error, exit code 2)."""
    import sys

    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigurationError(f"{question} Pass --yes to confirm (there is no terminal to ask on).")
    if not typer.confirm(question, err=True):
        raise typer.Exit(1)
