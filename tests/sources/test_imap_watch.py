"""`imap` watching: IDLE push, polling fallback, reconnect after a dropped connection."""
# ruff: noqa: F811 - pytest fixtures are imported by name and used as arguments

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from imap_harness import MakeSource, admit, make_source  # noqa: F401 - fixture

from ferryman.item import Candidate
from ferryman.sources.imap import ImapSource
from servers.dovecot import Dovecot, dovecot, fresh_dovecot, mail  # noqa: F401 - fixture
from support import wait_for


class Watcher:
    """Runs `source.watch` in a thread; emitted candidates are admitted like the engine does."""

    def __init__(self, source: ImapSource) -> None:
        self.source = source
        self.seen: list[tuple[float, Candidate]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=source.watch, args=(self.emit, self.stop), name="imap-watch")

    def emit(self, candidates: list[Candidate]) -> None:
        admit(self.source, candidates)
        self.seen += [(time.monotonic(), c) for c in candidates]

    def subjects(self) -> list[str]:
        return [c.meta["mail_subject"] for _, c in self.seen]


@contextmanager
def watching(source: ImapSource) -> Iterator[Watcher]:
    watcher = Watcher(source)
    watcher.thread.start()
    try:
        yield watcher
    finally:
        watcher.stop.set()
        watcher.thread.join(10)
        assert not watcher.thread.is_alive(), "watch() did not return after stop"


ITRP = {"match": {"headers": {"X-ITRP-ExportID": "777"}}, "take": "link"}


def test_idle_offers_a_new_mail_at_once(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    dovecot.append(user, mail("first", export_id=777, body="https://x.test/1.zip"))
    # Polling every hour: only IDLE can bring the second mail in during this test.
    source = make_source(dovecot, user, poll_interval="1h", **ITRP)
    with watching(source) as watcher:
        wait_for(lambda: watcher.subjects() == ["first"])
        time.sleep(0.2)  # let it enter IDLE
        appended = time.monotonic()
        dovecot.append(user, mail("second", export_id=777, body="https://x.test/2.zip"))
        wait_for(lambda: watcher.subjects() == ["first", "second"])
        print(f"IDLE latency: {watcher.seen[-1][0] - appended:.3f}s")


def test_polling_when_idle_is_off(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    source = make_source(dovecot, user, idle=False, poll_interval="100ms", **ITRP)
    with watching(source) as watcher:
        dovecot.append(user, mail("polled", export_id=777, body="https://x.test/1.zip"))
        wait_for(lambda: watcher.subjects() == ["polled"])


def test_a_connection_dropped_mid_idle_reconnects(fresh_dovecot: Dovecot, make_source: MakeSource,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    server = fresh_dovecot
    user = server.new_user()
    server.append(user, mail("before", export_id=777, body="https://x.test/1.zip"))
    source = make_source(server, user, poll_interval="1h", **ITRP)
    with caplog.at_level(logging.ERROR), watching(source) as watcher:
        wait_for(lambda: watcher.subjects() == ["before"])
        time.sleep(0.2)
        server.drop_sessions()
        server.append(user, mail("after", export_id=777, body="https://x.test/2.zip"))
        wait_for(lambda: watcher.subjects() == ["before", "after"], timeout=15)
    assert any("trying again" in r.getMessage() for r in caplog.records)


def test_a_server_that_is_down_for_a_while(fresh_dovecot: Dovecot, make_source: MakeSource,
                                           caplog: pytest.LogCaptureFixture) -> None:
    server = fresh_dovecot
    user = server.new_user()
    source = make_source(server, user, poll_interval="1h", **ITRP)
    with caplog.at_level(logging.ERROR), watching(source) as watcher:
        time.sleep(0.3)
        server.stop()
        time.sleep(0.5)
        server.start()
        server.append(user, mail("back", export_id=777, body="https://x.test/1.zip"))
        wait_for(lambda: watcher.subjects() == ["back"], timeout=20)
    assert any("connection" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_mailbox_that_vanishes_is_reported_and_watched_again(dovecot: Dovecot, make_source: MakeSource,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    user = dovecot.new_user()
    with dovecot.client(user) as client:
        client.create_folder("Exports")
    dovecot.append(user, mail("first", export_id=777, body="https://x.test/1.zip"), mailbox="Exports")
    source = make_source(dovecot, user, mailbox="Exports", idle=False, poll_interval="100ms", **ITRP)
    with caplog.at_level(logging.ERROR), watching(source) as watcher:
        wait_for(lambda: watcher.subjects() == ["first"])
        with dovecot.client(user) as client:
            client.delete_folder("Exports")
        # The server drops the session that had it selected; the reconnection finds no mailbox.
        wait_for(lambda: any("the mailbox does not exist" in r.getMessage() for r in caplog.records), timeout=15)
        with dovecot.client(user) as client:
            client.create_folder("Exports")
        dovecot.append(user, mail("second", export_id=777, body="https://x.test/2.zip"), mailbox="Exports")
        wait_for(lambda: watcher.subjects() == ["first", "second"], timeout=20)
