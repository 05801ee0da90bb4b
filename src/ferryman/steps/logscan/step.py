"""``log_scan``: what was appended to the logs since the last run, as one digest of the matching entries.

CIOC's ``process_logged_errors`` every 15 minutes: a ``schedule`` flow whose first step is
``log_scan`` and whose next is ``email`` (or any step that takes a file).  When nothing matched,
the item ends as skipped and nothing is sent.

Exactly once, line by line: the marks (`position`) are saved in the journal only after the
digest is written and fsynced in the item's work folder, and the item's later steps carry that
file; the same item running the step again starts from its own claim (see `position`).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from ferryman import templates
from ferryman.item import Item
from ferryman.steps.base import Step, StepContext, StepResult
from ferryman.steps.logscan.config import LogScanConfig
from ferryman.steps.logscan.position import FORGET, Mark, Position, fingerprint
from ferryman.steps.logscan.reader import Found, Matcher, Opened, discover, open_log, siblings
from ferryman.transports.local import os_errors

EXCERPT = 4000
"""Characters of the digest put in ``meta.log_excerpt`` (for a mail body)."""

_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _lock(flow: str, cursor: str) -> threading.Lock:
    """One lock per cursor: items of a flow run on several workers (several missed ticks after a
    restart), and each must read the marks the one before it saved, or they read the same lines."""
    with _LOCKS_LOCK:
        return _LOCKS.setdefault((flow, cursor), threading.Lock())


class LogScanStep(Step[LogScanConfig]):
    """Reads every log from its mark, writes ``<name>`` when entries matched, moves the marks."""

    Config = LogScanConfig

    def cursor_name(self, ctx: StepContext) -> str:
        return f"log_scan.{self.config.label or ctx.index}"

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        with _lock(self.flow.flow, self.cursor_name(ctx)):
            return self._run(item, ctx)

    def _run(self, item: Item, ctx: StepContext) -> StepResult:
        journal = self.flow.journal
        name = self.cursor_name(ctx)
        position = Position.load(journal.get_cursor(self.flow.flow, name))
        claim = position.claims.get(item.id)
        start, fresh = (claim, False) if claim is not None else (position.marks, position.fresh)
        scan = _Scan(self.config, Matcher(self.config), start, fresh)
        scan.run([str(self.flow.resolve(p)) for p in self.config.paths])
        found = scan.found
        outputs: dict[str, Any] = {"files": len(scan.marks), "bytes_read": scan.bytes_read,
                                   "lines_read": scan.lines_read, "entries": found.total}
        if scan.notes:
            outputs["notes"] = scan.notes
        result: StepResult
        if not found.total:
            result = StepResult(files=[], outputs=outputs,
                                skip=f"no log entry matched in {scan.lines_read} new lines of {len(scan.marks)} files")
        else:
            digest_name = templates.render_name(self.config.name, ctx.values())
            text = self._digest(scan, ctx)
            target = ctx.work_dir / digest_name
            with os_errors("log_scan: cannot write the digest"), open(target, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            result = StepResult(files=[target], outputs={**outputs, "digest": digest_name}, meta={
                "log_entries": str(found.total),
                "log_files": str(len(found.per_file)),
                "log_excerpt": text[:EXCERPT],
            })
        # The digest is durable: the lines are this item's now (its claim), and no later item reads them.
        position.claim(item.id, scan.began, scan.marks)
        journal.set_cursor(self.flow.flow, name, position.dump())
        return result

    def _digest(self, scan: _Scan, ctx: StepContext) -> str:
        found = scan.found
        lines = [f"{found.total} log entries matched in {len(found.per_file)} files "
                 f"(flow {self.flow.flow}, {ctx.now:%Y-%m-%d %H:%M:%S}; {scan.lines_read} new lines read)", ""]
        lines += [f"  {path}: {count}" for path, count in sorted(found.per_file.items())]
        current = None
        for entry in found.entries:
            if entry.path != current:
                current = entry.path
                lines += ["", f"== {entry.path} =="]
            lines += ["", f"-- line {entry.line} --", entry.text]
        if found.total > len(found.entries):
            lines += ["", f"… and {found.total - len(found.entries)} more entries (max_entries = "
                      f"{self.config.max_entries})"]
        for note in scan.notes:
            lines += ["", f"note: {note}"]
        return "\n".join(lines) + "\n"


class _Scan:
    """One run over the logs: which file continues which mark, the entries found, the new marks."""

    def __init__(self, config: LogScanConfig, matcher: Matcher, start: dict[str, Mark], fresh: bool) -> None:
        self.config = config
        self.matcher = matcher
        self.start = start
        self.fresh = fresh
        self.marks: dict[str, Mark] = {}
        """Each file's mark after this run."""
        self.began: dict[str, Mark] = {}
        """Each file's mark before this run's reading (its claim): a re-run starts from these."""
        self.used: set[str] = set()
        self.found = Found(config.max_entries)
        self.notes: list[str] = []
        self.bytes_read = 0
        self.lines_read = 0

    def run(self, globs: list[str]) -> None:
        paths = discover(globs)
        scanned = set(paths)
        later: list[Path] = []
        for path in paths:  # known inodes and new plain files first; a .gz may continue a mark then
            if not self._take(path, gz_pass=False):
                later.append(path)
        for path in later:
            self._take(path, gz_pass=True)
        for ident, mark in self.start.items():  # rotated out of the globs' reach: look next to it
            if ident in self.used:
                continue
            for path in siblings(mark.origin or mark.path, scanned):
                if self._take(path, gz_pass=True, only=mark):
                    scanned.add(path)
                    break
        now = time.time()
        for ident, mark in self.start.items():  # not found (unreadable, gone): kept for a while
            if ident not in self.used and ident not in self.marks and now - mark.seen < FORGET:
                self.marks[ident] = mark

    def _take(self, path: Path, gz_pass: bool, only: Mark | None = None) -> bool:
        """Read `path` if it is decided in this pass; False when it waits for the .gz pass."""
        try:
            with open_log(path) as opened:
                mark = self._mark_of(opened, gz_pass, only)
                if mark is None and only is not None:
                    return False
                if mark is None and opened.gz and not gz_pass:
                    return False
                self._read(opened, mark)
        except FileNotFoundError:
            self.notes.append(f"{path}: gone before it could be read (rotated away); looked for under its new name")
        except (OSError, EOFError) as exc:  # e.g. a .gz still being written: read again next run
            self.found.forget(str(path))
            reason = getattr(exc, "strerror", None) or str(exc)
            self.notes.append(f"{path}: cannot be read: {reason}")
        return True

    def _mark_of(self, opened: Opened, gz_pass: bool, only: Mark | None) -> Mark | None:
        """The mark `opened` continues: its own inode's; in the .gz pass, a compressed copy's; next to a
        mark's file (`only`), also a plain copy of it (copytruncate's ``app.log.1``).  A mark of an
        empty file (no fingerprint yet) is continued by its own inode only."""
        candidates = [only] if only is not None else [self.start.get(opened.ident)]
        if opened.gz and gz_pass and only is None:
            candidates += list(self.start.values())
        for mark in candidates:
            if mark is None or mark.ident in self.used or not mark.same_start(opened.head):
                continue
            if mark.ident != opened.ident and (mark.head_len == 0 or not (opened.gz or only is not None)):
                continue
            self.used.add(mark.ident)
            return mark
        return None

    def _read(self, opened: Opened, mark: Mark | None) -> None:
        if mark is not None:
            offset, line = mark.offset, mark.line
            if not opened.gz and os.fstat(opened.stream.fileno()).st_size < offset:
                self.notes.append(f"{opened.path}: truncated since the last run; read again from its start")
                offset = line = 0
        elif opened.ident in self.start and opened.ident not in self.used:
            self.notes.append(f"{opened.path}: truncated or rewritten since the last run; read again from its start")
            offset = line = 0
        elif self.fresh and self.config.first_run == "end":
            offset, line = self._end(opened)
        else:
            offset = line = 0
        head, head_len = fingerprint(opened.head)
        origin = mark.origin if mark is not None and mark.origin else str(opened.path)
        now = time.time()
        self.began[opened.ident] = Mark(str(opened.path), opened.ident, offset, line, head, head_len, origin, now)
        new_offset, new_line = self.matcher.read(opened, offset, line, self.found)
        self.bytes_read += new_offset - offset
        self.lines_read += new_line - line
        self.marks[opened.ident] = Mark(str(opened.path), opened.ident, new_offset, new_line, head, head_len,
                                        origin, now)

    @staticmethod
    def _end(opened: Opened) -> tuple[int, int]:
        """The offset and line count of the file's last complete line (a first run from the end)."""
        stream = opened.stream
        stream.seek(0)
        size = lines = last = 0
        while chunk := stream.read(1 << 20):
            lines += chunk.count(b"\n")
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                last = size + newline + 1
            size += len(chunk)
        return (size if opened.gz else last), lines
