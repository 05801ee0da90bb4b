"""When a schedule's ticks fall: cron wall-clock times in a zone (through cronsim) or a fixed interval.

Daylight saving time, for ``cron``:

- a wall time that does not exist (02:30 on the night the clocks spring forward) runs once, at
  the first valid instant after it (03:00): cronsim does that, as Debian's cron does;
- a wall time that happens twice (01:30 on the night they fall back) runs once, the first
  time.  `Clock` drops the second one: a tick whose local time is the later of two identical
  wall times (``fold = 1``).  Note that this also holds for ``@hourly``: the repeated hour
  does not run again.  A schedule that must keep running every hour through the night of the
  change is an elapsed-time schedule; ``every = "1h"`` is that.

``every`` ticks fall on whole multiples of the interval since 1970-01-01 UTC, so every instance
of a cluster computes the same instants, and DST never moves them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ferryman.sources.schedule.config import ExpectConfig, ScheduleSourceConfig


def machine_zone() -> tuple[tzinfo, str]:
    """The machine's zone, with its name: ``$TZ``, the /etc/localtime link, or the file itself."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        link = os.readlink("/etc/localtime")
    except OSError:
        link = ""
    if "zoneinfo/" in link:
        name = link.split("zoneinfo/", 1)[1]
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime"), "localtime"
    except (OSError, ValueError):
        return UTC, "UTC"


def zone_of(config: ScheduleSourceConfig | ExpectConfig) -> tuple[tzinfo, str]:
    """The zone of a schedule (or of an ``expect`` window) and its name."""
    return (ZoneInfo(config.timezone), config.timezone) if config.timezone else machine_zone()


def _repeated(local: datetime) -> bool:
    """True for the second of two identical wall times (the hour repeated when clocks fall back)."""
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


class Clock:
    """The ticks of one schedule, as aware datetimes in its zone."""

    def __init__(self, cron: str | None, every: float | None, zone: tzinfo) -> None:
        self.cron = cron
        self.every = every
        self.zone = zone

    def after(self, instant: datetime) -> datetime:
        """The first tick strictly after `instant`."""
        return next(self.ticks(instant))

    def ticks(self, start: datetime) -> Iterator[datetime]:
        """Every tick strictly after `start`, in order, without end."""
        if self.every is not None:
            step = self.every
            n = math.floor(start.timestamp() / step) + 1
            while True:
                yield datetime.fromtimestamp(n * step, self.zone)
                n += 1
        from cronsim import CronSim

        assert self.cron is not None
        last = -math.inf
        for local in CronSim(self.cron, start.astimezone(self.zone)):
            tick = local.astimezone(self.zone)
            if _repeated(tick) or tick.timestamp() <= last:
                continue  # the repeated hour, or two nonexistent wall times moved to one instant
            last = tick.timestamp()
            yield tick

    def between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Ticks in (start, end].  (Instants are compared as timestamps everywhere: two datetimes of
        one zone compare by wall time, which the repeated hour makes ambiguous.)"""
        limit = end.timestamp()
        for tick in self.ticks(start):
            if tick.timestamp() > limit:
                return
            yield tick

    def latest(self, start: datetime, end: datetime) -> datetime | None:
        """The last tick in (start, end], found backwards from `end` (a long downtime is not walked)."""
        if self.every is not None:
            n = math.floor(end.timestamp() / self.every)
            tick = datetime.fromtimestamp(n * self.every, self.zone)
            return tick if tick > start else None
        from cronsim import CronSim

        assert self.cron is not None
        base = start.timestamp()
        origin = datetime.fromtimestamp(math.floor(end.timestamp()) + 1, self.zone)  # cron ticks are whole minutes
        for local in CronSim(self.cron, origin, reverse=True):
            if local.timestamp() <= base:
                break
            if local.timestamp() <= end.timestamp() and not _repeated(local.astimezone(self.zone)):
                base = local.timestamp() - 1
                break
        # Backwards, cronsim does not see a nonexistent wall time moved forward (02:30 → 03:00 on
        # the night of the change): walk forward from the tick found, a step or two.
        last = None
        for last in self.between(datetime.fromtimestamp(base, UTC), end):  # noqa: B007
            pass
        return last

    def span(self, start: datetime, end: datetime) -> tuple[datetime, datetime, int] | None:
        """The first and last tick in (start, end] and how many there are (None when none).
        ``every`` ticks are counted, not walked: a year of 1 s ticks is one division."""
        if self.every is not None:
            lo = math.floor(start.timestamp() / self.every) + 1
            hi = math.floor(end.timestamp() / self.every)
            if hi < lo:
                return None
            return (datetime.fromtimestamp(lo * self.every, self.zone),
                    datetime.fromtimestamp(hi * self.every, self.zone), hi - lo + 1)
        first = last = None
        count = 0
        for last in self.between(start, end):
            first = first or last
            count += 1
        return None if first is None or last is None else (first, last, count)

    def period(self, tick: datetime) -> float:
        """Seconds from `tick` to the tick after it."""
        if self.every is not None:
            return self.every
        return self.after(tick).timestamp() - tick.timestamp()


def iso(instant: datetime) -> str:
    """ISO 8601 with the zone's offset, without microseconds when there are none."""
    return instant.isoformat(timespec="microseconds" if instant.microsecond else "seconds")


def utc_key(instant: datetime) -> str:
    """The instant in UTC, for journal keys: the same tick is the same key on every instance."""
    return iso(instant.astimezone(UTC)).replace("+00:00", "Z")


__all__ = ["Clock", "iso", "machine_zone", "utc_key", "zone_of"]
