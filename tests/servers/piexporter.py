"""A real HTTP(S) server speaking the API of PIExporter's web application (MindTrails' MT-Java).

- ``GET {base}`` → ``[{name, size, deleteable}]``;
- ``GET {base}/{name}`` → the collection's records (a JSON list), ``?greaterThan=ID`` → only ids
  above it; an ``ETag`` (If-None-Match answers 304); at most `page_size` records per answer;
- ``DELETE {base}/{name}/{id}`` → 200, 404 when it is not there, 403 on a collection that is not
  deleteable (MT-Java's ``@DoNotDelete``);
- HTTP Basic auth, or a bearer `token` when set (401 without either).

Faults, queued per collection in `PiServer.faults` (each answer takes the next one): ``500``,
``reset`` (half the body, then the connection is dropped), ``truncated`` (a body shorter than its
Content-Length), ``garbage`` (not JSON), ``noid`` (a record without an id), ``slow`` (half the
body, a pause of `pause` seconds, the rest).  `delete_faults` (a count) answers that many
DELETEs with 500.  `replay` re-serves deleted records; `ignore_since` ignores greaterThan.

`rsa_encrypt` encrypts a value with the test key (PKCS#1 v1.5 or OAEP), as the application does.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import ssl
import struct
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from support import make_cert

BASE = "/api/export"
USER, PASSWORD = "exporter", "s3cret-pass"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _authorized(self) -> bool:
        expected = "Basic " + base64.b64encode(f"{USER}:{self.server.owner.password}".encode()).decode()
        token = self.server.owner.token
        if self.headers.get("Authorization") in (expected, f"Bearer {token}" if token else None):
            return True
        self._send(401, b'{"error":"unauthorized"}', {"WWW-Authenticate": 'Basic realm="pi"'})
        return False

    def do_GET(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            if not self._authorized():
                return
            owner = self.server.owner
            parts = urlsplit(self.path)
            path = unquote(parts.path).rstrip("/")
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            owner.requests[("GET", path)] += 1
            if path == BASE:
                return self._send(200, json.dumps(owner.listing()).encode())
            if path.startswith(BASE + "/"):
                name = path[len(BASE) + 1:]
                if name not in owner.collections:
                    return self._send(404, b"no such form")
                return self._records(owner, name, query)
            self._send(404, b"no such route")

    def do_DELETE(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            if not self._authorized():
                return
            owner = self.server.owner
            path = unquote(urlsplit(self.path).path)
            name, _, ident = path[len(BASE) + 1:].rpartition("/")
            owner.requests[("DELETE", name)] += 1
            with owner.lock:
                if owner.delete_faults > 0:
                    owner.delete_faults -= 1
                    return self._send(500, b"database busy")
                if name not in owner.collections:
                    return self._send(404, b"no such form")
                if name not in owner.deleteable:
                    owner.refused.append((name, ident))
                    return self._send(403, b"this form may not be deleted")
                held = owner.collections[name]
                match = next((r for r in held if str(r["id"]) == ident), None)
                if match is None:
                    return self._send(404, b"no such record")
                held.remove(match)
                owner.deleted[name].append(match)
            if owner.delete_pause:
                time.sleep(owner.delete_pause)
            self._send(200, b"")

    def _records(self, owner: PiServer, name: str, query: dict[str, str]) -> None:
        with owner.lock:
            fault = owner.faults[name].pop(0) if owner.faults[name] else None
            held = list(owner.collections[name])
            if owner.replay:
                held = sorted(held + owner.deleted[name], key=lambda r: r["id"])
            since = query.get("greaterThan")
            if since is not None and not owner.ignore_since:
                owner.since_seen.append(int(since))
                held = [r for r in held if r["id"] > int(since)]
            held = held[: owner.page_size] if owner.page_size else held
        if fault == "500":
            return self._send(500, b"internal error")
        if fault == "noid":
            held = [*held, {"name": "no id here"}]
        body = json.dumps(held).encode()
        if fault == "garbage":
            body = b"<html>maintenance</html>"
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        if fault is None and self.headers.get("If-None-Match") == etag:
            owner.not_modified[name] += 1
            return self._send(304, b"", {"ETag": etag})
        if fault in ("reset", "truncated", "slow"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if fault == "slow":
                time.sleep(owner.pause)
                self.wfile.write(body[len(body) // 2:])
                return None
            self.close_connection = True
            if fault == "reset":
                with contextlib.suppress(OSError):  # close with a RST, not a FIN: "connection reset by peer"
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return None
        self._send(200, body, {"ETag": etag, "Content-Type": "application/json"})

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: PiServer


class PiServer:
    """The application: collections of records, which may be deleteable; HTTP and HTTPS."""

    def __init__(self, folder: Path, tls: bool = False) -> None:
        self.lock = threading.RLock()
        self.password = PASSWORD
        self.token: str | None = None
        """A bearer token accepted besides Basic auth."""
        self.collections: dict[str, list[dict[str, Any]]] = {}
        self.deleteable: set[str] = set()
        self.deleted: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.refused: list[tuple[str, str]] = []
        self.faults: defaultdict[str, list[str]] = defaultdict(list)
        self.delete_faults = 0
        self.replay = False
        self.ignore_since = False
        self.page_size: int | None = None
        self.pause = 0.0
        self.since_seen: list[int] = []
        self.requests: Counter[tuple[str, str]] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.delete_pause = 0.0
        """Seconds each DELETE takes after the record is gone (a slow server: kills land mid-delete)."""
        self.next_id = 1
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_file = folder / "pi_private.pem"
        self.key_file.write_bytes(self.key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                                         serialization.NoEncryption()))
        self.cert: Path | None = None
        self._server = _Server(("127.0.0.1", 0), _Handler)
        if tls:
            self.cert, key = make_cert(folder)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="pi-server", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{BASE}"

    def listing(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"name": name, "size": len(held) + (len(self.deleted[name]) if self.replay else 0),
                     "deleteable": name in self.deleteable}
                    for name, held in self.collections.items()]

    def form(self, name: str, deleteable: bool = True) -> None:
        with self.lock:
            self.collections.setdefault(name, [])
            if deleteable:
                self.deleteable.add(name)

    def rsa_encrypt(self, text: str, pad: str = "pkcs1v15") -> str:
        if pad == "pkcs1v15":
            scheme: padding.AsymmetricPadding = padding.PKCS1v15()
        else:
            algorithm: hashes.HashAlgorithm = hashes.SHA1() if pad == "oaep-sha1" else hashes.SHA256()
            scheme = padding.OAEP(mgf=padding.MGF1(algorithm), algorithm=algorithm, label=None)
        return base64.b64encode(self.key.public_key().encrypt(text.encode(), scheme)).decode()

    def add(self, name: str, pad: str = "pkcs1v15", **fields: Any) -> dict[str, Any]:
        """A new record with the next id; fields ending in RSA are encrypted."""
        with self.lock:
            record = {"id": self.next_id, **{k: (self.rsa_encrypt(v, pad) if k.endswith("RSA") and isinstance(v, str)
                                               else v) for k, v in fields.items()}}
            self.next_id += 1
            self.collections.setdefault(name, []).append(record)
            return record

    def held(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.collections.get(name, []))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture()
def pi_server(tmp_path: Path) -> Iterator[PiServer]:
    server = PiServer(tmp_path)
    yield server
    server.close()


@pytest.fixture()
def pi_tls_server(tmp_path: Path) -> Iterator[PiServer]:
    server = PiServer(tmp_path, tls=True)
    yield server
    server.close()
