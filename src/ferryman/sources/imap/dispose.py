"""Disposal for the `imap` source: the `after` action on one mail, on a connection of its own.

Workers finish items while the watching connection sits in IDLE, so the
actions use a second connection, opened lazily, reused, and re-opened once
when it broke.  Only the item's own mail is ever touched: MOVE where the
server has it, else COPY + ``\\Deleted`` + ``UID EXPUNGE`` of that one UID.

Every action is safe to repeat: the mail is looked up by UID (or Message-ID
after a renumbering) right before it, so a mail that is gone already — moved
by an earlier run cut short by a crash, or by another instance sharing the
journal — is left alone, and only that UID is ever expunged.

A leftover search (see `source`) may hand over a mail that is not the item's
own: a second mail with a Message-ID already delivered.  The action then goes
to that mail, unprocessed, and the log line names it and says why ("already
delivered as item N").  What the search saw counts only for an item that had
ended before it: an item still running or waiting for a retry then disposes
of its own mail when it ends, as always.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imapclient import IMAPClient

from ferryman import templates
from ferryman.errors import TransientError
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.sources.imap.client import ImapLogin, close_quietly, imap_errors, select_mailbox

if TYPE_CHECKING:
    from ferryman.sources.imap.config import ImapSourceConfig


@dataclass(frozen=True)
class Found:
    """Where a leftover search saw a mail whose key the journal knows, and when."""

    validity: int
    uid: int
    origin: str
    """That mail as the log names it: ``mail UID 3 in INBOX (subject)``."""
    at: float
    """When the search began (``time.time()``)."""


class Disposer:
    """Applies `config.after` to the mail an item came from (thread-safe)."""

    def __init__(self, login: ImapLogin, config: ImapSourceConfig, flow: FlowContext) -> None:
        self.login = login
        self.config = config
        self.flow = flow
        self.where = f"{login.where} mailbox {config.mailbox!r}"
        self._client: IMAPClient | None = None
        self._lock = threading.Lock()

    def dispose(self, item: Item, found: Found | None = None) -> None:
        """Apply `after` to the item's mail, where the item's meta says it is, or to the mail a leftover
        search just `found` with the item's key (its own mail, left by a crash; or a duplicate)."""
        if found is not None and not self._ended_before(item, found):
            # The item was running or waiting for a retry when the search saw the mail (rightly still
            # there): this is its ordinary end, and its own mail is the one to dispose of.
            found = None
        with self._lock:
            for attempt in (1, 2):
                if self._client is None:
                    self._client = self.login.open()
                try:
                    uid = found.uid if found else item.meta["mail_uid"]
                    with imap_errors(f"{self.where}: disposing of mail UID {uid}", self.login.secrets):
                        self._act(self._client, item, found)
                    return
                except TransientError:
                    client, self._client = self._client, None
                    close_quietly(client, broken=True)
                    if attempt == 2:
                        raise

    def _act(self, client: IMAPClient, item: Item, found: Found | None) -> None:
        validity, _ = select_mailbox(client, self.config.mailbox, self.where, readonly=False)
        own = (int(item.meta.get("mail_uidvalidity") or 0), int(item.meta["mail_uid"]))
        was, uid = (found.validity, found.uid) if found else own
        if validity != was:
            uid = self._locate(client, item.meta.get("mail_message_id", ""))  # the mailbox was renumbered
        elif not client.search(["UID", str(uid)]):
            uid = 0
        duplicate = found is not None and found.validity == own[0] and found.uid != own[1]
        named = found.origin if found and (duplicate or found.validity != own[0]) else item.origin
        if not uid:
            # After a crash (`found`) another instance may well have finished the job: not worth a warning.
            self.flow.log.log(logging.INFO if found else logging.WARNING,
                              "%s: %s is no longer in %s; nothing to dispose of",
                              self.flow.flow, named, self.config.mailbox)
            return
        after = self.config.after
        done: str = str(after)
        if after == "seen":
            client.add_flags([uid], [b"\\Seen"], silent=True)
        elif after == "delete":
            self._expunge(client, uid)
        elif not isinstance(after, str):
            target = templates.render(after.move, templates.fields_for(flow=self.flow.flow, item=item.id,
                                                                       meta=item.meta))
            if client.has_capability("MOVE"):
                client.move([uid], target)
            else:
                client.copy([uid], target)
                self._expunge(client, uid)
            done = f"moved to {target}"
        if duplicate:
            mid = item.meta.get("mail_message_id")
            same = f"Message-ID <{mid}>" if mid else "header block (it has no Message-ID)"
            self.flow.log.warning("%s: %s: %s without being processed: its %s was already delivered as item %s",
                                  self.flow.flow, named, done, same, item.id)
        else:
            self.flow.log.log(logging.INFO if found else logging.DEBUG, "%s: %s: %s%s", self.flow.flow, named, done,
                               " (finishing a disposal that a crash or an outage cut short)" if found else "")

    def _ended_before(self, item: Item, found: Found) -> bool:
        """Whether the item had ended before the leftover search saw its key (a crash cut its
        disposal short, or `found` is a duplicate), rather than ending only now."""
        journaled = self.flow.journal.get(item.id)  # the caller's copy may still carry its claim's time
        return journaled is None or journaled.updated_at <= found.at

    def _locate(self, client: IMAPClient, mid: str) -> int:
        if not mid:
            return 0
        found = client.search(["HEADER", "Message-ID", mid])
        return min(found) if found else 0

    def _expunge(self, client: IMAPClient, uid: int) -> None:
        client.add_flags([uid], [b"\\Deleted"], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge([uid])  # that mail only, never others marked \Deleted
        else:
            self.flow.log.warning("%s: the server has no UIDPLUS; mail UID %s is marked \\Deleted and will be "
                                  "removed at the server's next expunge", self.flow.flow, uid)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            close_quietly(client)
