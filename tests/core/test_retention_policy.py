"""`retention_of`: a config's keep_history / keep_failed and the cursors that guard its keys."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ferryman.config import validate
from ferryman.journal.retention import PruneReport
from ferryman.journal.sqlite import SqliteJournal
from ferryman.retention import describe_report, retention_of

CONFIG = {
    "ferryman": {"keep_history": "30d", "keep_failed": "365d"},
    "flows": {
        "nightly": {"source": {"type": "schedule", "cron": "0 3 * * *"},
                    "steps": [{"type": "command", "command": ["true"], "per": "item"}]},
        "drop": {"source": {"type": "folder", "path": "/srv/in"},
                 "expect": {"cron": "0 7 * * *", "within": "2h"}},
        "plain": {"source": {"type": "folder", "path": "/srv/other"}},
    },
}


@pytest.fixture
def journal(tmp_path: Path):  # type: ignore[no-untyped-def]
    j = SqliteJournal(tmp_path / "journal.db")
    yield j
    j.close()


def test_ages_come_from_the_config_and_the_command_line_wins(journal: SqliteJournal) -> None:
    config = validate(CONFIG)
    now = time.time()
    retention = retention_of(config, journal, now=now)
    assert retention.done_before == now - 30 * 86400 and retention.failed_before == now - 365 * 86400
    given = retention_of(config, journal, older=3600, failed_older=60, now=now)
    assert given.done_before == now - 3600 and given.failed_before == now - 60
    bare = retention_of(validate({"flows": {}}), journal, now=now)
    assert bare.done_before is None and bare.failed_before is None


def test_only_saved_schedule_and_expect_cursors_guard_keys(journal: SqliteJournal) -> None:
    config = validate(CONFIG)
    assert retention_of(config, journal).guarded == {}, "no cursor yet: every pruned key leaves a tombstone"
    journal.set_cursor("nightly", "schedule.cursor", "1000.5")
    journal.set_cursor("drop", "expect.checked", "2000.0")
    journal.set_cursor("plain", "folder.ignore_before", "123")  # not a guard of keys
    journal.set_cursor("gone", "schedule.cursor", "3000.0")      # a flow no longer in the config
    retention = retention_of(config, journal)
    assert retention.guarded == {("nightly", ""): 1000.5, ("drop", "expect:"): 2000.0}
    assert not retention.needs_tombstone("nightly", "2026-01-01T03:00Z", created_at=999.0)
    assert retention.needs_tombstone("nightly", "2026-01-01T03:00Z", created_at=1001.0)
    assert not retention.needs_tombstone("drop", "expect:2026-01-01T07:00Z", created_at=10.0)
    assert retention.needs_tombstone("drop", "/srv/in/a.csv|5|1", created_at=10.0)
    assert retention.needs_tombstone("gone", "2026-01-01T03:00Z", created_at=10.0)


def test_a_cursor_that_is_not_a_time_guards_nothing(journal: SqliteJournal) -> None:
    journal.set_cursor("nightly", "schedule.cursor", "garbage")
    assert retention_of(validate(CONFIG), journal).guarded == {}


def test_the_report_line() -> None:
    report = PruneReport(items={"done": 11999, "skipped": 1}, steps=23998, tombstones=12000, kept_newest=1)
    assert describe_report(report) == ("pruned 12,000 items (done 11,999, skipped 1) and 23,998 step runs; "
                                       "12,000 keys kept as tombstones; kept the newest done item of 1 flow")
    assert describe_report(PruneReport(), dry_run=True) == (
        "would prune 0 items and 0 step runs; 0 keys kept as tombstones")
