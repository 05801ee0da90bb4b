"""The records file an item carries: JSON Lines, one ``{"id": …, "record": {…}}`` per record.

The ``http`` source writes them (one per batch, in its spool); ``decrypt_fields`` writes a new
one in the work folder (0600: it holds plaintext); ``append_csv`` reads them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ferryman.errors import PermanentError

SUFFIX = ".jsonl"

Record = tuple[Any, dict[str, Any]]
"""A record's id and its fields."""


def read(path: Path) -> Iterator[Record]:
    """The records of one file, in order; a line that is not a record is a clear error."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                yield entry["id"], entry["record"]
            except (ValueError, KeyError, TypeError):
                raise PermanentError(f"{path.name} line {number} is not a record line") from None


def records_of(files: list[Path]) -> Iterator[Record]:
    """The records of every records file an item carries (other files are left out)."""
    for path in files:
        if path.name.endswith(SUFFIX):
            yield from read(path)


def line(value: Any, record: dict[str, Any]) -> str:
    """One record as its line (with the newline)."""
    return json.dumps({"id": value, "record": record}, ensure_ascii=False, separators=(",", ":")) + "\n"


def write(path: Path, records: Iterator[Record]) -> int:
    """Write records to a new private file (0600), flushed and fsynced; how many."""
    count = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with open(fd, "w", encoding="utf-8") as out:
        for value, record in records:
            out.write(line(value, record))
            count += 1
        out.flush()
        os.fsync(out.fileno())
    return count
