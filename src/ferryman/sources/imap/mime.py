"""MIME for the `imap` source: BODYSTRUCTURE → parts, header decoding, safe names, streaming decoders.

The server parses the mail; we read its BODYSTRUCTURE answer (never the
whole mail) to decide which parts to fetch.  Anything odd in it — malformed
MIME, undecodable names or headers — becomes a clear message, never a crash.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.header
import email.utils
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from ferryman import templates


@dataclass(frozen=True)
class Part:
    """One leaf of a mail's MIME tree, as BODYSTRUCTURE describes it."""

    number: str
    """IMAP part specifier: ``1``, ``2.1`` …"""
    mime: str
    """``text/plain``, ``application/zip`` … (lower case)."""
    params: dict[str, str] = field(default_factory=dict)
    encoding: str = "7bit"
    size: int = 0
    disposition: str = ""
    filename: str | None = None

    @property
    def is_attachment(self) -> bool:
        if self.disposition == "attachment":
            return True
        # A named part is a file too, unless it is inline text (a body part with a name).
        return self.filename is not None and not (self.disposition == "inline" and self.mime.startswith("text/"))

    @property
    def charset(self) -> str:
        return self.params.get("charset", "utf-8")


def _s(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    return str(value)


def _pairs(value: Any) -> dict[str, str]:
    """BODYSTRUCTURE parameter lists ``(k1 v1 k2 v2 …)`` as a dict with lower-case keys."""
    if not isinstance(value, list | tuple):
        return {}
    items = list(value)
    raw = {_s(items[i]).lower(): _s(items[i + 1]) for i in range(0, len(items) - 1, 2)}
    # RFC 2231 (filename*=utf-8''%E2%82%AC.csv, possibly split in filename*0*, filename*1* …).
    decoded: dict[str, str] = {}
    for key in sorted(raw):
        base = key.split("*", 1)[0]
        if "*" not in key:
            decoded.setdefault(base, raw[key])
            continue
        pieces = "".join(raw[k] for k in sorted(raw, key=_rfc2231_order) if k.split("*", 1)[0] == base)
        try:
            decoded[base] = email.utils.collapse_rfc2231_value(email.utils.decode_rfc2231(pieces))
        except Exception:
            decoded[base] = pieces
    return decoded


def _rfc2231_order(key: str) -> tuple[str, int]:
    base, _, rest = key.partition("*")
    digits = rest.strip("*")
    return base, int(digits) if digits.isdigit() else -1


def parts(structure: Any) -> list[Part]:
    """The leaves of a BODYSTRUCTURE answer, numbered as IMAP numbers them.

    Raises `ValueError` when the structure cannot be read (malformed MIME).
    """
    found: list[Part] = []
    _walk(structure, "", found, top=True)
    return found


def _walk(node: Any, prefix: str, found: list[Part], top: bool) -> None:
    if not isinstance(node, list | tuple) or not node:
        raise ValueError("unreadable BODYSTRUCTURE")
    if isinstance(node[0], list | tuple):
        # multipart: (part1 part2 …) subtype … ; imapclient gives the children as a list first.
        for index, child in enumerate(node[0], start=1):
            _walk(child, f"{prefix}.{index}" if prefix else str(index), found, top=False)
        return
    if len(node) < 7:
        raise ValueError("unreadable BODYSTRUCTURE part")
    mime = f"{_s(node[0]).lower()}/{_s(node[1]).lower()}"
    number = prefix or "1"
    try:
        size = int(node[6])
    except (TypeError, ValueError):
        size = 0
    # Extension data follows the basic fields: text/* has `lines`, message/rfc822 has
    # envelope, body and lines; then md5, then the disposition.
    extra = 8 if mime.startswith("text/") else 10 if mime == "message/rfc822" else 7
    disposition, dparams = "", {}
    if len(node) > extra + 1 and isinstance(node[extra + 1], list | tuple) and node[extra + 1]:
        disposition = _s(node[extra + 1][0]).lower()
        dparams = _pairs(node[extra + 1][1]) if len(node[extra + 1]) > 1 else {}
    params = _pairs(node[2])
    name = dparams.get("filename") or params.get("name")
    found.append(Part(number, mime, params, _s(node[5]).lower() or "7bit", size, disposition,
                      decode_words(name) if name else None))


def decode_words(value: str) -> str:
    """A header value as text: RFC 2047 words decoded, raw 8-bit bytes read as UTF-8 or Latin-1."""
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        raw = value.encode("utf-8", errors="surrogateescape")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            value = raw.decode("cp1252", errors="replace")
    if "=?" in value:
        with contextlib.suppress(Exception):  # undecodable words stay as they are: still text
            value = str(email.header.make_header(email.header.decode_header(value)))
    # Unfold and drop control characters: meta values are single lines.
    return "".join(ch for ch in " ".join(value.split()) if unicodedata.category(ch) != "Cc")


def parse_headers(raw: bytes) -> Message:
    """A header block parsed leniently (never raises on malformed input)."""
    return BytesHeaderParser(policy=compat32).parsebytes(raw)


def header(message: Message, name: str) -> str | None:
    """One header decoded to a single line of text, None when absent."""
    wanted = name.lower()
    # raw_items: the stored value, before the policy replaces undecodable bytes by U+FFFD.
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return decode_words(str(value))
    return None


def message_id(message: Message) -> str | None:
    """The Message-ID without angle brackets or spaces, None when absent or empty."""
    value = header(message, "Message-ID")
    if not value:
        return None
    match = re.search(r"<([^<>\s]+)>", value)
    text = match.group(1) if match else value.strip()
    return text or None


_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')


def safe_name(name: str | None, fallback: str) -> str:
    """A plain file name from an untrusted one: the last path segment, no control characters.

    ``../../etc/passwd`` becomes ``passwd``; a name with nothing left becomes `fallback`.
    """
    if name:
        name = unicodedata.normalize("NFC", name)
        name = re.split(r"[/\\]", name)[-1]
        name = _UNSAFE.sub("_", name).strip().lstrip(".")
        name = name[:200]
    if not name or name in (".", ".."):
        return fallback
    return name


def unique(name: str, taken: set[str]) -> str:
    """`name`, or ``stem-1.ext`` … when it is already in `taken` (which is updated)."""
    candidate = name
    n = 1
    while candidate in taken:
        candidate = templates.numbered(name, n)
        n += 1
    taken.add(candidate)
    return candidate


class Decoder:
    """Decodes a Content-Transfer-Encoding chunk by chunk (base64, quoted-printable, or none)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding.lower()
        self._rest = b""

    def feed(self, data: bytes) -> bytes:
        if self.encoding == "base64":
            data = self._rest + re.sub(rb"[^A-Za-z0-9+/=]", b"", data)
            cut = len(data) - len(data) % 4
            self._rest = data[cut:]
            return self._b64(data[:cut])
        if self.encoding == "quoted-printable":
            data = self._rest + data
            cut = data.rfind(b"\n") + 1
            self._rest = data[cut:]
            return binascii.a2b_qp(data[:cut])
        return data

    def close(self) -> bytes:
        rest, self._rest = self._rest, b""
        if not rest:
            return b""
        if self.encoding == "base64":
            return self._b64(rest + b"=" * (-len(rest) % 4))
        if self.encoding == "quoted-printable":
            return binascii.a2b_qp(rest)
        return rest

    @staticmethod
    def _b64(data: bytes) -> bytes:
        try:
            return base64.b64decode(data)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"bad base64 in the attachment: {exc}") from None


def decode_text(data: bytes, part: Part) -> str:
    """A whole (small) text part decoded to text, unknown charsets read as UTF-8 with replacement."""
    decoder = Decoder(part.encoding)
    raw = decoder.feed(data) + decoder.close()
    try:
        return raw.decode(part.charset, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def text_part(found: Sequence[Part]) -> Part | None:
    """The part to look for a link in: the first text/plain body part, else the first text/html."""
    for wanted in ("text/plain", "text/html"):
        for part in found:
            if part.mime == wanted and not part.is_attachment:
                return part
    return None
