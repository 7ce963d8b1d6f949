"""Local stand-ins for the group's mail relay and messaging gateway, used by the demo.

Both listen on 127.0.0.1 only. The webhook receiver checks every request's HMAC signature the way a
real gateway would (a bad signature gets 401) and counts deliveries per idempotency key, so the demo
can show that no key was delivered twice.
"""

from __future__ import annotations

import collections
import http.server
import json
import socket
import threading

from aiosmtpd.controller import Controller
from motorcade_channels_webhook import verify_signature


def _free_port() -> int:
    """A port free on 127.0.0.1 now (aiosmtpd's start-up check cannot use port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpReceiver:
    """An SMTP server (aiosmtpd) that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
                receiver.messages.append({"to": list(envelope.rcpt_tos), "data": envelope.content})
                return "250 OK"

        self.port = _free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "SmtpReceiver":
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()


class WebhookReceiver:
    """An HTTP server that verifies the webhook signature and counts idempotency keys."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.keys: collections.Counter[str] = collections.Counter()
        self.rejected = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            wbufsize = 1 << 16  # one write per response (no Nagle/delayed-ACK stalls)
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not verify_signature(receiver.secret, self.headers.get("X-Motorcade-Signature", ""), body):
                    receiver.rejected += 1
                    self._answer(401, b'{"error":"bad signature"}')
                    return
                payload = json.loads(body)
                messages = payload.get("messages", [payload])
                for message in messages:
                    receiver.keys[message.get("idempotency_key") or self.headers.get("Idempotency-Key")] += 1
                self._answer(200, b'{"ok":true}')

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/motorcade"

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
