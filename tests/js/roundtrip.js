// Reads one JSON text per line and writes JSON.stringify(JSON.parse(line)): what a receiver built from
// seed 003's handler signs-checks (tests/test_javascript_json.py).
const lines = require("readline").createInterface({ input: process.stdin });
lines.on("line", (line) => {
  let out;
  try {
    out = JSON.stringify(JSON.parse(line));
  } catch (error) {
    out = "ERROR " + error.message;
  }
  process.stdout.write(out + "\n");
});
