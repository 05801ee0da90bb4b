"""What components of one flow share at run time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferryman.connections import ConnectionConfig
    from ferryman.journal.base import Journal
    from ferryman.transports import TransportPool


@dataclass
class Problem:
    """Trouble of a flow that is not one item's own: a watched folder that is missing, a file
    ferryman may not read, an original it could not dispose of."""

    subject: str
    """What it is about, stable while it lasts: ``folder /srv/in``, ``disposal of item 12``."""
    message: str
    source: bool
    """True when the source could not read (``run --once`` exits 3), False for a failure (1)."""
    origin: str = ""
    item_id: str | None = None
    """The journal's failed item that stands for it (set by the engine)."""


class Problems:
    """A flow's open problems.  Sources and the engine `report` and `clear` them by subject; the
    engine's `listener` journals the first report (one failed item, notified once) and the clearing
    (that item done, a recovery notice).  Thread-safe; a report while open changes nothing."""

    def __init__(self) -> None:
        self._open: dict[str, Problem] = {}
        self._lock = threading.Lock()
        self.listener: Callable[[Problem, bool], None] | None = None
        """Called with (problem, True) when it opens and (problem, False) when it clears."""

    def report(self, subject: str, message: str, *, source: bool = True, origin: str = "") -> bool:
        """Open a problem unless it is open already; True when it opened and the listener took it
        (journaled and logged it), False when the caller should log it itself."""
        with self._lock:
            if subject in self._open:
                return False
            problem = self._open[subject] = Problem(subject, message, source, origin or subject)
        if self.listener is None:
            return False
        self.listener(problem, True)
        return True

    def clear(self, subject: str) -> None:
        with self._lock:
            problem = self._open.pop(subject, None)
        if problem is not None and self.listener is not None:
            self.listener(problem, False)

    def clear_all(self, prefix: str, keep: set[str]) -> None:
        """Clear the problems whose subject starts with `prefix`, except those in `keep`."""
        with self._lock:
            gone = [s for s in self._open if s.startswith(prefix) and s not in keep]
        for subject in gone:
            self.clear(subject)

    def forget(self, subject: str) -> None:
        """Drop a problem without a listener call (acknowledged by hand)."""
        with self._lock:
            self._open.pop(subject, None)

    def restore(self, problem: Problem) -> None:
        """An open problem read back from the journal at start-up (not journaled again)."""
        with self._lock:
            self._open.setdefault(problem.subject, problem)

    def open(self) -> list[Problem]:
        with self._lock:
            return list(self._open.values())

    def __contains__(self, subject: object) -> bool:
        with self._lock:
            return subject in self._open


@dataclass
class FlowContext:
    """Handed to every source, step and notifier of a flow when it is built.

    `root` is ferryman's state folder (journal, work folders, logs);
    `config_dir` is the folder of the config file, which relative paths in
    the config are relative to.
    """

    flow: str
    root: Path
    config_dir: Path
    connections: Mapping[str, ConnectionConfig]
    transports: TransportPool
    journal: Journal
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("ferryman"))
    config_file: Path | None = None
    """The config file itself (the ``python`` step hands it to rattail-style ``Class(config)`` actions)."""
    problems: Problems = field(default_factory=Problems)
    """What the flow's source could not read or do, while it lasts (see `Problems`)."""

    def resolve(self, path: str | Path) -> Path:
        """A config path made absolute against the config file's folder (``~`` expanded)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.config_dir / p)

    def connection(self, name: str, kind: str) -> ConnectionConfig:
        """The connection called `name`, which must be of type `kind`."""
        from ferryman.errors import PermanentError

        conn = self.connections.get(name)
        if conn is None:
            raise PermanentError(f"no connection named {name!r} (declare it under [connections.{name}])")
        if conn.type != kind:
            raise PermanentError(f"connection {name!r} is of type {conn.type!r}, not {kind!r}")
        return conn
