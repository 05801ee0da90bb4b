"""Taking what an `imap` item carries: attachments, the link in the text, or the whole mail.

Only the parts BODYSTRUCTURE names are fetched, with ``BODY.PEEK`` (nothing is
marked seen), in `CHUNK`-byte ranges decoded straight into spool files.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imapclient import IMAPClient

from ferryman.errors import PermanentError
from ferryman.sources.imap.mime import Decoder, Part, decode_text, header, parts, safe_name, text_part, unique

if TYPE_CHECKING:
    from ferryman.sources.imap.config import ImapSourceConfig

CHUNK = 1 << 20
"""Bytes per partial FETCH of a part: memory stays bounded whatever the attachment's size."""
MAX_TEXT = 4 << 20
"""A text part larger than this is not searched for a link."""


@dataclass
class Mail:
    """A matching mail as the scan found it: UID, parsed header, journal key, BODYSTRUCTURE."""

    uid: int
    headers: Message
    key: str
    structure: Any


class MailTaker:
    """Writes a mail's wanted parts under `spool_root`/<uidvalidity>-<uid>/ (or finds its link)."""

    def __init__(self, config: ImapSourceConfig, spool_root: Path,
                 meta_from_name: Callable[[str], dict[str, str] | None]) -> None:
        self.config = config
        self.spool_root = spool_root
        self.link = re.compile(config.link_pattern)
        self.meta_from_name = meta_from_name

    def take(self, client: IMAPClient, validity: int, mail: Mail) -> tuple[list[Path], dict[str, str]]:
        """The item's files (in the spool) and meta for one mail; `PermanentError` when it cannot be taken."""
        take = self.config.take
        if take == "link" and self.config.link_header:
            url = header(mail.headers, self.config.link_header)
            if not url:
                raise PermanentError(f"the mail has no {self.config.link_header} header with a link")
            return [], {"url": url}
        try:
            found = parts(mail.structure)
        except ValueError as exc:
            raise PermanentError(f"malformed MIME structure: {exc}") from None
        if take == "link":
            return [], {"url": self._find_link(client, mail.uid, found)}
        spool = self.spool_root / f"{validity}-{mail.uid}"
        shutil.rmtree(spool, ignore_errors=True)
        spool.mkdir(parents=True)
        try:
            if take == "message":
                target = spool / f"mail-{mail.uid}.eml"
                self._fetch_to(client, mail.uid, "", Decoder("8bit"), target)
                return [target], {}
            return self._attachments(client, mail.uid, found, spool)
        except BaseException:
            shutil.rmtree(spool, ignore_errors=True)  # no half-written files left behind
            raise

    def _find_link(self, client: IMAPClient, uid: int, found: list[Part]) -> str:
        part = text_part(found)
        if part is None:
            raise PermanentError("the mail has no text part to find a link in")
        if part.size > MAX_TEXT:
            raise PermanentError(f"the mail's text part is too large to search for a link ({part.size} bytes)")
        data = self._fetch_section(client, uid, part.number, 0, MAX_TEXT + 1)
        text = decode_text(data, part)
        match = self.link.search(text)
        if match is None:
            raise PermanentError(f"no link matching {self.config.link_pattern!r} in the mail's text")
        return match.group(0).rstrip(".,;:)]}>")

    def _attachments(self, client: IMAPClient, uid: int, found: list[Part],
                     spool: Path) -> tuple[list[Path], dict[str, str]]:
        files: list[Path] = []
        meta: dict[str, str] = {}
        taken: set[str] = set()
        for part in found:
            if not part.is_attachment:
                continue
            name = safe_name(part.filename, f"attachment-{part.number}")
            if not any(fnmatch(name, pattern) for pattern in self.config.include):
                continue
            named = self.meta_from_name(name)
            if named is None:
                continue
            meta = {**named, **meta}
            target = spool / unique(name, taken)
            self._fetch_to(client, uid, part.number, Decoder(part.encoding), target)
            files.append(target)
        if not files:
            raise PermanentError(f"the mail has no attachment matching {self.config.include}")
        return files, meta

    def _fetch_section(self, client: IMAPClient, uid: int, section: str, offset: int, length: int) -> bytes:
        answer = client.fetch([uid], [f"BODY.PEEK[{section}]<{offset}.{length}>"]).get(uid)
        if answer is None:
            raise PermanentError("the mail disappeared while it was being read")
        for key, value in answer.items():
            if key.startswith(b"BODY["):
                return bytes(value or b"")
        return b""

    def _fetch_to(self, client: IMAPClient, uid: int, section: str, decoder: Decoder, target: Path) -> None:
        """Fetch a part in `CHUNK`s, decoding into `target` (memory stays bounded)."""
        offset = 0
        with open(target, "wb") as out:
            while True:
                chunk = self._fetch_section(client, uid, section, offset, CHUNK)
                out.write(decoder.feed(chunk))
                offset += len(chunk)
                if len(chunk) < CHUNK:
                    break
            out.write(decoder.close())
