// The comparison peer for bench/sns.sh: the most used Node SNS validator (npm `sns-validator`) behind
// node:http, answering 200 to a valid message and 403 otherwise, as a minimal SNS endpoint would.
// Usage: node bench/sns_peer.js PORT CERT_DIR (NODE_PATH must name the folder sns-validator is installed in).
// The machine has no way out, so the validator's one HTTPS fetch of each signing certificate is answered
// from CERT_DIR (file name = the URL's file name); the validator caches certificates itself afterwards, as it
// would in production.
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');
const { Readable } = require('stream');

const [port, certDir] = process.argv.slice(2);

https.get = function (url, onResponse) {
  const name = path.basename(new URL(url).pathname);
  const response = Readable.from([fs.readFileSync(path.join(certDir, name))]);
  response.statusCode = 200;
  process.nextTick(() => onResponse(response));
  return { on() { return this; } };
};

const MessageValidator = require('sns-validator');
const validator = new MessageValidator();

http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      let message;
      try {
        message = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"error":"malformed-json"}');
        return;
      }
      validator.validate(message, (err) => {
        if (err) {
          res.writeHead(403, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'bad-signature', detail: err.message }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: message.Message, verified: true }));
      });
    });
  })
  .listen(Number(port), '127.0.0.1');
