"""A Flask receiver of the chat platform's webhooks (examples/README.md says how to run it).

``verify_webhook`` reads the raw body and checks its signature (401 when it does not verify), and
answers hookline's verification handshake itself; the view only sees verified events. It answers at
once: real work belongs in a queue, behind the de-duplication on the event id.
"""

from __future__ import annotations

import json
import os
import threading

from flask import Flask

from hookline_receiver import VerifiedWebhook
from hookline_receiver.flask import verify_webhook

SECRET = os.environ["WEBHOOK_SECRET"]  # the webhook's signing secret, whsec_...
RECEIVED_LOG = os.environ.get("RECEIVED_LOG")  # optional: a file that lists each event handled

app = Flask(__name__)
seen: set[str | None] = set()  # event ids handled; in production, a unique index in your database
seen_lock = threading.Lock()  # the development server answers each request on a thread of its own


@app.post("/webhook")
@verify_webhook(SECRET)
def receive(event: VerifiedWebhook) -> dict[str, bool]:
    with seen_lock:
        new = event.id not in seen  # a retry or a replay of an event handled already is acknowledged only
        seen.add(event.id)
    if new:
        handle(event)
    return {"received": True}


def handle(event: VerifiedWebhook) -> None:
    print(f"{event.type} {event.id}: {json.dumps(event.data)}", flush=True)
    if RECEIVED_LOG:
        with open(RECEIVED_LOG, "a") as log:
            log.write(json.dumps({"id": event.id, "type": event.type, "data": event.data}) + "\n")
