"""``schedule``: one item per tick of a clock (and per ``for_each`` value).

A tick is an item whose key is the flow's tick instant in UTC (``tick:2026-03-08T08:00:00Z``,
plus ``|<value>`` with ``for_each``).  The journal admits a key once, so a tick runs once:
across restarts, and across every instance that shares a PostgreSQL journal (the key is
unique there; no lock in memory).  A tick killed during its steps is an unfinished item like
any other and resumes where it stopped.

The source remembers, as its cursor in the journal, the instant up to which it has looked at
ticks.  Ticks between the cursor and now that are more than a moment late were *missed*
(ferryman was not running, the machine slept, the clock jumped forward): ``missed`` decides
which of them run, ``max_late`` which are too old to run at all, and every tick that does not
run is journaled as a skipped item with the reason (one item per range of ticks), so
``status`` and ``history`` show it.  A clock set back never runs a tick twice: ticks up to the
cursor have been looked at already.

The first start of a flow looks at no past tick: its history begins then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ferryman.errors import ConfigError, PermanentError
from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item, State
from ferryman.sources.base import Emit, Source
from ferryman.sources.schedule.config import ScheduleSourceConfig
from ferryman.sources.schedule.each import each_values
from ferryman.sources.schedule.timing import Clock, iso, utc_key, zone_of
from ferryman.units import format_duration

CURSOR = "schedule.cursor"
"""The instant (seconds since 1970) up to which ticks have been looked at."""

ON_TIME = 60.0
"""A tick this late (or half its period, if shorter) is on time; later, it was missed."""

MAX_SLEEP = 30.0
"""The source wakes at least this often, so a clock that jumps is noticed soon."""


@dataclass
class Span:
    """A range of ticks that do not run, and why."""

    first: datetime
    last: datetime
    count: int
    reason: str


class ScheduleSource(Source[ScheduleSourceConfig]):
    """Offers the ticks that are due; sleeps until the next one."""

    Config = ScheduleSourceConfig

    def __init__(self, config: ScheduleSourceConfig, flow: FlowContext) -> None:
        super().__init__(config, flow)
        self.zone, self.zone_name = zone_of(config)
        self.clock = Clock(config.cron, config.every, self.zone)
        self.only_each: list[str] | None = None
        """``run --each``: only these ``for_each`` values."""
        self.now: Callable[[], float] = time.time
        self._cursor: datetime | None = None
        self._loaded = False
        self._pending: datetime | None = None  # `scan`'s cursor, saved once its ticks are admitted

    @property
    def serial(self) -> bool:
        return self.config.overlap == "queue"

    # ---- the two ways the daemon asks ------------------------------------------------------

    def scan(self) -> list[Candidate]:
        """The ticks due now (``run --once``); the cursor moves at the next call, or at `close`,
        once the engine has admitted them."""
        self._save_pending()
        candidates, upto = self.due(self.now())
        self._pending = upto
        return candidates

    def watch(self, emit: Emit, stop: threading.Event) -> None:
        self._save_pending()
        while not stop.is_set():
            candidates, upto = self.due(self.now())
            if candidates:
                emit(candidates)  # admitted (durable) on return
            self._advance(upto)
            assert self._cursor is not None
            wait = self.clock.after(self._cursor).timestamp() - self.now()
            stop.wait(min(max(wait, 0.0), MAX_SLEEP))

    def close(self) -> None:
        self._save_pending()

    def by_hand(self) -> list[Candidate]:
        """``run --once --now``: one item now (per value), keyed as run by hand."""
        now = datetime.fromtimestamp(self.now(), self.zone)
        meta = {"tick": iso(now), "by_hand": "true"}
        return self._per_value(f"now:{utc_key(now)}", meta, f"run by hand at {iso(now)}", now.timestamp(),
                               self._values())

    # ---- which ticks -----------------------------------------------------------------------

    def due(self, now_ts: float) -> tuple[list[Candidate], datetime]:
        """The candidates for the ticks in (cursor, now], and the new cursor.  Instants here are
        UTC (exact arithmetic); ticks come in the flow's zone (for {meta.tick})."""
        now = datetime.fromtimestamp(now_ts, UTC)
        cursor = self._load()
        if cursor is None or cursor >= now:  # the first start, or a clock set back: nothing is due
            return [], cursor if cursor is not None and cursor > now else now
        last = self.clock.latest(cursor, now)
        if last is None:
            return [], now
        on_time = min(ON_TIME, self.clock.period(last) / 2)
        late_edge = now - timedelta(seconds=self.config.max_late) if self.config.max_late else cursor
        missed_edge = now - timedelta(seconds=on_time)
        spans: list[Span] = []
        if late_edge > cursor:
            span = self._span(cursor, late_edge, f"missed by more than max_late = "
                              f"{format_duration(self.config.max_late or 0)}")
            if span:
                spans.append(span)
        start = max(cursor, late_edge)
        run = list(self.clock.between(max(start, missed_edge), now))
        if self.config.missed == "all":
            run = [*self.clock.between(start, min(missed_edge, now)), *run]
        elif start < missed_edge:
            missed = self._span(start, missed_edge, "")
            if missed and self.config.missed == "latest" and not run:
                run = [missed.last]
                before = missed.last.astimezone(UTC) - timedelta(microseconds=1)
                missed = self._span(start, before, "") if missed.count > 1 else None
                ran = iso(run[0])
            else:
                ran = iso(run[-1]) if run else ""
            if missed:
                missed.reason = (f"missed while ferryman was not running; the tick of {ran} ran for them "
                                 "(missed = 'latest')" if self.config.missed == "latest"
                                 else "missed while ferryman was not running (missed = 'skip')")
                spans.append(missed)
        candidates = [self._skipped(span) for span in spans]
        if not run:
            return candidates, now
        busy = self._busy() if self.config.overlap == "skip" else None
        settled = None if busy is None else (State.SKIPPED, (
            f"the previous tick (item {busy.id}, {busy.meta.get('tick', busy.origin)}) was still running "
            "(overlap = 'skip')"))
        values = self._values()  # read once for every tick due now (a for_each command runs once)
        for tick in run:
            candidates += self._per_value(f"tick:{utc_key(tick)}", {"tick": iso(tick)}, f"tick {iso(tick)}",
                                          tick.timestamp(), values, settled)
        return candidates, now

    def _span(self, start: datetime, end: datetime, reason: str) -> Span | None:
        """The ticks in (start, end] as one range (None when there is none)."""
        found = self.clock.span(start, end)
        return None if found is None else Span(*found, reason)

    def _skipped(self, span: Span) -> Candidate:
        if span.count == 1:
            origin = f"tick {iso(span.first)}"
        else:
            origin = f"{span.count} ticks from {iso(span.first)} to {iso(span.last)}"
        meta = {"tick": iso(span.first), "tick_last": iso(span.last), "ticks": str(span.count)}
        return Candidate(f"missed:{utc_key(span.first)}..{utc_key(span.last)}", (), meta,
                         span.first.timestamp(), origin, (State.SKIPPED, span.reason))

    def _values(self) -> list[str] | PermanentError | None:
        """The ``for_each`` values now, narrowed by ``--each`` (None without ``for_each``; the error
        when they cannot be read: it fails the ticks).  A wrong ``--each`` raises."""
        try:
            values = each_values(self.config, self.flow.config_dir)
        except PermanentError as exc:
            return exc
        if not self.only_each:
            return values
        if values is None:
            raise ConfigError(f"--each: flow {self.flow.flow!r} has no for_each")
        unknown = [v for v in self.only_each if v not in values]
        if unknown:
            raise ConfigError(f"--each {unknown[0]!r} is not a for_each value of flow {self.flow.flow!r} "
                              f"(values: {', '.join(values) or 'none'})")
        return [v for v in values if v in self.only_each]

    @staticmethod
    def _per_value(key: str, meta: dict[str, str], origin: str, order: float,
                   values: list[str] | PermanentError | None,
                   settled: tuple[State, str] | None = None) -> list[Candidate]:
        if isinstance(values, PermanentError):
            return [Candidate(key, (), meta, order, origin, (State.FAILED, str(values)))]
        if values is None:
            return [Candidate(key, (), meta, order, origin, settled)]
        return [Candidate(f"{key}|{value}", (), {**meta, "each": value}, order, f"{origin} ({value})", settled)
                for value in values]

    def _busy(self) -> Item | None:
        """A tick of this flow that runs, or waits to run now (a retry waiting for later does not count)."""
        now = time.time()
        for item in self.flow.journal.unfinished([self.flow.flow]):
            if item.state == State.RUNNING or not item.next_attempt_at or item.next_attempt_at <= now:
                return item
        return None

    # ---- the cursor --------------------------------------------------------------------------

    def _load(self) -> datetime | None:
        if not self._loaded:
            stored = self.flow.journal.get_cursor(self.flow.flow, CURSOR)
            self._loaded = True
            if stored is not None:
                try:
                    self._cursor = datetime.fromtimestamp(float(stored), UTC)
                except ValueError:
                    self.flow.log.warning("%s: the schedule cursor %r is not a time; starting from now",
                                          self.flow.flow, stored)
            if self._cursor is None:  # the first start: history begins now
                self._advance(datetime.fromtimestamp(self.now(), UTC))
                return None
        return self._cursor

    def _advance(self, upto: datetime) -> None:
        if self._cursor is None or upto > self._cursor:
            self.flow.journal.set_cursor(self.flow.flow, CURSOR, repr(upto.timestamp()))
            self._cursor = upto

    def _save_pending(self) -> None:
        if self._pending is not None:
            self._advance(self._pending)
            self._pending = None

    def selected(self, values: Sequence[str]) -> None:
        """``run --each``: only these values from now on."""
        self.only_each = list(values) or None
