"""How the folder source watches: inotify events through watchdog, settle deadlines,
reconciliation scans, and recovery when events are lost.

Events are lost when the kernel's inotify queue overflows, when watchdog's
observer thread dies, or when a watched folder is replaced (deleted and
recreated, unmounted, remounted).  Each case restarts the observer and rescans,
so a lost event never loses a file.  The observer thread only queues events;
one loop (the source's thread) judges them and hands ready files to the engine
in batches, without sleeping in between (close to delivery takes about a
millisecond).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import stat
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, Protocol

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver

from ferryman.flow import FlowContext
from ferryman.item import Candidate
from ferryman.sources.base import Emit
from ferryman.sources.folder.config import FolderSourceConfig
from ferryman.units import format_duration

TICK = 0.1  # how often the loop looks at `stop`
HEALTH_EVERY = 1.0  # how often it checks the observer and the folders
BATCH = 1000  # most events judged before ready files are handed over

EventQueue = queue.SimpleQueue[FileSystemEvent | None]
"""Events from the observer thread; None means the kernel queue overflowed."""


class Watched(Protocol):
    """What the watch loop needs of its folder source (`FolderSource` is one)."""

    config: FolderSourceConfig
    flow: FlowContext
    roots: list[str]
    watching: threading.Event
    warned: set[str]
    observer: BaseObserver | None

    def rescan(self) -> list[Candidate]: ...
    def next_due(self) -> float: ...
    def settled(self) -> list[Candidate]: ...
    def offer(self, emit: Emit, ready: list[Candidate]) -> None: ...
    def on_event(self, kind: str, path: str, ready: list[Candidate]) -> None: ...
    def events_lost(self) -> None: ...
    def warn_once(self, key: str, message: str) -> None: ...


class FolderWatch:
    """The watch loop of one folder source, from `run` until `stop` is set."""

    def __init__(self, source: Watched, emit: Emit, stop: threading.Event) -> None:
        self.source = source
        self.emit = emit
        self.stop = stop
        self.events: EventQueue = queue.SimpleQueue()
        self.handler = _Handler(self.events)
        self.observer: BaseObserver | None = None
        self.watched: dict[str, tuple[int, int]] = {}
        self.attempted: dict[str, tuple[int, int]] | None = None  # folders of the last (re)start
        self.retry_at = 0.0
        self.aliases: list[tuple[str, str]] = []  # (resolved, configured) of symlinked folders
        config = source.config
        self.poll = config.watch == "poll"
        self.interval = config.poll_interval if "poll_interval" in config.model_fields_set else config.rescan

    def run(self) -> None:
        source = self.source
        next_scan = next_health = 0.0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if not self.poll and now >= next_health:
                    next_health = now + HEALTH_EVERY
                    present = self._present_folders()
                    if self._needs_restart(present, now):
                        self.attempted, self.retry_at = present, now + self.interval
                        self._restart(present)
                        next_scan = now  # events were not seen meanwhile: look at everything
                if now >= next_scan:
                    source.offer(self.emit, source.rescan())
                    next_scan = time.monotonic() + self.interval
                    if self.observer is not None and len(self.watched) == len(source.roots):
                        source.watching.set()
                wake = min(next_scan, next_health if not self.poll else next_scan, source.next_due(),
                           now + TICK)
                ready: list[Candidate] = []
                for event in _drain(self.events, max(0.0, wake - time.monotonic())):
                    if event is None:
                        source.flow.log.warning("%s: inotify queue overflowed; restarting the watcher "
                                                "and rescanning", source.flow.flow)
                        self._close()
                        self.attempted = None
                        next_health = next_scan = 0.0
                    else:
                        self._judge(event, ready)
                ready.extend(source.settled())
                source.offer(self.emit, ready)
        finally:
            self._close()

    def _judge(self, event: FileSystemEvent, ready: list[Candidate]) -> None:
        """Hand one watchdog event to the source in its own words."""
        src = self._configured(os.fsdecode(event.src_path))
        dest = self._configured(os.fsdecode(getattr(event, "dest_path", "") or ""))
        if isinstance(event, FileClosedEvent):
            self.source.on_event("closed", src, ready)
        elif isinstance(event, FileCreatedEvent):
            self.source.on_event("created", src, ready)
        elif isinstance(event, FileMovedEvent | DirMovedEvent):
            if src:
                self.source.on_event("deleted", src, ready)
            if dest:
                self.source.on_event("dir_moved_in" if event.is_directory else "moved_in", dest, ready)
        elif isinstance(event, FileDeletedEvent | DirDeletedEvent):
            self.source.on_event("deleted", src, ready)
        elif isinstance(event, DirCreatedEvent):
            self.source.on_event("dir_created", src, ready)

    def _configured(self, path: str) -> str:
        """An event path under a symlinked folder's target, as a path under the configured folder."""
        for real, root in self.aliases:
            if path.startswith(real + "/"):
                return root + path[len(real):]
        return path

    def _present_folders(self) -> dict[str, tuple[int, int]]:
        """Watched folders that exist now, with their (device, inode) to notice a replaced folder."""
        present = {}
        for root in self.source.roots:
            try:
                st = os.stat(root)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                present[root] = (st.st_dev, st.st_ino)
        return present

    def _needs_restart(self, present: dict[str, tuple[int, int]], now: float) -> bool:
        """At once when the observer died or the folders changed; a start that failed (say, the
        inotify watch limit) is retried every `interval`, not every second."""
        observer = self.observer
        if observer is not None and observer.is_alive() \
                and all(e.is_alive() for e in observer.emitters) and self.watched == present:
            return False
        return observer is not None or present != self.attempted or now >= self.retry_at

    def _restart(self, present: dict[str, tuple[int, int]]) -> None:
        """A fresh observer on the folders there now (none when none is, or inotify fails)."""
        self._close()
        self.source.events_lost()
        if not present:
            return
        fresh = _new_observer(lambda: self.events.put(None))
        # inotify does not follow a symlinked folder: watch its target, report paths as configured.
        self.aliases = [(real, root) for root in present if (real := os.path.realpath(root)) != root]
        try:
            for root in present:
                fresh.schedule(self.handler, os.path.realpath(root), recursive=self.source.config.recursive,
                               event_filter=_EVENTS)
            fresh.start()
        except OSError as exc:
            _stop(fresh)
            reason = "the inotify watch limit is reached (raise fs.inotify.max_user_watches)" \
                if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            self.source.warn_once("inotify", f"cannot watch {', '.join(present)}: {reason}; scanning every "
                                             f"{format_duration(self.interval)} meanwhile")
            return
        self.source.warned.discard("inotify")
        self.observer = self.source.observer = fresh
        self.watched = present

    def _close(self) -> None:
        self.source.watching.clear()
        if self.observer is not None:
            _stop(self.observer)
        self.observer = self.source.observer = None
        self.watched = {}


# ---- watchdog glue -----------------------------------------------------------------------

_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
    DirCreatedEvent, DirDeletedEvent, DirMovedEvent,
]
"""Only what readiness needs: no open/modify events (a big write would flood the queue)."""


class _Handler(FileSystemEventHandler):
    """Hands every event to the watch loop's queue (the observer thread never blocks on work)."""

    def __init__(self, events: EventQueue) -> None:
        self.events = events

    def dispatch(self, event: FileSystemEvent) -> None:
        self.events.put(event)


def _drain(events: EventQueue, timeout: float) -> list[FileSystemEvent | None]:
    """Wait up to `timeout` for one event, then take what is already queued: one batch, at most
    `BATCH` events, so the first files of a burst reach the engine without waiting for the last."""
    try:
        batch = [events.get(timeout=timeout)] if timeout > 0 else [events.get_nowait()]
    except queue.Empty:
        return []
    while len(batch) < BATCH:
        try:
            batch.append(events.get_nowait())
        except queue.Empty:
            break
    return batch


def _stop(observer: BaseObserver) -> None:
    observer.stop()
    with contextlib.suppress(RuntimeError):  # never started
        observer.join(5)


if sys.platform.startswith("linux"):
    from watchdog.observers.inotify import InotifyFullEmitter, InotifyObserver

    class _OverflowEmitter(InotifyFullEmitter):
        """An inotify emitter that reports kernel queue overflows (watchdog itself only logs them)."""

        def __init__(self, *args: Any, on_overflow: Callable[[], None], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._on_overflow = on_overflow

        def on_thread_start(self) -> None:
            super().on_thread_start()
            group = getattr(self, "_inotify", None)
            original = getattr(group, "on_queue_overflow", None)
            if group is None or original is None:
                return  # another watchdog layout: the periodic rescan still covers lost events

            def overflowed() -> None:
                original()
                self._on_overflow()

            group.on_queue_overflow = overflowed

    def _not_stopping_noise(record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in str(record.msg)

    # watchdog logs this "error" whenever an emitter stops while it waits for events, and warns
    # when `mkdir -p a/b` makes it watch b twice: both are harmless noise in a daemon's log.
    logging.getLogger("watchdog.observers.inotify").addFilter(_not_stopping_noise)
    warnings.filterwarnings("ignore", message="Callback with id .* already exists", category=RuntimeWarning)

    class _Observer(InotifyObserver):
        def __init__(self, on_overflow: Callable[[], None]) -> None:
            super().__init__(generate_full_events=True)
            if hasattr(self, "_emitter_kwargs"):
                self._emitter_class = _OverflowEmitter
                self._emitter_kwargs["on_overflow"] = on_overflow

    def _new_observer(on_overflow: Callable[[], None]) -> BaseObserver:
        return _Observer(on_overflow)

else:  # pragma: no cover - other platforms: no overflow hook, the rescan covers lost events

    def _new_observer(on_overflow: Callable[[], None]) -> BaseObserver:
        from watchdog.observers import Observer

        return Observer()
