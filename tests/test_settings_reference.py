"""docs/configuration.md: generated from Settings, up to date, and every variable in it really configures
hookline. A new setting fails these tests until it has a docstring, a section and a regenerated file."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import SecretStr

from hookline.config import DURATION_FIELDS, Settings, load_settings
from hookline.fixed_egress import EgressProxy
from hookline.sealing import generate_key
from hookline.settings_reference import (
    REGENERATE,
    SettingsReferenceError,
    description,
    render,
    variable,
    written_default,
    written_duration,
)

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"
HOW_TO_REGENERATE = (
    f"regenerate docs/configuration.md from the repository root with `PYTHONPATH=src {REGENERATE}` "
    "and commit it with your change"
)
# Variables of the `hookline` client commands and of the test suite: real, but not server settings.
NOT_SETTINGS = {
    "HOOKLINE_URL",
    "HOOKLINE_API_KEY",
    "HOOKLINE_PROFILE",
    "HOOKLINE_TENANT",
    "HOOKLINE_CONFIG",
    "HOOKLINE_TEST_PG_URL",
}
OPERATOR_URL = "https://ops.example.com/hookline"
OPERATOR_SECRET = "whsec_" + "A" * 43 + "="  # base64 of 32 bytes
# A valid value other than the default (as written in the environment, and as read) for the settings
# whose value cannot be derived from their type. The others are derived in ``example``.
SECRET_KEY, OTHER_KEY = generate_key(), generate_key()
EXAMPLES: dict[str, tuple[str, Any]] = {
    "data_dir": ("/srv/hookline", Path("/srv/hookline")),
    "database_url": ("postgresql://hook@db.example:5432/hookline",) * 2,
    "admin_key": ("hk_admin_example",) * 2,
    "allowed_networks": (
        "10.0.0.0/8, fd00::/8",
        (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")),
    ),
    "egress_proxy": ("http://proxy.example:3128", EgressProxy("proxy.example", 3128)),
    "egress_ips": (
        "203.0.113.7, 198.51.100.0/28",
        (ipaddress.ip_network("203.0.113.7/32"), ipaddress.ip_network("198.51.100.0/28")),
    ),
    "trusted_proxies": (
        "10.0.0.0/8, 2001:db8::/32",
        (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")),
    ),
    "public_url": ("https://hooks.example.com",) * 2,
    "portal_frame_ancestors": (
        "https://app.example.com, http://localhost:3000/",
        ("https://app.example.com", "http://localhost:3000"),
    ),
    "retry_schedule": ("30s,2m,1h", (30.0, 120.0, 3600.0)),
    "no_retry_statuses": ("400,401,403", frozenset({400, 401, 403})),
    "operator_webhook_url": (OPERATOR_URL, OPERATOR_URL),
    "operator_webhook_secret": (OPERATOR_SECRET, OPERATOR_SECRET),
    "signature_header_prefix": ("X-Acme",) * 2,
    "signature_hex_form": ("hex",) * 2,
    "host": ("0.0.0.0",) * 2,
    "log_level": ("warning",) * 2,
    "worker_port": ("9464", 9464),
    "metrics_token": ("prometheus-scrape-token-1",) * 2,
    "secret_key": (f"{SECRET_KEY}, {OTHER_KEY}", SecretStr(f"{SECRET_KEY}, {OTHER_KEY}")),
}
# What a setting needs set with it to be valid.
COMPANIONS = {
    "operator_webhook_url": {"HOOKLINE_OPERATOR_WEBHOOK_SECRET": OPERATOR_SECRET},
    "operator_webhook_secret": {"HOOKLINE_OPERATOR_WEBHOOK_URL": OPERATOR_URL},
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HOOKLINE_* variable from the outer environment, and an empty working directory."""
    for name in list(os.environ):
        if name.upper().startswith("HOOKLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def documented_variables() -> list[str]:
    """The variables of docs/configuration.md's tables, in order."""
    return re.findall(r"^\| `(HOOKLINE_[A-Z0-9_]+)` \|", REFERENCE.read_text(encoding="utf-8"), re.MULTILINE)


def field_of(env: str) -> str:
    names = {variable(Settings, name): name for name in Settings.model_fields}
    assert env in names, f"{env} is documented but is no field of hookline.config.Settings"
    return names[env]


def test_the_reference_is_up_to_date() -> None:
    try:
        expected, problem = render(), ""
    except SettingsReferenceError as exc:
        expected, problem = "", str(exc)
    if problem:
        pytest.fail(f"{problem}; then {HOW_TO_REGENERATE}", pytrace=False)
    actual = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    if actual != expected:
        diff = "\n".join(
            difflib.unified_diff(
                actual.splitlines(), expected.splitlines(), "docs/configuration.md", "generated", lineterm=""
            )
        )
        pytest.fail(
            f"docs/configuration.md differs from what hookline.config.Settings generates: "
            f"{HOW_TO_REGENERATE}.\n{diff[:4000]}",
            pytrace=False,
        )


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_has_a_description(name: str) -> None:
    assert (Settings.model_fields[name].description or "").strip(), (
        f"{variable(Settings, name)} has no description: write a short user-facing docstring right under "
        f"the {name!r} field of hookline.config.Settings, then {HOW_TO_REGENERATE}"
    )


class _WithNewSetting(Settings):
    brand_new: int = 1


def test_a_setting_in_no_section_or_without_description_cannot_be_rendered() -> None:
    with pytest.raises(SettingsReferenceError, match=r"HOOKLINE_BRAND_NEW is in no section: add 'brand_new'"):
        render(_WithNewSetting, flags={})
    with pytest.raises(SettingsReferenceError, match=r"HOOKLINE_BRAND_NEW has no description"):
        description(_WithNewSetting, "brand_new")


def test_every_setting_is_documented_once() -> None:
    documented = documented_variables()
    assert sorted(documented) == sorted(variable(Settings, name) for name in Settings.model_fields), (
        f"docs/configuration.md does not list each setting once: {HOW_TO_REGENERATE}"
    )


@pytest.mark.parametrize(("seconds", "written"), [(15, "15s"), (300, "5m"), (432000, "5d"), (0.5, "500ms")])
def test_durations_are_written_as_a_user_would(seconds: float, written: str) -> None:
    assert written_duration(seconds) == written


def test_defaults_are_written_as_a_user_would() -> None:
    assert written_default(Settings, "retry_schedule") == "`1m,5m,15m,1h,6h`"
    assert written_default(Settings, "data_dir") == "`./hookline-data`"
    assert written_default(Settings, "admin_key") == "unset"
    assert written_default(Settings, "no_retry_statuses") == "`400,401`"
    assert written_default(Settings, "json_safe_integers") == "`true`"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def example(name: str) -> tuple[str, Any]:
    """A valid value for the setting other than its default: (as written, as read)."""
    if name in EXAMPLES:
        return EXAMPLES[name]
    field = Settings.model_fields[name]
    default = field.default
    if name in DURATION_FIELDS:
        seconds = 2 * default if default else 3600.0
        return written_duration(seconds), seconds
    kind = field.annotation
    if kind is bool:
        return str(not default).lower(), not default
    if get_origin(kind) is Literal:
        other = next(choice for choice in get_args(kind) if choice != default)
        return str(other), other
    if kind in (int, float, float | None):
        bounds = [getattr(rule, k) for k in ("le", "ge") for rule in field.metadata if hasattr(rule, k)]
        value = next((bound for bound in bounds if bound != default), None)
        if value is not None:
            return _number(value), value
    pytest.fail(
        f"{variable(Settings, name)}: add a valid example value to EXAMPLES in "
        "tests/test_settings_reference.py (this test checks the variable really sets it)",
        pytrace=False,
    )


@pytest.mark.parametrize("env", documented_variables())
def test_every_documented_variable_configures_hookline(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    name = field_of(env)
    written, expected = example(name)
    assert expected != Settings.model_fields[name].get_default(call_default_factory=True)
    for companion, value in COMPANIONS.get(name, {}).items():
        monkeypatch.setenv(companion, value)
    monkeypatch.setenv(env, written)
    assert getattr(load_settings(), name) == expected, f"{env}={written} was not read"


def readme_configuration() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Configuration\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_points_to_the_reference() -> None:
    assert "(docs/configuration.md)" in readme_configuration()


def test_every_variable_the_readme_names_exists() -> None:
    settings = {variable(Settings, name) for name in Settings.model_fields}
    named = set(re.findall(r"HOOKLINE_[A-Z0-9_]*[A-Z0-9]", README.read_text(encoding="utf-8")))
    assert named - settings - NOT_SETTINGS == set()


def test_the_readme_table_gives_the_real_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a row of the README's short table gives each of its variables a default in backticks, that
    value, set in the environment, is what hookline uses without it (`60s` and `1m` are both right)."""
    checked = 0
    for row in re.findall(r"^\| (`HOOKLINE_.*)$", readme_configuration(), re.MULTILINE):
        names, defaults = (cell.strip() for cell in row.split(" | ")[:2])
        envs = re.findall(r"`(HOOKLINE_[A-Z0-9_]+)`", names)
        written = [d.strip() for d in defaults.split(", ")]
        if len(written) != len(envs) or not all(d.startswith("`") and d.endswith("`") for d in written):
            continue
        for env, default in zip(envs, written, strict=True):
            name = field_of(env)
            if written_default(Settings, name) == "unset":
                continue  # the README shows what "unset" amounts to (the SQLite URL)
            with monkeypatch.context() as patch:
                patch.setenv(env, default.strip("`"))
                read = getattr(load_settings(), name)
            real = Settings.model_fields[name].get_default(call_default_factory=True)
            if isinstance(real, Path):
                read = read.resolve()
            assert read == real, f"README: {env} defaults to {written_default(Settings, name)}, not {default}"
            checked += 1
    assert checked >= 30, "the README's configuration table no longer has the expected form"
