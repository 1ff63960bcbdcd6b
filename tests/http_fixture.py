"""An HTTP server on 127.0.0.1 that serves test payloads (downloads and their faults)."""

from __future__ import annotations

import hashlib
import http.server

GOOD = b"softdigits test payload\n" * 100

GOOD_MD5 = "md5:" + hashlib.md5(GOOD).hexdigest()

GOOD_SHA256 = "sha256:" + hashlib.sha256(GOOD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output quiet
        pass
