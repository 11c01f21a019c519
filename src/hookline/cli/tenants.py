"""``hookline tenants`` (the operator's, admin key) and ``hookline keys``: each tenant's API keys (the
admin key, or the tenant's own ``tenant:manage`` key)."""

from __future__ import annotations

from typing import Annotated

import typer

from hookline.cli import values
from hookline.cli.connection import ClientContext, ConfigurationError, client_command
from hookline.cli.options import YesOption, confirm, expiry, json_object
from hookline.cli.output import Column, note

tenants = typer.Typer(help="Tenants, the platform's customers (admin key).", no_args_is_help=True)
keys = typer.Typer(
    help="A tenant's API keys (admin key, or the tenant's own tenant:manage key).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(tenants, name="tenants")
    app.add_typer(keys, name="keys")


TenantArgument = Annotated[str, typer.Argument(metavar="TENANT", help="the tenant's id")]
MetadataOption = Annotated[str | None, typer.Option("--metadata", metavar="JSON|@FILE", help="a JSON object")]

TENANT_FIELDS: list[Column] = [
    ("id", "id"),
    ("name", "name"),
    ("metadata", "metadata"),
    ("created", "created_at"),
    ("updated", "updated_at"),
]
KEY_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("PREFIX", "prefix"),
    ("SCOPES", "scopes"),
    ("EXPIRES", "expires_at"),
    ("LAST USED", "last_used_at"),
    ("CREATED", "created_at"),
]


@tenants.command("list")
@client_command(tenant=False)
def list_tenants(ctx: ClientContext) -> None:
    """Every tenant. Example: hookline tenants list"""
    columns = [(header.upper(), how) for header, how in TENANT_FIELDS[:4]]
    ctx.out.records((t.raw for t in ctx.client.tenants.list(limit=250)), columns, empty="No tenants.")


@tenants.command("create")
@client_command(tenant=False)
def create(
    ctx: ClientContext,
    name: Annotated[str, typer.Argument(metavar="NAME", help="the tenant's name")],
    tenant_id: Annotated[
        str | None, typer.Option("--id", metavar="ID", help="your own id for it [default: generated]")
    ] = None,
    metadata: MetadataOption = None,
) -> None:
    """Create a tenant. Example: hookline tenants create Acme --id acme"""
    created = ctx.client.tenants.create(name, id=tenant_id, metadata=json_object("--metadata", metadata))
    ctx.out.record(created.raw, TENANT_FIELDS)


@tenants.command("show")
@client_command(tenant=False)
def show(ctx: ClientContext, tenant: TenantArgument) -> None:
    """One tenant. Example: hookline tenants show acme"""
    ctx.out.record(ctx.client.tenants.get(tenant).raw, TENANT_FIELDS)


@tenants.command("update")
@client_command(tenant=False)
def update(
    ctx: ClientContext,
    tenant: TenantArgument,
    name: Annotated[str | None, typer.Option("--name", metavar="NAME", help="its new name")] = None,
    metadata: MetadataOption = None,
) -> None:
    """Rename a tenant or replace its metadata. Example: hookline tenants update acme --name 'Acme Inc'"""
    if name is None and metadata is None:
        raise ConfigurationError("nothing to change: give --name or --metadata")
    updated = ctx.client.tenants.update(tenant, name=name, metadata=json_object("--metadata", metadata))
    ctx.out.record(updated.raw, TENANT_FIELDS)


@tenants.command("delete")
@client_command(tenant=False)
def delete(ctx: ClientContext, tenant: TenantArgument, yes: YesOption = False) -> None:
    """Delete a tenant and everything it owns: keys, webhooks, events, deliveries.
    Example: hookline tenants delete acme --yes"""
    confirm(yes, f"Delete tenant {tenant} with its keys, webhooks, events and deliveries?")
    deleted = ctx.client.tenants.delete(tenant)
    ctx.out.done(f"Tenant {deleted.id} deleted.", deleted.raw)


@keys.command("list")
@client_command(tenant=False)
def list_keys(ctx: ClientContext, tenant: TenantArgument) -> None:
    """A tenant's keys (their prefixes: the keys themselves are never shown again).
    Example: hookline keys list acme"""
    ctx.out.records((k.raw for k in ctx.client.tenants.keys.list(tenant)), KEY_COLUMNS, empty="No keys.")


@keys.command("create")
@client_command(tenant=False)
def create_key(
    ctx: ClientContext,
    tenant: TenantArgument,
    name: Annotated[str | None, typer.Option("--name", metavar="NAME", help="what it is for")] = None,
    scopes: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            metavar="SCOPE",
            help="tenant:manage, events:write or read; repeat or comma-separate [default: tenant:manage]",
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires", metavar="TIME", help="ISO 8601 time with a timezone, or a duration from now: 90d"
        ),
    ] = None,
    allowed_ips: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-ip", metavar="CIDR", help="a network it may be used from; repeat or comma-separate"
        ),
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option("--rate-limit", metavar="N", help="its own requests per second")
    ] = None,
) -> None:
    """Make a new API key for a tenant; it is printed only this once.
    Example: hookline keys create acme --scope events:write --allow-ip 203.0.113.0/24 --expires 90d"""
    created = ctx.client.tenants.keys.create(
        tenant,
        name=name,
        scopes=values.names(scopes) if scopes else None,
        expires_at=expiry("--expires", expires),
        allowed_ips=values.names(allowed_ips) if allowed_ips else None,
        rate_limit=rate_limit,
    )
    fields: list[Column] = [
        ("id", "id"),
        ("name", "name"),
        ("tenant", "tenant_id"),
        ("scopes", "scopes"),
        ("expires", "expires_at"),
        ("allowed ips", "allowed_ips"),
        ("rate limit", "rate_limit"),
        ("key", "key"),
    ]
    ctx.out.record(created.raw, fields)
    if not ctx.out.json_mode:
        note("Store the key now: it is not shown again.")


@keys.command("revoke")
@client_command(tenant=False)
def revoke(
    ctx: ClientContext,
    tenant: TenantArgument,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="the key's id (hookline keys list)")],
) -> None:
    """Revoke an API key: it stops working at once. Example: hookline keys revoke acme key_01J..."""
    revoked = ctx.client.tenants.keys.revoke(tenant, key_id)
    ctx.out.done(f"Key {revoked.id} revoked.", revoked.raw)
