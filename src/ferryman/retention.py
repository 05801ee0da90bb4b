"""A config's journal retention: ``[ferryman] keep_history`` / ``keep_failed``, turned into the
`Retention` that `Journal.prune` applies, and the daemon's hourly prune.

What is removed and what stays is `ferryman.journal.retention`'s rule.  This module adds what only
the config knows: which flows' keys a cursor guards (a schedule flow's ticks before its
``schedule.cursor``; ``expect`` windows before ``expect.checked``), so that their pruned items leave
no tombstone.  A flow no longer in the config is guarded by nothing: its keys leave tombstones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ferryman.config import Config, LoadedConfig
from ferryman.errors import FerrymanError, describe
from ferryman.expect import CURSOR as EXPECT_CURSOR
from ferryman.expect import PREFIX as EXPECT_PREFIX
from ferryman.journal.base import Journal
from ferryman.journal.retention import PruneReport, Retention
from ferryman.sources.schedule.config import ScheduleSourceConfig
from ferryman.sources.schedule.source import CURSOR as SCHEDULE_CURSOR
from ferryman.units import format_duration

log = logging.getLogger("ferryman.journal")

EVERY = 3600.0
"""How often the daemon prunes (and once when it starts)."""


def _time(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def retention_of(config: Config, journal: Journal, *, older: float | None = None,
                 failed_older: float | None = None, now: float | None = None) -> Retention:
    """The retention of `config` (`older` / `failed_older` given on the command line win)."""
    now = time.time() if now is None else now
    keep = older if older is not None else config.ferryman.keep_history
    keep_failed = failed_older if failed_older is not None else config.ferryman.keep_failed
    guarded: dict[tuple[str, str], float] = {}
    for name, flow in config.flows.items():
        cursors = []
        if isinstance(flow.source, ScheduleSourceConfig):
            cursors.append(("", SCHEDULE_CURSOR))
        if flow.expect is not None:
            cursors.append((EXPECT_PREFIX, EXPECT_CURSOR))
        for prefix, cursor in cursors:
            upto = _time(journal.get_cursor(name, cursor))
            if upto is not None:
                guarded[(name, prefix)] = upto
    return Retention(done_before=None if keep is None else now - keep,
                     failed_before=None if keep_failed is None else now - keep_failed, guarded=guarded)


def count(n: int, noun: str) -> str:
    """``1 item``, ``12,000 items``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def describe_report(report: PruneReport, *, dry_run: bool = False) -> str:
    """One line: what a prune removed (or would remove)."""
    verb = "would prune" if dry_run else "pruned"
    states = ", ".join(f"{state} {n:,}" for state, n in sorted(report.items.items()))
    line = f"{verb} {count(report.total, 'item')}" + (f" ({states})" if states else "")
    line += f" and {count(report.steps, 'step run')}; {count(report.tombstones, 'key')} kept as tombstones"
    if report.kept_newest:
        line += f"; kept the newest done item of {count(report.kept_newest, 'flow')}"
    return line


class RetentionTimer:
    """Prunes the journal for a running daemon: when it starts, then every `EVERY` seconds, in
    a thread of its own (a large first prune does not hold up the engine; each batch is its own
    transaction, so items keep flowing meanwhile).  A failed prune is logged and tried again at
    the next round."""

    def __init__(self, loaded: Callable[[], LoadedConfig], journal: Journal, every: float = EVERY) -> None:
        self._loaded = loaded
        self._journal = journal
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ferryman-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            prune_configured(self._loaded().config, self._journal)
            self._stop.wait(self._every)


def prune_configured(config: Config, journal: Journal) -> PruneReport | None:
    """One prune by `config`'s keep_history / keep_failed (None when neither is set or it failed)."""
    settings = config.ferryman
    if settings.keep_history is None and settings.keep_failed is None:
        return None
    try:
        report = journal.prune(retention_of(config, journal))
    except FerrymanError as exc:
        log.error("journal prune failed: %s", describe(exc))
        return None
    kept = [f"{what} {format_duration(value)}" for what, value in
            (("keep_history", settings.keep_history), ("keep_failed", settings.keep_failed)) if value is not None]
    (log.info if report.total else log.debug)("journal (%s): %s", ", ".join(kept), describe_report(report))
    return report
