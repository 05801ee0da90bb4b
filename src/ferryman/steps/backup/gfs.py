"""Which backups a grandfather-father-son policy keeps: restic's ``forget`` rules, as pure functions.

The rules (restic's documentation of ``restic forget``, and its ``ApplyPolicy``):

- backups are looked at newest first;
- ``last = n`` keeps the n newest;
- ``hourly`` / ``daily`` / ``weekly`` / ``monthly`` / ``yearly = n``: for the last n periods
  (hours, days, ISO weeks, months, years, in the given time zone) *that hold a backup*, the
  newest backup of each period is kept.  Periods without a backup do not count;
- when a rule still has periods left after the oldest backup (there are fewer backups than it
  asks for), the oldest backup is kept too ("oldest daily");
- ``within = "1y2m3d4h"`` keeps every backup newer than the newest backup minus that span
  (years, months, days and hours, calendar arithmetic as in restic: ``m`` is months).  The newest
  backup is the newest one not in the future;
- the rules are OR'ed: a backup is kept when any rule keeps it, and every rule that keeps it is
  a reason.

No I/O here: `select` takes the backups and their times, and returns the decision with its
reasons, so the ``prune`` step's dry run and real run make exactly the same choice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Generic, TypeVar

T = TypeVar("T")

_WITHIN = re.compile(r"^(?:\d+[ymdh])+$")
_PART = re.compile(r"(\d+)([ymdh])")


@dataclass(frozen=True)
class Within:
    """A calendar span, restic's ``--keep-within`` duration: ``1y2m3d4h`` (years, months, days, hours)."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Within:
        """``"30d"``, ``"1y6m"``, ``"12h"``; raises `ValueError` for anything else (and for zero)."""
        parts = _PART.findall(text.strip())
        units = [unit for _, unit in parts]
        if not _WITHIN.match(text.strip()) or len(set(units)) != len(units):
            raise ValueError(f"{text!r} is not a keep-within span: write it as restic does, with y (years), "
                             "m (months), d (days) and h (hours), e.g. '30d', '6m', '1y2m3d4h'")
        found = {unit: int(n) for n, unit in parts}
        span = cls(found.get("y", 0), found.get("m", 0), found.get("d", 0), found.get("h", 0))
        if span == cls():
            raise ValueError(f"{text!r} is an empty span")
        return span

    def before(self, moment: datetime) -> datetime:
        """`moment` minus this span: years, months and days on the wall clock of `moment`'s zone
        (a day that does not exist rolls over, as Go's ``AddDate`` does: 31 March minus 1 month is
        3 March), then hours of elapsed time."""
        months = moment.year * 12 + moment.month - 1 - self.years * 12 - self.months
        year, month = divmod(months, 12)
        first = moment.replace(year=year, month=month + 1, day=1)
        wall = first + timedelta(days=moment.day - 1 - self.days)
        return (wall.astimezone(UTC) - timedelta(hours=self.hours)).astimezone(moment.tzinfo)

    def __str__(self) -> str:
        parts = [(self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h")]
        return "".join(f"{n}{unit}" for n, unit in parts if n)


@dataclass(frozen=True)
class Policy:
    """How many backups each rule keeps (0: the rule is off)."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Within | None = None

    @property
    def empty(self) -> bool:
        return self == Policy()

    def __str__(self) -> str:
        rules = [f"{name} {n}" for name, n in self.counts() if n]
        if self.within:
            rules.append(f"within {self.within}")
        return ", ".join(rules) or "nothing"

    def counts(self) -> list[tuple[str, int]]:
        return [("last", self.last), ("hourly", self.hourly), ("daily", self.daily),
                ("weekly", self.weekly), ("monthly", self.monthly), ("yearly", self.yearly)]


def _period(rule: str, t: datetime) -> str:
    """The period of `t` for a rule, as shown to the user: ``2026-11-30 13h``, ``2026-11-30``,
    ``2026-W48``, ``2026-11``, ``2026``."""
    if rule == "hourly":
        return t.strftime("%Y-%m-%d %Hh")
    if rule == "daily":
        return t.strftime("%Y-%m-%d")
    if rule == "weekly":
        year, week, _ = t.isocalendar()
        return f"{year}-W{week:02d}"
    if rule == "monthly":
        return t.strftime("%Y-%m")
    return t.strftime("%Y")


@dataclass(frozen=True)
class Reason:
    """Why a backup is kept: the `rule` (``daily``, ``oldest daily``, ``last``, ``within``) and what
    it says to a person (``daily 2026-11-30``, ``last 3``, ``within 30d of the newest``)."""

    rule: str
    text: str


@dataclass
class Selection(Generic[T]):
    """The decision: `keep` (newest first, each with its reasons) and `remove` (newest first)."""

    keep: list[tuple[T, list[Reason]]] = field(default_factory=list)
    remove: list[T] = field(default_factory=list)

    @property
    def kept(self) -> list[T]:
        return [entry for entry, _ in self.keep]


def select(backups: Sequence[T], time_of: Callable[[T], datetime], policy: Policy,
           zone: tzinfo = UTC, now: datetime | None = None) -> Selection[T]:
    """Apply `policy` to `backups` (in any order; equal times keep their given order).

    `time_of` gives each backup's time (aware); periods are counted in `zone`.  An empty
    policy keeps everything (restic does the same; the ``prune`` step refuses one).
    """
    ordered = sorted(backups, key=lambda b: time_of(b).timestamp(), reverse=True)  # stable on ties
    result: Selection[T] = Selection()
    if not ordered:
        return result
    if policy.empty:
        result.keep = [(b, [Reason("all", "no keep rule")]) for b in ordered]
        return result
    now = now or datetime.now(UTC)
    times = [time_of(b).astimezone(zone) for b in ordered]
    past = [t for t in times if t <= now]
    edge = policy.within.before(max(past) if past else min(times)) if policy.within else None
    left = dict(policy.counts())
    last_period: dict[str, str | int] = {}
    for nr, (backup, t) in enumerate(zip(ordered, times, strict=True)):
        reasons: list[Reason] = []
        if edge is not None and t > edge:
            reasons.append(Reason("within", f"within {policy.within} of the newest"))
        for rule, _ in policy.counts():
            if left[rule] <= 0:
                continue
            period: str | int = nr if rule == "last" else _period(rule, t)
            oldest = nr == len(ordered) - 1
            if period != last_period.get(rule) or oldest:
                if period == last_period.get(rule):
                    reasons.append(Reason(f"oldest {rule}", f"oldest {rule}: the rule asks for more"))
                elif rule == "last":
                    reasons.append(Reason("last", f"last {policy.last - left['last'] + 1}"))
                else:
                    reasons.append(Reason(rule, f"{rule} {period}"))
                last_period[rule] = period
                left[rule] -= 1
        if reasons:
            result.keep.append((backup, reasons))
        else:
            result.remove.append(backup)
    return result


__all__ = ["Policy", "Reason", "Selection", "Within", "select"]
