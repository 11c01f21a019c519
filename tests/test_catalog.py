from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from hookline.catalog import (
    OPERATIONAL_EVENTS,
    EventType,
    UnknownEventType,
    first_schema_error,
    is_valid_event_name,
    is_valid_pattern,
    load_default_catalog,
    normalize_subscription,
    pattern_matches,
    subscribes_to,
    suggest,
    validator_for,
)

SEED_EVENT_NAMES = {
    "seed-000": [
        "message.incoming",
        "message.sent",
        "message.delivered",
        "message.read",
        "session.connected",
        "session.disconnected",
        "group.created",
        "group.updated",
    ],
    "seed-001": ["message_status", "incoming_message"],
    "seed-002": ["message.received", "connection.connected"],
    "seed-003": [
        "message.received",
        "message.status.updated",
        "conversation.created",
        "conversation.updated",
        "order.created",
        "order.status.updated",
        "contact.created",
        "contact.updated",
    ],
    "seed-004": ["newMessage"],
}
ALL_SEED_NAMES = sorted({name for names in SEED_EVENT_NAMES.values() for name in names})
# hookline's own event types: test sends (issue 11).
HOOKLINE_EVENT_NAMES = ["webhook.test", *sorted(OPERATIONAL_EVENTS)]
CATALOG = load_default_catalog()
BY_NAME = {et.name: et for et in CATALOG}
KNOWN = list(BY_NAME)


# --- default catalog -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_SEED_NAMES)
def test_every_seed_event_is_in_catalog(name: str) -> None:
    assert name in BY_NAME


def test_catalog_shape() -> None:
    assert len(ALL_SEED_NAMES) == 20
    assert sorted(KNOWN) == sorted(ALL_SEED_NAMES + HOOKLINE_EVENT_NAMES)
    assert len(KNOWN) == len(CATALOG), "event names must be unique"
    for et in CATALOG:
        assert isinstance(et, EventType)
        assert is_valid_event_name(et.name), et.name
        assert et.description and et.group
        if et.name in HOOKLINE_EVENT_NAMES:
            assert et.source == "hookline"
        else:
            assert et.source.startswith("seed-")
        assert et.schema["type"] == "object"
        assert set(et.schema["required"]) <= set(et.schema["properties"])
        assert et.schema.get("additionalProperties", True) is True


def test_load_returns_fresh_list() -> None:
    first = load_default_catalog()
    first.clear()
    assert load_default_catalog() == CATALOG


@pytest.mark.parametrize("et", CATALOG, ids=lambda et: et.name)
def test_example_validates_against_own_schema(et: EventType) -> None:
    Draft202012Validator.check_schema(et.schema)
    assert first_schema_error(et.schema, et.example) is None


def test_seed_examples_kept_verbatim() -> None:
    assert BY_NAME["message.received"].example == {
        "message_id": "wamid.HBgMOTY2NTAwMDAwMDAwFQIAERgS...",
        "conversation_id": 123,
        "from": "96650000000",
        "to": "96650000001",
        "type": "text",
        "body": "Hello, I need help",
        "timestamp": "2024-01-20T10:30:00Z",
    }
    new_message = BY_NAME["newMessage"].example
    assert set(new_message) == {"message", "conversation"}
    assert new_message["message"]["content"] == "Hello World!"
    assert new_message["conversation"]["Channel"]["medium"] == "WHATSAPP"


# --- schema checks -------------------------------------------------------------------------------------


def test_schema_rejects_wrong_type() -> None:
    schema = BY_NAME["message.received"].schema
    data = dict(BY_NAME["message.received"].example, **{"from": 123})
    assert first_schema_error(schema, data) == "data.from: 123 is not of type 'string'"


def test_schema_rejects_missing_required() -> None:
    schema = BY_NAME["message.received"].schema
    data = dict(BY_NAME["message.received"].example)
    del data["message_id"]
    assert first_schema_error(schema, data) == "data: 'message_id' is a required property"


def test_schema_allows_extra_properties() -> None:
    et = BY_NAME["message.received"]
    assert first_schema_error(et.schema, {**et.example, "vendor_extra": {"x": 1}}) is None


def test_schema_error_path_with_nesting_and_index() -> None:
    nested = BY_NAME["newMessage"]
    bad = {**nested.example, "message": {**nested.example["message"], "contentType": 5}}
    assert first_schema_error(nested.schema, bad) == "data.message.contentType: 5 is not of type 'string'"

    group = BY_NAME["group.created"]
    bad = {**group.example, "participants": ["966501234567", 7]}
    assert first_schema_error(group.schema, bad) == "data.participants[1]: 7 is not of type 'string'"


def test_schema_rejects_non_object() -> None:
    assert first_schema_error(BY_NAME["message.sent"].schema, []) == "data: [] is not of type 'object'"


def test_validator_for_is_cached_and_checks_schema() -> None:
    schema = BY_NAME["message.sent"].schema
    assert validator_for(schema) is validator_for(dict(schema))
    with pytest.raises(SchemaError):
        validator_for({"type": "no-such-type"})


# --- names and patterns --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["newMessage", "incoming_message", "message.status.updated", "a", "x-y.z_1", "a" * 100]
)
def test_valid_event_names(name: str) -> None:
    assert is_valid_event_name(name)


@pytest.mark.parametrize(
    "name", ["", "a" * 101, "message.", ".message", "message..sent", "message.*", "*", "a b", "é", "a/b"]
)
def test_invalid_event_names(name: str) -> None:
    assert not is_valid_event_name(name)


@pytest.mark.parametrize("p", ["*", "message.sent", "newMessage", "message.*", "message.status.*"])
def test_valid_patterns(p: str) -> None:
    assert is_valid_pattern(p)


@pytest.mark.parametrize("p", ["", "message.", "*.sent", "message.**", ".*", "**", "message*", "mess*.x"])
def test_invalid_patterns(p: str) -> None:
    assert not is_valid_pattern(p)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "message.sent", True),
        ("*", "newMessage", True),
        ("message.*", "message.sent", True),
        ("message.*", "message.status.updated", True),
        ("message.*", "message", False),
        ("message.*", "messages.x", False),
        ("message.*", "message_status", False),
        ("message.status.*", "message.status.updated", True),
        ("message.status.*", "message.sent", False),
        ("message.sent", "message.sent", True),
        ("message.sent", "message.sent.extra", False),
        ("message", "message.sent", False),
        ("newMessage", "newmessage", False),
    ],
)
def test_pattern_matches(pattern: str, name: str, expected: bool) -> None:
    assert pattern_matches(pattern, name) is expected


def test_subscribes_to() -> None:
    assert subscribes_to(["order.*", "message.sent"], "message.sent")
    assert subscribes_to(["order.*"], "order.status.updated")
    assert not subscribes_to(["order.*", "message.sent"], "message.read")
    assert subscribes_to(["*"], "anything")
    assert not subscribes_to([], "message.sent")


# --- suggestions and errors ----------------------------------------------------------------------------


def test_suggest_closest_first() -> None:
    assert suggest("mesage.sent", KNOWN)[0] == "message.sent"
    assert suggest("message.recieved", KNOWN)[0] == "message.received"
    assert len(suggest("message.x", KNOWN)) <= 3
    assert suggest("message.recieved", KNOWN, limit=1) == ["message.received"]
    assert suggest("zzzzzzzz", KNOWN) == []


def test_unknown_event_type_messages() -> None:
    one = UnknownEventType("mesage.sent", ["message.sent"])
    assert str(one) == "unknown event type 'mesage.sent' (did you mean 'message.sent'?)"
    assert one.name == "mesage.sent" and one.suggestions == ["message.sent"]
    assert isinstance(one, ValueError)
    two = UnknownEventType("x", ["a", "b"])
    assert str(two) == "unknown event type 'x' (did you mean 'a' or 'b'?)"
    three = UnknownEventType("x", ["a", "b", "c"])
    assert str(three) == "unknown event type 'x' (did you mean 'a', 'b' or 'c'?)"
    assert str(UnknownEventType("xyz")) == "unknown event type 'xyz'"
    assert str(UnknownEventType("foo.*")) == "unknown event type 'foo.*' (no event type starts with 'foo.')"


# --- normalize_subscription ----------------------------------------------------------------------------


def test_normalize_dedupes_keeping_order() -> None:
    patterns = ["order.*", "message.sent", "order.*", "newMessage", "message.sent"]
    assert normalize_subscription(patterns, KNOWN) == ["order.*", "message.sent", "newMessage"]


def test_normalize_star_collapses() -> None:
    assert normalize_subscription(["message.sent", "*", "order.*"], KNOWN) == ["*"]
    assert normalize_subscription(["*", "*"], KNOWN) == ["*"]


def test_normalize_empty_stays_empty() -> None:
    assert normalize_subscription([], KNOWN) == []


def test_normalize_unknown_exact_name() -> None:
    with pytest.raises(UnknownEventType) as info:
        normalize_subscription(["message.sent", "mesage.sent"], KNOWN)
    assert info.value.name == "mesage.sent"
    assert info.value.suggestions[0] == "message.sent"
    assert str(info.value).startswith("unknown event type 'mesage.sent' (did you mean 'message.sent'")


def test_normalize_unknown_wildcard() -> None:
    with pytest.raises(UnknownEventType) as info:
        normalize_subscription(["foo.*"], KNOWN)
    assert str(info.value) == "unknown event type 'foo.*' (no event type starts with 'foo.')"
    # `newMessage.*` is syntactically fine but no known name has that prefix
    with pytest.raises(UnknownEventType):
        normalize_subscription(["newMessage.*"], KNOWN)


def test_normalize_wildcards_of_any_depth() -> None:
    assert normalize_subscription(["message.status.*", "message.*"], KNOWN) == [
        "message.status.*",
        "message.*",
    ]


@pytest.mark.parametrize("p", ["message.", "*.sent", "message.**", "", ".*", "message sent"])
def test_normalize_rejects_bad_syntax(p: str) -> None:
    with pytest.raises(ValueError, match="invalid event pattern") as info:
        normalize_subscription(["message.sent", p], KNOWN)
    assert not isinstance(info.value, UnknownEventType)
    assert str(info.value) == f"invalid event pattern {p!r}"
