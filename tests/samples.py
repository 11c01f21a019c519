"""Event data the tests post: a `message.received` that passes the catalog's schema, with Arabic text
in its body as the seeds' messages have."""

MESSAGE = {
    "message_id": "wamid.1",
    "conversation_id": 7,
    "from": "96650000000",
    "to": "96650000001",
    "type": "text",
    "body": "\u0645\u0631\u062d\u0628\u0627 1250.00",
    "timestamp": "2024-01-20T10:30:00Z",
}
