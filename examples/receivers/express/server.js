// An Express 5 receiver of the chat platform's webhooks (examples/README.md says how to run it).
//
// It checks the Standard Webhooks v1 signature (HMAC-SHA256, base64) over the RAW body, with Node's
// crypto alone: the bytes received, never a re-serialized req.body. It answers hookline's verification
// handshake (which is signed like any delivery), refuses what does not verify with 401, and answers at
// once: real work belongs in a queue, behind the de-duplication on the event id.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const express = require("express");

const SECRET = process.env.WEBHOOK_SECRET; // the webhook's signing secret, whsec_...
const RECEIVED_LOG = process.env.RECEIVED_LOG; // optional: a file that lists each event handled
const PORT = Number(process.env.PORT || 3000);
const TOLERANCE_SECONDS = 5 * 60; // refuse timestamps further than this from our clock
if (!SECRET) throw new Error("set WEBHOOK_SECRET to the webhook's signing secret");

// A whsec_ secret's HMAC key is its base64 part, decoded; any other secret is used as its UTF-8 bytes.
const KEY = SECRET.startsWith("whsec_")
  ? Buffer.from(SECRET.slice("whsec_".length), "base64")
  : Buffer.from(SECRET, "utf8");

// Why the request does not verify, or null when it does.
function problem(raw, headers) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) return "missing webhook-id, webhook-timestamp or webhook-signature";
  if (!/^\d{1,12}$/.test(timestamp)) return "malformed webhook-timestamp";
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > TOLERANCE_SECONDS) return "timestamp out of tolerance";
  const expected = crypto.createHmac("sha256", KEY).update(`${id}.${timestamp}.`).update(raw).digest();
  // Several signatures, space-separated, during a secret rotation: any one may match.
  for (const signature of signatures.split(" ")) {
    const [version, value] = signature.split(",");
    if (version !== "v1" || !value) continue;
    const given = Buffer.from(value, "base64");
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) return null;
  }
  return "no matching signature";
}

const seen = new Set(); // event ids handled; in production, a unique index in your database
const app = express();

// express.raw reads at most 100 kB by default: hookline accepts events up to 1 MiB
// (HOOKLINE_MAX_BODY_BYTES), and a 413 is retried until the delivery fails.
app.post("/webhook", express.raw({ type: "application/json", limit: "2mb" }), (req, res) => {
  if (!Buffer.isBuffer(req.body)) return res.status(400).json({ error: "expected an application/json body" });
  const why = problem(req.body, req.headers);
  if (why) return res.status(401).json({ error: why });
  let event;
  try {
    event = JSON.parse(req.body.toString("utf8"));
  } catch {
    return res.status(400).json({ error: "body is not JSON" });
  }
  if (event?.type === "verification") return res.json({ challenge: event.challenge });
  const id = req.headers["webhook-id"]; // the event id, signed: the same on every retry
  if (!seen.has(id)) {
    // a retry or a replay of an event handled already is acknowledged only
    seen.add(id);
    handle(id, event);
  }
  res.json({ received: true });
});

function handle(id, event) {
  console.log(`${event.event} ${id}: ${JSON.stringify(event.data)}`);
  if (RECEIVED_LOG) fs.appendFileSync(RECEIVED_LOG, JSON.stringify({ id, type: event.event, data: event.data }) + "\n");
}

app.listen(PORT, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${PORT}/webhook`));
