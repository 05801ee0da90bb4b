"""``expect`` windows judged with an injected clock, on a real SQLite journal."""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ferryman.expect import Expectation, overdue
from ferryman.item import Candidate, State
from ferryman.journal.sqlite import SqliteJournal
from ferryman.sources.schedule.config import ExpectConfig

TORONTO = ZoneInfo("America/Toronto")
WEEKDAYS = ExpectConfig(cron="0 7 * * 1-5", within="2h", timezone="America/Toronto")


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=TORONTO).timestamp()  # type: ignore[arg-type, misc]


def succeed(journal: SqliteJournal, key: str) -> None:
    [item] = journal.admit("partner", [Candidate(key, ())])
    claimed = journal.claim(item.id, "t", 60)
    assert claimed is not None
    claimed.state = State.DONE
    journal.finish(claimed)


def test_a_window_with_a_success_is_quiet(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        e = Expectation("partner", ExpectConfig(every="10s", within="10s"), journal)
        window = math.floor(time.time() / 10) * 10
        assert e.due(window - 5) == []  # the first look, before the window
        succeed(journal, "file-1")  # now: inside [window, window + 10s]
        assert e.due(window + 10.5) == []
        assert e.due(window + 20.5) != []  # the next window had none
    finally:
        journal.close()


def test_a_window_without_a_success_alerts_once_across_instances(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        one = Expectation("partner", WEEKDAYS, journal)
        other = Expectation("partner", WEEKDAYS, journal)  # a second instance on the same journal
        assert one.due(at(2026, 1, 5, 6, 0)) == [] and other.due(at(2026, 1, 5, 6, 0)) == []  # Monday
        assert one.due(at(2026, 1, 5, 8, 0)) == []  # the window is still open
        [alert] = one.due(at(2026, 1, 5, 9, 0, 1))
        assert alert.key == "expect:2026-01-05T12:00:00Z"
        assert alert.settled is not None and alert.settled[0] == State.FAILED
        assert "between 2026-01-05T07:00:00-05:00 and 2026-01-05T09:00:00-05:00" in alert.settled[1]
        [same] = other.due(at(2026, 1, 5, 9, 0, 2))
        assert same.key == alert.key
        assert len(journal.admit("partner", [alert, same])) == 1  # one alert item: one notification
    finally:
        journal.close()


def test_overdue_lasts_until_a_success_and_stays_quiet_meanwhile(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        e = Expectation("partner", ExpectConfig(every="10s", within="5s"), journal)
        e.due(1_000_000.0)
        [alert] = e.due(1_000_005.5)
        [item] = journal.admit("partner", [alert])
        item.state, item.error = alert.settled  # type: ignore[misc]
        journal.finish(item)
        assert overdue(journal, "partner") is not None
        assert e.due(1_000_015.5) == []  # the next empty window: no second alert while overdue
        succeed(journal, "late-file")
        assert overdue(journal, "partner") is None
    finally:
        journal.close()
