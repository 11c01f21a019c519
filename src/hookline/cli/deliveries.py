"""``hookline deliveries`` (a webhook's deliveries, one delivery with its attempts, a retry) and
``hookline replay`` (queue a webhook's deliveries of a time range again)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from hookline.cli.connection import ClientContext, client_command
from hookline.cli.options import SinceOption, UntilOption, moment
from hookline.cli.output import Column

deliveries = typer.Typer(help="A webhook's deliveries and their attempts; retry one.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(deliveries, name="deliveries")
    app.command()(replay)


WebhookArgument = Annotated[str, typer.Argument(metavar="WEBHOOK", help="the webhook's id")]
DeliveryArgument = Annotated[str, typer.Argument(metavar="DELIVERY", help="the delivery's id")]
Status = Literal["pending", "succeeded", "failed"]
StatusOption = Annotated[
    Status | None, typer.Option("--status", metavar="STATUS", help="only pending, succeeded or failed ones")
]

COLUMNS: list[Column] = [
    ("ID", "id"),
    ("EVENT", "event"),
    ("EVENT ID", "event_id"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("LAST CODE", "last_status_code"),
    ("CREATED", "created_at"),
    ("NEXT ATTEMPT", "next_attempt_at"),
]
FIELDS: list[Column] = [
    ("id", "id"),
    ("webhook", "webhook_id"),
    ("event", "event"),
    ("event id", "event_id"),
    ("status", "status"),
    ("attempts", "attempts"),
    ("last status code", "last_status_code"),
    ("last error", "last_error"),
    ("next attempt", "next_attempt_at"),
    ("created", "created_at"),
    ("completed", "completed_at"),
    ("test send", "test"),
]
ATTEMPT_COLUMNS: list[Column] = [
    ("#", "attempt"),
    ("STARTED", "started_at"),
    ("MS", "duration_ms"),
    ("CODE", "status_code"),
    ("ERROR", "error"),
    ("RESPONSE", lambda a: (a.get("response_body") or "")[:80] or None),
]


@deliveries.command("list")
@client_command()
def list_deliveries(
    ctx: ClientContext,
    webhook: WebhookArgument,
    status: StatusOption = None,
    event: Annotated[str | None, typer.Option("--event", metavar="TYPE", help="only this event type")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", help="at most N, newest first (0: all)", min=0)
    ] = 50,
) -> None:
    """A webhook's deliveries, newest first. Example: hookline deliveries list 3 --status failed"""
    pager = ctx.client.deliveries.list(
        webhook,
        status=status,
        event=event,
        since=moment("--since", since),
        until=moment("--until", until),
        limit=min(limit, 250) or 250,
    )
    found = []
    for delivery in pager:
        found.append(delivery.raw)
        if len(found) == limit:
            break
    ctx.out.records(found, COLUMNS, empty="No deliveries.")


@deliveries.command("show")
@client_command()
def show(ctx: ClientContext, delivery: DeliveryArgument) -> None:
    """A delivery with every attempt. Example: hookline deliveries show 42"""
    found = ctx.client.deliveries.get(delivery)
    if ctx.out.json_mode:
        ctx.out.json(found.raw)
        return
    ctx.out.record(found.raw, FIELDS)
    ctx.out.records(found.raw.get("attempt_log") or [], ATTEMPT_COLUMNS, empty="No attempts yet.")


@deliveries.command("retry")
@client_command()
def retry(ctx: ClientContext, delivery: DeliveryArgument) -> None:
    """Send a delivery again now. Example: hookline deliveries retry 42"""
    queued = ctx.client.deliveries.retry(delivery)
    ctx.out.done(f"Delivery {queued.id} queued: it is sent again now.", queued.raw)


@client_command()
def replay(
    ctx: ClientContext,
    webhook: WebhookArgument,
    since: Annotated[
        str,
        typer.Option(
            "--since", metavar="TIME", help="ISO 8601 time with a timezone, or a duration ago: 30m, 2h, 7d"
        ),
    ],
    until: UntilOption = None,
    status: StatusOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count the deliveries that would be queued; queue nothing")
    ] = False,
) -> None:
    """Queue a webhook's deliveries created in [--since, --until) again (test sends excepted).
    Example: hookline replay 3 --since 2h --status failed"""
    start, end = moment("--since", since), moment("--until", until)
    if not dry_run:
        with ctx.out.progress("Queueing deliveries again..."):
            replayed = ctx.client.deliveries.replay(webhook, since=start, until=end, status=status)
        ctx.out.done(
            f"{replayed.requeued} deliveries of webhook {replayed.webhook_id} queued again.", replayed.raw
        )
        return
    # What the replay would select: the same filters, test sends left out (the server leaves them).
    pager = ctx.client.deliveries.list(webhook, status=status, since=start, until=end, limit=250)
    count = 0
    with ctx.out.progress("Counting deliveries...") as progress:
        for page in pager.pages():
            count += sum(1 for d in page.items if not d.test)
            progress(f"Counting deliveries... {count}")
    ctx.out.done(
        f"Dry run: {count} deliveries of webhook {webhook} would be queued again.",
        {
            "webhook_id": int(webhook) if webhook.isdigit() else webhook,
            "dry_run": True,
            "would_requeue": count,
        },
    )
