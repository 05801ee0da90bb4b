"""A local HTTPS (and plain HTTP) file server with the misbehaviours downloads must survive.

Paths:

- ``/files/NAME`` — a file registered with `HttpsServer.add` (Content-Length set);
  a name listed in `HttpsServer.failing` answers 503 instead, `HttpsServer.requests` counts hits;
  one registered with `HttpsServer.add_signed` answers 403 (here and under ``/slow/``) unless
  the request carries its signature (``?…&X-Amz-Signature=…``, like an S3 pre-signed link);
- ``/missing`` — 404; ``/error`` — 500;
- ``/hang`` — accepts and never answers (until the server stops);
- ``/redirect/N/NAME`` — N redirects, then ``/files/NAME``; ``/to?url=URL`` — one redirect to URL;
- ``/huge?size=BYTES`` — a streamed body of that many bytes (default 5 GB, never held in memory);
- ``/slow/NAME`` — half of a registered file, a pause of `HttpsServer.pause` seconds, the rest;
- ``/short`` — announces 1000 bytes, sends 10, closes;
- ``/named?name=NAME`` — a small body with ``Content-Disposition: attachment; filename="NAME"``;
- ``/private/NAME`` — a registered file for a request that logs in: ``Authorization: Basic``
  with a user and password of `HttpsServer.logins`, or ``Bearer`` with one of
  `HttpsServer.tokens`; none or a wrong one answers 401 (with ``WWW-Authenticate``), a user in
  `HttpsServer.forbidden` or a request without every header `HttpsServer.required` lists for NAME 403.

`HttpsServer.seen` keeps the headers of every request by path, to tell what was sent where.

Fixture: ``https_server`` (one per session).  ``url(path)`` is the HTTPS URL,
``http_url(path)`` the plain-HTTP one; ``cert`` is the CA file to trust.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from support import make_cert


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        owner.requests[path] += 1
        owner.seen.setdefault(path, []).append({k.lower(): v for k, v in self.headers.items()})
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self._route(owner, path, query)

    def _route(self, owner: HttpsServer, path: str, query: dict[str, str]) -> None:
        if path.startswith("/private/"):
            return self._private(owner, path.removeprefix("/private/"))
        name = path.removeprefix("/files/").removeprefix("/slow/")
        if path.startswith(("/files/", "/slow/")) and name in owner.signatures \
                and query.get("X-Amz-Signature") != owner.signatures[name]:
            return self._send(403, b"SignatureDoesNotMatch")
        if path.startswith("/files/"):
            if name in owner.failing:
                return self._send(503, b"busy, try later")
            if name not in owner.files:
                return self._send(404, b"not found")
            etag = '"' + hashlib.sha256(owner.files[name]).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:  # what a real server does for an unchanged file
                owner.not_modified[name] += 1
                return self._send(304, b"", {"ETag": etag})
            return self._send(200, owner.files[name], {"ETag": etag, "Last-Modified": "Mon, 05 Jan 2026 08:00:00 GMT"})
        if path.startswith("/slow/"):
            return self._slow(owner, path.removeprefix("/slow/"))
        if path == "/missing":
            return self._send(404, b"not found")
        if path == "/error":
            return self._send(500, b"oops")
        if path == "/hang":
            owner.stopping.wait(60)
            return None
        if path.startswith("/redirect/"):
            _, _, count, name = path.split("/", 3)
            n = int(count)
            target = f"/redirect/{n - 1}/{name}" if n > 1 else f"/files/{name}"
            return self._send(302, b"", {"Location": target})
        if path == "/to":
            return self._send(302, b"", {"Location": query["url"]})
        if path == "/huge":
            return self._huge(int(query.get("size", 5 * 10**9)))
        if path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return None
        if path == "/named":
            name = query.get("name", "x")
            return self._send(200, b"named body", {"Content-Disposition": f'attachment; filename="{name}"'})
        return self._send(404, b"no such route")

    def _private(self, owner: HttpsServer, name: str) -> None:
        """A file for a request with valid credentials (and the required headers)."""
        kind, _, value = (self.headers.get("Authorization") or "").partition(" ")
        user = None
        if kind == "Basic":
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                login, _, password = base64.b64decode(value, validate=True).decode().partition(":")
                user = login if owner.logins.get(login) == password else None
        elif kind == "Bearer" and value in owner.tokens:
            user = "bearer"
        if user is None:
            return self._send(401, b"login required", {"WWW-Authenticate": 'Basic realm="exports"'})
        wanted = owner.required.get(name, {})
        if user in owner.forbidden or any(self.headers.get(k) != v for k, v in wanted.items()):
            return self._send(403, b"forbidden")
        if name not in owner.files:
            return self._send(404, b"not found")
        return self._send(200, owner.files[name])

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _slow(self, owner: HttpsServer, name: str) -> None:
        """Half the file, a pause of `owner.pause` seconds, then the rest."""
        data = owner.files.get(name, b"")
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        owner.stopping.wait(owner.pause)
        self.wfile.write(data[len(data) // 2:])

    def _huge(self, size: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        block = b"x" * (1 << 16)
        sent = 0
        while sent < size and not self.server.owner.stopping.is_set():
            chunk = block[: min(len(block), size - sent)]
            self.wfile.write(chunk)
            sent += len(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: HttpsServer


class HttpsServer:
    """Serves on two ports of 127.0.0.1: HTTPS (`port`) and plain HTTP (`http_port`)."""

    def __init__(self, folder: Path) -> None:
        self.cert, self.key = make_cert(folder)
        self.files: dict[str, bytes] = {}
        self.failing: set[str] = set()
        self.signatures: dict[str, str] = {}
        """Name → the X-Amz-Signature a request for ``/files/NAME`` must carry."""
        self.pause = 0.0
        """Seconds ``/slow/NAME`` pauses in the middle of the body."""
        self.requests: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        """Name → how many requests for ``/files/NAME`` were answered 304 (If-None-Match matched)."""
        self.logins: dict[str, str] = {}
        """User → password that ``/private/NAME`` accepts with HTTP Basic."""
        self.tokens: set[str] = set()
        """Bearer tokens that ``/private/NAME`` accepts."""
        self.forbidden: set[str] = set()
        """Users whose login is right but who get 403 ("bearer" for a token)."""
        self.required: dict[str, dict[str, str]] = {}
        """NAME → the headers (name → value) a ``/private/NAME`` request must carry, else 403."""
        self.seen: dict[str, list[dict[str, str]]] = {}
        """Path → the headers (lower-case names) of each request for it."""
        self.stopping = threading.Event()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        self._tls = _Server(("127.0.0.1", 0), _Handler)
        self._tls.socket = context.wrap_socket(self._tls.socket, server_side=True)
        self._plain = _Server(("127.0.0.1", 0), _Handler)
        self._threads: list[threading.Thread] = []
        for server in (self._tls, self._plain):
            server.owner = self
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                      name="https-fixture", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.port = self._tls.server_address[1]
        self.http_port = self._plain.server_address[1]

    def add(self, name: str, data: bytes) -> str:
        """Serve `data` at ``/files/NAME``; returns its HTTPS URL."""
        self.files[name] = data
        return self.url(f"/files/{name}")

    def add_signed(self, name: str, data: bytes) -> str:
        """Serve `data` at ``/files/NAME`` to requests with the right signature only; returns the
        pre-signed URL (an S3-style query string with a fresh signature and a fake credential)."""
        signature = secrets.token_hex(32)
        self.signatures[name] = signature
        query = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAFERRYMANTEST%2F20240131%2Feu-west-1"
                 "%2Fs3%2Faws4_request&X-Amz-Date=20240131T020000Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host"
                 f"&X-Amz-Signature={signature}")
        return f"{self.add(name, data)}?{query}"

    def add_private(self, name: str, data: bytes, host: str = "127.0.0.1") -> str:
        """Serve `data` at ``/private/NAME``, to requests that log in; returns its HTTPS URL."""
        self.files[name] = data
        return self.url(f"/private/{name}", host)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def close(self) -> None:
        self.stopping.set()
        for server in (self._tls, self._plain):
            server.shutdown()
            server.server_close()
        time.sleep(0.05)


@pytest.fixture(scope="session")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    server = HttpsServer(tmp_path_factory.mktemp("https"))
    yield server
    server.close()
