"""``hookline profiles``: named connections (URL, key, tenant) in the profiles file, so that
``--profile prod`` replaces ``--url ... --key ...`` (see ``connection`` for the file and the order in
which settings are taken). Keys are shown masked, never in full."""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any

import typer

from hookline.cli.connection import (
    DEFAULT_PROFILE,
    ConfigurationError,
    mask_key,
    profiles_path,
    read_profiles,
    run_command,
    write_profiles,
)
from hookline.cli.output import JsonOption, Output

profiles = typer.Typer(
    help="Named connections (URL, API key, tenant) in ~/.config/hookline/profiles.toml ($HOOKLINE_CONFIG); "
    f"the profile '{DEFAULT_PROFILE}' applies when none is named.",
    no_args_is_help=True,
)

NAME = re.compile(r"[A-Za-z0-9_-]+")
NameArgument = Annotated[
    str, typer.Argument(metavar="NAME", help="the profile's name (letters, digits, _ and -)")
]


def register(app: typer.Typer) -> None:
    app.add_typer(profiles, name="profiles")


def _shown(name: str, profile: dict[str, Any]) -> dict[str, Any]:
    key = profile.get("key")
    return {
        "name": name,
        "url": profile.get("url"),
        "key": mask_key(key) if isinstance(key, str) else None,
        "tenant": profile.get("tenant"),
    }


@profiles.command("set")
def set_profile(
    name: NameArgument,
    url: Annotated[str | None, typer.Option("--url", metavar="URL", help="the hookline service")] = None,
    key: Annotated[
        str | None, typer.Option("--key", metavar="KEY", help="the API key; - reads it from stdin")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", metavar="ID", help="the tenant an admin key acts on")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create a profile or change the settings given. Example: hookline profiles set prod --url
    https://hooks.example.com --key -"""

    def run() -> None:
        if not NAME.fullmatch(name):
            raise ConfigurationError(f"{name!r} is not a profile name (letters, digits, _ and -)")
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"--url must start with http:// or https://, not {url!r}")
        given = {"url": url, "key": sys.stdin.readline().strip() if key == "-" else key, "tenant": tenant}
        changes = {field: value for field, value in given.items() if value is not None}
        if not changes:
            raise ConfigurationError("nothing to set: give --url, --key or --tenant")
        found = read_profiles()
        found[name] = {**found.get(name, {}), **changes}
        path = write_profiles(found)
        Output(json_mode=json_output).done(f"Profile '{name}' saved in {path}.", _shown(name, found[name]))

    run_command(run)


@profiles.command("list")
def list_profiles(json_output: JsonOption = False) -> None:
    """The profiles, keys masked. Example: hookline profiles list"""
    found = run_command(read_profiles)
    columns = [("NAME", "name"), ("URL", "url"), ("KEY", "key"), ("TENANT", "tenant")]
    rows = [_shown(name, profile) for name, profile in found.items()]
    Output(json_mode=json_output).records(rows, columns, empty=f"No profiles in {profiles_path()}.")


@profiles.command("remove")
def remove_profile(name: NameArgument, json_output: JsonOption = False) -> None:
    """Remove a profile. Example: hookline profiles remove staging"""

    def run() -> None:
        found = read_profiles()
        if name not in found:
            raise ConfigurationError(f"no profile '{name}' in {profiles_path()}")
        del found[name]
        write_profiles(found)
        Output(json_mode=json_output).done(f"Profile '{name}' removed.", {"name": name, "removed": True})

    run_command(run)
