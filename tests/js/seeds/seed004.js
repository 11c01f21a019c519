// Seed 004's Express route, as its page gives it, between a header (express with its JSON body parser)
// and a footer (listening on $PORT). The handler is unchanged.
const express = require('express');
const app = express();
app.use(express.json());

// --- seed 004 (verbatim) ---
// Using Express
app.post("/my/webhook/url", function(req, res) {
    // Retrieve the request's body
    var event = req.body;
    // Do something with event
    res.send(200);
});
// --- end of seed 004 ---

app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
