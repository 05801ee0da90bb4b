"""Requests to one ``http`` connection: base_url, auth, headers, ca_file; errors mapped once.

The same HTTP library as the ``download`` step (`http.client`) and the same TLS set-up
(`ferryman.tls`).  Every message names the request by its redacted URL and masks the
connection's secrets (password, bearer token), whatever the server echoes back.
"""

from __future__ import annotations

import http.client
import os
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from ferryman.connections import HttpConnection
from ferryman.errors import FerrymanError, PermanentError, TransientError
from ferryman.redact import redact, redact_url
from ferryman.secrets import mask
from ferryman.tls import client_context
from ferryman.transports.http import Credentials, credentials

BLOCK = 1 << 20


@dataclass
class Answer:
    """A response whose body has not been read yet (`HttpClient.request` keeps the connection)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    response: http.client.HTTPResponse
    url: str


class HttpClient:
    """One keep-alive connection to the connection's host; re-opened after any failure."""

    def __init__(self, name: str, conn: HttpConnection, config_dir: Path, io_timeout: float | None = None) -> None:
        self.name = name
        self.conn = conn
        if not conn.base_url:
            raise PermanentError(f"connection {name!r}: the http source needs the connection's base_url "
                                 "(the API's address)")
        parts = urlsplit(conn.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PermanentError(f"connection {name!r}: base_url {redact_url(conn.base_url)!r} is not an "
                                 "http:// or https:// URL with a host")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.base_path = parts.path.rstrip("/")
        self.timeout = io_timeout or conn.timeout
        ca_file = None
        if conn.ca_file:
            ca = Path(conn.ca_file).expanduser()
            ca_file = str(ca if ca.is_absolute() else config_dir / ca)
        self._context = client_context(ca_file, conn.verify) if self.scheme == "https" else None
        self._secrets: list[str] = []
        self._credentials: Credentials | None = None
        self._http: http.client.HTTPConnection | None = None

    def _headers(self) -> dict[str, str]:
        """The connection's headers and Authorization (revealed once, by the code ``download``
        shares: `ferryman.transports.http.credentials`); their values are masked in messages."""
        if self._credentials is None:
            self._credentials = credentials(self.name, self.conn)
            self._secrets = list(self._credentials.secrets)
        return dict(self._credentials.headers)

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """The full URL of `path` (below base_url) with `query`."""
        target = self.base_path + ("/" + "/".join(quote(p, safe="") for p in path.split("/")) if path else "")
        if query:
            target += "?" + urlencode(query)
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{self.host}{port}{target or '/'}"

    def where(self, url: str) -> str:
        return mask(redact_url(url), self._secrets)

    @contextmanager
    def errors(self, url: str) -> Iterator[None]:
        """Map network and TLS failures to one-line `TransientError` / `PermanentError`; drop the connection."""
        where = self.where(url)
        try:
            yield
        except FerrymanError as exc:
            self.close()
            if self._secrets and any(s in str(exc) for s in self._secrets):
                raise type(exc)(mask(str(exc), self._secrets)) from None
            raise
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise PermanentError(f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); "
                                 "set ca_file on the connection to the CA that signed it") from None
        except TimeoutError:
            self.close()
            raise TransientError(f"{where}: timed out after {self.timeout:g}s") from None
        except http.client.IncompleteRead as exc:
            self.close()
            raise TransientError(f"{where}: the response ended early ({len(exc.partial)} bytes of a chunk "
                                 "missing); nothing was acknowledged") from None
        except (ConnectionError, http.client.HTTPException, ssl.SSLError, OSError) as exc:
            self.close()
            text = mask(redact(" ".join(str(exc).split())), self._secrets) or type(exc).__name__
            raise TransientError(f"{where}: connection failed: {type(exc).__name__}: {text}") from None

    def request(self, method: str, path: str, query: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None) -> Answer:
        """Send a request and read the status and headers; the caller reads the body inside `errors`."""
        url = self.url(path, query)
        sent = {"User-Agent": "ferryman", "Accept": "application/json", "Accept-Encoding": "identity",
                **self._headers(), **(headers or {})}
        target = url.split("://", 1)[1]
        target = target[target.find("/"):] if "/" in target else "/"
        with self.errors(url):
            for attempt in (1, 2):
                fresh = self._http is None
                http_conn = self._connection()
                try:
                    http_conn.request(method, target, headers=sent)
                    response = http_conn.getresponse()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    self.close()
                    if fresh or attempt == 2:
                        raise
                    continue  # a kept-alive connection the server had closed meanwhile: once more, fresh
                return Answer(response.status, response.reason,
                              {k.lower(): v for k, v in response.getheaders()}, response, url)
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self._http is None:
            if self.scheme == "https":
                self._http = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                         context=self._context)
            else:
                self._http = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._http

    def check_status(self, answer: Answer) -> None:
        """Raise for a status that is not 2xx (the body is drained, a little of it shown)."""
        if 200 <= answer.status < 300:
            return
        snippet = answer.response.read(200).decode("utf-8", "replace")
        if answer.response.will_close or not answer.response.isclosed():
            self.close()
        text = f"{self.where(answer.url)}: HTTP {answer.status} {answer.reason}"
        shown = mask(redact(" ".join(snippet.split())), self._secrets)[:120]
        if shown:
            text += f" ({shown})"
        if answer.status in (401, 403):
            raise PermanentError(text + ": the server refused the login; check the connection's auth")
        if answer.status in (408, 425, 429) or answer.status >= 500:
            raise TransientError(text)
        raise PermanentError(text)

    def drain(self, answer: Answer) -> bytes:
        """Read a small body whole (acks, list endpoints are read through `save` instead)."""
        data = answer.response.read()
        if answer.response.will_close:
            self.close()
        return data

    def save(self, answer: Answer, target: Path, limit: int) -> int:
        """Stream the body into `target` (created 0600), fsynced; the size.  A body that ends before
        its Content-Length, or is longer than `limit`, raises and leaves nothing at `target`."""
        length = answer.headers.get("content-length")
        expected = int(length) if length and length.isdigit() else None
        where = self.where(answer.url)
        if expected is not None and expected > limit:
            self.close()
            raise PermanentError(f"{where}: {expected} bytes is more than max_size ({limit} bytes)")
        written = 0
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as out:
                while True:
                    block = answer.response.read(BLOCK)
                    if not block:
                        break
                    written += len(block)
                    if written > limit:
                        raise PermanentError(f"{where}: more than max_size ({limit} bytes); stopped")
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if expected is not None and written != expected:
                raise TransientError(f"{where}: the response ended after {written} of {expected} bytes "
                                     "(connection cut); nothing was acknowledged")
        except BaseException:
            target.unlink(missing_ok=True)
            self.close()
            raise
        if answer.response.will_close:
            self.close()
        return written

    def close(self) -> None:
        conn, self._http = self._http, None
        if conn is not None:
            with suppress(OSError):
                conn.close()
