"""A Google service-account key whose token endpoint, on 127.0.0.1, refuses it (HTTP 400
``invalid_grant``, as Google's does for a revoked or deleted key): refused credentials, tested
without leaving the machine."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_SERVER: ThreadingHTTPServer | None = None


class _Refuse(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the http.server API
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def token_endpoint() -> str:
    """The refusing token endpoint (one per process, started on first use)."""
    global _SERVER
    if _SERVER is None:
        _SERVER = ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
        threading.Thread(target=_SERVER.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{_SERVER.server_address[1]}/token"


def refusing_key_file(folder) -> str:
    """Write a service-account key file (a fresh RSA key) whose ``token_uri`` refuses it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = Path(folder) / "refused-key.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "phantom-test", "private_key_id": "0" * 40,
        "private_key": pem, "client_email": "phantom@phantom-test.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": token_endpoint(),
    }))
    return str(path)
