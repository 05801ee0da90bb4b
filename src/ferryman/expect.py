"""``expect``: the alert for an export that never came.

``expect = { cron = "0 7 * * 1-5", within = "2h" }`` on a flow, whatever its source, means "an
item of this flow succeeds between 07:00 and 09:00 every weekday".  When a window closes
without one, an item keyed ``expect:<window>`` is journaled as failed, so its flow's notifiers
hear once (the journal admits the key once: one alert across a cluster too), ``status`` shows
the flow overdue, and the hub's recovery notice follows the next success.  While the flow is
overdue, further empty windows alert no more.  ``ferryman retry`` on the alert acknowledges it.

Only the newest window that closed is judged: after a long downtime, one alert, not one per day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ferryman.item import Candidate, Item, State
from ferryman.journal.base import Journal
from ferryman.sources.schedule.config import ExpectConfig, ScheduleSourceConfig
from ferryman.sources.schedule.timing import Clock, iso, utc_key, zone_of

PREFIX = "expect:"
CURSOR = "expect.checked"


def overdue(journal: Journal, flow: str) -> Item | None:
    """The alert of the window the flow is overdue for (None when an item succeeded since)."""
    alert = next((i for i in journal.history(flow, State.FAILED, 50) if i.key.startswith(PREFIX)), None)
    if alert is None:
        return None
    done = next(iter(journal.history(flow, State.DONE, 1)), None)
    return None if done is not None and done.updated_at >= alert.created_at else alert


class Expectation:
    """The windows of one flow's ``expect``, judged as they close."""

    def __init__(self, flow: str, config: ExpectConfig, journal: Journal,
                 schedule: ScheduleSourceConfig | None = None) -> None:
        self.flow = flow
        self.journal = journal
        self.zone, self.zone_name = zone_of(config if config.timezone or schedule is None else schedule)
        self.clock = Clock(config.cron, config.every, self.zone)
        self.within = timedelta(seconds=config.within)
        self._cursor: datetime | None = None
        self._next_check = 0.0

    def due(self, now_ts: float) -> list[Candidate]:
        """The alert for the window that closed since the last look, if nothing succeeded in it."""
        if now_ts < self._next_check:
            return []
        now = datetime.fromtimestamp(now_ts, UTC)
        cursor = self._load(now)
        found: list[Candidate] = []
        window = self.clock.latest(cursor - self.within, now - self.within) if cursor < now else None
        if window is not None and overdue(self.journal, self.flow) is None and not self._met(window):
            close = window + self.within
            span = f"{iso(window)} and {iso(close)}"
            found.append(Candidate(
                f"{PREFIX}{utc_key(window)}", (), {"window": iso(window), "window_end": iso(close)},
                window.timestamp(), f"expected an item between {span}",
                (State.FAILED, f"overdue: no item of flow {self.flow!r} succeeded between {span} (expect)")))
        if cursor < now:
            self.journal.set_cursor(self.flow, CURSOR, repr(now_ts))
            self._cursor = now
        upcoming = self.clock.after(now - self.within) + self.within
        self._next_check = upcoming.timestamp()
        return found

    def _load(self, now: datetime) -> datetime:
        if self._cursor is None:
            stored = self.journal.get_cursor(self.flow, CURSOR)
            try:
                self._cursor = datetime.fromtimestamp(float(stored), UTC) if stored else None
            except ValueError:
                self._cursor = None
            if self._cursor is None:  # the first start: windows that closed before now are not judged
                self.journal.set_cursor(self.flow, CURSOR, repr(now.timestamp()))
                self._cursor = now
        return self._cursor

    def _met(self, window: datetime) -> bool:
        start, end = window.timestamp(), (window + self.within).timestamp()
        return any(start <= i.updated_at <= end for i in self.journal.history(self.flow, State.DONE, 200))
