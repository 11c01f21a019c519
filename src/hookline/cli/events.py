"""``hookline send`` and ``hookline trigger``: post an event, with data of your own or the catalog's
example of its type (``trigger`` changes parts of the example with ``--set path=value``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hookline.cli import values
from hookline.cli.connection import ClientContext, client_command, usage_errors
from hookline.cli.options import DataOption, json_object

EventArgument = Annotated[str, typer.Argument(metavar="EVENT", help="the event type, e.g. message.received")]
IdOption = Annotated[
    str | None,
    typer.Option(
        "--id", metavar="ID", help="the event's id: posting the same id again creates nothing (idempotent)"
    ),
]
ChannelOption = Annotated[
    list[str] | None,
    typer.Option("--channel", metavar="NAME", help="deliver only to webhooks of this channel (repeatable)"),
]


def register(app: typer.Typer) -> None:
    app.command()(send)
    app.command()(trigger)


@client_command()
def send(
    ctx: ClientContext,
    event: EventArgument,
    data: DataOption = None,
    event_id: IdOption = None,
    channel: ChannelOption = None,
) -> None:
    """Post an event. Example: hookline send message.received --data @message.json"""
    payload = json_object("--data", data)
    if payload is None:
        payload = ctx.client.event_types.get(event).example
    _post(ctx, event, payload, event_id, channel)


@client_command()
def trigger(
    ctx: ClientContext,
    event: EventArgument,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="PATH=VALUE",
            help="change the example at PATH (dotted keys; items.0.sku indexes an array); VALUE is JSON "
            "when it parses as JSON, else text (repeatable)",
        ),
    ] = None,
    event_id: IdOption = None,
    channel: ChannelOption = None,
) -> None:
    """Post the catalog's example of EVENT, with changes. Example: hookline trigger group.created --set
    name=VIP --set 'participants.0="966500000009"'"""
    example = ctx.client.event_types.get(event).example
    with usage_errors("--set"):
        payload = values.apply_overrides(example, overrides or [])
    _post(ctx, event, payload, event_id, channel)


def _post(
    ctx: ClientContext, event: str, data: dict[str, Any], event_id: str | None, channels: list[str] | None
) -> None:
    accepted = ctx.client.events.post(event, data, id=event_id, channels=channels or None)
    plural = "delivery" if accepted.deliveries == 1 else "deliveries"
    ctx.out.done(f"{accepted.id} accepted ({accepted.event}): {accepted.deliveries} {plural}", accepted.raw)
