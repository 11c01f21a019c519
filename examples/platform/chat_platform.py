"""A small WhatsApp-style messaging platform that tells its customers' servers what happens, through
hookline and its Python SDK.

It registers the receiver's URL as a webhook of the tenant (or reuses the webhook already there), then
plays one short conversation: the customer writes (``message.received``), the business's reply goes out
(``message.status.updated``: sent, delivered, read) and the customer orders (``order.created``). Every
event has an id of its own (``conv-<n>.<step>``), so running it again posts nothing new: hookline
answers a repeated id with the first result. ``--conversation`` picks another conversation.

    python examples/platform/chat_platform.py --url http://127.0.0.1:8000 --key "$KEY" \\
        --receiver http://127.0.0.1:3000/webhook --secret "$WEBHOOK_SECRET"

(Named ``chat_platform.py``, not ``platform.py``: a script's folder comes first on ``sys.path``, and a
``platform.py`` there would stand in for the standard library's ``platform`` module.)
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import hookline
from hookline.sdk.models import Webhook

EVENTS = ["message.received", "message.status.updated", "order.created"]
CUSTOMER, BUSINESS = "96650000000", "96650000001"


def conversation(number: int, start: datetime | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """The conversation's events, in order: (event id, event type, data as the catalog describes it).
    It began ``start`` (default: 90 seconds ago)."""
    start = start or datetime.now(UTC) - timedelta(seconds=90)

    def at(seconds: int) -> str:
        return (start + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    conv = f"conv-{number}"
    inbound, reply = f"wamid.{conv}.in", f"wamid.{conv}.out"
    message = {
        "message_id": inbound,
        "conversation_id": number,
        "from": CUSTOMER,
        "to": BUSINESS,
        "type": "text",
        "body": "Hello, I would like two boxes of Sukkari dates",
        "timestamp": at(0),
    }
    order = {
        "order_id": 7000 + number,
        "conversation_id": number,
        "status": "pending",
        "total": 1250.00,
        "currency": "SAR",
        "created_at": at(60),
    }
    steps: list[tuple[str, str, dict[str, Any]]] = [(f"{conv}.message", "message.received", message)]
    for offset, status in ((5, "sent"), (6, "delivered"), (30, "read")):
        data = {"message_id": reply, "status": status, "timestamp": at(offset)}
        steps.append((f"{conv}.reply.{status}", "message.status.updated", data))
    steps.append((f"{conv}.order", "order.created", order))
    return steps


def webhook_for(client: hookline.Client, url: str, secret: str | None) -> tuple[Webhook, bool]:
    """The tenant's webhook for ``url`` and whether it is new: the one already there, or a new one that
    asks for the verification handshake (the receiver's consent: its deliveries are held until then)."""
    for hook in client.webhooks.list():
        if hook.url == url:
            print(f"webhook #{hook.id} for {url} already exists: reusing it")
            if not set(EVENTS) <= set(hook.events) and "*" not in hook.events:
                hook = client.webhooks.update(hook.id, events=sorted({*hook.events, *EVENTS}))
            if secret is not None and client.webhooks.get_secret(hook.id).secret != secret:
                print("  its secret differs from --secret: rotating to --secret")
                client.webhooks.rotate_secret(hook.id, secret=secret, grace_period_seconds=0)
            return hook, False
    hook = client.webhooks.create(url, events=EVENTS, secret=secret, verify=True)
    print(f"webhook #{hook.id} created for {url}")
    if secret is None:
        print(f"  its signing secret (give it to the receiver as WEBHOOK_SECRET): {hook.secret}")
    return hook, True


def ensure_verified(client: hookline.Client, hook: Webhook, created: bool) -> bool:
    """True once the receiver has answered the handshake (which the create ran; run again here for a
    webhook that had not passed it)."""
    status, error = hook.verification.status, hook.verification.error
    if status in ("pending", "failed") and not created:
        outcome = client.webhooks.verify(hook.id)
        status, error = outcome.status, outcome.error
    print(f"  verification handshake: {status}" + (f" ({error})" if error else ""))
    return status in ("verified", "not_required")


def wait_for_deliveries(client: hookline.Client, hook_id: int, event_ids: list[str], wait: float) -> bool:
    """Print how each event's delivery to the webhook ended; True if all succeeded within ``wait`` s."""
    deadline = time.monotonic() + wait
    while True:
        states = {}
        for event_id in event_ids:
            deliveries = client.events.get(event_id).delivery_status or []
            states[event_id] = next((d for d in deliveries if d.webhook_id == hook_id), None)
        done = all(d is not None and d.status != "pending" for d in states.values())
        if done or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    for event_id, delivery in states.items():
        if delivery is None:
            print(f"  {event_id}: no delivery to webhook #{hook_id}")
        else:
            code = f", last answer {delivery.last_status_code}" if delivery.last_status_code else ""
            print(f"  {event_id}: {delivery.status} after {delivery.attempts} attempt(s){code}")
    return all(d is not None and d.status == "succeeded" for d in states.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the hookline server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="the tenant's API key (hk_...)")
    parser.add_argument("--receiver", required=True, help="the receiver's webhook URL")
    parser.add_argument("--secret", help="the webhook's signing secret (default: hookline makes one)")
    parser.add_argument("--conversation", type=int, default=1, help="which conversation (default 1)")
    parser.add_argument("--wait", type=float, default=15, help="seconds to wait for the deliveries")
    args = parser.parse_args(argv)

    with hookline.Client(args.url, args.key) as client:
        hook, created = webhook_for(client, args.receiver, args.secret)
        verified = ensure_verified(client, hook, created)
        posted = []
        for event_id, event_type, data in conversation(args.conversation):
            accepted = client.events.post(event_type, data, id=event_id)
            posted.append(accepted.id)
            count = f"{accepted.deliveries} deliver{'y' if accepted.deliveries == 1 else 'ies'}"
            print(f"posted {event_type:<22} {accepted.id} ({count})")
        if not verified:
            print("the receiver has not answered the handshake: its deliveries are held; start it with")
            print("the webhook's secret and run this again (nothing is posted twice)")
            return 1
        print("deliveries:")
        delivered = wait_for_deliveries(client, hook.id, posted, args.wait)
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
