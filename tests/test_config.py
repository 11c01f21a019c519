"""Settings from HOOKLINE_* environment variables: parsing, defaults, and errors that name the variable."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from hookline.config import ConfigError, load_settings

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No HOOKLINE_* variable from the outer environment, and an empty working directory."""
    for name in list(os.environ):
        if name.upper().startswith("HOOKLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_environment_variables_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_DATABASE_URL", "postgresql://hook:pw@db.example:5432/hookline")
    monkeypatch.setenv("HOOKLINE_ADMIN_KEY", "hk_admin_chosen")
    monkeypatch.setenv("HOOKLINE_ALLOW_HTTP", "true")
    monkeypatch.setenv("HOOKLINE_ALLOWED_NETWORKS", "10.0.0.0/8, 192.168.1.0/24,fd00::/8")
    monkeypatch.setenv("HOOKLINE_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("HOOKLINE_HOST", "0.0.0.0")
    monkeypatch.setenv("HOOKLINE_PORT", "9001")
    monkeypatch.setenv("HOOKLINE_LOG_LEVEL", "DEBUG")
    settings = load_settings()
    assert settings.database_url == "postgresql://hook:pw@db.example:5432/hookline"
    assert settings.effective_database_url == settings.database_url
    assert settings.admin_key == "hk_admin_chosen"
    assert settings.allow_http is True
    assert settings.allowed_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.0/24"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert settings.max_body_bytes == 2048
    assert settings.host == "0.0.0.0"
    assert settings.port == 9001
    assert settings.log_level == "debug"


def test_defaults() -> None:
    settings = load_settings()
    assert settings.admin_key is None
    assert settings.allow_http is False
    assert settings.allowed_networks == ()
    assert settings.retry_schedule == (60, 300, 900, 3600, 21600)
    assert settings.max_body_bytes == 1024 * 1024


def test_retry_schedule_is_parsed_to_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_RETRY_SCHEDULE", "1m,5m,15m,1h,6h")
    assert load_settings().retry_schedule == (60, 300, 900, 3600, 21600)


def test_retry_schedule_accepts_seconds_milliseconds_and_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_RETRY_SCHEDULE", " 500ms, 30s ,10,1d")
    assert load_settings().retry_schedule == (0.5, 30, 10, 86400)


def test_default_database_is_sqlite_in_the_data_dir(clean_environment: Path) -> None:
    settings = load_settings()
    assert settings.data_dir == clean_environment / "hookline-data"
    assert (
        settings.effective_database_url == f"sqlite:///{clean_environment / 'hookline-data' / 'hookline.db'}"
    )


def test_data_dir_moves_the_default_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOOKLINE_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_settings().effective_database_url == f"sqlite:///{tmp_path / 'elsewhere' / 'hookline.db'}"


def test_sqlite_url_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOOKLINE_DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    assert load_settings().effective_database_url == f"sqlite:///{tmp_path}/x.db"


def test_explicit_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI flags are passed as overrides; a flag left out (None) keeps the environment's value."""
    monkeypatch.setenv("HOOKLINE_PORT", "9001")
    monkeypatch.setenv("HOOKLINE_HOST", "0.0.0.0")
    settings = load_settings(port=9002, host=None)
    assert settings.port == 9002
    assert settings.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HOOKLINE_RETRY_SCHEDULE", "1x"),
        ("HOOKLINE_RETRY_SCHEDULE", "1m,,-5s"),
        ("HOOKLINE_RETRY_SCHEDULE", ""),
        ("HOOKLINE_RETRY_SCHEDULE", "0s"),
        ("HOOKLINE_ALLOWED_NETWORKS", "10.0.0.0/33"),
        ("HOOKLINE_ALLOWED_NETWORKS", "not-a-network"),
        ("HOOKLINE_DATABASE_URL", "mysql://x"),
        ("HOOKLINE_ALLOW_HTTP", "sometimes"),
        ("HOOKLINE_LOG_LEVEL", "loud"),
        ("HOOKLINE_PORT", "eighty"),
        ("HOOKLINE_PORT", "70000"),
        ("HOOKLINE_MAX_BODY_BYTES", "10"),
        ("HOOKLINE_STATS_RETENTION", "3d"),
        ("HOOKLINE_STATS_RETENTION", "soon"),
    ],
)
def test_bad_value_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith(f"{variable}: "), str(raised.value)


def test_every_bad_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_RETRY_SCHEDULE", "1x")
    monkeypatch.setenv("HOOKLINE_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "HOOKLINE_RETRY_SCHEDULE" in str(raised.value)
    assert "HOOKLINE_LOG_LEVEL" in str(raised.value)


def test_bad_schedule_message_quotes_the_bad_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_RETRY_SCHEDULE", "1m,1x")
    with pytest.raises(ConfigError, match=r"HOOKLINE_RETRY_SCHEDULE: .*'1x'"):
        load_settings()


def test_bad_network_message_quotes_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_ALLOWED_NETWORKS", "10.0.0.0/8,10.0.0.0/33")
    with pytest.raises(ConfigError, match=r"HOOKLINE_ALLOWED_NETWORKS: .*'10\.0\.0\.0/33'"):
        load_settings()


def test_dev_mode_allows_http_and_loopback_unless_set_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert load_settings().allow_http is False and load_settings().allowed_networks == ()
    monkeypatch.setenv("HOOKLINE_DEV", "true")
    settings = load_settings()
    assert settings.dev and settings.allow_http is True and settings.allowed_networks == loopback
    monkeypatch.setenv("HOOKLINE_ALLOW_HTTP", "false")
    monkeypatch.setenv("HOOKLINE_ALLOWED_NETWORKS", "10.0.0.0/8")
    explicit = load_settings()
    assert explicit.allow_http is False
    assert explicit.allowed_networks == (ipaddress.ip_network("10.0.0.0/8"),)
    monkeypatch.delenv("HOOKLINE_DEV")
    monkeypatch.delenv("HOOKLINE_ALLOW_HTTP")
    monkeypatch.delenv("HOOKLINE_ALLOWED_NETWORKS")
    assert load_settings(dev=True).allowed_networks == loopback  # `serve --dev`


TRUE_SPELLINGS = ("true", "TRUE", "1", "yes", "on", "t", "y")
FALSE_SPELLINGS = ("false", "0", "no", "off", "f", "n")


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    dev=st.sampled_from((None, *TRUE_SPELLINGS, *FALSE_SPELLINGS)),
    allow_http=st.sampled_from((None, "true", "false")),
    networks=st.sampled_from((None, "", "10.0.0.0/8")),
)
def test_dev_fills_in_only_what_is_not_set_whatever_its_spelling(
    monkeypatch: pytest.MonkeyPatch, dev: str | None, allow_http: str | None, networks: str | None
) -> None:
    """HOOKLINE_DEV is read as every boolean setting is (`t`, `on`, `1`...), and an explicit
    HOOKLINE_ALLOW_HTTP or HOOKLINE_ALLOWED_NETWORKS, even an empty one, always wins over it."""
    for name, value in (
        ("HOOKLINE_DEV", dev),
        ("HOOKLINE_ALLOW_HTTP", allow_http),
        ("HOOKLINE_ALLOWED_NETWORKS", networks),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    loaded = load_settings()
    on = dev in TRUE_SPELLINGS
    assert loaded.dev is on
    assert loaded.allow_http is (allow_http == "true" if allow_http is not None else on)
    expected_networks = {
        None: LOOPBACK if on else (),
        "": (),
        "10.0.0.0/8": (ipaddress.ip_network("10.0.0.0/8"),),
    }[networks]
    assert loaded.allowed_networks == expected_networks


def test_a_dev_value_that_is_not_a_boolean_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_DEV", "maybe")
    with pytest.raises(ConfigError, match="HOOKLINE_DEV"):
        load_settings()
