"""hookline: self-hosted webhook delivery.

``hookline.Client``, ``hookline.AsyncClient`` and the SDK's exceptions (``hookline.HooklineError``,
``hookline.NotFound``, ...) are loaded on first use: ``import hookline`` alone (which every server
module does, for ``__version__``) imports neither the SDK nor httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from hookline.sdk import *  # noqa: F403
    from hookline.sdk import __all__ as _sdk_names
else:
    _sdk_names = (
        "UNSET", "AsyncClient", "AsyncPager", "BadRequest", "Client", "ClientError", "Conflict",
        "Forbidden", "HooklineConnectionError", "HooklineError", "HooklineTimeout", "InvalidResponse",
        "MethodNotAllowed", "NotFound", "Page", "Pager", "PayloadTooLarge", "RateLimited",
        "ServerError", "ServiceUnavailable", "Unauthorized", "UnsupportedMediaType",
    )  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _sdk_names:
        from hookline import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'hookline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *_sdk_names]
