"""The ``imap`` source's config: which mailbox, which mails (`ImapMatch`), what an item takes
and what happens to a mail after.  At the bottom of the package: the parts import it.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import Field, field_validator

from ferryman import templates
from ferryman.model import Model
from ferryman.sources.base import SourceConfig
from ferryman.units import Duration, parse_duration


class ImapMatch(Model):
    """Which mails are items; every condition is evaluated by the server (UID SEARCH)."""

    from_: str | None = Field(None, alias="from", description="Text in the From header (IMAP substring match).")
    to: str | None = Field(None, description="Text in the To header (IMAP substring match).")
    subject: str | None = Field(None, description="Text in the Subject (IMAP substring match).")
    since: str | None = Field(None, description="Only mails received on or after a date ('2024-01-31') "
                              "or within a duration ('30d').")
    headers: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Header name → value (or list of values, any of which matches). The server narrows "
        "by substring, then the value must equal one of them exactly (case-insensitive); an empty "
        "value means 'has this header'.",
    )

    @field_validator("since")
    @classmethod
    def _since(cls, value: str | None) -> str | None:
        if value is not None:
            since_date(value)
        return value


def since_date(value: str) -> date:
    """The SINCE date: an ISO date, or today minus a duration."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        return (datetime.now() - timedelta(seconds=parse_duration(value))).date()
    except ValueError:
        raise ValueError(f"since: {value!r} is neither a date (2024-01-31) nor a duration (30d)") from None


class MoveAfter(Model):
    move: str = Field(description="Mailbox to move the mail to after success, e.g. 'Archive' or "
                      "'[Gmail]/All Mail' (templates like 'Archive/{now:%Y}' allowed).")

    @field_validator("move")
    @classmethod
    def _template(cls, value: str) -> str:
        templates.check(value)
        if not value.strip():
            raise ValueError("name the mailbox to move mails to")
        return value


class ImapSourceConfig(SourceConfig):
    """Mails in an IMAP mailbox that match a server-side search."""

    type: Literal["imap"]
    connection: str = Field(description="Name of an [connections.NAME] of type imap.")
    mailbox: str = Field("INBOX", description="Mailbox (folder) to watch.")
    match: ImapMatch = Field(default_factory=ImapMatch, description="Which mails are items (server-side search).")  # type: ignore[arg-type]
    take: Literal["attachments", "link", "message"] = Field(
        "attachments", description="What an item carries: the mail's attachments (one file each), "
        "the link found in it (meta.url, for a download step), or the whole mail as a .eml file.")
    include: list[str] = Field(["*"], description="take = attachments: only attachments whose names match these globs.")
    link_header: str | None = Field(None, description="take = link: read the URL from this header "
                                    "instead of the text part.")
    link_pattern: str = Field(r"https?://[^\s<>\"']+", description="take = link: regex of the URL; the "
                              "first match in the mail's text part (text/plain, else text/html) is used.")
    headers: dict[str, str] = Field(default_factory=dict, description="meta key → header name copied into "
                                    "the item's meta, e.g. { export_id = \"X-ITRP-ExportID\" }.")
    after: Literal["keep", "delete", "seen"] | MoveAfter = Field(
        "keep", description="After success: keep the mail, delete it, mark it seen, or { move = \"Archive\" }. "
        "A failed mail is never touched.")
    idle: bool = Field(True, description="Use IMAP IDLE (push) when the server supports it; else poll.")
    idle_restart: Duration = Field(600.0, description="Restart IDLE this often (servers drop it after 29 min).")

    @field_validator("link_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from None
        return value

    @field_validator("idle_restart")
    @classmethod
    def _restart(cls, value: float) -> float:
        if not 1 <= value <= 29 * 60:
            raise ValueError("idle_restart must be between 1s and 29m (RFC 2177)")
        return value
