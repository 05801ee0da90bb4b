"""``download``: fetch the item's URL (``meta.url`` by default) into the work folder, streamed.

With ``connection``, an ``http`` connection gives what the requests carry (auth, headers),
the CA to trust and the base_url that a relative URL is a path below; its credentials go only to
its own host (`ferryman.transports.http`).  A URL with ``user:pw@`` in it is refused: that is
the connection's ``auth``.

HTTPS only unless ``allow_http``; every hop of a redirect is checked again
(scheme, ``allowed_hosts``) and at most ``max_redirects`` are followed.  The
body is written in chunks to a hidden ``.part`` file and renamed when
complete, so a partial download never becomes the item's file.  The name
comes from ``Content-Disposition`` (reduced to a plain name: ``../../x`` is
``x``) or the URL's last path segment.  Messages show the URL redacted: no
user-info, no query string (a pre-signed link's signature), no fragment
(`ferryman.redact`).
"""

from __future__ import annotations

import http.client
import os
import ssl
from email.message import Message
from fnmatch import fnmatch
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import unquote, urljoin, urlsplit

from pydantic import Field, field_validator, model_validator

from ferryman import templates
from ferryman.connections import HttpConnection, refuse_userinfo
from ferryman.errors import PermanentError, TransientError, UnsafeInput
from ferryman.item import Item, State
from ferryman.redact import redact_url
from ferryman.sources.imap.mime import safe_name
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.tls import client_context
from ferryman.transports.http import Credentials, credentials, http_errors, open_connection, resolve, target
from ferryman.units import Duration, Size

BLOCK = 1 << 20


class DownloadConfig(StepConfig):
    """Fetch a URL into the item's files."""

    connection_type: ClassVar[str] = "http"

    type: Literal["download"]
    url: str = Field("{meta.url}", description="URL template (default: the link the source found); "
                     "without a scheme, a path below the connection's base_url.")
    connection: str | None = Field(
        None, description="Name of an http connection: its auth, headers and ca_file are used, and its "
        "base_url for relative URLs; the auth and headers go to its host only.")
    allow_http: bool = Field(False, description="Also accept plain http:// URLs (and redirects to them).")
    allowed_hosts: list[str] | None = Field(
        None, description="Host name globs the URL (and every redirect) must match, e.g. ['*.itrp.com'].")
    max_redirects: int = Field(5, ge=0, le=30, description="Redirects followed at most.")
    io_timeout: Duration = Field(
        60.0, description="Time limit for connecting and for each read (with a connection: its timeout, "
        "unless set here).")
    max_size: Size | None = Field(2 * 1024**3, description="Refuse bodies larger than this (default 2GiB).")
    ca_file: str | None = Field(None, description="PEM file of the CA that signed the server's certificate "
                                "(default: the connection's).")
    verify: bool = Field(True, description="Check the server's certificate (turning this off is unsafe; "
                         "so is verify = false on the connection).")
    mode: Literal["replace", "add"] = Field(
        "replace", description="The downloaded file replaces the item's files, or is added to them.")
    if_changed: bool = Field(
        False, description="Send the ETag / Last-Modified of the flow's last successful download of this "
        "URL (kept in the journal); when the server answers 304 Not Modified, the item ends as skipped "
        "('not modified since …') and nothing is delivered. For a fixed url on a schedule.")

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        refuse_userinfo(value)  # a literal URL: refused at check; one from meta at run time
        return value

    @model_validator(mode="after")
    def _relative_needs_a_connection(self) -> DownloadConfig:
        if "://" not in self.url and not self.url.startswith("{") and self.connection is None:
            raise ValueError(f"url {self.url!r} has no scheme: write https://…, or name an http connection "
                             "whose base_url it is a path below")
        return self


ETAG = "download_etag"
MODIFIED = "download_last_modified"
SOURCE_URL = "download_url"
"""Meta keys of a download: its validators, and the (redacted) URL they belong to."""


class DownloadStep(Step[DownloadConfig]):
    """Streams one URL per item; the work folder then holds the downloaded file."""

    Config = DownloadConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        written = templates.render(self.config.url, ctx.values()).strip()
        if not written:
            raise PermanentError("no URL to download (the item's meta.url is empty)")
        conn = self._connection()
        url = resolve(written, self.config.connection, conn)
        creds = credentials(self.config.connection or "", conn).bound(url) if conn is not None else None
        if conn is not None and creds is not None and not creds.reaches(url):
            raise PermanentError(f"{redact_url(url)}: not on the host of connection {self.config.connection!r} "
                                 f"({redact_url(conn.base_url or '')}), the only one its auth and headers go to")
        last = self._last_download(url) if self.config.if_changed else None
        validators = {k: last.meta[k] for k in (ETAG, MODIFIED) if k in last.meta} if last else {}
        target, seen = self._download(url, ctx.work_dir, validators, creds)
        if target is None:
            assert last is not None
            return StepResult(files=[], outputs={"downloaded": None, "not_modified": redact_url(url)},
                              skip=f"{redact_url(url)} not modified since the download of item {last.id}")
        files = [*item.files, target] if self.config.mode == "add" else [target]
        meta = {"download_name": target.name}
        if self.config.if_changed:  # the validators ride with the item: kept once it succeeds
            meta.update({k: v for k, v in seen.items() if v}, **{SOURCE_URL: redact_url(url)})
        return StepResult(files=files, meta=meta,
                          outputs={"downloaded": redact_url(url), "bytes": target.stat().st_size})

    def _connection(self) -> HttpConnection | None:
        if self.config.connection is None:
            return None
        conn = self.flow.connection(self.config.connection, "http")
        assert isinstance(conn, HttpConnection)
        return conn

    def _last_download(self, url: str) -> Item | None:
        """The flow's newest done item that downloaded `url` with validators: they are kept in its
        meta, so they count only once everything after the download succeeded."""
        shown = redact_url(url)
        for done in self.flow.journal.history(self.flow.flow, State.DONE, 100):
            if done.meta.get(SOURCE_URL) == shown and (ETAG in done.meta or MODIFIED in done.meta):
                return done
        return None

    def _check(self, url: str) -> None:
        """Refuse a URL (the first, or a redirect's) ferryman should not fetch."""
        try:
            refuse_userinfo(url)
        except ValueError as exc:
            raise UnsafeInput(str(exc)) from None
        parts = urlsplit(url)
        allowed = ("https", "http") if self.config.allow_http else ("https",)
        if parts.scheme.lower() not in allowed:
            hint = " (set allow_http = true to accept plain http)" if parts.scheme.lower() == "http" else ""
            raise UnsafeInput(f"{redact_url(url)}: only {' and '.join(allowed)} URLs are downloaded{hint}")
        host = (parts.hostname or "").lower()
        if not host:
            raise UnsafeInput(f"{redact_url(url)[:100]!r} is not a URL with a host")
        if self.config.allowed_hosts is not None and not any(
                fnmatch(host, pattern.lower()) for pattern in self.config.allowed_hosts):
            raise UnsafeInput(f"{redact_url(url)}: host {host!r} is not in allowed_hosts {self.config.allowed_hosts}")

    def _context(self, conn: HttpConnection | None) -> ssl.SSLContext:
        """TLS trusting the step's ca_file, else the connection's; verify = false on either turns checks off."""
        ca_file = self.config.ca_file or (conn.ca_file if conn is not None else None)
        verify = self.config.verify and (conn.verify if conn is not None else True)
        return client_context(str(self.flow.resolve(ca_file)) if ca_file else None, verify)

    def _timeout(self, conn: HttpConnection | None) -> float:
        if conn is None or "io_timeout" in self.config.model_fields_set:
            return self.config.io_timeout
        return conn.timeout

    def _download(self, url: str, work_dir: Path, validators: dict[str, str],
                  creds: Credentials | None) -> tuple[Path | None, dict[str, str]]:
        """The downloaded file and the response's validators; (None, {}) on 304 Not Modified."""
        conn = self._connection()
        context, timeout = self._context(conn), self._timeout(conn)
        secrets = creds.secrets if creds is not None else ()
        common = {"User-Agent": "ferryman", "Accept-Encoding": "identity"}
        if ETAG in validators:
            common["If-None-Match"] = validators[ETAG]
        if MODIFIED in validators:
            common["If-Modified-Since"] = validators[MODIFIED]
        for _ in range(self.config.max_redirects + 1):
            self._check(url)
            # The connection's headers go to its own host only: a redirect elsewhere goes without them.
            sent = creds.for_url(url) if creds is not None else {}
            headers = {**sent, **common}
            with http_errors(url, secrets, timeout):
                http_conn = open_connection(url, timeout, context)
                try:
                    http_conn.request("GET", target(url), headers=headers)
                    response = http_conn.getresponse()
                    if response.status == 304 and validators:
                        return None, {}
                    if response.status in (301, 302, 303, 307, 308):
                        location = response.getheader("Location")
                        if not location:
                            raise PermanentError(f"{redact_url(url)}: redirect ({response.status}) without a Location")
                        url = urljoin(url, location)
                        continue
                    self._status(url, response, bool(sent))
                    seen = {ETAG: response.getheader("ETag") or "", MODIFIED: response.getheader("Last-Modified") or ""}
                    return self._save(url, response, work_dir), seen
                finally:
                    http_conn.close()
        raise PermanentError(f"{redact_url(url)}: more than {self.config.max_redirects} redirects")

    def _status(self, url: str, response: http.client.HTTPResponse, authenticated: bool) -> None:
        status = response.status
        if 200 <= status < 300:
            return
        text = f"{redact_url(url)}: HTTP {status} {response.reason}"
        if status in (401, 403):
            name = self.config.connection
            if authenticated:
                text += (f": the server refused the credentials of connection {name!r}" if status == 401 else
                         f": the credentials of connection {name!r} do not give access")
            elif status == 401:
                text += ": the server wants credentials (give the step an http connection with auth)"
        if status in (408, 425, 429) or status >= 500:
            raise TransientError(text)
        raise PermanentError(text)

    def _save(self, url: str, response: http.client.HTTPResponse, work_dir: Path) -> Path:
        length = response.getheader("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        limit = self.config.max_size
        if limit is not None and expected is not None and expected > limit:
            raise PermanentError(f"{redact_url(url)}: {expected} bytes is more than max_size ({limit} bytes)")
        name = _name(url, response.getheader("Content-Disposition"))
        target = work_dir / name
        part = work_dir / f".{name}.part"
        written = 0
        try:
            with open(part, "wb") as out:
                while True:
                    block = response.read(BLOCK)
                    if not block:
                        break
                    written += len(block)
                    if limit is not None and written > limit:
                        raise PermanentError(f"{redact_url(url)}: more than max_size ({limit} bytes); stopped")
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if expected is not None and written != expected:
                raise TransientError(f"{redact_url(url)}: the body ended after {written} of {expected} bytes")
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
        return target


def _name(url: str, disposition: str | None) -> str:
    """The file name: Content-Disposition's filename (RFC 6266 filename* first), else the URL's last segment."""
    fallback = safe_name(unquote(urlsplit(url).path.rsplit("/", 1)[-1]), "download")
    if not disposition:
        return fallback
    message = Message()
    message["Content-Disposition"] = disposition
    try:
        filename = message.get_filename()
    except Exception:
        filename = None
    return safe_name(filename, fallback) if filename else fallback
