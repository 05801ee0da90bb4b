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
from pathlib import Path
from typing import Any

from ferryman import templates
from ferryman.item import Item
from ferryman.steps.base import Step, StepContext, StepResult
from ferryman.steps.logscan.config import LogScanConfig
from ferryman.steps.logscan.position import Mark, Position, fingerprint
from ferryman.steps.logscan.reader import Entry, Matcher, Opened, discover, open_log, siblings
from ferryman.transports.local import os_errors

EXCERPT = 4000
"""Characters of the digest put in ``meta.log_excerpt`` (for a mail body)."""


class LogScanStep(Step[LogScanConfig]):
    """Reads every log from its mark, writes ``<name>`` when entries matched, moves the marks."""

    Config = LogScanConfig

    def cursor_name(self, ctx: StepContext) -> str:
        return f"log_scan.{self.config.label or ctx.index}"

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        journal = self.flow.journal
        name = self.cursor_name(ctx)
        position = Position.load(journal.get_cursor(self.flow.flow, name))
        start = position.claims.get(item.id, position.marks)
        scan = _Scan(self.config, Matcher(self.config), start, position.fresh)
        scan.run([str(self.flow.resolve(p)) for p in self.config.paths])
        outputs: dict[str, Any] = {"files": len(scan.marks), "bytes_read": scan.bytes_read,
                                   "lines_read": scan.lines_read, "entries": len(scan.entries)}
        if scan.notes:
            outputs["notes"] = scan.notes
        result: StepResult
        if not scan.entries:
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
                "log_entries": str(len(scan.entries)),
                "log_files": str(len({e.path for e in scan.entries})),
                "log_excerpt": text[:EXCERPT],
            })
        # The digest is durable: the lines are this item's now (its claim), and no later item reads them.
        position.claim(item.id, start, scan.marks)
        journal.set_cursor(self.flow.flow, name, position.dump())
        return result

    def _digest(self, scan: _Scan, ctx: StepContext) -> str:
        entries = scan.entries
        shown = entries[: self.config.max_entries]
        files = sorted({e.path for e in entries})
        lines = [f"{len(entries)} log entries matched in {len(files)} files "
                 f"(flow {self.flow.flow}, {ctx.now:%Y-%m-%d %H:%M:%S}; {scan.lines_read} new lines read)", ""]
        lines += [f"  {path}: {sum(1 for e in entries if e.path == path)}" for path in files]
        current = None
        for entry in shown:
            if entry.path != current:
                current = entry.path
                lines += ["", f"== {entry.path} =="]
            lines += ["", f"-- line {entry.line} --", entry.text]
        if len(entries) > len(shown):
            lines += ["", f"… and {len(entries) - len(shown)} more entries (max_entries = {self.config.max_entries})"]
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
        self.used: set[str] = set()
        self.entries: list[Entry] = []
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
                scanned.add(path)
                if self._take(path, gz_pass=True, only=mark):
                    break

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
            self.notes.append(f"{path}: gone before it could be read (rotated away); it is looked for next run")
        except (OSError, EOFError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self.notes.append(f"{path}: cannot be read: {reason}")
        return True

    def _mark_of(self, opened: Opened, gz_pass: bool, only: Mark | None) -> Mark | None:
        candidates = [only] if only is not None else [self.start.get(opened.ident)]
        if opened.gz and (gz_pass or only is not None):
            candidates += [m for m in self.start.values() if only is None]
        for mark in candidates:
            if mark is None or mark.ident in self.used or not mark.same_start(opened.head):
                continue
            if mark.ident != opened.ident and not opened.gz:
                continue  # a plain file continues only its own inode
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
        new_offset, new_line = self.matcher.read(opened, offset, line, self.entries)
        self.bytes_read += new_offset - offset
        self.lines_read += new_line - line
        head, head_len = fingerprint(opened.head)
        origin = mark.origin if mark is not None and mark.origin else str(opened.path)
        self.marks[opened.ident] = Mark(str(opened.path), opened.ident, new_offset, new_line, head, head_len, origin)

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
