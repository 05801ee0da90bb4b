"""The SQLite journal beyond the contract: group commit, durability under SIGKILL, bad files."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from ferryman.errors import ConfigError, JournalError
from ferryman.item import Candidate, Item, State
from ferryman.journal import open_journal
from ferryman.journal.sqlite import SqliteJournal
from support import wait_for


def claimed_items(j: SqliteJournal, n: int, flow: str = "f") -> list[Item]:
    items = j.admit(flow, [Candidate(key=f"k{i}", files=()) for i in range(n)])
    out = []
    for item in items:
        claimed = j.claim(item.id, "w", 60)
        assert claimed is not None
        out.append(claimed)
    j.flush()
    return out


def finish_all_concurrently(j: SqliteJournal, items: list[Item], threads: int) -> None:
    start = threading.Barrier(threads)

    def worker(mine: list[Item]) -> None:
        start.wait()
        for item in mine:
            item.state = State.DONE
            j.finish(item)

    pool = [threading.Thread(target=worker, args=(items[n::threads],)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def test_concurrent_finishes_share_commits(tmp_path: Path) -> None:
    j = SqliteJournal(tmp_path / "journal.db")
    try:
        items = claimed_items(j, 400)
        before = j.commits
        finish_all_concurrently(j, items, threads=16)
        commits = j.commits - before
        assert j.counts() == {"f": {"done": 400}}, "every finish is committed on return"
        assert commits < 400 / 2, f"{commits} commits for 400 finishes: no grouping"
    finally:
        j.close()


def test_writes_queued_during_a_commit_go_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = SqliteJournal(path)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        items = claimed_items(j, 20)
        before = j.commits
        queued: list[object] = []
        enqueue = j._enqueue
        j._enqueue = lambda write: (enqueue(write), queued.append(write))  # type: ignore[method-assign]
        # Another process holds the write lock: the writer waits in BEGIN with what it
        # took from the queue, while the rest of the 20 finishes queue up behind it.
        blocker.execute("BEGIN IMMEDIATE")
        releaser = threading.Thread(target=lambda: (
            wait_for(lambda: len(queued) == 20), blocker.execute("COMMIT")))
        releaser.start()
        finish_all_concurrently(j, items, threads=20)
        releaser.join()
        assert j.commits - before <= 2
        assert j.counts() == {"f": {"done": 20}}
    finally:
        blocker.close()
        j.close()


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ferryman.item import Candidate, State, StepRun
    from ferryman.journal.sqlite import SqliteJournal

    j = SqliteJournal(Path(sys.argv[1]))
    n = 0
    while True:
        (item,) = j.admit("f", [Candidate(key=f"k{n}", files=())])
        item = j.claim(item.id, "w", 60)
        j.step_done(StepRun(item.id, 0, "s", time.time(), time.time(), "done"), ["/w/x"], {})
        item.state = State.DONE
        j.finish(item)
        print(item.id, flush=True)
        n += 1
""")


def test_a_finish_that_returned_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None
        reported = [child.stdout.readline().strip() for _ in range(25)]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert all(reported), "the child died early"
    j = SqliteJournal(path)
    try:
        for item_id in reported:
            item = j.get(item_id)
            assert item is not None and item.state == State.DONE and item.step == 1
    finally:
        j.close()


def test_a_failed_commit_fails_the_waiting_caller_and_the_journal_goes_on(
        tmp_path: Path) -> None:
    j = SqliteJournal(tmp_path / "journal.db")
    try:
        pages = j._write(lambda cur: cur.execute("PRAGMA page_count").fetchone()[0], durable=True)
        # SQLite's own "disk full" (SQLITE_FULL), reached by capping the file's size.
        j._write(lambda cur: cur.execute(f"PRAGMA max_page_count = {pages + 2}"), durable=True)
        big = [Candidate(key=f"k{n}", files=(), meta={"pad": "x" * 500}) for n in range(2000)]
        with pytest.raises(JournalError, match=r"^writing the journal .* failed: database or disk is full$"):
            j.admit("f", big)
        j._write(lambda cur: cur.execute("PRAGMA max_page_count = 1073741823"), durable=True)
        assert j.counts() == {}, "nothing of the failed transaction remains"
        assert len(j.admit("f", big)) == 2000
    finally:
        j.close()


def test_disk_full_at_open(tmp_path: Path) -> None:
    (tmp_path / "journal.db").symlink_to("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(JournalError, match=r"^cannot open the journal .*: database or disk is full$"):
        open_journal("sqlite", tmp_path)


def test_unusable_folder_and_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(JournalError, match=r"^cannot open the journal .*a-file/root/journal.db: "):
        open_journal("sqlite", tmp_path / "a-file" / "root")
    (tmp_path / "journal.db").write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(JournalError, match=r"file is not a database \(the file is damaged"):
        open_journal("sqlite", tmp_path)


def test_messages_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "journal.db").write_bytes(b"garbage" * 1000)
    with pytest.raises(JournalError) as caught:
        open_journal("sqlite", tmp_path)
    assert "\n" not in str(caught.value)


def test_open_journal_specs(tmp_path: Path) -> None:
    j = open_journal("sqlite", tmp_path / "root")
    j.close()
    assert (tmp_path / "root" / "journal.db").exists()
    assert (tmp_path / "root" / "journal.db").read_bytes()[:16] == b"SQLite format 3\x00"
    elsewhere = tmp_path / "elsewhere" / "j.db"
    open_journal(f"sqlite:///{elsewhere}", tmp_path / "root").close()
    assert elsewhere.exists()
    open_journal("sqlite:///rel/j.db", tmp_path / "root").close()
    assert (tmp_path / "root" / "rel" / "j.db").exists()
    with pytest.raises(ConfigError, match=r"journal 'mysql://u:\*\*\*@h/db' is not understood"):
        open_journal("mysql://u:secret@h/db", tmp_path)


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    open_journal("sqlite", tmp_path).close()
    conn = sqlite3.connect(tmp_path / "journal.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_progress_writes_are_committed_soon_without_a_durable_write(tmp_path: Path) -> None:
    j = SqliteJournal(tmp_path / "journal.db", commit_delay=0.05)
    try:
        (item,) = j.admit("f", [Candidate(key="a", files=())])
        assert j.claim(item.id, "w", 60) is not None
        # Nobody waits for the claim's commit; the writer commits it after commit_delay anyway.
        wait_for(lambda: (got := j.get(item.id)) is not None and got.state == State.RUNNING)
    finally:
        j.close()


def test_known_answers_for_thousands_of_keys(tmp_path: Path) -> None:
    j = SqliteJournal(tmp_path / "journal.db")
    try:
        keys = [f"/in/file-{n}.csv:4096:1700000000.0" for n in range(5000)]
        j.admit("f", [Candidate(key=k, files=()) for k in keys[::2]])
        assert j.known("f", keys) == set(keys[::2])
    finally:
        j.close()


def test_the_journal_is_private_to_its_owner(tmp_path: Path) -> None:
    """Items keep their pre-signed download links: the file is 0600 whatever the umask, -wal and -shm too."""
    old = os.umask(0o022)
    try:
        j = open_journal("sqlite", tmp_path)
        j.admit("f", [Candidate(key="k", files=(), meta={"url": "https://h/x.zip?X-Amz-Signature=ab"})])
        files = sorted(p.name for p in tmp_path.iterdir())
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        j.close()
    finally:
        os.umask(old)
    assert files == ["journal.db", "journal.db-shm", "journal.db-wal"]
    assert modes == dict.fromkeys(files, 0o600)


def test_a_journal_others_can_read_is_named_in_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("ferryman.journal")
    logger.addHandler(handler)  # its own handler: an in-process `ferryman run` may stop "ferryman" propagating
    try:
        open_journal("sqlite", tmp_path).close()
        assert warnings == []
        (tmp_path / "journal.db").chmod(0o644)
        open_journal("sqlite", tmp_path).close()
    finally:
        logger.removeHandler(handler)
    (message,) = warnings
    assert f"{tmp_path / 'journal.db'} (mode 0644)" in message and "chmod 600" in message
    assert (tmp_path / "journal.db").stat().st_mode & 0o777 == 0o644   # told, not changed behind the owner's back
