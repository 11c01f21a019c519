"""What client commands print: rich tables for people, or with ``--json`` the data itself as JSON (the
API's ``data``, as the SDK received it: ``model.raw``) for scripts, with no colour and nothing else on
stdout. Errors are one line on stderr (``fail``), never a traceback.

rich is imported when a table is printed, not before: ``--json`` and errors do without it.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer

JsonOption = Annotated[
    bool, typer.Option("--json", help="print the data as JSON (for scripts: no table, no colour)")
]

Column = tuple[str, str | Callable[[Mapping[str, Any]], Any]]  # header, and the field or how to get it


def fail(message: str, code: int) -> NoReturn:
    """End the command: ``hookline: <message>`` as one line on stderr, and exit ``code``."""
    line = " ".join(message.split())
    typer.echo(f"hookline: {line}", err=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A remark for the person at the terminal (stderr: it never mixes with the data)."""
    typer.echo(message, err=True)


_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?")


def cell(value: Any) -> str:
    """A value as a table shows it (times to the second, with their zone)."""
    if isinstance(value, datetime):
        value = value.isoformat()
    if isinstance(value, str) and (time := _TIME.fullmatch(value)):
        zone = "Z" if time[3] in ("Z", "+00:00") else time[3] or ""
        return f"{time[1]} {time[2]}{zone}"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False) if value else "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _get(record: Mapping[str, Any], how: str | Callable[[Mapping[str, Any]], Any]) -> Any:
    return how(record) if callable(how) else record.get(how)


class Output:
    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode

    def json(self, data: Any) -> None:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))

    def records(self, records: Iterable[Mapping[str, Any]], columns: Sequence[Column], *, empty: str) -> None:
        """A list: a JSON array, or a table with these columns (``empty`` when there is nothing)."""
        rows = list(records)
        if self.json_mode:
            self.json(rows)
            return
        if not rows:
            note(empty)
            return
        table = _table()
        for header, _ in columns:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*(cell(_get(row, how)) for _, how in columns))
        _print(table)

    def record(
        self, record: Mapping[str, Any], fields: Sequence[Column], *, title: str | None = None
    ) -> None:
        """One object: a JSON object, or a two-column table of these fields."""
        if self.json_mode:
            self.json(record)
            return
        self.pairs([(label, _get(record, how)) for label, how in fields], title=title)

    def pairs(self, pairs: Sequence[tuple[str, Any]], *, title: str | None = None) -> None:
        """Labelled values, as a two-column table (people only: callers print JSON themselves)."""
        table = _table(title=title, show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for label, value in pairs:
            table.add_row(label, cell(value))
        _print(table)

    @contextlib.contextmanager
    def progress(self, text: str) -> Iterator[Callable[[str], None]]:
        """A spinner on stderr while the block runs, for a person at a terminal (nothing otherwise);
        the block gets a function that changes its text."""
        if self.json_mode or not sys.stderr.isatty():
            yield lambda _: None
            return
        from rich.console import Console

        with Console(stderr=True).status(text) as status:
            yield lambda message: status.update(message)

    def done(self, message: str, data: Any) -> None:
        """The outcome of an action: ``message`` for people, ``data`` as JSON for scripts."""
        if self.json_mode:
            self.json(data)
        else:
            typer.echo(message)


def _table(**options: Any) -> Any:
    from rich import box
    from rich.table import Table

    return Table(**{"box": box.SIMPLE_HEAD, **options})


def _print(renderable: Any) -> None:
    """To stdout; at a terminal as wide as it is, elsewhere (a pipe, a file) as wide as the table
    needs, so that nothing is cut or folded for grep."""
    from rich.console import Console

    width = None if sys.stdout.isatty() else 10_000
    Console(file=sys.stdout, highlight=False, soft_wrap=False, width=width).print(renderable)
