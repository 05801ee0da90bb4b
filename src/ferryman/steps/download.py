"""``download``: fetch the item's URL (``meta.url`` by default) into the work folder, streamed.

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
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from fnmatch import fnmatch
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urljoin, urlsplit

from pydantic import Field

from ferryman import templates
from ferryman.errors import FerrymanError, PermanentError, TransientError, UnsafeInput
from ferryman.item import Item, State
from ferryman.redact import redact, redact_url
from ferryman.sources.imap.mime import safe_name
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.tls import client_context
from ferryman.units import Duration, Size

BLOCK = 1 << 20


class DownloadConfig(StepConfig):
    """Fetch a URL into the item's files."""

    type: Literal["download"]
    url: str = Field("{meta.url}", description="URL template (default: the link the source found).")
    allow_http: bool = Field(False, description="Also accept plain http:// URLs (and redirects to them).")
    allowed_hosts: list[str] | None = Field(
        None, description="Host name globs the URL (and every redirect) must match, e.g. ['*.itrp.com'].")
    max_redirects: int = Field(5, ge=0, le=30, description="Redirects followed at most.")
    io_timeout: Duration = Field(60.0, description="Time limit for connecting and for each read.")
    max_size: Size | None = Field(2 * 1024**3, description="Refuse bodies larger than this (default 2GiB).")
    ca_file: str | None = Field(None, description="PEM file of the CA that signed the server's certificate.")
    verify: bool = Field(True, description="Check the server's certificate (turning this off is unsafe).")
    mode: Literal["replace", "add"] = Field(
        "replace", description="The downloaded file replaces the item's files, or is added to them.")
    if_changed: bool = Field(
        False, description="Send the ETag / Last-Modified of the flow's last successful download of this "
        "URL (kept in the journal); when the server answers 304 Not Modified, the item ends as skipped "
        "('not modified since …') and nothing is delivered. For a fixed url on a schedule.")


ETAG = "download_etag"
MODIFIED = "download_last_modified"
SOURCE_URL = "download_url"
"""Meta keys of a download: its validators, and the (redacted) URL they belong to."""


@contextmanager
def http_errors(url: str) -> Iterator[None]:
    """Map network and TLS exceptions to ferryman's errors with a one-line message."""
    where = redact_url(url)
    try:
        yield
    except FerrymanError:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise PermanentError(f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); "
                             "set ca_file to the CA that signed it") from None
    except TimeoutError:
        raise TransientError(f"{where}: timed out") from None
    except (ConnectionError, http.client.HTTPException, ssl.SSLError, OSError) as exc:
        text = redact(" ".join(str(exc).split())) or type(exc).__name__
        raise TransientError(f"{where}: connection failed: {text}") from None


class DownloadStep(Step[DownloadConfig]):
    """Streams one URL per item; the work folder then holds the downloaded file."""

    Config = DownloadConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        url = templates.render(self.config.url, ctx.values()).strip()
        if not url:
            raise PermanentError("no URL to download (the item's meta.url is empty)")
        last = self._last_download(url) if self.config.if_changed else None
        validators = {k: last.meta[k] for k in (ETAG, MODIFIED) if k in last.meta} if last else {}
        target, seen = self._download(url, ctx.work_dir, validators)
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

    def _last_download(self, url: str) -> Item | None:
        """The flow's newest done item that downloaded `url` with validators: they are kept in its
        meta, so they count only once everything after the download succeeded."""
        shown = redact_url(url)
        for done in self.flow.journal.history(self.flow.flow, State.DONE, 100):
            if done.meta.get(SOURCE_URL) == shown and (ETAG in done.meta or MODIFIED in done.meta):
                return done
        return None

    def _check(self, url: str) -> None:
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

    def _context(self) -> ssl.SSLContext:
        cafile = str(self.flow.resolve(self.config.ca_file)) if self.config.ca_file else None
        return client_context(cafile, self.config.verify)

    def _download(self, url: str, work_dir: Path,
                  validators: dict[str, str]) -> tuple[Path | None, dict[str, str]]:
        """The downloaded file and the response's validators; (None, {}) on 304 Not Modified."""
        headers = {"User-Agent": "ferryman", "Accept-Encoding": "identity"}
        if ETAG in validators:
            headers["If-None-Match"] = validators[ETAG]
        if MODIFIED in validators:
            headers["If-Modified-Since"] = validators[MODIFIED]
        for _ in range(self.config.max_redirects + 1):
            self._check(url)
            with http_errors(url):
                conn = self._connect(url)
                try:
                    parts = urlsplit(url)
                    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    if response.status == 304 and validators:
                        return None, {}
                    if response.status in (301, 302, 303, 307, 308):
                        location = response.getheader("Location")
                        if not location:
                            raise PermanentError(f"{redact_url(url)}: redirect ({response.status}) without a Location")
                        url = urljoin(url, location)
                        continue
                    self._status(url, response)
                    seen = {ETAG: response.getheader("ETag") or "", MODIFIED: response.getheader("Last-Modified") or ""}
                    return self._save(url, response, work_dir), seen
                finally:
                    conn.close()
        raise PermanentError(f"{redact_url(url)}: more than {self.config.max_redirects} redirects")

    def _connect(self, url: str) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        timeout = self.config.io_timeout
        if parts.scheme.lower() == "https":
            return http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                               context=self._context())
        return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)

    def _status(self, url: str, response: http.client.HTTPResponse) -> None:
        status = response.status
        if 200 <= status < 300:
            return
        text = f"{redact_url(url)}: HTTP {status} {response.reason}"
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
