"""A local SMTP sink for the alert tests (aiosmtpd, PyPI): writes each message it receives to
DIR/<n>.eml and prints the port it listens on.

    python3 smtp_sink.py DIR
"""
import os, socket, sys, time

from aiosmtpd.controller import Controller

DIR = sys.argv[1]


class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = len(os.listdir(DIR))
        with open(os.path.join(DIR, f"{n}.eml"), "wb") as f:
            f.write(envelope.content)
        return "250 OK"


s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
controller = Controller(Handler(), hostname="127.0.0.1", port=port)
controller.start()
print(port, flush=True)
while True:
    time.sleep(3600)
