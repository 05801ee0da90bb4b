"""How the folder source judges one file: what rules it out by name, and what it still waits
for under ``ready`` (its lock, its done file, a close event, or settling).

`NameRules` holds the name-only rules (hidden files, lock folders, move targets, ``ignore``,
``exclude``, ``include``, ``meta_from_name``); `Settling` holds the settle bookkeeping (files
seen changing, files created and not closed yet) and says what a file waits for.
`FolderSource` combines both with the file's state and the journal into a verdict.
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from ferryman.item import Candidate
from ferryman.units import format_duration

if TYPE_CHECKING:
    from ferryman.sources.folder.config import FolderSourceConfig

UNDECODABLE = "ignored: its name is not valid UTF-8 (rename the file)"


def printable(path: str) -> str:
    """`path` with undecodable bytes shown as escapes, safe for logs and messages."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class Trigger(Enum):
    """Why a file is being looked at."""

    SCAN = "scan"
    CREATED = "created"  # an inotify create: the writer may still be writing
    CLOSED = "closed"  # closed after writing, renamed in, its lock removed or its done file written


@dataclass
class Seen:
    """A file waiting to settle: its signature when first seen, then, and when to look again."""

    signature: tuple[int, int, int]
    since: float
    due: float


@dataclass
class Verdict:
    """Whether a file is a candidate now, and if not, why (one line for `explain`)."""

    candidate: Candidate | None
    reason: str


class Patterns:
    """fnmatch globs compiled once; `hit` names the first that matches a name or relative path."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = patterns
        self._compiled = [(p, re.compile(fnmatch.translate(p)).match) for p in patterns]

    def hit(self, name: str, rel: str) -> str | None:
        for pattern, match in self._compiled:
            if match(name) or (rel != name and match(rel)):
                return pattern
        return None


class NameRules:
    """What rules a file out by its name (or relative path) alone."""

    def __init__(self, config: FolderSourceConfig, skip_dirs: set[str],
                 meta_from_name: Callable[[str], dict[str, str] | None]) -> None:
        self.config = config
        self._include = Patterns(config.include)
        self._exclude = Patterns(config.exclude)
        extra = {"lock": [f"*{config.lock_suffix}"], "done_file": [f"*{config.done_suffix}"]}
        self._ignore = Patterns([*config.ignore, *extra.get(config.ready, [])])
        self._skip_dirs = skip_dirs
        self._meta_from_name = meta_from_name

    def problem(self, name: str, rel: str) -> tuple[str | None, dict[str, str]]:
        """Why the name alone rules the file out (or None), and the meta parsed from it."""
        try:
            rel.encode()
        except UnicodeEncodeError:
            return UNDECODABLE, {}
        parts = rel.split("/")
        if self.config.ignore_hidden and any(part.startswith(".") for part in parts):
            return "ignored: hidden file (ignore_hidden = true)", {}
        for folder in parts[:-1]:
            if folder.endswith(self.config.lock_suffix):
                return f"ignored: inside the lock folder {folder!r}", {}
        if any(rel.startswith(skip + "/") for skip in self._skip_dirs):
            return "ignored: inside the folder originals are moved to", {}
        hit = self._ignore.hit(name, rel)
        if hit is not None:
            return f"ignored: matches {hit!r}, a temporary or marker file (see `ignore`)", {}
        hit = self._exclude.hit(name, rel)
        if hit is not None:
            return f"excluded by pattern {hit!r}", {}
        if self._include.patterns and self._include.hit(name, rel) is None:
            return f"not matched by include {self._include.patterns}", {}
        meta = self._meta_from_name(name)
        if meta is None:
            return f"name does not match meta_from_name {self.config.meta_from_name!r}", {}
        return None, meta

    def skip_folder(self, name: str, rel: str) -> bool:
        """Whether a recursive walk leaves the folder `rel` out."""
        return (self.config.ignore_hidden and name.startswith(".")) \
            or name.endswith(self.config.lock_suffix) or rel in self._skip_dirs


class Settling:
    """What a file still waits for under `ready`, with the bookkeeping of files not settled yet.

    `seen` and `writing` belong to the scan/watch thread only.
    """

    def __init__(self, config: FolderSourceConfig) -> None:
        self.config = config
        self.seen: dict[str, Seen] = {}  # files waiting to settle
        self.writing: set[str] = set()  # created (by an event) and not closed yet

    def waiting(self, path: str, st: os.stat_result, trigger: Trigger, *, record: bool) -> str | None:
        """What the file still waits for under `ready`, or None when it is ready."""
        mode = self.config.ready
        if mode == "lock":
            lock = path + self.config.lock_suffix
            return f"waiting for {os.path.basename(lock)} to disappear" if os.path.lexists(lock) else None
        if mode == "done_file":
            done = path + self.config.done_suffix
            return None if os.path.lexists(done) else f"waiting for its done file {os.path.basename(done)}"
        if mode == "auto" and trigger is Trigger.CLOSED:
            return None
        # Settled: unchanged for `settle` by its own timestamps, or seen unchanged that long.
        settle = self.config.settle
        if mode == "auto" and path in self.writing:
            settle = max(settle, self.config.rescan)  # created but never closed: be patient
        age = time.time() - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9
        if age >= settle:
            return None
        signature = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        now = time.monotonic()
        seen = self.seen.get(path)
        if seen is not None and seen.signature == signature:
            if now - seen.since >= settle:
                return None
        elif record:
            self.seen[path] = Seen(signature, now, now + settle - max(0.0, age))
        return f"waiting for it to settle (changed {max(0.0, age):.1f}s ago; settle is " \
               f"{format_duration(settle)})"
