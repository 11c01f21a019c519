"""hookline.sealing: values sealed with AES-256-GCM under HOOKLINE_SECRET_KEY's keys (pure: no store)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.config import ConfigError, load_settings
from hookline.sealing import KeyFormatError, Keyring, SealError, generate_key, is_sealed, key_id_of

KEY, OTHER = generate_key(), generate_key()
RING = Keyring.parse(KEY)
PURPOSE = "endpoints.secret\x00acme"
BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

purposes = st.text(min_size=1, max_size=40)


@given(text=st.text(), purpose=purposes)
def test_any_text_round_trips(text: str, purpose: str) -> None:
    sealed = RING.seal(text, purpose)
    assert sealed.isascii() and is_sealed(sealed)
    assert key_id_of(sealed) == RING.primary
    assert RING.open(sealed, purpose) == text
    assert Keyring.parse(KEY).open(sealed, purpose) == text  # another keyring of the same key: no cache


def test_lone_surrogates_round_trip_too() -> None:
    assert RING.open(RING.seal("a\ud800b", PURPOSE), PURPOSE) == "a\ud800b"


def test_sealing_twice_gives_different_values_that_both_open() -> None:
    first, second = RING.seal("whsec_x", PURPOSE), RING.seal("whsec_x", PURPOSE)
    assert first != second  # a fresh nonce each time: equal secrets are not recognisable
    assert RING.open(first, PURPOSE) == RING.open(second, PURPOSE) == "whsec_x"


@given(text=st.text(max_size=60), position=st.integers(min_value=0), replacement=st.characters())
def test_changing_any_character_of_a_sealed_value_fails_to_open(
    text: str, position: int, replacement: str
) -> None:
    sealed = Keyring.parse(KEY).seal(text, PURPOSE)
    position %= len(sealed)
    if sealed[position] == replacement:
        return
    tampered = sealed[:position] + replacement + sealed[position + 1 :]
    with pytest.raises(SealError):
        Keyring.parse(KEY).open(tampered, PURPOSE)


@pytest.mark.parametrize("text", ["", "a", "ab"])  # payloads whose last character has 4, 2, 0 spare bits
def test_every_one_character_change_fails_to_open(text: str) -> None:
    """Exhaustively, where random changes rarely land: the last character of the payload, whose spare
    low bits a lax base64 decoder ignores (the same bytes under another spelling)."""
    sealed = RING.seal(text, PURPOSE)
    for position in range(len(sealed)):
        for replacement in BASE64URL + ":=. \n\u00e9":
            if replacement != sealed[position]:
                with pytest.raises(SealError):
                    RING.open(sealed[:position] + replacement + sealed[position + 1 :], PURPOSE)


@given(text=st.text(max_size=60), cut=st.integers(min_value=1, max_value=200))
def test_a_truncated_or_extended_sealed_value_fails_to_open(text: str, cut: int) -> None:
    sealed = RING.seal(text, PURPOSE)
    for altered in (sealed[: max(len(sealed) - cut, 0)], sealed + "A" * cut):
        with pytest.raises(SealError):
            Keyring.parse(KEY).open(altered, PURPOSE)


@given(text=st.text(max_size=60), flip=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_flipping_any_bit_of_the_ciphertext_fails_to_open(text: str, flip: int, bit: int) -> None:
    sealed = RING.seal(text, PURPOSE)
    head, _, payload = sealed.rpartition(":")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[flip % len(raw)] ^= 1 << bit
    altered = head + ":" + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(SealError, match="does not open with key"):
        Keyring.parse(KEY).open(altered, PURPOSE)


@given(text=st.text(max_size=60), purpose=purposes, other=purposes)
def test_a_value_does_not_open_for_another_purpose(text: str, purpose: str, other: str) -> None:
    """The associated data: a sealed value moved to another column, or another tenant's row, is refused."""
    if purpose == other:
        return
    with pytest.raises(SealError, match="altered, or sealed for another place"):
        RING.open(RING.seal(text, purpose), other)


def test_errors_say_why_and_never_hold_the_key_or_the_value() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    sealed = Keyring.parse(OTHER).seal(secret, PURPOSE)
    with pytest.raises(SealError) as missing:
        RING.open(sealed, PURPOSE)
    assert missing.value.key_id == Keyring.parse(OTHER).primary
    assert str(missing.value) == (
        f"the value was sealed with key '{missing.value.key_id}', which HOOKLINE_SECRET_KEY does not hold"
    )
    with pytest.raises(SealError, match=r"^the value is not sealed$"):
        RING.open(secret, PURPOSE)
    with pytest.raises(SealError, match="format this version does not know"):
        RING.open("sealed:v9:" + sealed.removeprefix("sealed:v1:"), PURPOSE)
    with pytest.raises(SealError, match=r"^no secret key is configured"):
        Keyring().seal(secret, PURPOSE)
    for error in (missing.value,):
        for leak in (secret, KEY, OTHER, sealed.rpartition(":")[2]):
            assert leak not in str(error) and leak not in repr(error)
    assert KEY not in repr(RING) and RING.primary in repr(RING)


def test_the_first_key_seals_and_every_key_opens() -> None:
    old = Keyring.parse(OTHER).seal("old secret", PURPOSE)
    both = Keyring.parse(f"{KEY}, {OTHER}")
    assert both.ids == (RING.primary, Keyring.parse(OTHER).primary)
    assert both.open(old, PURPOSE) == "old secret"
    assert not both.is_current(old)
    new = both.seal("new secret", PURPOSE)
    assert both.is_current(new) and key_id_of(new) == RING.primary
    assert RING.open(new, PURPOSE) == "new secret"


def test_read_passes_plaintext_from_before_sealing_and_opens_the_rest() -> None:
    assert RING.read("whsec_legacy", PURPOSE) == "whsec_legacy"
    assert RING.read(RING.seal("whsec_new", PURPOSE), PURPOSE) == "whsec_new"
    assert not RING.is_current("whsec_legacy")


def test_opened_values_are_remembered_within_bounds() -> None:
    ring = Keyring([base64.urlsafe_b64decode(KEY + "=")], cache_size=2)
    values = [ring.seal(str(n), PURPOSE) for n in range(3)]
    for value in values:
        ring.open(value, PURPOSE)
    assert len(ring._opened) <= 2  # cleared when full, never larger


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "holds no key"),
        (" , ", "holds no key"),
        ("change-me", "key 1 of 1 is not 32 bytes in base64url"),
        (f"{KEY},", "key 2 of 2 is not 32 bytes"),
        (KEY[:-1], "key 1 of 1 is not 32 bytes"),
        (KEY + "AAAA", "key 1 of 1 is not 32 bytes"),
        (base64.b64encode(b"\xff" * 32).decode(), "key 1 of 1 is not 32 bytes"),  # '+' and '/': not url-safe
        (f"{KEY},{KEY}", "key 2 is listed twice"),
    ],
    # Fixed ids: KEY is random, and every xdist process must collect the same tests.
    ids=["empty", "blank", "placeholder", "trailing-comma", "short", "long", "not-url-safe", "twice"],
)
def test_malformed_keys_are_refused_by_position_never_by_value(text: str, error: str) -> None:
    with pytest.raises(KeyFormatError, match=error) as refused:
        Keyring.parse(text)
    assert KEY not in str(refused.value)


def test_a_key_with_padding_or_spaces_around_commas_is_accepted() -> None:
    assert Keyring.parse(f" {KEY}= ,{OTHER}").ids == Keyring.parse(f"{KEY},{OTHER}").ids


def test_a_non_canonical_spelling_of_a_key_is_refused() -> None:
    """43 characters hold 258 bits: the last character's two spare bits must be zero, so that one key
    has one spelling (and one id)."""
    last = KEY[-1]
    other = BASE64URL[BASE64URL.index(last) | 1]
    with pytest.raises(KeyFormatError):
        Keyring.parse(KEY[:-1] + other)


def test_generated_keys_are_32_random_bytes_in_base64url() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(key) == 43 and set(key) <= set(BASE64URL)
        assert len(base64.urlsafe_b64decode(key + "=")) == 32


def test_the_setting_is_checked_at_start_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_SECRET_KEY", KEY[:-3])
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith("HOOKLINE_SECRET_KEY: key 1 of 1 is not 32 bytes in base64url")
    assert KEY[:-3] not in str(refused.value)
    monkeypatch.setenv("HOOKLINE_SECRET_KEY", f"{KEY},{OTHER}")
    settings = load_settings()
    assert KEY not in repr(settings) and KEY not in str(settings)
    assert settings.keyring is not None and settings.keyring.ids == Keyring.parse(f"{KEY},{OTHER}").ids
