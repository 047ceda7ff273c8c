"""A webhook receiver that checks every delivery with the official Standard Webhooks library.

Usage: webhook_receiver.py SECRET [SECRET ...]
Prints the port it listens on (127.0.0.1), then one JSON line per delivery: the webhook-id, the
payload's type, and for each secret given whether the library verified the delivery with it.
Answers 204 when at least one secret verified it, 400 otherwise.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

SECRETS = sys.argv[1:]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = []
        for secret in SECRETS:
            try:
                Webhook(secret).verify(body, headers)
                verified.append(True)
            except Exception:  # the library raises WebhookVerificationError
                verified.append(False)
        try:
            kind = json.loads(body).get("type")
        except ValueError:
            kind = None
        print(json.dumps({"id": headers.get("webhook-id"), "type": kind, "verified": verified}), flush=True)
        self.send_response(204 if any(verified) else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
