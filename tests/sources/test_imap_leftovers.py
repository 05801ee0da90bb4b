"""Mails whose item ended but whose disposal a crash cut short, against a real Dovecot and journal.

The state a SIGKILL leaves is made for real: the item is admitted, claimed and journaled done, and
`finalize` never ran.  A restarted source must offer such mails again — bare, for the engine's
re-disposal — once per connection, and never in a steady-state poll.
"""
# ruff: noqa: F811 - pytest fixtures are imported by name and used as arguments

from __future__ import annotations

import logging
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from imap_harness import MakeSource, admit, make_source  # noqa: F401 - fixture

from ferryman.errors import TransientError
from ferryman.item import Item, Outcome, State
from ferryman.sources.imap import ImapSource
from servers.dovecot import Dovecot, dovecot, mail  # noqa: F401 - fixture

MOVE = {"match": {"headers": {"X-ITRP-ExportID": "777"}}, "after": {"move": "Archive"}}


def ended(source: ImapSource, item: Item, state: State = State.DONE) -> None:
    """Journal the item's end the way the engine does, and stop there (the crash)."""
    journal = source.flow.journal
    claimed = journal.claim(item.id, "crashed", 60)
    assert claimed is not None
    claimed.state, claimed.step = state, 1
    journal.finish(claimed)


def dispose_again(source: ImapSource, key: str) -> None:
    """What the engine does for an offered key whose item ended (`Engine._dispose_again`)."""
    item = source.flow.journal.find(source.flow.flow, key)
    assert item is not None and item.state in (State.DONE, State.FAILED)
    source.finalize(item, Outcome(item.state == State.DONE, item.error))


def archived(server: Dovecot, user: str) -> list[str]:
    with server.client(user) as client:
        client.select_folder("Archive", readonly=True)
        fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        return sorted(v[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip()
                      for v in fetched.values())


def test_ended_mails_left_in_the_mailbox_are_offered_bare_once_per_connection(
        dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    first = dovecot.append(user, mail("first", export_id=777, body="b", attachments=[("a.csv", b"1")]))
    source = make_source(dovecot, user, **MOVE)
    (a,) = admit(source, source.scan())
    source.scan()                                   # the cursor moves past the first mail
    second = dovecot.append(user, mail("second", export_id=777, body="b", attachments=[("b.csv", b"2")]))
    (b,) = admit(source, source.scan())             # the cursor stays just below the second one
    ended(source, a)
    ended(source, b)
    cursor = source.flow.journal.get_cursor("t", "imap:INBOX")
    newest = dovecot.append(user, mail("third", export_id=777, body="b", attachments=[("c.csv", b"3")]))

    restarted = make_source(dovecot, user, **MOVE)
    found = restarted.scan()

    by_uid = {c.meta.get("mail_uid") or c.origin: c for c in found}
    assert set(by_uid) == {f"mail UID {first} in INBOX", f"mail UID {second} in INBOX", str(newest)}
    for bare in (by_uid[f"mail UID {first} in INBOX"], by_uid[f"mail UID {second} in INBOX"]):
        assert bare.files == () and "problem" in bare.meta      # nothing fetched; could never run
    assert [i.key for i in admit(restarted, found)] == [by_uid[str(newest)].key]  # only the new mail
    assert cursor is not None
    assert restarted.flow.journal.get_cursor("t", "imap:INBOX") == f"{cursor.split(':')[0]}:{newest - 1}"

    assert restarted.scan() == []                   # steady state: no search below the cursor
    dovecot.drop_sessions()
    with pytest.raises(TransientError):
        restarted.scan()
    again = restarted.scan()                        # a new connection looks for leftovers again
    assert sorted(c.key for c in again) == sorted([a.key, b.key, by_uid[str(newest)].key])


def test_the_disposal_is_finished_once_and_a_second_instance_finds_nothing_to_do(
        dovecot: Dovecot, make_source: MakeSource, caplog: pytest.LogCaptureFixture) -> None:
    user = dovecot.new_user()
    uid = dovecot.append(user, mail("ours", export_id=777, body="b", attachments=[("a.csv", b"1")]))
    other = dovecot.append(user, mail("not ours", export_id=781, body="b"))
    crashed = make_source(dovecot, user, **MOVE)
    (item,) = admit(crashed, crashed.scan())
    ended(crashed, item)
    one, two = make_source(dovecot, user, **MOVE), make_source(dovecot, user, **MOVE)  # two instances
    (seen_by_one,), (seen_by_two,) = one.scan(), two.scan()
    assert seen_by_one.key == seen_by_two.key == item.key

    with caplog.at_level(logging.INFO):
        dispose_again(one, item.key)
        dispose_again(two, item.key)                # the mail is gone already: quietly nothing

    assert archived(dovecot, user) == ["ours"]
    assert dovecot.uids(user) == [other] and uid not in dovecot.uids(user)
    assert not item.files[0].parent.exists()        # the spool the crash left is removed
    assert [r.levelno for r in caplog.records if "nothing to dispose of" in r.getMessage()] == [logging.INFO]
    assert any("cut short" in r.getMessage() for r in caplog.records)
    assert make_source(dovecot, user, **MOVE).scan() == []


def test_after_seen_offers_only_ended_mails_still_unseen(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    dovecot.append(user, mail("disposed", export_id=777, body="b", attachments=[("a.csv", b"1")]))
    left = dovecot.append(user, mail("left", export_id=777, body="b", attachments=[("b.csv", b"2")]))
    seen = {**MOVE, "after": "seen"}
    source = make_source(dovecot, user, **seen)
    done, cut = admit(source, source.scan())
    ended(source, done)
    source.finalize(done, Outcome(True))            # this one was marked seen before the crash
    ended(source, cut)
    source.scan()                                   # both below the cursor now

    (bare,) = make_source(dovecot, user, **seen).scan()

    assert bare.key == cut.key
    dispose_again(source, bare.key)
    assert b"\\Seen" in dovecot.flags(user, left)


def test_nothing_is_looked_for_when_mails_are_kept(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    dovecot.append(user, mail("ours", export_id=777, body="b", attachments=[("a.csv", b"1")]))
    keep = make_source(dovecot, user, **{**MOVE, "after": "keep"})
    (item,) = admit(keep, keep.scan())
    ended(keep, item)
    assert make_source(dovecot, user, **{**MOVE, "after": "keep"}).scan() == []   # keep disposes of nothing


def test_unknown_mails_below_the_cursor_are_left_alone(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    uid = dovecot.append(user, mail("skipped", export_id=777, body="b", attachments=[("a.csv", b"1")]))
    probe = make_source(dovecot, user, **MOVE)
    assert len(probe.scan()) == 1
    cursor = probe.flow.journal.get_cursor("t", "imap:INBOX")
    assert cursor is not None
    # Someone set the cursor past it (never admitted): it was decided on already.
    probe.flow.journal.set_cursor("t", "imap:INBOX", f"{cursor.split(':')[0]}:{uid}")
    assert make_source(dovecot, user, **MOVE).scan() == []


@pytest.fixture
def logged() -> Iterator[list[logging.LogRecord]]:
    """The records of the `ferryman` logger (its own handler: an in-process `ferryman run` may have
    stopped it propagating to caplog's)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)  # an ordinary disposal is a DEBUG line
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("ferryman")
    level, logger.level = logger.level, logging.DEBUG
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def same_message_id(message: EmailMessage, message_id: str) -> EmailMessage:
    del message["Message-ID"]
    message["Message-ID"] = message_id
    return message


def test_a_second_mail_with_a_delivered_message_id_is_archived_and_named(
        dovecot: Dovecot, make_source: MakeSource, logged: list[logging.LogRecord]) -> None:
    """The second mail is never processed (its key is known); the log line names it, not the first."""
    user = dovecot.new_user()
    first = dovecot.append(user, same_message_id(
        mail("first", export_id=777, body="b", attachments=[("a.csv", b"1")]), "<dup@itrp.test>"))
    source = make_source(dovecot, user, **MOVE)
    (item,) = admit(source, source.scan())
    ended(source, item)
    source.finalize(item, Outcome(True))            # delivered and archived
    second = dovecot.append(user, same_message_id(
        mail("second", export_id=777, body="b", attachments=[("b.csv", b"2")]), "<dup@itrp.test>"))
    logged.clear()

    restarted = make_source(dovecot, user, **MOVE)
    (bare,) = restarted.scan()                      # offered bare: its key is the first mail's
    assert bare.key == item.key and bare.files == () and "problem" in bare.meta
    dispose_again(restarted, bare.key)

    assert archived(dovecot, user) == ["first", "second"]
    assert dovecot.uids(user) == []
    (line,) = [r for r in logged if r.name == "ferryman"]
    assert line.levelno == logging.WARNING
    assert line.getMessage() == (f"t: mail UID {second} in INBOX (second): moved to Archive without being "
                                 f"processed: its Message-ID <dup@itrp.test> was already delivered as item {item.id}")
    assert f"UID {first}" not in line.getMessage() and "cut short" not in line.getMessage()


def test_an_item_still_running_at_the_search_disposes_of_its_own_mail_when_it_ends(
        dovecot: Dovecot, make_source: MakeSource, logged: list[logging.LogRecord]) -> None:
    """A retried item's mail is rightly still in the mailbox when the search sees it: its end is an
    ordinary one (no "crash" said), and it moves its own mail, not a duplicate the search saw last."""
    user = dovecot.new_user()
    own = dovecot.append(user, same_message_id(
        mail("own", export_id=777, body="b", attachments=[("a.csv", b"1")]), "<again@itrp.test>"))
    source = make_source(dovecot, user, **MOVE)
    (item,) = admit(source, source.scan())          # pending: waits for a retry, say
    source.scan()
    duplicate = dovecot.append(user, same_message_id(
        mail("duplicate", export_id=777, body="b", attachments=[("b.csv", b"2")]), "<again@itrp.test>"))
    restarted = make_source(dovecot, user, **MOVE)
    assert [c.key for c in restarted.scan()] == [item.key, item.key]   # both seen, neither admitted
    logged.clear()

    ended(restarted, item)                          # the item ends only now
    restarted.finalize(item, Outcome(True))

    assert archived(dovecot, user) == ["own"]
    assert dovecot.uids(user) == [duplicate]        # left for the next search, which names it
    (line,) = [r for r in logged if r.name == "ferryman" and r.levelno >= logging.DEBUG and "Archive" in r.getMessage()]
    assert line.getMessage() == f"t: {item.origin}: moved to Archive" and line.levelno == logging.DEBUG
    assert f"UID {own}" in item.origin
