"""The dashboard's languages: the message template is what the code and templates hold today, and the
Arabic catalog translates every message of it (a new string without its translation fails here). Run
``pybabel extract`` (see ``hookline.dashboard.i18n``) and ``pybabel update`` to bring them up to date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from hookline.dashboard import i18n

ROOT = Path(__file__).parent.parent
POT = i18n.LOCALES_DIR / "messages.pot"


def _ids(path: Path) -> set[str]:
    with path.open("rb") as f:
        return {m.id for m in read_po(f) if m.id and isinstance(m.id, str)}


def test_the_template_holds_every_message_of_the_code_and_templates(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).parent / "pybabel"
    command = [str(pybabel), "-q", "extract", "-F", "babel.cfg", "-k", "N_", "--no-location", "--sort-output"]
    subprocess.run(
        [*command, "-o", str(fresh), "src/hookline/dashboard"],
        cwd=ROOT,
        check=True,
    )
    assert _ids(fresh) == _ids(POT), "run pybabel extract (see hookline.dashboard.i18n) and pybabel update"


def test_arabic_translates_every_message() -> None:
    with (i18n.LOCALES_DIR / "ar" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale="ar")
    translated = {m.id: m.string for m in catalog if m.id}
    missing = sorted(m for m in _ids(POT) if not translated.get(m))
    assert not missing, f"messages without an Arabic translation: {missing}"
    assert not [m.id for m in catalog if m.id and m.fuzzy], "fuzzy translations are not used by gettext"


def test_the_language_is_the_links_then_the_viewers_then_the_browsers() -> None:
    assert i18n.pick("ar", "en", accept_language="en") == "ar"
    assert i18n.pick(None, "ar", accept_language="en-GB,en;q=0.9") == "ar"
    assert i18n.pick(None, None, accept_language="fr-FR,ar;q=0.8,en;q=0.5") == "ar"
    assert i18n.pick(None, "xx", accept_language="de, fr;q=bad") == "en"
    assert i18n.direction("ar") == "rtl" and i18n.direction("en") == "ltr"
    with i18n.use("ar"):
        assert i18n.gettext_("Sign in") == "تسجيل الدخول"
    assert i18n.gettext_("Sign in") == "Sign in"
