"""Which mails are `imap` items: the ``match`` settings, the ``UID SEARCH`` criteria built from
them, the exact header check the server cannot do (it matches substrings), and a mail's
journal key (``imap:<mailbox>:<Message-ID>``, or a hash of its header block).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from email.message import Message
from typing import Any

from imapclient import IMAPClient
from pydantic import Field, field_validator

from ferryman.model import Model
from ferryman.sources.imap_mime import header, message_id, parse_headers
from ferryman.sources.imap_take import Mail
from ferryman.units import parse_duration


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


def search_criteria(match: ImapMatch) -> tuple[list[Any], str | None]:
    """The UID SEARCH keys for `match`, and the charset they need (None when ASCII)."""
    criteria: list[Any] = []
    for word, value in (("FROM", match.from_), ("TO", match.to), ("SUBJECT", match.subject)):
        if value:
            criteria += [word, value]
    if match.since:
        criteria += ["SINCE", since_date(match.since)]
    for name, wanted in match.headers.items():
        values = [wanted] if isinstance(wanted, str) else list(wanted) or [""]
        if "" in values:
            values = [""]
        terms: list[Any] = [["HEADER", name, v] for v in values]
        while len(terms) > 1:  # OR takes two keys: OR (HEADER …) (OR (HEADER …) (HEADER …)) …
            terms = [*terms[:-2], ["OR", terms[-2], terms[-1]]]
        criteria += terms[0]
    text = " ".join(str(c) for c in criteria)
    charset = "UTF-8" if not text.isascii() else None
    return criteria, charset


def matching(client: IMAPClient, mailbox: str, match: ImapMatch, uids: list[int],
             structure: bool = True) -> Iterator[Mail]:
    """Mails among `uids` whose headers match exactly (the server matched substrings); `structure`
    also fetches their BODYSTRUCTURE (needed to take them, not to know them)."""
    fetched = client.fetch(uids, ["BODY.PEEK[HEADER]", *(["BODYSTRUCTURE"] if structure else [])])
    for uid in uids:
        data = fetched.get(uid)
        if data is None:
            continue  # expunged meanwhile
        raw = data.get(b"BODY[HEADER]") or b""
        headers = parse_headers(raw)
        if not exact(match, headers):
            continue
        mid = message_id(headers)
        key = f"imap:{mailbox}:{mid}" if mid else \
            f"imap:{mailbox}:sha256:{hashlib.sha256(raw).hexdigest()[:32]}"
        yield Mail(uid, headers, key, data.get(b"BODYSTRUCTURE"))


def exact(match: ImapMatch, headers: Message) -> bool:
    """Whether `headers` carry every header of `match.headers` with one of its values exactly."""
    for name, wanted in match.headers.items():
        values = [wanted] if isinstance(wanted, str) else list(wanted)
        found = header(headers, name)
        if found is None:
            return False
        values = [v.strip().lower() for v in values]
        if values and "" not in values and found.strip().lower() not in values:
            return False
    return True
