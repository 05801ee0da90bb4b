"""``folder``: files arriving in local (or mounted network) folders.

A file becomes a candidate once it is *ready*:

- ``ready = "auto"`` (default): an inotify close-after-write or a rename into
  the folder makes it ready at once; a file found by a scan is ready when its
  size and timestamps have not changed for `settle`;
- ``"stable"``: always wait until unchanged for `settle`;
- ``"lock"``: ready while no ``<file>.lock`` file or folder exists (Rattail's
  ``locking_copy`` makes the lock a folder);
- ``"done_file"``: ready once ``<file>.done`` exists.

The key is ``<absolute path>|<size>|<mtime_ns>``: an unchanged file is the
same item forever (the journal drops it), a rewritten file is a new one.
Watching uses watchdog's inotify observer plus a reconciliation scan every
`rescan`; a kernel queue overflow, a dead observer or a replaced folder
restart the observer and rescan, so no event loss loses a file.  Name rules and
settling live in `ready`, disposal in `dispose`, the watch loop in `watch`,
the config model in `config`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item, Outcome
from ferryman.sources.base import Emit, Source
from ferryman.sources.folder.config import CURSOR, FolderSourceConfig
from ferryman.sources.folder.dispose import dispose, move_targets_inside
from ferryman.sources.folder.ready import UNDECODABLE, NameRules, Settling, Trigger, Verdict, printable

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

class FolderSource(Source[FolderSourceConfig]):
    """Files in folders (see the module docstring for readiness, keys and watching)."""

    Config = FolderSourceConfig

    def __init__(self, config: FolderSourceConfig, flow: FlowContext) -> None:
        super().__init__(config, flow)
        self.roots = [os.path.abspath(flow.resolve(p)) for p in config.folders]
        self._names = NameRules(config, move_targets_inside(config, self.roots), self.meta_from_name)
        self._lock = threading.Lock()
        self._offered: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) already emitted
        self._settling = Settling(config)  # files not settled yet (scan/watch thread only)
        self._marker: int | None = None  # existing = "ignore": files last changed by then are left alone
        self.warned: set[str] = set()  # what was warned about once (not again until it clears)
        self.observer: BaseObserver | None = None  # the watch loop's, while it runs
        self.watching = threading.Event()
        """Set once inotify watches every configured folder and the scan that follows is done."""

    # ---- the Source interface ----------------------------------------------------------

    def waiting(self) -> bool:
        return bool(self._settling.seen or self._settling.writing)

    @property
    def disposes(self) -> bool:
        return self.config.after != "keep" or self.config.after_failure != "keep"

    def scan(self) -> list[Candidate]:
        """Every file ready now, oldest mtime first.  Files changed less than `settle` ago are
        watched for up to `settle` (one sleep), so a file written just before ``run --once`` is taken."""
        self._start()
        ready = self.rescan()
        young = list(self._settling.seen)
        if young:
            due = max(self._settling.seen[p].due for p in young)
            time.sleep(min(self.config.settle, max(0.0, due - time.monotonic())))
            for path in young:
                self._recheck(path, ready)
        return self._remember(ready)

    def watch(self, emit: Emit, stop: threading.Event) -> None:
        """Emit ready files until `stop` is set: inotify events, settle deadlines, rescans
        (see `watch`)."""
        from ferryman.sources.folder.watch import FolderWatch

        self._start()
        FolderWatch(self, emit, stop).run()

    def finalize(self, item: Item, outcome: Outcome) -> None:
        """Keep, delete or move the original (and its done file); errors are raised to the engine."""
        dispose(self.config, self.flow, item, outcome, self._forget)

    def explain(self, path: str) -> str | None:
        """One line on why `path` is (not) picked up; None when it is not under a watched folder."""
        full = os.path.abspath(os.path.expanduser(path))
        located = self._locate(full)
        if located is None:
            return None
        root, rel = located
        if not os.path.lexists(full):
            return "no such file"
        if os.path.isdir(full):
            return "a folder, not a file"
        verdict = self._verdict(full, root, rel, Trigger.SCAN, explaining=True)
        return "ready" if verdict.candidate is not None else verdict.reason

    def key_of(self, path: str) -> str | None:
        """The source key the file at `path` has right now (for ``ferryman why``), or None."""
        full = os.path.abspath(os.path.expanduser(path))
        try:
            st = os.stat(full)
        except OSError:
            return None
        return f"{full}|{st.st_size}|{st.st_mtime_ns}"

    # ---- judging one file ----------------------------------------------------------------

    def _verdict(self, path: str, root: str, rel: str, trigger: Trigger, *,
                 explaining: bool = False) -> Verdict:
        """Whether the file is a candidate now, and if not, why (one line for `explain`)."""
        name = os.path.basename(path)
        problem, meta = self._names.problem(name, rel)
        if problem is not None:
            if problem is UNDECODABLE and not explaining:
                self.warn_once(path, f"{printable(path)}: {problem}")
            return Verdict(None, problem)
        try:
            st = os.stat(path)
        except OSError:  # vanished (they do, all the time) or unreadable folder
            self._settling.seen.pop(path, None)
            return Verdict(None, "cannot be read (it vanished or its folder is not readable)")
        if not stat.S_ISREG(st.st_mode):
            return Verdict(None, "not a regular file")
        if not explaining and self._offered.get(path) == (st.st_size, st.st_mtime_ns):
            self._settling.seen.pop(path, None)
            return Verdict(None, "already offered")
        last_change = max(st.st_mtime_ns, st.st_ctime_ns)
        marker = self._marker if not explaining else self._stored_marker()
        if self.config.existing == "ignore" and marker is None:
            return Verdict(None, "ignored: the flow has not run yet, and files there at its first "
                                 "start are left alone (existing = \"ignore\")")
        if self.config.existing == "ignore" and marker is not None and last_change <= marker:
            return Verdict(None, "ignored: it was already there when the flow first started "
                                 "(existing = \"ignore\")")
        if not os.access(path, os.R_OK):
            if not explaining and path not in self.warned:
                self.warned.add(path)
                message = f"{path} is not readable by ferryman (permission denied); it is picked up once it is"
                if not self.flow.problems.report(f"file {path}", message, origin=path):
                    self.flow.log.warning("%s: %s", self.flow.flow, message)
            return Verdict(None, "not readable by ferryman (permission denied)")
        if not explaining and f"file {path}" in self.flow.problems:
            self.warned.discard(path)
            self.flow.problems.clear(f"file {path}")
        waiting = self._settling.waiting(path, st, trigger, record=not explaining)
        if waiting is not None:
            return Verdict(None, waiting)
        self._settling.seen.pop(path, None)
        self.warned.discard(path)
        meta.update(name=name, path=path, dir=root, relpath=rel, size=str(st.st_size),
                    mtime=datetime.fromtimestamp(st.st_mtime).astimezone().isoformat(timespec="seconds"))
        return Verdict(Candidate(key=f"{path}|{st.st_size}|{st.st_mtime_ns}", files=(Path(path),),
                                 meta=meta, order=st.st_mtime, origin=path), "ready")

    # ---- scanning ------------------------------------------------------------------------

    def rescan(self) -> list[Candidate]:
        """Walk every watched folder: the files ready now; young ones are noted to look at again."""
        ready: list[Candidate] = []
        present: set[str] = set()
        for root in self.roots:
            if not os.path.isdir(root):
                message = f"folder {root} does not exist (yet) or is not a folder; looking again later"
                if not self.flow.problems.report(f"folder {root}", message, origin=root):
                    self.warn_once(root, message)
                continue
            self.warned.discard(root)
            for path, rel in self._walk(root):
                present.add(path)
                verdict = self._verdict(path, root, rel, Trigger.SCAN)
                if verdict.candidate is not None:
                    ready.append(verdict.candidate)
        self.flow.problems.clear_all("file ", {f"file {p}" for p in present})
        with self._lock:
            self._offered = {p: v for p, v in self._offered.items() if p in present}
        self._settling.seen = {p: s for p, s in self._settling.seen.items() if p in present}
        self._settling.writing &= present
        return ready

    def _walk(self, root: str) -> Iterator[tuple[str, str]]:
        """(path, relative path) of every file below `root` (one level unless recursive)."""
        stack = [""]
        while stack:
            prefix = stack.pop()
            try:
                with os.scandir(os.path.join(root, prefix) if prefix else root) as entries:
                    listed = list(entries)
            except OSError as exc:
                folder = os.path.join(root, prefix).rstrip("/")
                message = f"cannot list {folder}: {exc.strerror}"
                if not self.flow.problems.report(f"folder {folder}", message, origin=folder):
                    self.warn_once(folder, message)
                continue
            self.flow.problems.clear(f"folder {os.path.join(root, prefix).rstrip('/')}")
            for entry in listed:
                rel = prefix + entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)  # a symlinked folder may loop
                except OSError:
                    continue
                if not is_dir:
                    yield entry.path, rel
                elif self.config.recursive and not self._names.skip_folder(entry.name, rel):
                    stack.append(rel + "/")

    def _recheck(self, path: str, ready: list[Candidate]) -> None:
        """Look again at a file that was waiting to settle."""
        located = self._locate(path)
        if located is None:
            self._settling.seen.pop(path, None)
            return
        verdict = self._verdict(path, *located, Trigger.SCAN)
        if verdict.candidate is not None:
            ready.append(verdict.candidate)

    def next_due(self) -> float:
        """When (monotonic) the next file waiting to settle should be looked at again."""
        return min((seen.due for seen in self._settling.seen.values()), default=float("inf"))

    def settled(self) -> list[Candidate]:
        """Files whose settle deadline passed and that are ready now."""
        ready: list[Candidate] = []
        now = time.monotonic()
        for path in [p for p, seen in self._settling.seen.items() if seen.due <= now]:
            self._recheck(path, ready)
        return ready

    def _remember(self, ready: list[Candidate]) -> list[Candidate]:
        """`ready` without duplicates, oldest first, remembered as offered."""
        unique = {c.origin: c for c in ready}
        ordered = sorted(unique.values(), key=lambda c: (c.order, c.origin))
        with self._lock:
            for c in ordered:
                self._offered[c.origin] = (int(c.meta["size"]), int(c.key.rsplit("|", 1)[1]))
        return ordered

    def offer(self, emit: Emit, ready: list[Candidate]) -> None:
        """Emit `ready` (oldest first, once per file) and remember it as offered."""
        if ready:
            unique = {c.origin: c for c in ready}
            emit(sorted(unique.values(), key=lambda c: (c.order, c.origin)))
            self._remember(list(unique.values()))

    # ---- events (from the watch loop) -------------------------------------------------------

    def on_event(self, kind: str, path: str, ready: list[Candidate]) -> None:
        """Judge what inotify reported about `path`; ready files are appended to `ready`.

        `kind` is ``created``, ``closed`` (after writing), ``moved_in``, ``deleted`` (or moved
        away), ``dir_created`` or ``dir_moved_in``.
        """
        if kind == "closed" or kind == "moved_in":
            self._touched(path, Trigger.CLOSED, ready)
        elif kind == "created":
            self._touched(path, Trigger.CREATED, ready)
        elif kind == "deleted":
            self._gone(path, ready)
        elif kind in ("dir_created", "dir_moved_in") and self.config.recursive \
                and self._locate(path + "/") is not None:
            # A folder moved in arrives complete; files written in a new folder before inotify
            # watched it send no close event: take them as found by a scan (once settled).
            trigger = Trigger.CLOSED if kind == "dir_moved_in" else Trigger.SCAN
            for file, _ in self._walk(path):
                self._touched(file, trigger, ready)

    def events_lost(self) -> None:
        """Events were (or may have been) lost: judge files seen created but not closed by settle."""
        self._settling.writing.clear()

    def _touched(self, path: str, trigger: Trigger, ready: list[Candidate]) -> None:
        located = self._locate(path)
        if located is None:
            return
        mode = self.config.ready
        if mode == "done_file" and path.endswith(self.config.done_suffix):
            # The done file exists: its data file is complete.
            self._touched(path[: -len(self.config.done_suffix)], Trigger.CLOSED, ready)
            return
        if mode == "lock" and path.endswith(self.config.lock_suffix):
            return  # a lock appeared: its file waits
        if trigger is Trigger.CREATED:
            if mode == "auto" and path not in self._settling.seen:
                self._settling.writing.add(path)
            if mode != "stable":
                return  # wait for close, rename, lock removal or done file
        else:
            self._settling.writing.discard(path)
        verdict = self._verdict(path, *located, trigger)
        if verdict.candidate is not None:
            ready.append(verdict.candidate)

    def _gone(self, path: str, ready: list[Candidate]) -> None:
        self._forget(path)
        self._settling.seen.pop(path, None)
        self._settling.writing.discard(path)
        if self.config.ready == "lock" and path.endswith(self.config.lock_suffix):
            self._touched(path[: -len(self.config.lock_suffix)], Trigger.CLOSED, ready)

    def _locate(self, path: str) -> tuple[str, str] | None:
        """(watched folder, relative path) of `path`, or None when no watched folder holds it."""
        for root in self.roots:
            if self.config.recursive:
                if path.startswith(root.rstrip("/") + "/"):
                    return root, path[len(root.rstrip("/")) + 1:]
            elif os.path.dirname(path) == root:
                return root, os.path.basename(path)
        return None

    # ---- helpers -------------------------------------------------------------------------

    def _start(self) -> None:
        """Load (or, at the first start, store) the existing = "ignore" marker."""
        if self.config.existing != "ignore" or self._marker is not None:
            return
        stored = self._stored_marker()
        if stored is None:
            # The newest change among the files there now, by the file system's own clock
            # (coarser than time.time_ns(), and a network share's server may disagree with ours).
            stored = 0
            for root in self.roots:
                if os.path.isdir(root):
                    for path, _ in self._walk(root):
                        with contextlib.suppress(OSError):
                            st = os.stat(path)
                            stored = max(stored, st.st_mtime_ns, st.st_ctime_ns)
            if self.flow.journal is not None:
                self.flow.journal.set_cursor(self.flow.flow, CURSOR, str(stored))
        self._marker = stored

    def _stored_marker(self) -> int | None:
        if self._marker is not None:
            return self._marker
        value = self.flow.journal.get_cursor(self.flow.flow, CURSOR) if self.flow.journal else None
        return int(value) if value else None

    def _forget(self, path: str) -> None:
        with self._lock:
            self._offered.pop(path, None)

    def warn_once(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            self.flow.log.warning("%s: %s", self.flow.flow, message)
