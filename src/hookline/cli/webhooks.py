"""``hookline webhooks``: a tenant's endpoints (list, show, create, update, delete), test sends and
delivery statistics. The options mirror the fields of ``POST``/``PATCH /v1/webhooks``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from hookline.cli import values
from hookline.cli.connection import ClientContext, ConfigurationError, client_command, usage_errors
from hookline.cli.options import DataOption, SinceOption, UntilOption, YesOption, confirm, json_object, moment
from hookline.cli.output import Column, Output, cell

webhooks = typer.Typer(help="A tenant's webhook endpoints, test sends and statistics.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks, name="webhooks")


WebhookArgument = Annotated[str, typer.Argument(metavar="WEBHOOK", help="the webhook's id")]
EventsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--events",
        metavar="TYPES",
        help="event types to subscribe to: names, wildcards (message.*) or *; comma-separated or repeated",
    ),
]
DescriptionOption = Annotated[str | None, typer.Option("--description", metavar="TEXT")]
ChannelOption = Annotated[
    list[str] | None,
    typer.Option("--channel", metavar="NAME", help="receive only events of these channels (repeatable)"),
]
HeaderOption = Annotated[
    list[str] | None,
    typer.Option(
        "--header", metavar="NAME=VALUE", help="a custom header sent with each delivery (repeatable)"
    ),
]
MetadataOption = Annotated[str | None, typer.Option("--metadata", metavar="JSON|@FILE", help="a JSON object")]
TimeoutOption = Annotated[
    float | None, typer.Option("--timeout", metavar="SECONDS", help="deadline of each attempt (up to 120)")
]
ScheduleOption = Annotated[
    str | None,
    typer.Option("--retry-schedule", metavar="WAITS", help="waits before each retry, e.g. 1m,5m,15m,1h,6h"),
]
InFlightOption = Annotated[
    int | None, typer.Option("--max-in-flight", metavar="N", help="concurrent requests, across all workers")
]
RateOption = Annotated[
    float | None, typer.Option("--rate-limit", metavar="PER_SECOND", help="requests per second at most")
]
BreakerOption = Annotated[
    str | None,
    typer.Option(
        "--circuit-breaker",
        metavar="JSON",
        help='breaker thresholds, e.g. {"consecutive_failures": 5, "cooldown": 60}',
    ),
]
SigningOption = Annotated[
    str | None,
    typer.Option(
        "--signing",
        metavar="hmac|ed25519",
        help="ed25519: also sign with an ed25519 key pair (Standard Webhooks v1a; receivers verify with "
        "the public key, `hookline webhooks public-key`); hmac: HMAC only",
    ),
]
COLUMNS: list[Column] = [
    ("ID", "id"),
    ("URL", "url"),
    ("EVENTS", "events"),
    ("ACTIVE", "active"),
    ("BREAKER", lambda w: (w.get("health") or {}).get("circuit_breaker")),
    ("HELD", lambda w: (w.get("health") or {}).get("held")),
    ("DESCRIPTION", "description"),
]
FIELDS: list[Column] = [
    ("id", "id"),
    ("url", "url"),
    ("events", "events"),
    ("active", "active"),
    ("description", "description"),
    ("channels", "channels"),
    ("headers", "headers"),
    ("metadata", "metadata"),
    ("timeout (s)", "timeout_seconds"),
    ("retry schedule (s)", "retry_schedule"),
    ("max in flight", "max_in_flight"),
    ("rate limit (/s)", "rate_limit"),
    ("circuit breaker", lambda w: (w.get("health") or {}).get("circuit_breaker")),
    ("signing", "signing"),
    ("held deliveries", lambda w: (w.get("health") or {}).get("held")),
    ("disabled", "disabled_reason"),
    ("verification", lambda w: (w.get("verification") or {}).get("status")),
    ("created", "created_at"),
]


def show_webhook(out: Output, webhook: Mapping[str, Any]) -> None:
    fields = FIELDS + [(name, name) for name in ("secret", "public_key") if webhook.get(name)]
    out.record(webhook, fields)


def _fields(
    *,
    events: list[str] | None,
    description: str | None,
    channel: list[str] | None,
    header: list[str] | None,
    metadata: str | None,
    timeout: float | None,
    retry_schedule: str | None,
    max_in_flight: int | None,
    rate_limit: float | None,
    circuit_breaker: str | None,
    signing: str | None,
) -> dict[str, Any]:
    """The endpoint options given (``create`` and ``update`` share them), read and named as the SDK
    takes them; those not given are left out."""
    with usage_errors("--header"):
        headers = values.pairs(header) if header else None
    fields = {
        "events": values.names(events) if events else None,
        "description": description,
        "channels": values.names(channel) if channel else None,
        "headers": headers,
        "metadata": json_object("--metadata", metadata),
        "timeout_seconds": timeout,
        "retry_schedule": retry_schedule,
        "max_in_flight": max_in_flight,
        "rate_limit": rate_limit,
        "circuit_breaker": json_object("--circuit-breaker", circuit_breaker),
        "signing": signing,
    }
    return {name: value for name, value in fields.items() if value is not None}


@webhooks.command("list")
@client_command()
def list_webhooks(ctx: ClientContext) -> None:
    """Every webhook of the tenant. Example: hookline webhooks list"""
    ctx.out.records((w.raw for w in ctx.client.webhooks.list(limit=250)), COLUMNS, empty="No webhooks.")


@webhooks.command("show")
@client_command()
def show(ctx: ClientContext, webhook: WebhookArgument) -> None:
    """One webhook, with its options and health. Example: hookline webhooks show 3"""
    show_webhook(ctx.out, ctx.client.webhooks.get(webhook).raw)


@webhooks.command("create")
@client_command()
def create(
    ctx: ClientContext,
    endpoint_url: Annotated[str, typer.Argument(metavar="URL", help="where deliveries go (https://...)")],
    events: EventsOption = None,
    description: DescriptionOption = None,
    secret: Annotated[
        str | None, typer.Option("--secret", metavar="SECRET", help="the signing secret [default: generated]")
    ] = None,
    channel: ChannelOption = None,
    header: HeaderOption = None,
    metadata: MetadataOption = None,
    timeout: TimeoutOption = None,
    retry_schedule: ScheduleOption = None,
    max_in_flight: InFlightOption = None,
    rate_limit: RateOption = None,
    circuit_breaker: BreakerOption = None,
    signing: SigningOption = None,
    verify: Annotated[
        bool | None,
        typer.Option(
            "--verify/--no-verify", help="require the verification handshake [default: the service's]"
        ),
    ] = None,
) -> None:
    """Register an endpoint; prints its signing secret. Example: hookline webhooks create
    https://app.example.com/hook --events 'message.*' --description 'chat app'"""
    fields = _fields(
        events=events, description=description, channel=channel, header=header, metadata=metadata,
        timeout=timeout, retry_schedule=retry_schedule, max_in_flight=max_in_flight, rate_limit=rate_limit,
        circuit_breaker=circuit_breaker, signing=signing,
    )  # fmt: skip
    created = ctx.client.webhooks.create(endpoint_url, secret=secret, verify=verify, **fields)
    show_webhook(ctx.out, created.raw)


RESETTABLE = {
    "channels": "channels",
    "timeout": "timeout_seconds",
    "retry-schedule": "retry_schedule",
    "max-in-flight": "max_in_flight",
    "rate-limit": "rate_limit",
    "circuit-breaker": "circuit_breaker",
}


@webhooks.command("update")
@client_command()
def update(
    ctx: ClientContext,
    webhook: WebhookArgument,
    webhook_url: Annotated[
        str | None, typer.Option("--webhook-url", metavar="URL", help="the endpoint's new URL")
    ] = None,
    events: EventsOption = None,
    description: DescriptionOption = None,
    channel: ChannelOption = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", metavar="NAME=VALUE", help="custom headers, replacing all (repeatable)"),
    ] = None,
    metadata: MetadataOption = None,
    timeout: TimeoutOption = None,
    retry_schedule: ScheduleOption = None,
    max_in_flight: InFlightOption = None,
    rate_limit: RateOption = None,
    circuit_breaker: BreakerOption = None,
    signing: SigningOption = None,
    active: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="enable (releases held deliveries) or disable the endpoint"),
    ] = None,
    discard_held: Annotated[
        bool, typer.Option("--discard-held", help="with --enable: fail the held deliveries instead")
    ] = False,
    reset: Annotated[
        list[str] | None,
        typer.Option(
            "--reset",
            metavar="OPTION",
            help=f"back to the service's default: {', '.join(RESETTABLE)} (repeatable)",
        ),
    ] = None,
) -> None:
    """Change the options given. Example: hookline webhooks update 3 --events 'order.*' --disable"""
    fields = _fields(
        events=events, description=description, channel=channel, header=header, metadata=metadata,
        timeout=timeout, retry_schedule=retry_schedule, max_in_flight=max_in_flight, rate_limit=rate_limit,
        circuit_breaker=circuit_breaker, signing=signing,
    )  # fmt: skip
    given = {"url": webhook_url, "active": active, "discard_held": discard_held or None}
    fields.update({name: value for name, value in given.items() if value is not None})
    for name in values.names(reset or []):
        if name not in RESETTABLE:
            raise ConfigurationError(f"--reset: {name!r} is not one of {', '.join(RESETTABLE)}")
        fields[RESETTABLE[name]] = None
    if not fields:
        raise ConfigurationError(
            "nothing to change: give at least one option (hookline webhooks update --help)"
        )
    show_webhook(ctx.out, ctx.client.webhooks.update(webhook, **fields).raw)


@webhooks.command("public-key")
@client_command()
def public_key(ctx: ClientContext, webhook: WebhookArgument) -> None:
    """The whpk_ key(s) receivers verify an ed25519 webhook's v1a signatures with (during a rotation,
    the previous ones too). Example: hookline webhooks public-key 3"""
    found = ctx.client.webhooks.get_public_key(webhook)
    if ctx.out.json_mode:
        ctx.out.json(found.raw)
        return
    rows = [("public key", found.public_key)]
    rows += [
        (f"previous, until {cell(old.raw.get('expires_at'))}", old.public_key)
        for old in found.previous_public_keys
    ]
    ctx.out.pairs(rows, title=f"webhook {found.id}")


@webhooks.command("delete")
@client_command()
def delete(
    ctx: ClientContext,
    webhook: WebhookArgument,
    yes: YesOption = False,
) -> None:
    """Delete a webhook and its deliveries. Example: hookline webhooks delete 3 --yes"""
    confirm(yes, f"Delete webhook {webhook} and its deliveries?")
    deleted = ctx.client.webhooks.delete(webhook)
    ctx.out.done(f"Webhook {deleted.id} deleted.", deleted.raw)


TEST_FIELDS: list[Column] = [
    ("webhook", "webhook_id"),
    ("url", "url"),
    ("event", "event"),
    ("event id", "event_id"),
    ("succeeded", "succeeded"),
    ("status code", "status_code"),
    ("duration (ms)", "duration_ms"),
    ("error", "error"),
    ("response", lambda t: (t.get("response_body") or "")[:200] or None),
]


@webhooks.command("test")
@client_command()
def test(
    ctx: ClientContext,
    webhook: Annotated[
        str | None, typer.Argument(metavar="[WEBHOOK]", help="the webhook's id [default: every webhook]")
    ] = None,
    event: Annotated[
        str | None, typer.Option("--event", metavar="TYPE", help="the event type [default: webhook.test]")
    ] = None,
    data: DataOption = None,
) -> None:
    """Send a test event now and show what the endpoint answered (a failed test is shown, not an error:
    see "succeeded"). Example: hookline webhooks test 3 --event message.received"""
    payload = json_object("--data", data)
    if webhook is None:
        report = ctx.client.webhooks.test_all(event, data=payload)
        if ctx.out.json_mode:
            ctx.out.json(report.raw)
            return
        ctx.out.records(report.raw.get("results", []), TEST_FIELDS[:7], empty="No webhooks to test.")
        typer.echo(f"{report.succeeded} of {report.tested} succeeded.")
        return
    outcome = ctx.client.webhooks.test(webhook, event=event, data=payload)
    ctx.out.record(outcome.raw, TEST_FIELDS)


@webhooks.command("stats")
@client_command()
def stats(
    ctx: ClientContext,
    webhook: Annotated[
        str | None, typer.Argument(metavar="[WEBHOOK]", help="the webhook's id [default: the whole tenant]")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    window: Annotated[
        str | None,
        typer.Option("--window", metavar="LENGTH", help="instead of --since: 1h, 24h, 7d [default: 24h]"),
    ] = None,
) -> None:
    """Delivery statistics: attempts, success rate, latency. Example: hookline webhooks stats 3 --window 7d"""
    start, end = moment("--since", since), moment("--until", until)
    if webhook is None:
        found = ctx.client.stats.tenant(since=start, until=end, window=window)
    else:
        found = ctx.client.stats.webhook(webhook, since=start, until=end, window=window)
    if ctx.out.json_mode:
        ctx.out.json(found.raw)
        return
    attempts, deliveries, latency = found.attempts, found.deliveries, found.latency_ms
    rate = None if found.success_rate is None else f"{found.success_rate:.1%}"
    ctx.out.pairs(
        [
            ("window", f"{cell(found.raw.get('since'))} to {cell(found.raw.get('until'))}"),
            ("attempts", attempts.total),
            ("  2xx / 4xx / 5xx", f"{attempts.ok} / {attempts.client_error} / {attempts.server_error}"),
            ("  timeouts / connection errors", f"{attempts.timeout} / {attempts.connection_error}"),
            ("success rate", rate),
            ("deliveries succeeded / failed", f"{deliveries.succeeded} / {deliveries.failed}"),
            ("deliveries pending / held", f"{deliveries.pending} / {deliveries.held}"),
            ("latency p50 / p95 / p99 (ms)", f"{latency.p50} / {latency.p95} / {latency.p99}"),
            ("status codes", found.status_codes),
            ("last success", found.last_success_at),
            ("last failure", found.last_failure_at),
        ],
        title=f"webhook {webhook}" if webhook else "all webhooks",
    )
