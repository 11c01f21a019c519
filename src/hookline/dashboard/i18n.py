"""The dashboard's languages: English (the messages as written) and Arabic (``locales/ar``), chosen by
a portal link, the viewer's own choice (a cookie) or the browser's ``Accept-Language``, in that order.

Catalogs are gettext ``.po`` files read with Babel when first needed (no compiled ``.mo`` in the
repository, no build step). The commands in ``babel.cfg`` collect the messages (``pybabel extract``)
and ``pybabel update`` merges them into each language; ``tests/test_dashboard_i18n.py`` fails while any
message lacks its Arabic translation. Templates translate with ``{{ _("...") }}`` through the locale of
the request being rendered (``use``: a context variable, so concurrent requests never mix languages).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gettext
import io
from collections.abc import Iterator
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT = "en"
LANGUAGES = {"en": "English", "ar": "العربية"}  # each in its own language, for the switcher
RTL = frozenset({"ar"})

_current: contextvars.ContextVar[gettext.NullTranslations] = contextvars.ContextVar("translations")


@functools.cache
def translations(locale: str) -> gettext.NullTranslations:
    """The catalog of ``locale`` (English: the messages themselves)."""
    path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    if locale == DEFAULT or not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def pick(*candidates: str | None, accept_language: str = "") -> str:
    """The first supported language among ``candidates`` (a link's, a cookie's), else the best of the
    browser's ``Accept-Language``, else English."""
    for candidate in candidates:
        if candidate in LANGUAGES:
            return candidate
    weighted = []
    for part in accept_language.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        language = tag.strip().split("-")[0].lower()
        if language in LANGUAGES:
            weighted.append((quality, language))
    return max(weighted, key=lambda w: w[0])[1] if weighted else DEFAULT


def N_(message: str) -> str:
    """Marks ``message`` for extraction where it is written; it is translated where it is shown."""
    return message


def direction(locale: str) -> str:
    return "rtl" if locale in RTL else "ltr"


def babel_locale(locale: str) -> Locale:
    return Locale.parse(locale)


@contextlib.contextmanager
def use(locale: str) -> Iterator[None]:
    token = _current.set(translations(locale))
    try:
        yield
    finally:
        _current.reset(token)


def gettext_(message: str) -> str:
    return _current.get(translations(DEFAULT)).gettext(message)


def ngettext_(singular: str, plural: str, n: int) -> str:
    return _current.get(translations(DEFAULT)).ngettext(singular, plural, n)
