"""The parts of the `SourceContract` that apply to the ``imap`` source, against a real Dovecot.

An original here is a mail whose subject is the original's name, with one
attachment of that name (``take = "attachments"``, the default).  A mail never
changes and is whole once it is in the mailbox, so the promises about changed,
half-written, temporary and done files do not apply; the source has no
``explain``/``key_of`` (``ferryman why`` takes paths and URLs) and selects mails
with ``match``, not with include/exclude globs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ferryman.flow import FlowContext
from ferryman.item import Candidate
from ferryman.journal.sqlite import SqliteJournal
from ferryman.sources import SOURCES
from ferryman.sources.base import Source
from ferryman.transports import TransportPool
from servers.dovecot import Dovecot, dovecot, mail
from sources.contract import Place, SourceContract

__all__ = ["dovecot"]

MAIL_NEVER_CHANGES = "a mail never changes: another version is another mail, with another Message-ID and key"
WHOLE_ONCE_THERE = "a mail is whole once APPEND put it in the mailbox: no temporary, hidden or done files"
NO_FOLDERS = "the imap source watches one mailbox: there are no sub-folders to recurse into"
NO_EXPLAIN = "the imap source has no explain (ferryman why takes a path or URL, not a mail)"


class ImapPlace(Place):
    """A fresh user's INBOX; the journal is shared by every source built here (as across a restart)."""

    temporary_names_apply: ClassVar[bool] = False
    idle_config: ClassVar[dict[str, Any]] = {"poll_interval": "1h", "idle_restart": "29m"}

    def __init__(self, server: Dovecot, tmp_path: Path) -> None:
        super().__init__()
        self.server = server
        self.user = server.new_user()
        self.journal = SqliteJournal(tmp_path / "journal.db")
        conn = server.connection(self.user)
        self.flow = FlowContext(flow="t", root=tmp_path / "root", config_dir=tmp_path, connections={"mail": conn},
                                transports=TransportPool({}), journal=self.journal)
        self.base_config = {"type": "imap", "connection": "mail"}

    def build(self, raw: dict[str, Any]) -> Source[Any]:
        cls = SOURCES["imap"]
        return cls(cls.Config.model_validate(raw), self.flow)

    def name_of(self, candidate: Candidate) -> str:
        return candidate.meta["mail_subject"]

    def put(self, name: str, data: bytes, age: float | None = None) -> None:
        # Ages cannot be set; mails are ordered by UID, which grows with every APPEND.
        self.server.append(self.user, mail(name, body="see the attachment", attachments=[(name, data)]))

    def _uids(self, name: str) -> list[int]:
        with self.server.client(self.user) as client:
            client.select_folder("INBOX", readonly=True)
            return [uid for uid, data in client.fetch(client.search(["UNDELETED"]), ["ENVELOPE"]).items()
                    if (data[b"ENVELOPE"].subject or b"").decode() == name]

    def exists(self, name: str) -> bool:
        return bool(self._uids(name))

    def remove(self, name: str) -> None:
        uids = self._uids(name)
        with self.server.client(self.user) as client:
            client.select_folder("INBOX")
            client.add_flags(uids, [b"\\Deleted"])
            client.uid_expunge(uids)

    def rename(self, old: str, new: str) -> None:
        pytest.skip(WHOLE_ONCE_THERE)

    def target(self, name: str) -> str:
        raise AssertionError(NO_EXPLAIN)

    def foreign(self, name: str) -> str:
        raise AssertionError(NO_EXPLAIN)

    def close(self) -> None:
        super().close()
        self.journal.close()


@pytest.fixture
def place(dovecot: Dovecot, tmp_path: Path) -> Iterator[Place]:
    inbox = ImapPlace(dovecot, tmp_path)
    yield inbox
    inbox.close()


class TestImapSourceContract(SourceContract):
    @pytest.mark.skip(reason=MAIL_NEVER_CHANGES)
    def test_a_changed_original_gets_a_new_key(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=MAIL_NEVER_CHANGES)
    def test_a_same_size_rewrite_gets_a_new_key(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=MAIL_NEVER_CHANGES)
    def test_a_version_changed_since_it_was_processed_is_never_removed(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=WHOLE_ONCE_THERE)
    def test_an_original_still_being_written_is_not_offered(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=WHOLE_ONCE_THERE)
    def test_temporary_and_hidden_files_are_never_offered(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=WHOLE_ONCE_THERE)
    def test_done_files(self, place: Place) -> None: ...

    @pytest.mark.skip(reason="mails are selected by `match` (a server-side search); `include` selects "
                             "attachments within a mail and there is no `exclude`")
    def test_include_and_exclude_select(self, place: Place) -> None: ...

    @pytest.mark.skip(reason="a mail with no attachment matching meta_from_name is still offered, with "
                             "meta.problem, so that its item fails loudly (the implicit meta step); " + NO_EXPLAIN)
    def test_a_name_not_matching_meta_from_name_is_not_offered_and_explained(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=WHOLE_ONCE_THERE)
    def test_ignore_and_ignore_hidden_can_be_changed(self, place: Place) -> None: ...

    @pytest.mark.skip(reason="after = {move = …} moves the mail to another mailbox (see test_imap.py), "
                             "not to a folder beside it")
    def test_after_move_moves_and_never_overwrites(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=NO_FOLDERS)
    def test_recursive(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=NO_FOLDERS)
    def test_recursive_never_offers_moved_originals(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=NO_FOLDERS)
    def test_recursive_move_needs_a_fixed_folder(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=NO_EXPLAIN)
    def test_explain_and_key_of_with_unicode_and_space_names(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=NO_EXPLAIN)
    def test_explain_of_a_missing_or_foreign_original(self, place: Place) -> None: ...

    @pytest.mark.skip(reason=NO_EXPLAIN)
    def test_key_of_gives_the_key_a_scan_gives(self, place: Place) -> None: ...
