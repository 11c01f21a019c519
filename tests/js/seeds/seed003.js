// Seed 003's "Webhook Signature Verification" and "Webhook Handler Example", as its page gives them,
// between a header (express with its JSON body parser, as any Express app using req.body has) and a
// footer (the handlers the example calls, recording what they got; listening on $PORT). The seed's code
// itself is unchanged: it checks the signature of JSON.stringify(req.body).
const express = require('express');
const app = express();
app.use(express.json());
const received = [];
app.get('/received', (req, res) => res.json(received));

// --- seed 003 (verbatim) ---
// Example: Node.js
const crypto = require('crypto');

function verifyWebhookSignature(payload, signature, timestamp, secret) {
// Check timestamp (prevent replay attacks)
const currentTime = Math.floor(Date.now() / 1000);
if (Math.abs(currentTime - timestamp) > 300) { // 5 minutes
  return false;
}

// Generate expected signature
const signedPayload = `${timestamp}.${payload}`;
const expectedSignature = crypto
  .createHmac('sha256', secret)
  .update(signedPayload)
  .digest('hex');

// Compare signatures
return crypto.timingSafeEqual(
  Buffer.from(signature),
  Buffer.from(expectedSignature)
);
}

// Example: Express.js webhook handler
app.post('/webhooks/awalchat', async (req, res) => {
try {
  // Verify signature
  const signature = req.headers['x-awal-webhook-signature'];
  const timestamp = req.headers['x-awal-webhook-timestamp'];
  const isValid = verifyWebhookSignature(
    JSON.stringify(req.body),
    signature,
    timestamp,
    process.env.WEBHOOK_SECRET
  );

  if (!isValid) {
    return res.status(401).json({ error: 'Invalid signature' });
  }

  // Return 200 immediately
  res.status(200).json({ received: true });

  // Process event asynchronously
  processWebhookEvent(req.body);
} catch (error) {
  console.error('Webhook error:', error);
  res.status(500).json({ error: 'Internal server error' });
}
});

async function processWebhookEvent(event) {
switch (event.event) {
  case 'message.received':
    await handleNewMessage(event.data);
    break;
  case 'message.status.updated':
    await handleMessageStatus(event.data);
    break;
  case 'order.created':
    await handleNewOrder(event.data);
    break;
  // ... handle other events
}
}
// --- end of seed 003 ---

async function handleNewMessage(data) { received.push(['message.received', data]); }
async function handleMessageStatus(data) { received.push(['message.status.updated', data]); }
async function handleNewOrder(data) { received.push(['order.created', data]); }
app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
