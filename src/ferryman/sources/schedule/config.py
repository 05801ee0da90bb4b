"""The ``schedule`` source's config: when ticks fall (`cron` or `every`, in `timezone`), what
happens to ticks missed while ferryman was down, and the ``for_each`` values of a tick.

At the bottom of the package: `timing`, `each` and `source` import it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ferryman.model import Model
from ferryman.sources.base import SourceConfig
from ferryman.units import Duration

NAMED = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
"""The usual cron nicknames, as the five fields they stand for."""

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


def cron_fields(expression: str) -> str:
    """The five fields of `expression` (a nickname expanded); ValueError naming the field at fault."""
    from cronsim import CronSim, CronSimError

    text = " ".join(expression.split())
    text = NAMED.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(f"{expression!r} has {len(fields)} field(s); a cron expression has five "
                         f"({' '.join(FIELDS)}) or is one of {', '.join(NAMED)}")
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        reason = str(exc)
        for position, name in enumerate(FIELDS):
            if name.replace("-", " ") in reason.lower().replace("-", " "):
                raise ValueError(f"{expression!r}: field {position + 1} ({name}) {fields[position]!r} is "
                                 f"not valid ({reason.lower()})") from None
        raise ValueError(f"{expression!r} is not a valid cron expression: {reason}") from None
    return text


def zone_name(value: str) -> str:
    """`value` if it names an IANA time zone, else ValueError."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as 'America/Toronto' or 'UTC')") from None
    return value


class Clocked(Model):
    """The checks of a clock's keys, for the models that declare ``cron``, ``every`` and
    ``timezone`` (a schedule and an ``expect`` window), each with its own descriptions."""

    @field_validator("cron", check_fields=False)
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else cron_fields(value)

    @field_validator("timezone", check_fields=False)
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else zone_name(value)

    @model_validator(mode="after")
    def _one_clock(self) -> Clocked:
        if (getattr(self, "cron", None) is None) == (getattr(self, "every", None) is None):
            raise ValueError("give either cron or every (exactly one)")
        return self


class EachFile(Model):
    """``for_each = { file = "databases.txt" }``: one value per non-empty line (``#`` starts a comment)."""

    file: str = Field(description="A file with one value per line (relative to the config file).")


class EachCommand(Model):
    """``for_each = { command = ["psql", "-Atc", "select datname from pg_database"] }``."""

    command: list[str] = Field(min_length=1, description="argv of a program; each non-empty output "
                               "line is one value. A non-zero exit fails the tick with its stderr.")
    timeout: Duration = Field(60.0, gt=0, description="How long the command may take.")


class ScheduleSourceConfig(SourceConfig, Clocked):
    """One item per tick of a cron schedule or an interval (and per ``for_each`` value)."""

    type: Literal["schedule"] = Field(description="Ticks of a clock: cron = '0 3 * * *' or every = '5m'.")
    cron: str | None = Field(None, description="Five cron fields (minute hour day-of-month month "
                             "day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly; wall-clock "
                             "time in `timezone`.")
    every: Duration | None = Field(None, gt=0, description="An interval instead of cron ('30s', '5m', "
                                   "'1h'): ticks at whole multiples of it since 1970 (UTC), so every "
                                   "instance agrees on them; no DST effect.")
    timezone: str | None = Field(None, description="IANA zone of cron's wall-clock times and of "
                                 "{meta.tick} (default: the machine's zone).")
    missed: Literal["latest", "all", "skip"] = Field(
        "latest", description="Ticks missed while ferryman was not running: 'latest' runs once for "
        "them (the newest), 'all' runs each (oldest first), 'skip' runs none; the others are journaled "
        "as skipped.")
    max_late: Duration | None = Field(None, gt=0, description="A missed tick older than this is never "
                                      "run: it is journaled as skipped (default: no limit).")
    overlap: Literal["skip", "queue"] = Field(
        "skip", description="A tick due while the flow's previous tick still runs: 'skip' it (journaled "
        "as skipped, with the reason) or 'queue' it (ticks then run one at a time).")
    for_each: list[str] | EachFile | EachCommand | None = Field(
        None, description="One item per value per tick, {meta.each} in templates: a list, { file = … } "
        "or { command = [...] }.")

    @field_validator("for_each")
    @classmethod
    def _values(cls, value: list[str] | EachFile | EachCommand | None) -> list[str] | EachFile | EachCommand | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("for_each is empty: give at least one value, or leave it out")
            if any(not v.strip() for v in value):
                raise ValueError("for_each holds an empty value")
            if len(set(value)) != len(value):
                raise ValueError("for_each holds the same value twice")
        return value


class ExpectConfig(Clocked):
    """``expect = { cron = "0 7 * * 1-5", within = "2h" }``: an item of the flow must succeed in
    every window (07:00 to 09:00 each weekday); else the flow's notifiers hear once, ``status``
    shows the flow overdue, and a recovery notice follows the next success."""

    cron: str | None = Field(None, description="When each window opens (five cron fields or @daily …).")
    every: Duration | None = Field(None, gt=0, description="Or: a window opens this often ('15m').")
    within: Duration = Field(gt=0, description="How long each window stays open ('2h').")
    timezone: str | None = Field(None, description="Zone of cron's times (default: the flow's schedule "
                                 "zone, else the machine's).")
