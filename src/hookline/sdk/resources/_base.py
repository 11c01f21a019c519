"""What every resource shares: the client's options, the transport, the tenant a call acts on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from hookline.sdk.routes import Call
from hookline.sdk.transport import Options

T = TypeVar("T")


class _Unset:
    """The default of an update's fields: leave it as it is (None sends null, which clears it)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final[Any] = _Unset()


def body(*, keep_none: bool = False, **fields: Any) -> dict[str, Any]:
    """A JSON body of the fields given: UNSET ones left out, and None ones too unless ``keep_none``."""
    return {k: v for k, v in fields.items() if v is not UNSET and (keep_none or v is not None)}


class Ops:
    """The request builders of a resource (shared by its sync and async classes)."""

    def __init__(self, options: Options) -> None:
        self._options = options

    def _tenant(self, tenant_id: str | None) -> str | None:
        """The tenant a call acts on: the one given, else the client's default (admin key); None lets
        the server use the key's own tenant."""
        return tenant_id if tenant_id is not None else self._options.tenant_id


class SyncResource(Ops):
    def __init__(self, options: Options, run: Callable[[Call[Any]], Any]) -> None:
        super().__init__(options)
        self._run_call = run

    def _run(self, call: Call[T]) -> T:
        result: T = self._run_call(call)
        return result


class AsyncResource(Ops):
    def __init__(self, options: Options, run: Callable[[Call[Any]], Awaitable[Any]]) -> None:
        super().__init__(options)
        self._run_call = run

    async def _run(self, call: Call[T]) -> T:
        result: T = await self._run_call(call)
        return result
