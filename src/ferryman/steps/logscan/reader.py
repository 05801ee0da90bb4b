"""Reading a log from a mark: complete lines only, entries grouped, matches picked out.

A block is searched with one regex made of every pattern, run by RE2 (linear time, 10-20x the
speed of `re` on such alternations); patterns RE2 cannot run (look-around, back-references) are
run by `re`.  Only around a match are lines looked at one by one, to find the start and the end
of its entry.
Blocks are cut where an entry starts, so an entry never straddles two of them, and memory stays
at one block plus one entry whatever the file's size.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from ferryman.steps.logscan.config import LogScanConfig, compile_bytes
from ferryman.steps.logscan.position import HEAD

BLOCK = 4 << 20
LONGEST_LINE = 16 << 20
"""A line longer than this is cut (a log without line breaks must not fill the memory)."""


@dataclass
class Entry:
    """One log entry that matched: its file, first line number and text (several lines for a traceback)."""

    path: str
    line: int
    text: str


class Found:
    """The entries of one run: the first `limit` kept whole, every one counted per file."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: list[Entry] = []
        self.per_file: dict[str, int] = {}
        self.total = 0

    def forget(self, path: str) -> None:
        """Drop what was found in `path` (its reading failed half-way: its mark does not move, so the
        next run finds these entries again)."""
        self.total -= self.per_file.pop(path, 0)
        self.entries = [e for e in self.entries if e.path != path]

    def add(self, path: str, line: int, text: bytes, encoding: str) -> None:
        self.total += 1
        self.per_file[path] = self.per_file.get(path, 0) + 1
        if len(self.entries) < self.limit:
            self.entries.append(Entry(path, line, text.decode(encoding, "replace").rstrip("\r\n")))


@dataclass
class Opened:
    """A log file opened for reading: its identity from the open descriptor, so a rename or an
    unlink after opening changes nothing of what is read."""

    path: Path
    ident: str
    gz: bool
    stream: BinaryIO
    head: bytes


@contextmanager
def open_log(path: Path) -> Iterator[Opened]:
    """Open `path` (decompressing a ``.gz``) and read its first bytes; OSError when it cannot be."""
    raw = open(path, "rb")  # noqa: SIM115 - closed below, after the caller's reading
    try:
        st = os.fstat(raw.fileno())
        gz = path.name.endswith(".gz")
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw  # type: ignore[assignment]
        head = stream.read(HEAD)
        yield Opened(path, f"{st.st_dev}:{st.st_ino}", gz, stream, head)
    finally:
        raw.close()


class Searcher(Protocol):
    """What `re.Pattern[bytes]` and RE2's compiled patterns both offer."""

    def search(self, string: bytes, pos: int = ..., endpos: int = ...) -> re.Match[bytes] | None: ...


def fast(pattern: str, what: str) -> Searcher:
    """`pattern` (multi-line) compiled by RE2 when it can run it, else by `re`."""
    compiled = compile_bytes(pattern, what)  # the config's syntax check, and the fallback
    try:
        import re2  # type: ignore[import-untyped]

        return re2.compile(b"(?m)" + pattern.encode("utf-8"))  # type: ignore[no-any-return]
    except Exception:  # re2.error: syntax RE2 does not have; ImportError: not installed
        return compiled


class Matcher:
    """The compiled patterns of one step, and the reading of one file from an offset."""

    def __init__(self, config: LogScanConfig) -> None:
        self.config = config
        self.found = fast("|".join(f"(?:{p})" for p in config.patterns), "patterns")
        self.ignored = compile_bytes("|".join(f"(?:{p})" for p in config.ignore), "ignore") if config.ignore else None
        self.continues = compile_bytes(config.continuation, "continuation")

    def read(self, opened: Opened, offset: int, line: int, entries: Found) -> tuple[int, int]:
        """Append the matching entries after `offset` to `entries`; return the new offset and line count.

        A live file's last line without a line break is left for the next run (it is being
        written); a compressed file is complete, so its last line counts as it is.
        """
        stream = opened.stream
        stream.seek(offset)  # GzipFile seeks forward by decompressing
        carry = b""
        while True:
            block = stream.read(BLOCK)
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) < LONGEST_LINE:
                carry = data
                continue
            cut = self._last_entry(data, cut or len(data))
            if cut == 0:
                carry = data
                continue
            self._search(data, cut, str(opened.path), line, entries)
            line += data.count(b"\n", 0, cut)
            offset += cut
            carry = data[cut:]
        end = len(carry) if opened.gz else carry.rfind(b"\n") + 1
        if end:
            self._search(carry, end, str(opened.path), line, entries)
            line += carry.count(b"\n", 0, end)
            offset += end
        return offset, line

    def _last_entry(self, data: bytes, cut: int) -> int:
        """Where the last entry of ``data[:cut]`` starts (0: it may go on in the next block).  An entry
        longer than `max_entry_lines` ends at `cut`."""
        start = data.rfind(b"\n", 0, cut - 1) + 1
        for _ in range(self.config.max_entry_lines):
            if not self.continues.match(data, start):
                return start
            if start == 0:
                return 0
            start = data.rfind(b"\n", 0, start - 1) + 1
        return cut

    def _search(self, chunk: bytes, size: int, path: str, first_line: int, entries: Found) -> None:
        """Find the entries in ``chunk[:size]`` (no copy of the block is made)."""
        found, continues, most = self.found, self.continues, self.config.max_entry_lines
        pos = counted_to = 0
        line = first_line
        while (match := found.search(chunk, pos, size)) is not None:
            start = chunk.rfind(b"\n", 0, match.start()) + 1
            back = 0
            while start > pos and back < most and continues.match(chunk, start):
                start = chunk.rfind(b"\n", 0, start - 1) + 1
                back += 1
            end = chunk.find(b"\n", match.start(), size)
            end = size if end < 0 else end + 1
            lines = back + 1
            while end < size and lines < most and continues.match(chunk, end, size):
                nxt = chunk.find(b"\n", end, size)
                end = size if nxt < 0 else nxt + 1
                lines += 1
            text = chunk[start:end]
            line += chunk.count(b"\n", counted_to, start)
            counted_to = start
            if self.ignored is None or not self.ignored.search(text):
                entries.add(path, line + 1, text, self.config.encoding)
            pos = end


def discover(patterns: list[str]) -> list[Path]:
    """The regular files matching the globs (``**`` recurses), sorted; hidden files are left out."""
    import glob

    found: set[Path] = set()
    for pattern in patterns:
        for name in glob.glob(pattern, recursive=True):
            path = Path(name)
            if path.is_file():
                found.add(path)
    return sorted(found)


def siblings(mark_path: str, scanned: set[Path]) -> list[Path]:
    """Files next to `mark_path` whose names start with its name (``app.log.1``, ``app.log.2.gz``,
    ``app.log-20261204.gz``): where a rotated log went; plain names first, so a rename is found
    before its compressed copy."""
    path = Path(mark_path)
    try:
        names = [p for p in path.parent.iterdir()
                 if p.name != path.name and p.name.startswith(path.name) and p not in scanned and p.is_file()]
    except OSError:
        return []
    return sorted(names, key=lambda p: (p.name.endswith(".gz"), p.name))


