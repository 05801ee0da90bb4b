"""Disposal for the `imap` source: the `after` action on one mail, on a connection of its own.

Workers finish items while the watching connection sits in IDLE, so the
actions use a second connection, opened lazily, reused, and re-opened once
when it broke.  Only the item's own mail is ever touched: MOVE where the
server has it, else COPY + ``\\Deleted`` + ``UID EXPUNGE`` of that one UID.

Every action is safe to repeat: the mail is looked up by UID (or Message-ID
after a renumbering) right before it, so a mail that is gone already — moved
by an earlier run cut short by a crash, or by another instance sharing the
journal — is left alone, and only that UID is ever expunged.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from imapclient import IMAPClient

from ferryman import templates
from ferryman.errors import TransientError
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.sources.imap.client import ImapLogin, close_quietly, imap_errors, select_mailbox

if TYPE_CHECKING:
    from ferryman.sources.imap.config import ImapSourceConfig


class Disposer:
    """Applies `config.after` to the mail an item came from (thread-safe)."""

    def __init__(self, login: ImapLogin, config: ImapSourceConfig, flow: FlowContext) -> None:
        self.login = login
        self.config = config
        self.flow = flow
        self.where = f"{login.where} mailbox {config.mailbox!r}"
        self._client: IMAPClient | None = None
        self._lock = threading.Lock()

    def dispose(self, item: Item, found: tuple[int, int] | None = None) -> None:
        """Apply `after` to the item's mail; `found` is (UIDVALIDITY, UID) where a leftover search saw
        it just now (a disposal finished after a crash), else the mail is where the item's meta says."""
        with self._lock:
            for attempt in (1, 2):
                if self._client is None:
                    self._client = self.login.open()
                try:
                    with imap_errors(f"{self.where}: disposing of mail UID {item.meta['mail_uid']}",
                                     self.login.secrets):
                        self._act(self._client, item, found)
                    return
                except TransientError:
                    client, self._client = self._client, None
                    close_quietly(client, broken=True)
                    if attempt == 2:
                        raise

    def _act(self, client: IMAPClient, item: Item, found: tuple[int, int] | None) -> None:
        validity, _ = select_mailbox(client, self.config.mailbox, self.where, readonly=False)
        was, uid = found or (int(item.meta.get("mail_uidvalidity") or 0), int(item.meta["mail_uid"]))
        if validity != was:
            uid = self._locate(client, item.meta.get("mail_message_id", ""))  # the mailbox was renumbered
        elif not client.search(["UID", str(uid)]):
            uid = 0
        if not uid:
            # After a crash (`found`) another instance may well have finished the job: not worth a warning.
            self.flow.log.log(logging.INFO if found else logging.WARNING,
                              "%s: %s is no longer in %s; nothing to dispose of",
                              self.flow.flow, item.origin, self.config.mailbox)
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
        self.flow.log.info("%s: %s: %s%s", self.flow.flow, item.origin, done,
                           " (finishing a disposal that a crash or an outage cut short)" if found else "")

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
