"""Which mails are `imap` items: the ``UID SEARCH`` criteria built from the ``match`` settings
(`config.ImapMatch`), the exact header check the server cannot do (it matches substrings), and a mail's
journal key (``imap:<mailbox>:<Message-ID>``, or a hash of its header block).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from email.message import Message
from typing import Any

from imapclient import IMAPClient

from ferryman.sources.imap.config import ImapMatch, since_date
from ferryman.sources.imap.mime import header, message_id, parse_headers
from ferryman.sources.imap.take import Mail


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
