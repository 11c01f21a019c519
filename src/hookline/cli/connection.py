"""Where a client command connects and as whom (``--url``, ``--key``, ``--profile``, ``--tenant``), the
profiles file, and what a failure exits with.

Each setting comes from the first of: its flag, its environment variable, the profile, the default.
The profile is the one named by ``--profile`` (``HOOKLINE_PROFILE``), else the one called ``default``
if the file has it. The file is TOML (``$HOOKLINE_CONFIG``, else ``~/.config/hookline/profiles.toml``)::

    [profiles.prod]
    url = "https://hooks.example.com"
    key = "hk_..."
    tenant = "acme"        # optional: the tenant an admin key acts on

It holds keys, so it is written with mode 0600, by ``hookline profiles``.

For a command of its own, the pieces are ``resolve_connection`` (the settings, or ``ConfigurationError``)
and ``run_command`` (runs the command's body; an SDK error or a configuration error becomes one line
on stderr and the exit code below). ``client_command`` puts them together for the commands that use a
``hookline.Client``: it adds the connection options and ``--json`` to the command and hands its body a
``ClientContext`` (the client and the output).

Exit codes: 0 ok; 1 the API refused the request (a 4xx other than 404); 2 usage or configuration
(Typer's own code for bad usage); 3 no answer from the server, or a server error (5xx, connection
refused, timeout, an answer that is not hookline's); 4 not found (404).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from hookline.cli.output import JsonOption, Output, fail

if TYPE_CHECKING:
    import hookline

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"  # the server's default HOOKLINE_HOST and HOOKLINE_PORT
DEFAULT_PROFILE = "default"
PROFILE_FIELDS = ("url", "key", "tenant")

OK, REFUSED, USAGE, UNAVAILABLE, NOT_FOUND = 0, 1, 2, 3, 4
EXIT_CODES = (
    "0 ok; 1 the API refused the request (4xx other than 404); 2 usage or configuration error; 3 the "
    "server cannot be reached or failed (5xx, connection refused, timeout); 4 not found (404)."
)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", envvar="HOOKLINE_URL", metavar="URL", help=f"the hookline service [default: {DEFAULT_URL}]"
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key", envvar="HOOKLINE_API_KEY", metavar="KEY", help="a tenant's API key, or the admin key"
    ),
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        envvar="HOOKLINE_PROFILE",
        metavar="NAME",
        help="the profile to take the URL, key and tenant from (hookline profiles) [default: 'default']",
    ),
]
TenantOption = Annotated[
    str | None,
    typer.Option("--tenant", envvar="HOOKLINE_TENANT", metavar="ID", help="the tenant an admin key acts on"),
]


class ConfigurationError(Exception):
    """Settings that cannot work (exit code 2): an unknown profile, an unreadable profiles file, no key."""


# --- the profiles file ------------------------------------------------------------------------------------


def profiles_path() -> Path:
    if explicit := os.environ.get("HOOKLINE_CONFIG"):
        return Path(explicit)
    return Path.home() / ".config" / "hookline" / "profiles.toml"


def read_profiles(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every profile of the file (none if it does not exist), as its TOML tables."""
    path = path or profiles_path()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read the profiles file {path}: {exc}") from None
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise ConfigurationError(f"{path}: [profiles.NAME] tables expected")
    for name, profile in profiles.items():
        for field in PROFILE_FIELDS:
            if field in profile and not isinstance(profile[field], str):
                raise ConfigurationError(f"{path}: profiles.{name}.{field} must be a string")
    return profiles


def write_profiles(profiles: Mapping[str, Mapping[str, Any]], path: Path | None = None) -> Path:
    """Replace the file with these profiles: created with mode 0600 (its directory 0700), written to
    a temporary file first so that a failure leaves the old one whole."""
    path = path or profiles_path()
    lines = ["# hookline profiles (hookline profiles set/remove); this file holds API keys.", ""]
    for name, profile in profiles.items():
        bare = re.fullmatch(r"[A-Za-z0-9_-]+", name)
        lines.append(f"[profiles.{name if bare else _toml_string(name)}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in profile.items())
        lines.append("")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write("\n".join(lines))
        os.chmod(temporary, 0o600)  # whatever the umask, or the mode of a file left over
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return path


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = "".join(
        f"\\u{ord(c):04X}" if ord(c) < 0x20 or ord(c) == 0x7F else "\\" + c if c in '"\\' else c for c in text
    )
    return f'"{escaped}"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _toml_string(str(value))


def mask_key(key: str) -> str:
    """A key as it may be shown: its start (at most 10 characters, the prefix the API itself lists, and
    never more than a third of it), then an ellipsis."""
    return key[: min(10, len(key) // 3)] + "…"


# --- resolving a connection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    url: str
    key: str
    tenant: str | None = None
    profile: str | None = None  # the profile used, if any

    def client(self) -> hookline.Client:
        import hookline

        return hookline.Client(self.url, self.key, tenant_id=self.tenant)


def resolve_connection(
    url: str | None, key: str | None, profile: str | None, tenant: str | None = None
) -> Connection:
    """The service and key a command uses, from its options (flag or environment variable, which Typer
    has merged), the profile, and the defaults; ``ConfigurationError`` when no key is found or the
    named profile does not exist."""
    profiles = read_profiles()
    chosen: Mapping[str, Any] = {}
    used = None
    if profile is not None:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigurationError(f"no profile '{profile}' in {profiles_path()} (profiles: {known})")
        chosen, used = profiles[profile], profile
    elif DEFAULT_PROFILE in profiles:
        chosen, used = profiles[DEFAULT_PROFILE], DEFAULT_PROFILE
    url = url or chosen.get("url") or DEFAULT_URL
    if not url.startswith(("http://", "https://")):
        where = "--url (HOOKLINE_URL)" if url != chosen.get("url") else f"profile '{used}'"
        raise ConfigurationError(f"the URL must start with http:// or https://, not {url!r} (from {where})")
    key = key or chosen.get("key")
    if not key:
        raise ConfigurationError(
            "no API key: pass --key, set HOOKLINE_API_KEY, or save one in a profile (hookline profiles set)"
        )
    return Connection(url=url, key=key, tenant=tenant or chosen.get("tenant") or None, profile=used)


# --- running a command ------------------------------------------------------------------------------------


def exit_code(exc: BaseException) -> int:
    """The exit code of an error a command met."""
    from hookline.sdk.errors import ClientError, NotFound

    if isinstance(exc, ConfigurationError):
        return USAGE
    if isinstance(exc, NotFound):
        return NOT_FOUND
    if isinstance(exc, ClientError):
        return REFUSED
    return UNAVAILABLE  # no answer, 5xx, or an answer that is not hookline's


def run_command(body: Callable[[], T]) -> T:
    """Run a command's body: an SDK error (``hookline.HooklineError``) or a ``ConfigurationError`` ends
    the command with one line on stderr, the API's ``error`` text, and its exit code; no traceback."""
    from hookline.sdk.errors import HooklineError

    try:
        return body()
    except (HooklineError, ConfigurationError) as exc:
        fail(_describe(exc), exit_code(exc))


def _describe(exc: BaseException) -> str:
    from hookline.sdk.errors import HooklineConnectionError, HooklineError

    if isinstance(exc, HooklineConnectionError):
        return f"cannot reach the server: {exc.error}"
    if isinstance(exc, HooklineError) and exc.status_code is not None:
        return f"{exc.status_code}: {exc.error}"
    return str(exc)


@dataclass
class ClientContext:
    """What a ``client_command`` body gets: the SDK client, the output, and where it connected."""

    client: hookline.Client
    out: Output
    connection: Connection


def client_command(*, tenant: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Make ``body(ctx: ClientContext, **options)`` a command: the command has the body's options plus
    ``--url``, ``--key``, ``--profile``, ``--json`` and, for tenant-scoped commands (``tenant=True``),
    ``--tenant``; it resolves the connection, opens a ``hookline.Client``, runs the body under
    ``run_command`` and closes the client. Register the result as usual (``group.command()(...)``)."""

    def decorate(body: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(body, eval_str=True)
        own = list(signature.parameters.values())[1:]  # the first is the ClientContext
        added: dict[str, Any] = {
            "url": UrlOption,
            "key": KeyOption,
            "profile": ProfileOption,
            **({"tenant": TenantOption} if tenant else {}),
            "json_output": JsonOption,
        }
        clash = {p.name for p in own} & set(added)
        if clash:
            raise TypeError(f"{body.__name__}: parameters {sorted(clash)} are the connection's own")
        kind = inspect.Parameter.KEYWORD_ONLY
        options = [
            inspect.Parameter(name, kind, default=None, annotation=hint) for name, hint in added.items()
        ]
        options[-1] = options[-1].replace(default=False)

        @functools.wraps(body)
        def command(**kwargs: Any) -> None:
            given = {name: kwargs.pop(name, None) for name in added}
            out = Output(json_mode=bool(given["json_output"]))

            def run() -> None:
                connection = resolve_connection(
                    given["url"], given["key"], given["profile"], given.get("tenant")
                )
                with connection.client() as client:
                    body(ClientContext(client, out, connection), **kwargs)

            run_command(run)

        del command.__wrapped__  # Typer reads the signature below, not the body's
        command.__doc__ = f"{inspect.cleandoc(body.__doc__ or '')}\n\nExit codes: {EXIT_CODES}"
        parameters = [p.replace(kind=kind) if p.kind is not kind else p for p in own] + options
        command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        return command

    return decorate


@contextlib.contextmanager
def usage_errors(option: str) -> Iterator[None]:
    """A ``ValueError`` from reading an option's value becomes a ``ConfigurationError`` naming it."""
    try:
        yield
    except ValueError as exc:
        raise ConfigurationError(f"{option}: {exc}") from None
