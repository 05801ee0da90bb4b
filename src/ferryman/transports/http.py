"""Requests on an ``http`` connection: what every request carries, where it may go, errors in one line.

Shared by everything that speaks HTTP through a ``[connections.NAME]`` of type ``http`` (the
``download`` step, the ``http`` source).  The rules:

- A URL without a scheme is a path below the connection's ``base_url``:
  ``exports/a.csv`` and ``/exports/a.csv`` on ``https://api.example.com/v1`` are both
  ``https://api.example.com/v1/exports/a.csv``.
- The connection's ``auth`` and ``headers`` (`Credentials`) go only to one origin (scheme, host,
  port): ``base_url``'s, else the first URL's.  A redirect elsewhere is followed without them.
- A URL never carries a user name or password (``https://user:pw@host/``): that is the
  connection's ``auth``.
- Messages name the URL redacted (`ferryman.redact`) and mask every revealed secret.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from ferryman.connections import HttpConnection, refuse_userinfo
from ferryman.errors import FerrymanError, PermanentError, TransientError, UnsafeInput, unresolved
from ferryman.redact import redact, redact_url
from ferryman.secrets import Secret, mask

Origin = tuple[str, str, int]
"""Scheme, host (lower case) and port of a URL: where credentials may be sent."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


@dataclass(frozen=True)
class Credentials:
    """The revealed ``auth`` and ``headers`` of one connection, and where they may go.

    `headers` holds the connection's headers and the ``Authorization`` its ``auth`` makes;
    `secrets` every revealed value, to mask in messages.  `origin` is None until the first URL
    fixes it (a connection without ``base_url``).
    """

    name: str
    headers: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    origin: Origin | None = None

    def bound(self, url: str) -> Credentials:
        """These credentials, bound to `url`'s origin unless base_url bound them already."""
        return self if self.origin is not None else replace(self, origin=origin(url))

    def reaches(self, url: str) -> bool:
        """True when `url` is at the origin these credentials may be sent to."""
        return self.origin is None or origin(url) == self.origin

    def for_url(self, url: str) -> dict[str, str]:
        """The headers to send to `url`: all of them at the credentials' origin, none elsewhere."""
        return dict(self.headers) if self.reaches(url) else {}


def credentials(name: str, conn: HttpConnection) -> Credentials:
    """Reveal `conn`'s auth and headers; `PermanentError` (naming the key, never the value) when a
    secret cannot be read or holds a line break.  Every auth value is masked in messages, and
    every header given as a reference ({ env = … }); a header written literally is not a secret."""
    headers: dict[str, str] = {}
    secrets: list[str] = []

    def reveal(key: str, secret: Secret, sensitive: bool) -> str:
        try:
            value = secret.reveal()
        except PermanentError as exc:
            raise PermanentError(f"connection {name!r} {key}: {exc}") from None
        if any(c in value for c in "\r\n\0"):
            raise PermanentError(f"connection {name!r} {key}: the value holds a line break; "
                                 "a header value is one line")
        if sensitive:
            secrets.append(value)
        return value

    for header, secret in conn.headers.items():
        headers[header] = reveal(f"headers.{header}", secret, not secret.literal)
    if conn.auth is not None and conn.auth.basic is not None:
        password = reveal("auth.basic.password", conn.auth.basic.password, True)
        token = base64.b64encode(f"{conn.auth.basic.user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        secrets.append(token)
    elif conn.auth is not None and conn.auth.bearer is not None:
        headers["Authorization"] = f"Bearer {reveal('auth.bearer', conn.auth.bearer, True)}"
    return Credentials(name, headers, tuple(dict.fromkeys(s for s in secrets if s)),
                       origin(conn.base_url) if conn.base_url else None)


def resolve(url: str, name: str | None, conn: HttpConnection | None) -> str:
    """`url` made absolute: a URL without a scheme is a path below the connection's base_url.

    Raises `UnsafeInput` for a URL with a user name or password in it, and `PermanentError` for
    a relative URL without a base_url.
    """
    try:
        refuse_userinfo(url)
    except ValueError as exc:
        raise UnsafeInput(str(exc)) from None
    if "://" in url.split("?", 1)[0]:
        return url
    if url.startswith("//"):
        raise PermanentError(f"{redact_url(url)[:100]!r} has no scheme; write https://…")
    if conn is None or not conn.base_url:
        where = f"connection {name!r} has no base_url" if conn is not None else "no connection gives a base_url"
        raise PermanentError(f"{redact_url(url)[:100]!r} is not an absolute URL and {where}")
    return conn.base_url.rstrip("/") + "/" + url.lstrip("/")


def open_connection(url: str, timeout: float, context: ssl.SSLContext) -> http.client.HTTPConnection:
    """An (unconnected) HTTP or HTTPS connection to `url`'s host."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "https":
        return http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout, context=context)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)


def target(url: str) -> str:
    """The request target of `url`: its path and query string."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


@contextmanager
def http_errors(url: str, secrets: Sequence[str] = (), timeout: float | None = None) -> Iterator[None]:
    """Map network and TLS exceptions to ferryman's errors with a one-line message naming `url`
    (redacted); every one of `secrets` is masked, whatever the library or the server said."""
    where = mask(redact_url(url), list(secrets))
    try:
        yield
    except FerrymanError as exc:
        text = mask(str(exc), list(secrets))
        if text != str(exc):
            raise type(exc)(text) from None
        raise
    except ssl.SSLCertVerificationError as exc:
        raise PermanentError(f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); "
                             "set ca_file to the CA that signed it") from None
    except socket.gaierror as exc:
        raise TransientError(f"{where}: {unresolved(urlsplit(url).hostname or '?', exc)}") from None
    except TimeoutError:
        after = f" after {timeout:g}s" if timeout else ""
        raise TransientError(f"{where}: timed out{after}") from None
    except ConnectionRefusedError:
        port = origin(url)[2]
        raise TransientError(f"{where}: connection refused (is the server running on port {port}?)") from None
    except (ConnectionError, http.client.HTTPException, ssl.SSLError, OSError) as exc:
        text = mask(redact(" ".join(str(exc).split())), list(secrets)) or type(exc).__name__
        raise TransientError(f"{where}: connection failed: {text}") from None
