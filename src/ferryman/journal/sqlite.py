"""The SQLite journal: one file (``<root>/journal.db``), WAL, group commit.

One writer thread owns the write connection.  Every write is queued to it;
it takes everything queued, applies it in ONE transaction, commits once
(``synchronous=FULL``: the commit is on disk when COMMIT returns) and only
then wakes the callers that wait for durability (`admit`, `finish`, `retry`,
`pause`, `resume`, `set_cursor`, `flush`).  Many workers finishing items at
the same time therefore share one fsync instead of paying one each.

`claim` waits only until the writer applied it (the writer is the only one
who changes rows in this process, so its answer is already right); `step_done`
and `step_failed` do not wait at all.  Since one queue feeds one writer, the
writes land in the order they were made.  A commit that fails (disk full)
fails every waiting caller with a `JournalError`; progress records already
returned are lost, which only means an idempotent step runs again.

Reads use one connection per thread: under WAL they run beside the writer and
see what is committed (not yet what is queued; `flush` first when that matters).
Other processes (the command line) may read and write the same file; SQLite
locks serialize their transactions with ours.

The file is private to the daemon's user: it is created 0600 (SQLite gives the
``-wal`` and ``-shm`` files it creates beside it the same mode), because items
keep what their sources found — an ITRP mail's pre-signed download link
included, which a retry after a restart needs whole.  Opening a journal whose
group or others may read it logs a warning.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from ferryman.errors import JournalError, describe
from ferryman.journal.rows import Cursor, Dialect
from ferryman.journal.sql import SqlJournal

T = TypeVar("T")
log = logging.getLogger("ferryman.journal")


def _reason(exc: BaseException) -> str:
    """SQLite's own words are clear ("database or disk is full"); so are the OS's."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return " ".join(str(exc).split()) if isinstance(exc, sqlite3.Error) else describe(exc)


PRIVATE = 0o600
"""The mode of a journal file ferryman creates: read and written by its owner only."""


def _create_private(path: Path) -> None:
    """Create `path` empty with mode `PRIVATE` when it does not exist (SQLite takes an empty file
    as a new database).  An existing file is left as it is: O_CREAT without O_EXCL never
    changes its mode."""
    if not path.exists():
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE))


def _readable_by_others(path: Path) -> list[str]:
    """The journal's files (the database and its write-ahead log) that its group or others may read."""
    found = []
    for part in (path, path.with_name(path.name + "-wal")):
        try:
            mode = part.stat().st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and mode & (stat.S_IRGRP | stat.S_IROTH):
            found.append(f"{part} (mode {stat.S_IMODE(mode):04o})")
    return found


GATHER_ROUNDS = 8
"""How often the writer looks for more writes to share a commit before it commits anyway."""


class _Write:
    """One queued write: the operation, and how its caller waits for it.

    A caller that waits blocks on a plain lock that the writer releases (lighter
    than an Event: there are several of these per item).
    """

    __slots__ = ("_gate", "durable", "error", "op", "result", "woken")

    def __init__(self, op: Callable[[Cursor], Any], durable: bool, wait: bool) -> None:
        self.op = op
        self.durable = durable
        self.result: Any = None
        self.error: str | None = None
        self.woken = not wait
        self._gate: threading.Lock | None = None
        if wait:
            self._gate = threading.Lock()
            self._gate.acquire()

    def wake(self, error: str | None = None) -> None:
        """Let the caller go on (once); with `error`, its call raises a JournalError."""
        if not self.woken:
            self.woken = True
            self.error = error
            assert self._gate is not None
            self._gate.release()

    def wait(self) -> None:
        assert self._gate is not None
        self._gate.acquire()


class SqliteJournal(SqlJournal):
    """The journal in one SQLite file; safe to use from many threads.

    `commits` counts the transactions the writer committed (tests and
    benchmarks compare it with the number of writes).
    """

    dialect = Dialect(name="sqlite", placeholder="?", serial="INTEGER PRIMARY KEY", real="REAL",
                      compact=" WITHOUT ROWID")

    def __init__(self, path: Path, busy_timeout: float = 30.0, commit_delay: float = 0.05) -> None:
        self.path = Path(path)
        self.commit_delay = commit_delay
        self.where = str(self.path)
        self.commits = 0
        self._busy_timeout = busy_timeout
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._readers: list[sqlite3.Connection] = []
        self._local = threading.local()
        with self._errors("cannot open"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _create_private(self.path)
            self._conn = self._connect()
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = FULL")
                self._migrate()
            except BaseException:
                self._conn.close()
                raise
        exposed = _readable_by_others(self.path)
        if exposed:
            log.warning("the journal can be read by others than its owner: %s; it keeps the full download "
                        "links items came with: chmod 600 %s*", ", ".join(exposed), self.path)
        self._writer = threading.Thread(target=self._run_writer, name="journal-writer", daemon=True)
        self._writer.start()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; the writer says BEGIN/COMMIT itself.
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        # Checkpoint less often than every 1,000 pages (4 MB): pages updated again and
        # again (an item is written 3-4 times) are then copied to the database once.
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        conn.execute(f"PRAGMA journal_size_limit = {64 * 1024 * 1024}")
        return conn

    def _migrate(self) -> None:
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            self._apply_migrations(cur)
            cur.execute("COMMIT")
        except BaseException:
            self._conn.rollback()
            raise

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Map sqlite3 and OS errors to a one-line `JournalError`."""
        try:
            yield
        except JournalError:
            raise
        except (sqlite3.Error, OSError) as exc:
            reason = _reason(exc)
            if "unable to open database file" in reason:
                reason = f"{reason} (does the folder {self.path.parent} exist and is it writable?)"
            elif "file is not a database" in reason:
                reason = f"{reason} (the file is damaged or is not a ferryman journal)"
            raise JournalError(f"{doing} the journal {self.path}: {reason}") from exc

    # -- the writer ----------------------------------------------------------

    def _take(self, timeout: float | None) -> tuple[list[_Write], bool]:
        """Everything queued (waiting up to `timeout` for the first; None: forever, 0: no wait),
        and whether `close` asked the writer to stop."""
        batch: list[_Write | None] = []
        try:
            batch.append(self._queue.get(timeout=timeout) if timeout != 0
                         else self._queue.get_nowait())
            while True:
                batch.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        writes = [w for w in batch if w is not None]
        return writes, len(writes) < len(batch)

    def _run_writer(self) -> None:
        """Apply queued writes in order, in one open transaction, and commit it once someone
        waits for durability, at the latest `commit_delay` after it began, and on close."""
        cur = self._conn.cursor()
        waiting: list[_Write] = []  # durable writes applied in the open transaction
        began: float | None = None  # when the open transaction began (monotonic)
        stopping = False
        while not stopping:
            timeout = None if began is None else max(0.0, began + self.commit_delay - time.monotonic())
            writes, stopping = self._take(timeout)
            taken = list(writes)
            rounds = 0
            try:
                while writes:
                    rounds += 1
                    for write in writes:
                        if began is None:
                            cur.execute("BEGIN IMMEDIATE")
                            began = time.monotonic()
                        write.result = write.op(cur)
                        if write.durable:
                            waiting.append(write)
                        else:
                            # claim: its answer is right already; it need not wait for the fsync
                            write.wake()
                    if not waiting or stopping or rounds > GATHER_ROUNDS:
                        break
                    # Someone waits for the commit: first let the threads that are about to
                    # write (those just woken up) queue their writes, so they share it.
                    time.sleep(0)
                    writes, stopping = self._take(0)
                    taken += writes
                if began is not None and (
                        waiting or stopping or time.monotonic() >= began + self.commit_delay):
                    cur.execute("COMMIT")
                    self.commits += 1
                    began = None
                    for write in waiting:
                        write.wake()
                    waiting = []
            except BaseException as exc:  # the writer must outlive any failure, or callers hang
                try:
                    if self._conn.in_transaction:
                        self._conn.rollback()
                except sqlite3.Error:
                    pass  # already rolled back by SQLite itself (full disk, I/O error)
                message = f"writing the journal {self.path} failed: {_reason(exc)}"
                log.error("%s", message)
                for write in waiting + taken:
                    write.wake(message)
                began, waiting = None, []

    def _enqueue(self, write: _Write) -> None:
        with self._lock:
            if self._closed:
                raise JournalError(f"the journal {self.path} is closed")
            self._queue.put(write)

    def _write(self, op: Callable[[Cursor], T], durable: bool) -> T:
        write = _Write(op, durable, wait=True)
        self._enqueue(write)
        write.wait()
        if write.error is not None:
            raise JournalError(write.error)
        result: T = write.result
        return result

    def _submit(self, op: Callable[[Cursor], object]) -> None:
        self._enqueue(_Write(op, durable=False, wait=False))

    # -- reads ---------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                if self._closed:
                    raise JournalError(f"the journal {self.path} is closed")
                with self._errors("cannot read"):
                    conn = self._connect()
                    conn.execute("PRAGMA query_only = ON")
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    def _read(self, op: Callable[[Cursor], T]) -> T:
        conn = self._reader()
        with self._errors("cannot read"):
            cur = conn.cursor()
            try:
                return op(cur)
            finally:
                cur.close()

    # -- space ---------------------------------------------------------------

    def size(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with suppress(FileNotFoundError):
                total += self.path.with_name(self.path.name + suffix).stat().st_size
        return total

    def vacuum(self, full: bool = False) -> None:
        """Rebuild the file without the free pages, then empty the write-ahead log.

        VACUUM cannot run inside the writer's transactions: it runs on a connection of its own,
        once what is queued is committed; SQLite's locks make other writers (a daemon) wait.
        """
        self.flush()
        with self._errors("cannot vacuum"):
            conn = self._connect()
            try:
                conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()

    # -- life ----------------------------------------------------------------

    def flush(self) -> None:
        """Wait until every write queued before this call is committed."""
        self._write(lambda cur: None, durable=True)

    def close(self) -> None:
        """Commit what is queued, stop the writer and close every connection (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._writer.join()
        self._conn.close()
        for conn in self._readers:
            conn.close()
        self._readers.clear()

    def __repr__(self) -> str:
        return f"SqliteJournal({str(self.path)!r})"
