"""The schedule source with an injected clock, on a real SQLite journal: DST in a real zone,
catch-up after downtime, max_late, overlap, clock jumps, for_each, and config errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ferryman.flow import FlowContext
from ferryman.item import Candidate, State
from ferryman.journal.sqlite import SqliteJournal
from ferryman.sources.schedule import ScheduleSource, ScheduleSourceConfig
from ferryman.sources.schedule.timing import Clock
from ferryman.transports import TransportPool

TORONTO = ZoneInfo("America/Toronto")


def at(*parts: int) -> float:
    """A wall time in Toronto, as seconds since 1970 (fold 0: the first of a repeated time)."""
    return datetime(*parts, tzinfo=TORONTO).timestamp()  # type: ignore[arg-type, misc]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[SqliteJournal]:
    j = SqliteJournal(tmp_path / "journal.db")
    yield j
    j.close()


class Schedule:
    """A schedule source whose clock the test sets, admitting what it offers like the engine."""

    def __init__(self, tmp_path: Path, journal: SqliteJournal, **config: Any) -> None:
        self.journal = journal
        context = FlowContext(flow="nightly", root=tmp_path / "state", config_dir=tmp_path, connections={},
                              transports=TransportPool({}), journal=journal)
        self.source = ScheduleSource(ScheduleSourceConfig(type="schedule", timezone="America/Toronto", **config),
                                     context)
        self.time = 0.0
        self.source.now = lambda: self.time

    def run(self, now: float, finish: bool = True) -> list[Candidate]:
        """What a ``run --once`` at `now` offers: admitted, then (with `finish`) done, as the engine
        would; then the cursor moves."""
        self.time = now
        found = self.source.scan()
        for item in self.journal.admit("nightly", found):
            if finish:
                claimed = self.journal.claim(item.id, "test", 60)
                assert claimed is not None
                claimed.state = State.DONE
                self.journal.finish(claimed)
        self.source.close()
        return found


def ticks(found: list[Candidate]) -> list[str]:
    return [c.meta["tick"] for c in found if c.settled is None]


def skipped(found: list[Candidate]) -> list[tuple[str, str, str]]:
    return [(c.meta["tick"], c.meta.get("ticks", "1"), c.settled[1]) for c in found
            if c.settled is not None and c.settled[0] == State.SKIPPED]


# ---- DST, in a real zone ----------------------------------------------------------------------

def test_a_wall_time_that_does_not_exist_runs_once_at_the_first_valid_instant() -> None:
    """2026-03-08: Toronto springs forward at 02:00 → 03:00, so 02:30 does not exist."""
    clock = Clock("30 2 * * *", None, TORONTO)
    got = [t.isoformat() for t in clock.between(datetime(2026, 3, 6, 12, tzinfo=TORONTO),
                                                 datetime(2026, 3, 10, 12, tzinfo=TORONTO))]
    assert got == ["2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00",
                   "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"]


def test_a_wall_time_that_happens_twice_runs_once() -> None:
    """2026-11-01: Toronto falls back at 02:00 → 01:00, so 01:30 happens twice."""
    clock = Clock("30 1 * * *", None, TORONTO)
    got = [t.isoformat() for t in clock.between(datetime(2026, 10, 31, 12, tzinfo=TORONTO),
                                                 datetime(2026, 11, 2, 12, tzinfo=TORONTO))]
    assert got == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]


def test_hourly_through_both_changes_never_repeats_a_wall_time_and_latest_agrees() -> None:
    clock = Clock(ScheduleSourceConfig(type="schedule", cron="@hourly").cron, None, TORONTO)
    fall = list(clock.between(datetime(2026, 11, 1, 0, 30, tzinfo=TORONTO),
                              datetime(2026, 11, 1, 3, 30, tzinfo=TORONTO)))
    assert [t.isoformat() for t in fall] == ["2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00",
                                             "2026-11-01T03:00:00-05:00"]
    spring = list(clock.between(datetime(2026, 3, 8, 0, 30, tzinfo=TORONTO),
                                datetime(2026, 3, 8, 4, 30, tzinfo=TORONTO)))
    assert [t.isoformat() for t in spring] == ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00",
                                               "2026-03-08T04:00:00-04:00"]
    # Found backwards (a long downtime is not walked): the same instants.
    assert clock.latest(datetime(2026, 11, 1, 0, 30, tzinfo=TORONTO),
                        datetime(2026, 11, 1, 1, 45, fold=1, tzinfo=TORONTO)) == fall[0]
    assert clock.latest(datetime(2026, 3, 8, 0, 30, tzinfo=TORONTO),
                        datetime(2026, 3, 8, 3, 0, tzinfo=TORONTO)) == spring[1]


def test_the_spring_forward_tick_runs_once_through_the_source(tmp_path: Path, journal: SqliteJournal) -> None:
    s = Schedule(tmp_path, journal, cron="30 2 * * *")
    assert s.run(at(2026, 3, 8, 1, 0)) == []  # the first start: history begins now
    assert ticks(s.run(at(2026, 3, 8, 3, 0, 5))) == ["2026-03-08T03:00:00-04:00"]
    assert s.run(at(2026, 3, 8, 3, 30)) == []


def test_every_ticks_fall_on_multiples_of_the_interval_since_1970() -> None:
    clock = Clock(None, 300.0, ZoneInfo("UTC"))
    got = list(clock.between(datetime.fromtimestamp(1_000_000_001, ZoneInfo("UTC")),
                             datetime.fromtimestamp(1_000_000_900, ZoneInfo("UTC"))))
    assert [t.timestamp() for t in got] == [1_000_000_200, 1_000_000_500, 1_000_000_800]


# ---- due ticks and catch-up ---------------------------------------------------------------------

def test_an_on_time_tick_runs_once_and_its_key_is_its_utc_instant(tmp_path: Path, journal: SqliteJournal) -> None:
    s = Schedule(tmp_path, journal, cron="0 3 * * *")
    s.run(at(2026, 1, 5, 2, 0))
    found = s.run(at(2026, 1, 5, 3, 0, 1))
    assert [(c.key, c.meta["tick"]) for c in found] == [("tick:2026-01-05T08:00:00Z", "2026-01-05T03:00:00-05:00")]
    assert s.run(at(2026, 1, 5, 3, 0, 2)) == []
    assert [i.key for i in journal.history("nightly")] == ["tick:2026-01-05T08:00:00Z"]


def three_missed(tmp_path: Path, journal: SqliteJournal, **config: Any) -> list[Candidate]:
    """Daily at 03:00; ferryman down from the 4th to the 7th at 12:00: ticks of the 5th, 6th and 7th missed."""
    s = Schedule(tmp_path, journal, cron="0 3 * * *", **config)
    s.run(at(2026, 1, 4, 12, 0))
    return s.run(at(2026, 1, 7, 12, 0))


def test_missed_latest_runs_once_for_the_missed_ticks(tmp_path: Path, journal: SqliteJournal) -> None:
    found = three_missed(tmp_path, journal)
    assert ticks(found) == ["2026-01-07T03:00:00-05:00"]
    [(first, count, reason)] = skipped(found)
    assert (first, count) == ("2026-01-05T03:00:00-05:00", "2")
    assert "the tick of 2026-01-07T03:00:00-05:00 ran for them (missed = 'latest')" in reason


def test_missed_all_runs_each_missed_tick_oldest_first(tmp_path: Path, journal: SqliteJournal) -> None:
    found = three_missed(tmp_path, journal, missed="all")
    assert ticks(found) == ["2026-01-05T03:00:00-05:00", "2026-01-06T03:00:00-05:00", "2026-01-07T03:00:00-05:00"]
    assert [c.order for c in found] == sorted(c.order for c in found)
    assert skipped(found) == []


def test_missed_skip_runs_none_and_says_so(tmp_path: Path, journal: SqliteJournal) -> None:
    found = three_missed(tmp_path, journal, missed="skip")
    assert ticks(found) == []
    assert [(f, n) for f, n, _ in skipped(found)] == [("2026-01-05T03:00:00-05:00", "3")]
    assert "(missed = 'skip')" in skipped(found)[0][2]


def test_a_tick_missed_by_more_than_max_late_is_skipped_never_run(tmp_path: Path, journal: SqliteJournal) -> None:
    found = three_missed(tmp_path, journal, missed="all", max_late="36h")
    assert ticks(found) == ["2026-01-06T03:00:00-05:00", "2026-01-07T03:00:00-05:00"]
    [(first, count, reason)] = skipped(found)
    assert (first, count) == ("2026-01-05T03:00:00-05:00", "1")
    assert "missed by more than max_late = 1d12h" in reason or "max_late" in reason


def test_a_year_of_one_second_ticks_missed_is_one_skipped_range(tmp_path: Path, journal: SqliteJournal) -> None:
    s = Schedule(tmp_path, journal, every="1s", missed="skip")
    s.run(at(2025, 1, 1, 0, 0))
    found = s.run(at(2026, 1, 1, 0, 0, 0) + 0.2)
    assert ticks(found) == ["2026-01-01T00:00:00-05:00"]  # on time: it runs
    [(_, count, _)] = skipped(found)
    assert int(count) == 365 * 86400 - 1


def test_the_skipped_ranges_are_journaled_as_skipped_items(tmp_path: Path, journal: SqliteJournal) -> None:
    three_missed(tmp_path, journal)
    keys = {i.key for i in journal.history("nightly")}
    assert "missed:2026-01-05T08:00:00Z..2026-01-06T08:00:00Z" in keys


# ---- clock jumps ----------------------------------------------------------------------------

def test_a_clock_set_back_runs_no_tick_twice(tmp_path: Path, journal: SqliteJournal) -> None:
    s = Schedule(tmp_path, journal, cron="0 * * * *")
    s.run(at(2026, 1, 5, 9, 30))
    assert ticks(s.run(at(2026, 1, 5, 10, 0, 1))) == ["2026-01-05T10:00:00-05:00"]
    assert s.run(at(2026, 1, 5, 9, 0, 1)) == []  # set back an hour
    assert s.run(at(2026, 1, 5, 9, 59, 59)) == []
    assert ticks(s.run(at(2026, 1, 5, 11, 0, 1))) == ["2026-01-05T11:00:00-05:00"]


def test_a_clock_set_forward_a_day_reports_what_it_jumped_over(tmp_path: Path, journal: SqliteJournal) -> None:
    s = Schedule(tmp_path, journal, cron="0 * * * *", missed="skip")
    s.run(at(2026, 1, 5, 9, 30))
    found = s.run(at(2026, 1, 6, 9, 30))
    assert ticks(found) == []
    assert [(f, n) for f, n, _ in skipped(found)] == [("2026-01-05T10:00:00-05:00", "24")]


def test_the_cursor_survives_a_restart(tmp_path: Path, journal: SqliteJournal) -> None:
    Schedule(tmp_path, journal, cron="0 3 * * *").run(at(2026, 1, 5, 2, 0))
    again = Schedule(tmp_path, journal, cron="0 3 * * *")  # a new process, the same journal
    assert ticks(again.run(at(2026, 1, 5, 3, 0, 1))) == ["2026-01-05T03:00:00-05:00"]


# ---- overlap ----------------------------------------------------------------------------------

def test_a_tick_due_while_the_previous_runs_is_skipped_with_the_reason(tmp_path: Path, journal: SqliteJournal) -> None:
    s = Schedule(tmp_path, journal, every="1m")
    s.run(at(2026, 1, 5, 9, 0, 30))
    [first] = s.run(at(2026, 1, 5, 9, 1, 0), finish=False)
    [item] = journal.history("nightly")
    assert journal.claim(item.id, "me", 60) is not None  # it runs
    [second] = s.run(at(2026, 1, 5, 9, 2, 0), finish=False)
    assert second.settled is not None and second.settled[0] == State.SKIPPED
    assert f"the previous tick (item {item.id}, {first.meta['tick']}) was still running" in second.settled[1]


def test_overlap_queue_makes_the_flow_serial(tmp_path: Path, journal: SqliteJournal) -> None:
    assert Schedule(tmp_path, journal, every="1m", overlap="queue").source.serial
    assert not Schedule(tmp_path, journal, every="1m").source.serial


# ---- for_each ----------------------------------------------------------------------------------

def test_for_each_makes_one_item_per_value_and_each_narrows_them(tmp_path: Path, journal: SqliteJournal) -> None:
    s = Schedule(tmp_path, journal, cron="0 3 * * *", for_each=["cioc_a", "cioc_b", "cioc_c"])
    s.run(at(2026, 1, 5, 2, 0))
    s.source.selected(["cioc_c", "cioc_a"])
    found = s.run(at(2026, 1, 5, 3, 0, 1))
    assert [(c.key, c.meta["each"]) for c in found] == [("tick:2026-01-05T08:00:00Z|cioc_a", "cioc_a"),
                                                         ("tick:2026-01-05T08:00:00Z|cioc_c", "cioc_c")]


def test_each_names_a_value_that_is_not_in_the_list(tmp_path: Path, journal: SqliteJournal) -> None:
    from ferryman.errors import ConfigError

    s = Schedule(tmp_path, journal, cron="0 3 * * *", for_each=["cioc_a"])
    s.source.selected(["cioc_x"])
    with pytest.raises(ConfigError, match="--each 'cioc_x' is not a for_each value of flow 'nightly'"):
        s.source.by_hand()


def test_for_each_reads_a_file_and_a_command(tmp_path: Path, journal: SqliteJournal) -> None:
    (tmp_path / "dbs.txt").write_text("# databases\ncioc_a\n\ncioc_b  # the big one\n")
    s = Schedule(tmp_path, journal, cron="0 3 * * *", for_each={"file": "dbs.txt"})
    assert [c.meta["each"] for c in s.source.by_hand()] == ["cioc_a", "cioc_b"]
    s = Schedule(tmp_path, journal, cron="0 3 * * *", for_each={"command": ["printf", "x\\ny\\n"]})
    assert [c.meta["each"] for c in s.source.by_hand()] == ["x", "y"]


def test_a_failing_for_each_command_fails_the_tick_with_its_stderr(tmp_path: Path, journal: SqliteJournal) -> None:
    s = Schedule(tmp_path, journal, cron="0 3 * * *",
                 for_each={"command": ["sh", "-c", "echo 'psql: connection refused' >&2; exit 3"]})
    s.run(at(2026, 1, 5, 2, 0))
    [tick] = s.run(at(2026, 1, 5, 3, 0, 1))
    assert tick.settled == (State.FAILED, "for_each: sh exited with status 3: psql: connection refused")


def test_by_hand_runs_are_keyed_as_such(tmp_path: Path, journal: SqliteJournal) -> None:
    s = Schedule(tmp_path, journal, cron="0 3 * * *")
    s.time = at(2026, 1, 5, 14, 7, 9)
    [c] = s.source.by_hand()
    assert c.key == "now:2026-01-05T19:07:09Z" and c.meta == {"tick": "2026-01-05T14:07:09-05:00", "by_hand": "true"}


# ---- config errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("config, message", [
    ({"cron": "61 3 * * *"}, "field 1 (minute) '61' is not valid"),
    ({"cron": "0 3 * 13 *"}, "field 4 (month) '13' is not valid"),
    ({"cron": "0 3 * * 9"}, "field 5 (day-of-week) '9' is not valid"),
    ({"cron": "0 3 * *"}, "has 4 field(s); a cron expression has five"),
    ({"cron": "@fortnightly"}, "has 1 field(s)"),
    ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"cron": "0 3 * * *", "every": "5m"}, "give either cron or every (exactly one)"),
    ({}, "give either cron or every (exactly one)"),
    ({"every": "5m", "for_each": []}, "for_each is empty"),
    ({"every": "5m", "for_each": ["a", "a"]}, "the same value twice"),
    ({"every": "5m", "missed": "some"}, "'latest', 'all' or 'skip'"),
])
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScheduleSourceConfig(type="schedule", **config)
    assert message in str(caught.value)


def test_cron_nicknames() -> None:
    assert ScheduleSourceConfig(type="schedule", cron="@daily").cron == "0 0 * * *"
    assert ScheduleSourceConfig(type="schedule", cron="@weekly").cron == "0 0 * * 0"
    assert ScheduleSourceConfig(type="schedule", cron="  0   3 * * 2-6 ").cron == "0 3 * * 2-6"


@pytest.mark.parametrize("cron", ["30 2 * * *", "30 1 * * *", "@hourly", "*/20 0-4 * * *", "0 3 * * 0",
                                  "15 */2 8 3 *"])
def test_latest_is_the_last_tick_walked_forward_across_both_changes(cron: str) -> None:
    clock = Clock(ScheduleSourceConfig(type="schedule", cron=cron).cron, None, TORONTO)
    for day in (datetime(2026, 3, 7, 22, tzinfo=TORONTO), datetime(2026, 10, 31, 22, tzinfo=TORONTO)):
        start = day.timestamp()
        for minutes in range(0, 8 * 60, 7):
            end = datetime.fromtimestamp(start + minutes * 60 + 13, TORONTO)
            walked = list(clock.between(day, end))
            assert clock.latest(day, end) == (walked[-1] if walked else None), (cron, end)
