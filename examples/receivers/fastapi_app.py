"""A FastAPI receiver of the chat platform's webhooks (examples/README.md says how to run it).

``webhook_dependency`` reads the raw body and checks its signature (401 when it does not verify), and
answers hookline's verification handshake itself; the handler only sees verified events. It answers at
once: real work belongs in a queue, behind the de-duplication on the event id.
"""

# No `from __future__ import annotations`: FastAPI reads the handler's annotations at run time.

import json
import os

from fastapi import Depends, FastAPI

from hookline_receiver import VerifiedWebhook
from hookline_receiver.fastapi import webhook_dependency

SECRET = os.environ["WEBHOOK_SECRET"]  # the webhook's signing secret, whsec_...
RECEIVED_LOG = os.environ.get("RECEIVED_LOG")  # optional: a file that lists each event handled

app = FastAPI()
verified = webhook_dependency(app, SECRET)
seen: set[str | None] = set()  # event ids handled; in production, a unique index in your database


@app.post("/webhook")
async def receive(event: VerifiedWebhook = Depends(verified)) -> dict[str, bool]:
    # No await between the check and the add: on the one event loop, a repeat cannot slip in between.
    if event.id not in seen:  # a retry or a replay of an event handled already is acknowledged only
        seen.add(event.id)
        handle(event)
    return {"received": True}


def handle(event: VerifiedWebhook) -> None:
    print(f"{event.type} {event.id}: {json.dumps(event.data)}", flush=True)
    if RECEIVED_LOG:
        with open(RECEIVED_LOG, "a") as log:
            log.write(json.dumps({"id": event.id, "type": event.type, "data": event.data}) + "\n")
