"""The configuration reference, docs/configuration.md, rendered from the settings object itself.

Each setting's variable, type and default come from its field in ``hookline.config.Settings``, its
meaning from the docstring under that field, and its command-line flag (if any) from the ``[env: ...]``
in the flag's help. ``SECTIONS`` groups the settings; every field must be in exactly one of them.

Regenerate the file from the repository root with ``python -m hookline.settings_reference >
docs/configuration.md``; tests/test_settings_reference.py fails while it differs.
"""

from __future__ import annotations

import ipaddress
import re
import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode

from hookline.config import DURATION_FIELDS, LOG_LEVELS, SIGNATURE_HEX_FORMS, Settings

REGENERATE = "python -m hookline.settings_reference > docs/configuration.md"

# (title, settings), in the order the reference lists them.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Storage and admin key", ("database_url", "data_dir", "admin_key")),
    ("Secrets at rest", ("secret_key",)),
    ("API server", ("host", "port", "api_workers", "max_body_bytes", "json_safe_integers")),
    ("API keys and the audit log", ("trusted_proxies", "tenant_rate_limit", "audit_retention")),
    ("Dashboard and portal links", ("public_url", "portal_frame_ancestors")),
    (
        "Worker processes",
        ("worker_concurrency", "worker_batch_size", "lease", "poll_interval", "drain_timeout"),
    ),
    (
        "Delivery",
        (
            "sender",
            "delivery_timeout",
            "response_body_limit",
            "max_in_flight_per_endpoint",
            "rate_limit",
            "verification_required",
        ),
    ),
    ("Retries", ("retry_schedule", "retry_jitter", "no_retry_statuses", "retry_after_max")),
    (
        "Circuit breaker and auto-disable",
        (
            "breaker_consecutive_failures",
            "breaker_failure_rate",
            "breaker_min_requests",
            "breaker_window",
            "breaker_cooldown",
            "breaker_max_cooldown",
            "auto_disable_after",
        ),
    ),
    (
        "Alerts and operational events",
        (
            "operator_webhook_url",
            "operator_webhook_secret",
            "alert_failure_rate",
            "alert_min_attempts",
            "alert_window",
        ),
    ),
    ("Statistics", ("stats_retention",)),
    ("Retention", ("retention", "summary_retention", "retention_share")),
    ("Egress and local development", ("allow_http", "allowed_networks", "egress_proxy", "egress_ips", "dev")),
    ("Signatures", ("signature_header_prefix", "signature_hex_form")),
    ("Relay (`hookline listen`)", ("relay_keep",)),
    ("Logging", ("log_level",)),
    ("Metrics and probes", ("worker_port", "metrics_token", "metrics_endpoint_labels")),
)

# How a user writes the settings whose Python type does not say it (the others are derived from it).
WRITTEN_TYPES: Mapping[str, str] = {
    "data_dir": "directory path",
    "database_url": "URL",
    "operator_webhook_url": "URL",
    "operator_webhook_secret": "secret",
    "metrics_token": "secret",
    "secret_key": "comma-separated keys (base64url of 32 bytes)",
    "host": "IP address or host name",
    "signature_header_prefix": "header name",
    "signature_hex_form": "one of " + ", ".join(SIGNATURE_HEX_FORMS),
    "log_level": "one of " + ", ".join(LOG_LEVELS),
    "allowed_networks": "comma-separated CIDRs",
    "egress_proxy": "URL",
    "egress_ips": "comma-separated IP addresses or CIDRs",
    "trusted_proxies": "comma-separated CIDRs",
    "public_url": "URL",
    "portal_frame_ancestors": "comma-separated origins",
    "retry_schedule": "comma-separated durations",
    "no_retry_statuses": "comma-separated 4xx status codes",
}
# Defaults that depend on where the process starts, as a user would write them.
WRITTEN_DEFAULTS: Mapping[str, str] = {"data_dir": "./hookline-data"}

_ENV_IN_HELP = re.compile(r"\[env: (HOOKLINE_[A-Z0-9_]+)\]")
_DURATION_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


class SettingsReferenceError(ValueError):
    """The settings cannot be rendered as they are; the message says what to change."""


def variable(settings: type[BaseSettings], name: str) -> str:
    """``delivery_timeout`` -> ``HOOKLINE_DELIVERY_TIMEOUT``: the variable that sets the field."""
    return f"{settings.model_config.get('env_prefix', '')}{name}".upper()


def sectioned(settings: type[BaseSettings]) -> list[tuple[str, list[str]]]:
    """``SECTIONS`` checked against the fields: each field in exactly one section, no unknown name."""
    fields = settings.model_fields
    placed = [name for _, names in SECTIONS for name in names]
    problems = [
        f"{name!r} is listed more than once" for name in sorted({n for n in placed if placed.count(n) > 1})
    ]
    problems += [f"{name!r} is not a setting" for name in placed if name not in fields]
    problems += [
        f"{variable(settings, name)} is in no section: add {name!r} to one"
        for name in fields
        if name not in placed
    ]
    if problems:
        raise SettingsReferenceError(f"hookline.settings_reference.SECTIONS: {'; '.join(problems)}")
    return [(title, list(names)) for title, names in SECTIONS]


def written_duration(seconds: float) -> str:
    """300.0 -> ``5m``, 432000.0 -> ``5d``, 0.5 -> ``500ms``: the largest unit that divides it."""
    if seconds == 0:
        return "0"
    for unit, size in _DURATION_UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{_number(seconds * 1000)}ms"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _unoptional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        others = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(others) == 1:
            return others[0]
    return annotation


def _bounds(field: FieldInfo) -> str:
    """`` 1-10000``, `` above 0, at most 100000``...: the range the field's constraints allow."""
    rules = {
        kind: getattr(rule, kind)
        for rule in field.metadata
        for kind in ("ge", "gt", "le", "lt")
        if getattr(rule, kind, None) is not None
    }
    low = _number(rules["ge"]) if "ge" in rules else f"above {_number(rules['gt'])}" if "gt" in rules else ""
    high = _number(rules["le"]) if "le" in rules else f"below {_number(rules['lt'])}" if "lt" in rules else ""
    if low and high:
        return f" {low}, at most {high}" if "gt" in rules else f" {low}\N{EN DASH}{high}"
    if low:
        return f" {low}" if "gt" in rules else f" {low} or more"
    return f" at most {high}" if high else ""


def written_type(settings: type[BaseSettings], name: str) -> str:
    """The setting's type as a user writes it: ``duration``, ``integer 1-10000``, ``one of a, b``..."""
    if name in WRITTEN_TYPES:
        return WRITTEN_TYPES[name]
    if name in DURATION_FIELDS:
        return "duration"
    field = settings.model_fields[name]
    kind = _unoptional(field.annotation)
    if NoDecode not in field.metadata:
        if kind is bool:
            return "boolean"
        if kind is int:
            return "integer" + _bounds(field)
        if kind is float:
            return "number" + _bounds(field)
        if kind is str:
            return "text"
        if get_origin(kind) is Literal:
            return "one of " + ", ".join(str(choice) for choice in get_args(kind))
    raise SettingsReferenceError(
        f"{variable(settings, name)}: say how its value is written, in "
        f"hookline.settings_reference.WRITTEN_TYPES (or DURATION_FIELDS in hookline.config)"
    )


def written_default(settings: type[BaseSettings], name: str) -> str:
    """The default as a user would write it (durations as ``15s``, lists comma-separated), in
    backticks, or ``unset``."""
    if name in WRITTEN_DEFAULTS:
        return f"`{WRITTEN_DEFAULTS[name]}`"
    field = settings.model_fields[name]
    if field.default_factory is not None:
        raise SettingsReferenceError(
            f"{variable(settings, name)}: its default is computed; write it in "
            "hookline.settings_reference.WRITTEN_DEFAULTS"
        )
    value = field.default
    if value is None or value == "" or value == ():
        return "unset"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif name in DURATION_FIELDS:
        text = written_duration(value)
    elif name == "retry_schedule":
        text = ",".join(written_duration(wait) for wait in value)
    elif isinstance(value, frozenset | set):
        text = ",".join(str(item) for item in sorted(value))
    elif isinstance(value, tuple):
        text = ",".join(str(item) for item in value)
    elif isinstance(value, int | float):
        text = _number(value)
    elif isinstance(value, str | ipaddress.IPv4Network | ipaddress.IPv6Network):
        text = str(value)
    else:
        raise SettingsReferenceError(f"{variable(settings, name)}: write its default in WRITTEN_DEFAULTS")
    return f"`{text}`"


def description(settings: type[BaseSettings], name: str) -> str:
    """The docstring under the field, on one line."""
    text = " ".join((settings.model_fields[name].description or "").split())
    if not text:
        raise SettingsReferenceError(
            f"{variable(settings, name)} has no description: write a docstring under the "
            f"{name!r} field of {settings.__name__}"
        )
    return text


def command_line_flags() -> dict[str, list[str]]:
    """``{"HOOKLINE_HOST": ["`--host` (`serve`, `api`)"], ...}``: the flags whose help names a variable."""
    import typer.main
    from typer.core import TyperGroup, TyperOption

    from hookline.cli import app

    found: dict[str, dict[str, list[str]]] = {}

    def walk(command: object, path: str) -> Iterator[tuple[str, TyperOption]]:
        if isinstance(command, TyperGroup):
            for sub_name, sub in sorted(command.commands.items()):
                yield from walk(sub, f"{path} {sub_name}".strip())
        for param in getattr(command, "params", ()):
            if isinstance(param, TyperOption):
                yield path, param

    for path, option in walk(typer.main.get_command(app), ""):
        for env in _ENV_IN_HELP.findall(option.help or ""):
            flag = " / ".join(f"`{opt}`" for opt in option.opts)
            found.setdefault(env, {}).setdefault(flag, []).append(f"`{path}`")
    return {
        env: [f"{flag} ({', '.join(commands)})" for flag, commands in flags.items()]
        for env, flags in found.items()
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(settings: type[BaseSettings] = Settings, flags: Mapping[str, list[str]] | None = None) -> str:
    """docs/configuration.md, as Markdown."""
    flags = command_line_flags() if flags is None else flags
    lines = [
        "# Configuration reference",
        "",
        f"_Generated from the settings object (`hookline.config.Settings`); do not edit by hand. "
        f"Regenerate with `{REGENERATE}` from the repository root._",
        "",
        "hookline's server commands (`serve`, `api`, `worker`, `migrate`, `admin-key reset`) read these "
        "environment variables when they start; a bad value stops the process at once with a message "
        "that names the variable. A few can also be given as command-line flags, which win over the "
        "variable. The client commands' own variables (`HOOKLINE_URL`, `HOOKLINE_API_KEY`, "
        "`HOOKLINE_PROFILE`, `HOOKLINE_TENANT`, `HOOKLINE_CONFIG`) are described in the README's "
        "[Command line](../README.md#command-line) section.",
        "",
        "How values are written:",
        "",
        "- **duration**: a number and a unit, `ms`, `s`, `m`, `h` or `d` (`500ms`, `30s`, `5m`, `1h`, `7d`); "
        "a bare number is seconds.",
        "- **boolean**: `true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off`).",
        "- **comma-separated** lists: items separated by commas; spaces around them are ignored.",
        "- **unset**: the variable is not set; the meaning says what hookline does then.",
        "",
    ]
    for title, names in sectioned(settings):
        lines += [f"## {title}", "", "| variable | type | default | meaning |", "|---|---|---|---|"]
        for name in names:
            env = variable(settings, name)
            meaning = description(settings, name)
            if flags.get(env):
                meaning += f" Flag: {'; '.join(flags[env])}."
            row = (f"`{env}`", written_type(settings, name), written_default(settings, name), meaning)
            lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    try:
        text = render()
    except SettingsReferenceError as exc:
        sys.exit(f"hookline.settings_reference: {exc}")
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
