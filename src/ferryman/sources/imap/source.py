"""``imap``: mails matching a server-side search become items (attachments, a link, or the whole mail).

How a scan stays O(1) in the size of the mailbox: the journal keeps a cursor
``UIDVALIDITY:UID`` per mailbox, and only ``UID SEARCH <match> UID last+1:*``
is asked — the server answers from its index, nothing old is fetched.  The
cursor never passes a mail whose item the journal has not admitted yet: it
stops just below the first mail offered in this scan, and the next scan
(which runs after the engine admitted the offer) moves it on.

Keys are ``imap:<mailbox>:<Message-ID>`` (or a hash of the header block when
a mail has none), so a mail is recognised even after the server renumbered
the mailbox (a new UIDVALIDITY): the source then searches the whole mailbox
once and the journal drops what it already knows.

Leftovers: a crash between the journal's commit of an item's end and the
``after`` action leaves the mail in the mailbox, below the cursor or with a
known key, where no scan would offer it again.  So when the source disposes of
mails, the first scan on each new connection (start-up, reconnect) and after a
UIDVALIDITY change also searches the part of the mailbox below the cursor
(``UNSEEN`` only, for ``after = "seen"``) and offers every matching mail whose
key the journal knows as a bare candidate (no parts fetched): the engine never
admits it, and re-runs the disposal of those whose item ended
(`Engine._dispose_again`, as for the folder source).  Steady-state polls stay
``UID last+1:*`` only.

For each new mail only its header and BODYSTRUCTURE are fetched, then only
the wanted parts (``BODY.PEEK``, so nothing is marked seen), in chunks,
decoded straight to files under ``<root>/spool/<flow>/<uidvalidity>-<uid>/``.
The spool folder is removed when the item succeeded; a failed item keeps it
for ``ferryman retry``.  A mail that cannot be taken (no text part to find a
link in, no matching attachment, malformed MIME) becomes an item carrying
``meta.problem``, which the implicit first step fails with that message: the
failure is journaled and notified, that mail stays where it is, others flow.

Beside this module: `search` (which mails match, their keys), `take`
(fetching parts), `idle` (waiting for news), `dispose` (``after``),
`client` (sessions, errors), `mime` (MIME), `config` (the model, at the bottom).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from imapclient import IMAPClient

from ferryman.connections import ImapConnection
from ferryman.errors import FerrymanError, PermanentError, describe
from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item, Outcome
from ferryman.sources.base import Emit, Source
from ferryman.sources.imap.client import ImapLogin, close_quietly, imap_errors, select_mailbox
from ferryman.sources.imap.config import ImapSourceConfig
from ferryman.sources.imap.dispose import Disposer, Found
from ferryman.sources.imap.idle import idle_until_news
from ferryman.sources.imap.mime import header, message_id, safe_name
from ferryman.sources.imap.search import matching, search_criteria
from ferryman.sources.imap.take import Mail, MailTaker

BATCH = 50
"""Mails whose header and structure are fetched per FETCH command."""


class ImapSource(Source[ImapSourceConfig]):
    """Watches one mailbox; see the module docstring for the cursor and spool rules."""

    Config = ImapSourceConfig
    implicit_steps: ClassVar[tuple[dict[str, str], ...]] = ({"type": "meta", "label": "mail", "refuse": "problem"},)
    """Fails items the source could not take from their mail, with the reason in meta.problem."""

    def __init__(self, config: ImapSourceConfig, flow: FlowContext) -> None:
        super().__init__(config, flow)
        conn = flow.connection(config.connection, "imap")
        assert isinstance(conn, ImapConnection)
        self.login = ImapLogin(config.connection, conn)
        self.spool_root = flow.root / "spool" / safe_name(flow.flow, "flow")
        self.taker = MailTaker(config, self.spool_root, self.meta_from_name)
        self.disposer = Disposer(self.login, config, flow)
        self._reader: IMAPClient | None = None
        self._reader_lock = threading.RLock()
        self._selected: int | None = None
        """UIDVALIDITY of the mailbox selected on the reader connection."""
        self._uidnext = 0
        """UIDNEXT as the last scan saw it."""
        self._swept: int | None = None
        """UIDVALIDITY for which this connection looked for leftovers (see the module docstring)."""
        self._leftover_at: dict[str, Found] = {}
        """Key → where (and when) the last leftover search saw a known mail, for `finalize`."""

    @property
    def disposes(self) -> bool:
        return self.config.after != "keep"

    @property
    def where(self) -> str:
        return f"{self.login.where} mailbox {self.config.mailbox!r}"

    # ---- finding mails ---------------------------------------------------------------------

    def scan(self) -> list[Candidate]:
        with self._reader_lock:
            found: list[Candidate] = self._with_reader(self._scan)
            return found

    def _with_reader(self, action: Callable[[IMAPClient], Any]) -> Any:
        if self._reader is None:
            self._reader = self.login.open()
        try:
            with imap_errors(self.where, self.login.secrets):
                return action(self._reader)
        except Exception:
            self._drop_reader(broken=True)  # whatever broke, the next use starts on a fresh connection
            raise

    def _drop_reader(self, broken: bool = False) -> None:
        client, self._reader = self._reader, None
        self._selected = None
        self._swept = None  # a new connection may follow a crash or an outage: look for leftovers again
        close_quietly(client, broken)

    def _position(self, client: IMAPClient) -> tuple[int, int]:
        """(UIDVALIDITY, UIDNEXT) of the watched mailbox, which stays selected between scans.

        Selecting again on every poll costs time in proportion to the mailbox (the
        server counts unseen mails); NOOP + STATUS answer from the index header.
        """
        if self._selected is not None:
            client.noop()  # lets the server show us mails that arrived since the last command
            status = client.folder_status(self.config.mailbox, [b"UIDVALIDITY", b"UIDNEXT"])
            validity = int(status.get(b"UIDVALIDITY", 0))
            if validity == self._selected:
                return validity, int(status.get(b"UIDNEXT", 0))
        self._selected, uidnext = select_mailbox(client, self.config.mailbox, self.where, readonly=True)
        return self._selected, uidnext

    def _scan(self, client: IMAPClient) -> list[Candidate]:
        validity, uidnext = self._position(client)
        self._uidnext = uidnext
        cursor = self._cursor()
        last = cursor[1] if cursor and cursor[0] == validity else 0
        if cursor and cursor[0] != validity:
            self.flow.log.warning("%s: %s changed UIDVALIDITY (%s → %s); looking through the whole mailbox, "
                                  "mails already handled are recognised by Message-ID",
                                  self.flow.flow, self.where, cursor[0], validity)
        sweep = self.disposes and self._swept != validity
        began = time.time()
        if sweep:
            self._leftover_at.clear()
        horizon = uidnext - 1 if uidnext else None
        uids: list[int] = []
        if horizon is None or horizon > last:
            criteria, charset = search_criteria(self.config.match)
            # `last+1:*` always includes the highest UID, even when it is <= last: filter.
            uids = sorted(u for u in client.search([*criteria, "UID", f"{last + 1}:*"], charset) if u > last)
        offered: list[int] = []
        candidates: list[Candidate] = []
        for new, known in self._sorted(client, uids):
            for mail in new:
                candidates.append(self._candidate(client, validity, mail))
                offered.append(mail.uid)
            if sweep:
                candidates += [self._leftover(validity, mail, began) for mail in known]
        if sweep:
            candidates += self._leftovers(client, validity, last, began)
            self._swept = validity
        top = max([last, *uids, *([horizon] if horizon else [])])
        settled = min(offered) - 1 if offered else top
        if cursor != (validity, settled):
            self.flow.journal.set_cursor(self.flow.flow, self._cursor_name, f"{validity}:{settled}")
        return candidates

    def _sorted(self, client: IMAPClient, uids: list[int],
                structure: bool = True) -> Iterator[tuple[list[Mail], list[Mail]]]:
        """The matching mails among `uids`, `BATCH` at a time: (keys new to the journal, keys it knows)."""
        for start in range(0, len(uids), BATCH):
            chunk = uids[start:start + BATCH]
            mails = list(matching(client, self.config.mailbox, self.config.match, chunk, structure))
            known = self.flow.journal.known(self.flow.flow, [m.key for m in mails])
            yield [m for m in mails if m.key not in known], [m for m in mails if m.key in known]

    def _leftovers(self, client: IMAPClient, validity: int, last: int, began: float) -> list[Candidate]:
        """Bare candidates for the known mails at or below the cursor `last` (see the module docstring).

        Unknown mails there are left alone: the cursor says they were decided on already.
        """
        if not last:
            return []
        criteria, charset = search_criteria(self.config.match)
        if self.config.after == "seen":
            criteria.append("UNSEEN")  # a seen mail was disposed of already
        uids = sorted(u for u in client.search([*criteria, "UID", f"1:{last}"], charset) if u <= last)
        return [self._leftover(validity, mail, began)
                for _, known in self._sorted(client, uids, structure=False) for mail in known]

    def _leftover(self, validity: int, mail: Mail, began: float) -> Candidate:
        """A mail whose key the journal knows, offered only so the engine finishes its disposal.

        Nothing is fetched for it.  `meta.problem` makes sure it could never run as an item.
        It may be the item's own mail, or a second mail with the same Message-ID.
        """
        origin = f"mail UID {mail.uid} in {self.config.mailbox}"
        subject = header(mail.headers, "Subject")
        named = origin + (f" ({subject[:80]})" if subject else "")
        self._leftover_at[mail.key] = Found(validity, mail.uid, named, began)
        return Candidate(key=mail.key, files=(), meta={"problem": f"{origin}: offered only to finish its disposal"},
                         order=float(mail.uid), origin=origin)

    @property
    def _cursor_name(self) -> str:
        return f"imap:{self.config.mailbox}"

    def _cursor(self) -> tuple[int, int] | None:
        value = self.flow.journal.get_cursor(self.flow.flow, self._cursor_name)
        if not value:
            return None
        try:
            validity, uid = value.split(":")
            return int(validity), int(uid)
        except ValueError:
            return None

    # ---- taking what the item carries --------------------------------------------------------

    def _candidate(self, client: IMAPClient, validity: int, mail: Mail) -> Candidate:
        subject = header(mail.headers, "Subject") or ""
        meta = {
            "mail_uid": str(mail.uid), "mail_uidvalidity": str(validity), "mail_mailbox": self.config.mailbox,
            "mail_message_id": message_id(mail.headers) or "", "mail_subject": subject,
            "mail_from": header(mail.headers, "From") or "", "mail_date": header(mail.headers, "Date") or "",
        }
        for key, name in self.config.headers.items():
            value = header(mail.headers, name)
            if value is not None:
                meta[key] = value
        origin = f"mail UID {mail.uid} in {self.config.mailbox}" + (f" ({subject[:80]})" if subject else "")
        files: list[Path] = []
        try:
            files, extra = self.taker.take(client, validity, mail)
            meta.update(extra)
        except (ValueError, UnicodeError, LookupError) as exc:
            meta["problem"] = f"{origin}: {describe(exc)}"
        except PermanentError as exc:
            meta["problem"] = f"{origin}: {describe(exc)}"
        if "problem" in meta:
            self.flow.log.warning("%s: %s", self.flow.flow, meta["problem"])
        return Candidate(key=mail.key, files=tuple(files), meta=meta, order=float(mail.uid), origin=origin)

    # ---- watching ---------------------------------------------------------------------------

    def watch(self, emit: Emit, stop: threading.Event) -> None:
        """Scan, offer, then wait for news with IDLE (or `poll_interval`); reconnect with back-off."""
        delay = 1.0
        while not stop.is_set():
            try:
                found = self.scan()
                self.flow.problems.clear(f"source {self.flow.flow}")
                if found:
                    emit(found)
                delay = 1.0
                self._wait(stop)
            except FerrymanError as exc:
                self.flow.problems.report(f"source {self.flow.flow}", f"cannot read the source: {describe(exc)}",
                                          origin=self.config.mailbox)
                self.flow.log.error("%s: %s; trying again in %ss", self.flow.flow, describe(exc), int(delay))
                with self._reader_lock:
                    self._drop_reader(broken=True)
                stop.wait(delay)
                delay = min(delay * 2, 300.0)

    def _wait(self, stop: threading.Event) -> None:
        with self._reader_lock:
            client = self._reader
            if client is None or not self.config.idle or not client.has_capability("IDLE"):
                idle = False
            else:
                idle = True
                self._with_reader(lambda reader: idle_until_news(reader, self.config, self._uidnext, stop))
        if not idle:
            stop.wait(self.config.poll_interval)

    # ---- disposal ---------------------------------------------------------------------------

    def finalize(self, item: Item, outcome: Outcome) -> None:
        """After success: the `after` action on that one mail, then drop its spool folder.
        After a failure nothing is touched (the mail stays, the spool stays for a retry)."""
        found = self._leftover_at.pop(item.key, None)  # where a leftover search just saw the mail
        if not outcome.succeeded:
            return
        try:
            if self.config.after != "keep" and item.meta.get("mail_uid"):
                self.disposer.dispose(item, found)
        finally:
            validity, uid = item.meta.get("mail_uidvalidity"), item.meta.get("mail_uid")
            if validity and uid:
                shutil.rmtree(self.spool_root / f"{validity}-{uid}", ignore_errors=True)

    def close(self) -> None:
        if self._reader_lock.acquire(timeout=5):
            try:
                self._drop_reader()
            finally:
                self._reader_lock.release()
        self.disposer.close()

