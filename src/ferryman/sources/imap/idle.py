"""How the `imap` source waits for news between scans: IMAP IDLE on the reading connection.

IDLE is left after at most `IDLE_RECHECK` seconds (or ``idle_restart``, or
``poll_interval``) for a cheap re-check, and at once when a mail arrived while
IDLE was being entered, whose EXISTS the server will not announce again.
"""

from __future__ import annotations

import imaplib
import select
import threading
import time
from typing import TYPE_CHECKING, Any

from imapclient import IMAPClient

if TYPE_CHECKING:
    from ferryman.sources.imap.config import ImapSourceConfig

IDLE_RECHECK = 5.0
"""Seconds after which IDLE is left for a cheap re-check (an O(1) scan).  An EXISTS that reaches
imaplib's read buffers together with another line is invisible to poll(); this bounds how long
such a mail can wait (IDLE itself delivers the others at once)."""


def idle_until_news(client: IMAPClient, config: ImapSourceConfig, uidnext: int, stop: threading.Event) -> None:
    """Wait in IDLE until the mailbox changes, `stop` is set or the re-check is due; return at once
    when UIDNEXT is no longer `uidnext` (what the last scan saw)."""
    # A mail that arrived during the scan may have been announced (EXISTS) in the answer to one
    # of its commands; IDLE would not announce it again: scan again at once instead.
    client.noop()  # as in ImapSource._position: without it the server may answer STATUS from the session's old view
    status = client.folder_status(config.mailbox, [b"UIDNEXT"])
    if int(status.get(b"UIDNEXT", 0)) != uidnext:
        return
    deadline = time.monotonic() + min(config.idle_restart, config.poll_interval, IDLE_RECHECK)
    pending = client._imap.untagged_responses  # imaplib keeps there what came before "+ idling"
    pending.pop("EXISTS", None)
    client.idle()
    if pending.pop("EXISTS", None):
        # A mail arrived between STATUS and IDLE: its EXISTS came before the continuation,
        # so IDLE will not announce it and the socket stays quiet; scan again now.
        client.idle_done()
        return
    poller = select.poll()
    poller.register(client.socket().fileno(), select.POLLIN)
    silent = 0
    while not stop.is_set() and time.monotonic() < deadline:
        if not poller.poll(500):
            continue
        responses = client.idle_check(timeout=0)
        if any(_news(r) for r in responses):
            break
        # imapclient's idle_check swallows EOF: a socket that keeps being readable
        # without a single response is closed.
        silent = 0 if responses else silent + 1
        if silent >= 3:
            raise imaplib.IMAP4.abort("the server closed the connection during IDLE")
    client.idle_done()


def _news(response: Any) -> bool:
    """Whether an untagged IDLE response says the mailbox changed (EXISTS / RECENT)."""
    return isinstance(response, tuple) and len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT")
