"""A webhook receiver for the alert tests: verifies each delivery with the `standardwebhooks`
package (an implementation nobody here wrote), appends what it got to a JSON-lines file, and
answers 503 while the file `down` exists beside it (a receiver that is down).

    python3 webhook_receiver.py DIR SECRET      (prints the port it listens on)

SECRET "-" accepts unsigned deliveries (recorded with "verified": null).
"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook

DIR, SECRET = sys.argv[1], sys.argv[2]
hook = Webhook(SECRET) if SECRET != "-" else None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if os.path.exists(os.path.join(DIR, "down")):
            self.send_response(503)
            self.end_headers()
            return
        if hook is None:
            record = {"verified": None, "id": self.headers.get("webhook-id"), "payload": json.loads(body)}
            with open(os.path.join(DIR, "received.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
            self.send_response(204)
            self.end_headers()
            return
        try:
            payload = hook.verify(body, dict(self.headers))
            record = {"verified": True, "id": self.headers.get("webhook-id"), "payload": payload}
        except Exception as e:  # a bad signature is recorded, and refused
            record = {"verified": False, "error": str(e)}
        with open(os.path.join(DIR, "received.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(204 if record["verified"] else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
