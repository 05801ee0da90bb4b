"""Where each log file was left: a `Mark` per file identity, kept as a cursor in the journal.

A file is known by its identity, not its name: device and inode, plus a fingerprint of its first
bytes (`HEAD` bytes, fewer while the file is shorter).  Renaming a log (``app.log`` →
``app.log.1``) keeps both, so reading goes on where it stopped; compressing it
(``app.log.1.gz``) makes a new inode whose decompressed first bytes still match the fingerprint,
so the mark is found again and its offset counts in decompressed bytes.  A file whose inode is
known but whose first bytes changed (the inode was reused, or the file was truncated and
rewritten) starts again at 0.

The cursor also keeps *claims*: which item read which range.  The step saves its new marks
before it returns (durable), together with the item's claim (the marks it started from).  When
the same item runs the step again (a crash before its step was journaled, a retry), it starts
again from its claim, so its lines are never lost; they are never read by another item either.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

HEAD = 1024
"""Bytes of a file's beginning that make its fingerprint."""

FORGET = 7 * 86400.0
"""How long the mark of a file that is no longer found is kept."""

CLAIMS = 20
"""Claims kept: the newest items that read from the logs."""


@dataclass
class Mark:
    """How far one file has been read: `offset` bytes (decompressed for .gz), `line` lines."""

    path: str
    ident: str
    offset: int
    line: int
    head: str
    """sha256 (hex) of the file's first `head_len` bytes."""
    head_len: int
    origin: str = ""
    """The path the file had when first seen (``app.log``): rotated copies are looked for by that name."""
    seen: float = 0.0
    """When the file was last found (seconds since 1970): a mark whose file is not found is kept
    for `FORGET`, so a file missing for a while (unreadable, moved and back) goes on where it was."""

    def same_start(self, head: bytes) -> bool:
        """Whether a file beginning with `head` (at least `HEAD` bytes, or all of it) is this file."""
        import hashlib

        return len(head) >= self.head_len and hashlib.sha256(head[: self.head_len]).hexdigest() == self.head


def fingerprint(head: bytes) -> tuple[str, int]:
    import hashlib

    part = head[:HEAD]
    return hashlib.sha256(part).hexdigest(), len(part)


@dataclass
class Position:
    """Every file's mark, and the claims of the latest items.  `fresh`: nothing was saved yet."""

    marks: dict[str, Mark]
    claims: dict[str, dict[str, Mark]]
    """Item id → the mark each file was read from by that item (on the flow's first run, from the
    files' ends)."""
    fresh: bool = False

    @classmethod
    def load(cls, text: str | None) -> Position:
        if not text:
            return cls({}, {}, fresh=True)
        data = json.loads(text)

        def marks(raw: dict[str, dict[str, object]]) -> dict[str, Mark]:
            return {k: Mark(**v) for k, v in raw.items()}  # type: ignore[arg-type]

        return cls(marks(data.get("marks", {})), {k: marks(v) for k, v in data.get("claims", {}).items()})

    def dump(self) -> str:
        def marks(raw: dict[str, Mark]) -> dict[str, object]:
            return {k: asdict(m) for k, m in raw.items()}

        return json.dumps({"marks": marks(self.marks),
                           "claims": {k: marks(v) for k, v in self.claims.items()}},
                          separators=(",", ":"))

    def claim(self, item: str, start: dict[str, Mark], marks: dict[str, Mark]) -> None:
        """`item` read from `start` up to `marks`; the oldest claims beyond `CLAIMS` are dropped."""
        self.claims.pop(item, None)
        self.claims[item] = start
        while len(self.claims) > CLAIMS:
            self.claims.pop(next(iter(self.claims)))
        self.marks = marks
