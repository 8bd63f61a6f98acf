"""A webhook receiver on loopback that checks Standard Webhooks signatures with its own code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def expected_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The signature as the Standard Webhooks spec defines it, written independently of the app."""
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


@dataclass
class Receiver:
    """What arrived, and how to answer: fail the first ``failures`` requests with 500."""

    url: str = ""
    secret: str = ""
    failures: int = 0
    received: list[dict] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def valid(self) -> list[dict]:
        """Deliveries whose signature checked out."""
        return [r for r in self.received if r["signature_ok"]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # not 5: a worker delivering 20 at once had connections wait out a SYN retry (1 s)


@contextmanager
def receiver(failures: int = 0) -> Iterator[Receiver]:
    """Run a receiver on 127.0.0.1; stop it on exit."""
    state = Receiver(failures=failures)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the worker's client reuses its connections

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with state.lock:
                state.attempts += 1
                fail = state.attempts <= state.failures
                msg_id, stamp = self.headers.get("webhook-id", ""), self.headers.get("webhook-timestamp", "")
                signature = self.headers.get("webhook-signature", "")
                ok = bool(state.secret) and hmac.compare_digest(signature, expected_signature(state.secret, msg_id, stamp, body))
                if not fail:
                    state.received.append({"id": msg_id, "timestamp": stamp, "signature_ok": ok, "body": json.loads(body)})
            self.send_response(500 if fail else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
