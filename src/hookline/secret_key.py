"""Where a server process finds the keys that seal credentials in the store (``hookline.sealing``).

``HOOKLINE_SECRET_KEY`` when it is set. Without it:

* on SQLite, the key file ``secret.key`` in the database's directory (the data directory by default):
  read if it is there, else generated (32 random bytes, base64url, mode 0600) and announced once, with
  where it is and that it must be backed up. The database and its key live on one machine, like the
  admin key's first start;
* on PostgreSQL, nothing: the processes sharing the database may run on any machine, and a key that
  one of them generated would leave the others unable to read what it sealed. ``MissingSecretKey``
  says what to do.

The key never appears in a log line or an error.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import sqlalchemy as sa
import structlog

from hookline.config import Settings
from hookline.sealing import KeyFormatError, Keyring, generate_key

log = structlog.get_logger("hookline")

KEY_FILE = "secret.key"


class MissingSecretKey(RuntimeError):
    """No key can be found (or the key file is unusable); the message says what to set."""


def key_file(settings: Settings) -> Path | None:
    """The key file the settings imply: beside the SQLite database; None for PostgreSQL or a database
    in memory."""
    url = sa.make_url(settings.effective_database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser().parent / KEY_FILE


def load_keyring(settings: Settings) -> Keyring:
    """The keyring of a server process (see the module docstring)."""
    configured = settings.keyring
    if configured is not None:
        return configured
    path = key_file(settings)
    if path is None:
        if settings.effective_database_url.startswith("sqlite"):
            return Keyring([os.urandom(32)])  # a database in memory dies with the process, and its key
        raise MissingSecretKey(
            "HOOKLINE_SECRET_KEY is required with PostgreSQL: it encrypts the webhook secrets in the "
            "database, and every api and worker process needs the same one. Generate it once with "
            "`hookline secrets generate-key`, keep it in your secret store, and give it to each process."
        )
    text = _read(path)
    if text is None:
        text = _create(path)
    elif path.stat().st_mode & 0o077:
        log.warning("the secret key file can be read by other users: chmod 600 it", key_file=str(path))
    try:
        return Keyring.parse(text)
    except KeyFormatError as exc:
        raise MissingSecretKey(f"the key file {path} is not usable: {exc}") from None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise MissingSecretKey(f"cannot read the key file {path}: {_reason(exc)}") from None


def _create(path: Path) -> str:
    """A new key written to ``path`` whole or not at all (a temporary file linked into place), so that
    two processes starting at once end up with the same key: the one that loses reads the other's."""
    temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(generate_key() + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            text = _read(path)
            if text is None:
                raise MissingSecretKey(f"the key file {path} vanished while it was being created") from None
            return text
    except OSError as exc:
        raise MissingSecretKey(f"cannot create the key file {path}: {_reason(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    log.warning(
        "generated the secret key that encrypts webhook secrets in the database; back it up apart from "
        "the database (without it the stored secrets cannot be read), or set HOOKLINE_SECRET_KEY",
        key_file=str(path),
    )
    return path.read_text(encoding="ascii")


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
