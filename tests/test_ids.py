import re
import time

from hookline.ids import new_id


def test_ids_have_the_prefix_and_26_crockford_characters() -> None:
    assert re.fullmatch(r"evt_[0-9A-HJKMNP-TV-Z]{26}", new_id("evt"))


def test_ids_are_unique_and_sort_by_creation_time() -> None:
    first = [new_id("evt") for _ in range(1000)]
    time.sleep(0.002)
    later = new_id("evt")
    assert len(set(first)) == 1000
    assert all(earlier < later for earlier in first)


def test_the_first_ten_characters_are_the_creation_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    ident = new_id("evt")
    after = time.time_ns() // 1_000_000
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    millis = 0
    for char in ident[4:14]:
        millis = millis * 32 + alphabet.index(char)
    assert before <= millis <= after
