// Seed 001's "Example Webhook Handler", as its page gives it, between a header and a footer that only
// start it on $PORT. The handler itself is unchanged.
const express = require('express');
const app = express();

// --- seed 001 (verbatim) ---
app.post('/webhook', express.json(), (req, res) => {
  const { event, data } = req.body;

  switch (event) {
    case 'message_status':
      handleMessageStatus(data);
      break;
    case 'incoming_message':
      handleIncomingMessage(data);
      break;
    default:
      console.log('Unknown event type:', event);
  }

  res.status(200).send('OK');
});

function handleMessageStatus(data) {
  console.log('Message status update:', data);
  // Process message status
}

function handleIncomingMessage(data) {
  console.log('Incoming message:', data);
  // Process incoming message
}
// --- end of seed 001 ---

app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
