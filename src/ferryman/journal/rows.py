"""Rows and dialects: what the journal's SQL is run on and what its rows become (`Item`, `StepRun`),
shared by `SqlJournal` and the backends."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ferryman.item import Item, State, StepRun

T = TypeVar("T")

ITEM_COLUMNS = (
    "id, flow, key, origin, meta, files, state, step, attempts, error, error_type, "
    "next_attempt_at, created_at, updated_at, disposal"
)
STEP_COLUMNS = "item_id, step_index, name, started_at, ended_at, outcome, error, outputs"
CHUNK = 500
"""Most values bound in one ``IN (...)`` list (SQLite allows 32,766 variables; stay well below)."""

class Cursor(Protocol):
    """The part of a DB-API cursor the shared SQL uses (sqlite3 and psycopg both fit)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ..., /) -> list[Any]: ...


@dataclass(frozen=True)
class Dialect:
    """What differs between SQL databases for the journal's purposes."""

    name: str
    placeholder: str
    """``?`` (sqlite3) or ``%s`` (psycopg); the shared statements are written with ``?``."""
    serial: str
    """Column type of an auto-numbered primary key (insertion order)."""
    real: str
    """Column type of a timestamp in epoch seconds."""
    compact: str = ""
    """Table option for a table that is only its primary key (SQLite: ``WITHOUT ROWID``)."""
    lock: str = ""
    """Row lock taken by the SELECTs of a claim or retry (``FOR UPDATE SKIP LOCKED`` where
    rows lock; SQLite's one writer needs none, and claims with a plain UPDATE … RETURNING)."""


def redact(address: str) -> str:
    """A database address fit for messages: any password replaced by ``***``."""
    address = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", address)
    return re.sub(r"(password=)[^&\s]*", r"\1***", address, flags=re.IGNORECASE)


def key_digest(flow: str, key: str) -> str:
    """The tombstone of a pruned item's key: 128 bits of BLAKE2b, in hex (a collision would hide a
    new file as known; at 128 bits it is out of reach for any number of keys a journal sees)."""
    return hashlib.blake2b(f"{flow}\0{key}".encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def new_item_id() -> str:
    """A fresh item id: 12 hex characters."""
    return secrets.token_hex(6)


def to_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def item_from_row(row: Sequence[Any]) -> Item:
    """An `Item` from a row selected with `ITEM_COLUMNS`."""
    (item_id, flow, key, origin, meta, files, state, step, attempts, error, error_type,
     next_attempt_at, created_at, updated_at, disposal) = row
    return Item(
        id=item_id, flow=flow, key=key, origin=origin, meta=json.loads(meta),
        files=[Path(f) for f in json.loads(files)], state=State(state), step=step,
        attempts=attempts, error=error, error_type=error_type,
        next_attempt_at=next_attempt_at, created_at=created_at, updated_at=updated_at,
        disposal=disposal,
    )


def step_run_from_row(row: Sequence[Any]) -> StepRun:
    """A `StepRun` from a row selected with `STEP_COLUMNS`."""
    item_id, index, name, started_at, ended_at, outcome, error, outputs = row
    return StepRun(item_id=item_id, index=index, name=name, started_at=started_at,
                   ended_at=ended_at, outcome=outcome, error=error, outputs=json.loads(outputs))


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def marks(n: int) -> str:
    return ", ".join("?" * n)
