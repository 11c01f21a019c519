"""Checking an endpoint's stored delivery options before the worker uses them.

The API validates what it accepts, but the worker reads rows, and a row can hold anything: values
written by an older version, by hand, or through a validation gap (a NaN in a retry schedule once got
in). A value that would break the loop (a retry computation that raises, a cap compared with a string,
a wait of 1e-300 s) must instead adjust or fail one delivery, visibly. So every claimed job passes
through ``check`` first, which decides by what the option changes:

* options that only tune *when* or *how fast* (``retry_schedule``, ``timeout_ms``, ``max_in_flight``)
  fall back to the service default when invalid, and the delivery's ``last_error`` says so: the event
  still goes out;
* options that change *what is sent* (custom headers, the secrets and ed25519 signing keys of a
  rotation's grace period) fail
  the delivery without sending it: a request other than the one configured could break the receiver's
  checks, or carry a header it was never meant to see. Messages name the field, never a header value.

Retry waits an endpoint asks for are clamped to ``retry.ENDPOINT_WAITS`` whatever the row says.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hookline.dispatch.retry import ENDPOINT_WAITS
from hookline.dispatch.sender import custom_header_problem
from hookline.store.queue import Job

MAX_RETRIES = 50
MAX_IN_FLIGHT = 10_000


@dataclass(slots=True)  # one per delivery, never changed: not frozen for the cost (see ``queue.Job``)
class Checked:
    job: Job  # options replaced by usable values (None where the service default applies), and
    # ``notes`` saying, in words, which ones were replaced
    problem: str | None = None  # why the delivery cannot be sent at all


def check(job: Job) -> Checked:
    if (problem := _headers_problem(job.headers)) is not None:
        return Checked(job, problem=problem)
    if (problem := _previous_secrets_problem(job.previous_secrets)) is not None:
        return Checked(job, problem=problem)
    notes: list[str] = []
    schedule, why = _schedule(job.retry_schedule)
    if why is not None:
        notes.append(f"the endpoint's retry_schedule is invalid ({why}); the service default is used")
    timeout_ms: int | None = job.timeout_ms
    if timeout_ms is not None and not (_is_int(timeout_ms) and timeout_ms > 0):
        notes.append(
            "the endpoint's timeout_ms is invalid (not a positive integer); the service default is used"
        )
        timeout_ms = None
    cap: int | None = job.max_in_flight
    if cap is not None and not (_is_int(cap) and 1 <= cap <= MAX_IN_FLIGHT):
        notes.append(
            f"the endpoint's max_in_flight is invalid (not an integer from 1 to {MAX_IN_FLIGHT});"
            " the service default is used"
        )
        cap = None
    if (
        schedule == job.retry_schedule
        and timeout_ms == job.timeout_ms
        and cap == job.max_in_flight
        and job.headers is not None
    ):
        return Checked(job)
    clean = dataclasses.replace(
        job,
        retry_schedule=schedule,
        timeout_ms=timeout_ms,
        max_in_flight=cap,
        headers=job.headers or {},
        notes=tuple(notes),
    )
    return Checked(clean)


def signing_secrets(secret: str, previous: list[dict[str, str]], now: datetime) -> list[str]:
    """The current secret, then every previous one still inside its grace period (``previous`` as a
    ``check``-ed job or a stored endpoint holds them)."""
    if not previous:
        return [secret]
    return [secret] + [old["secret"] for old in still_valid(previous, now)]


def signing_keys(signing_key: str | None, previous: list[dict[str, str]], now: datetime) -> list[str]:
    """The endpoint's ed25519 signing key, then each previous one still inside its grace period (a
    rotation keeps it beside the secret it replaced); none when the endpoint does not sign with ed25519."""
    if signing_key is None:
        return []
    return [signing_key] + [old["signing_key"] for old in still_valid(previous, now) if "signing_key" in old]


def still_valid(previous: list[dict[str, str]], now: datetime) -> list[dict[str, str]]:
    """The entries of ``previous`` (a rotation's replaced secrets) whose grace period has not ended."""
    return [old for old in previous if (_expiry(old["expires_at"]) or now) > now]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _schedule(value: Any) -> tuple[list[float] | None, str | None]:
    """(the waits to use, None for the service default; why the stored value is unusable)."""
    if value is None or value == []:
        return None, None
    if not isinstance(value, list):
        return None, "not a list of waits"
    if len(value) > MAX_RETRIES:
        return None, f"more than {MAX_RETRIES} waits"
    low, high = ENDPOINT_WAITS
    waits = []
    for position, wait in enumerate(value, start=1):
        if isinstance(wait, bool) or not isinstance(wait, int | float):
            return None, f"wait {position} is not a number"
        try:
            number = float(wait)
        except OverflowError:  # an integer of hundreds of digits
            number = math.inf
        if not math.isfinite(number) or number <= 0:
            return None, f"wait {position} is not a positive finite number"
        waits.append(min(max(number, low), high))
    return (value if waits == value else waits), None


def _headers_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return "the endpoint's custom headers are invalid (not an object of names and values)"
    for name, text in value.items():
        if (problem := custom_header_problem(name, text)) is not None:
            return problem
    return None


def _previous_secrets_problem(value: Any) -> str | None:
    if not value:
        return None
    if not isinstance(value, list):
        return "the endpoint's previous secrets are invalid (not a list); rotate the secret again"
    for position, old in enumerate(value, start=1):
        if not isinstance(old, dict) or not isinstance(old.get("secret"), str) or not old["secret"]:
            return (
                f"the endpoint's previous secret {position} is invalid (no secret); rotate the secret again"
            )
        if "signing_key" in old and (not isinstance(old["signing_key"], str) or not old["signing_key"]):
            return (
                f"the endpoint's previous secret {position} has an invalid signing key;"
                " rotate the secret again"
            )
        if _expiry(old.get("expires_at")) is None:
            return (
                f"the endpoint's previous secret {position} has an invalid expires_at (not a date);"
                " rotate the secret again"
            )
    return None


def _expiry(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
