"""The dashboard's look for a tenant or a portal link: an accent colour, a logo, light or dark.

Validated strictly because it ends up in pages: the accent goes into a stylesheet (only ``#RRGGBB``),
the logo into an ``<img src>`` (only ``https://`` URLs without quotes or angle brackets). A link's theme
wins over its tenant's, field by field."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Theme(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    accent: str | None = Field(default=None, description="the accent colour, #RRGGBB")
    logo_url: str | None = Field(default=None, max_length=2048, description="an https:// image URL")
    mode: Literal["light", "dark", "auto"] | None = None

    @field_validator("accent")
    @classmethod
    def _accent(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise ValueError("must be a colour as #RRGGBB, e.g. #0a7d55")
        return value

    @field_validator("logo_url")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https://[^\s\"'<>]+", value):
            raise ValueError("must be an https:// URL")
        return value

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def merged(tenant: dict[str, Any], link: dict[str, Any]) -> dict[str, Any]:
    """A tenant's theme with a link's fields over it."""
    return {**tenant, **link}
