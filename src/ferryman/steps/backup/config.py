"""The config models of the backup steps: ``pg_dump``, ``prune`` and ``compress_old``.

The bottom of the package: it imports only `steps.base`, the GFS terms and the model layer.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from ferryman import templates
from ferryman.model import Model
from ferryman.steps.backup.gfs import Policy, Within
from ferryman.steps.base import StepConfig
from ferryman.transports import parse_location
from ferryman.units import Duration

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _zone(value: str | None) -> str | None:
    if value is not None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like 'Europe/Paris'") from None
    return value


class Keep(Model):
    """restic's ``forget`` rules; a file is kept when any rule keeps it."""

    last: int = Field(0, ge=0, description="Keep the N newest files.")
    hourly: int = Field(0, ge=0, description="For the last N hours that hold a file, keep the newest of each.")
    daily: int = Field(0, ge=0, description="For the last N days that hold a file, keep the newest of each.")
    weekly: int = Field(0, ge=0, description="For the last N ISO weeks that hold a file, keep the newest of each.")
    monthly: int = Field(0, ge=0, description="For the last N months that hold a file, keep the newest of each.")
    yearly: int = Field(0, ge=0, description="For the last N years that hold a file, keep the newest of each.")
    within: str | None = Field(None, description="Keep every file newer than the newest file minus this span, "
                               "restic's units: '30d', '6m' (months), '1y2m3d4h'.")

    @field_validator("within")
    @classmethod
    def _within(cls, value: str | None) -> str | None:
        if value is not None:
            Within.parse(value)
        return value

    def policy(self) -> Policy:
        return Policy(self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly,
                      Within.parse(self.within) if self.within else None)


class TimeFromName(Model):
    """Read a file's time from its name instead of its modification time."""

    pattern: str = Field(description="Regex with a group (?P<ts>…) holding the time, e.g. '_(?P<ts>\\d{8})\\.dump$'.")
    format: str = Field(description="strptime format of the ts group, e.g. '%Y%m%d' (the time zone is the step's).")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from None
        if "ts" not in compiled.groupindex:
            raise ValueError("the pattern needs a group named ts: (?P<ts>…)")
        return value

    def parse(self, name: str) -> datetime | None:
        """The naive time in `name`, or None when the name does not match or does not parse."""
        match = re.search(self.pattern, name)
        if not match:
            return None
        try:
            return datetime.strptime(match.group("ts"), self.format)
        except ValueError:
            return None


class PruneConfig(StepConfig):
    """Delete old files in a folder or remote prefix by a GFS retention policy (restic's ``forget`` rules)."""

    type: Literal["prune"]
    path: str = Field(description="The folder: a local path, s3://CONN/bucket/prefix, sftp://CONN/path or "
                      "ftp://CONN/path. Templates allowed ({meta.each} …).")
    include: list[str] = Field(default_factory=lambda: ["*"], description="Only files whose names match "
                               "these globs are backups (others are never touched); templates, e.g. "
                               "'{meta.each}_*.dump'.")
    exclude: list[str] = Field(default_factory=list, description="Leave files matching these globs "
                               "(templates) alone.")
    keep: Keep = Field(description="Retention rules, e.g. { daily = 7, weekly = 5, monthly = 12 }; at least one.")
    time_from_name: TimeFromName | None = Field(None, description="Take each file's time from its name "
                                                "(default: its modification time / object time).")
    timezone: str | None = Field(None, description="Zone that days, weeks and months are counted in "
                                 "(default: the machine's); set the flow's schedule zone.")
    dry_run: bool = Field(False, description="Delete nothing: journal what would be deleted and why each "
                          "survivor is kept.")
    max_delete: int | str = Field("50%", description="Refuse a run that would delete more than this: a count "
                                  "(10) or a share of the matching files ('50%').")
    allow_empty: bool = Field(False, description="Succeed when no file matches (default: fail, since a wrong "
                              "path or pattern looks just like that).")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        templates.check(parse_location(value).path)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return _zone(value)

    @field_validator("include", "exclude")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        for pattern in value:
            templates.check(pattern)
        return value

    @field_validator("max_delete")
    @classmethod
    def _max_delete(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError("max_delete cannot be negative")
            return value
        match = _PERCENT.match(value)
        if not match or float(match.group(1)) > 100:
            raise ValueError(f"max_delete {value!r} is neither a count (10) nor a percentage ('50%')")
        return value

    @model_validator(mode="after")
    def _rules(self) -> PruneConfig:
        if self.keep.policy().empty:
            raise ValueError("keep has no rule: give at least one of last, hourly, daily, weekly, monthly, "
                             "yearly, within (an empty policy would delete everything)")
        return self

    def limit(self, matching: int) -> int:
        """The most files one run may delete, out of `matching`."""
        if isinstance(self.max_delete, int):
            return self.max_delete
        match = _PERCENT.match(self.max_delete)
        assert match is not None
        return int(matching * float(match.group(1)) / 100)


class CompressOldConfig(StepConfig):
    """Move files older than `age` into a dated zip archive (CIOC's compress_old_logs)."""

    type: Literal["compress_old"]
    path: str = Field(description="Local folder holding the files (templates allowed).")
    include: list[str] = Field(default_factory=lambda: ["*"], description="Globs of the files to compress.")
    exclude: list[str] = Field(default_factory=lambda: ["*.zip"], description="Globs of files to leave alone "
                               "(the archives themselves by default).")
    age: Duration = Field(description="Compress files last modified longer ago than this, e.g. '6d'.")
    name: templates.Template = Field("archive_{now:%Y%m%d}.zip", description="Archive name template in the "
                                     "folder, e.g. 'logs_{now:%Y-%m-%d}.zip'.")
    level: int = Field(6, ge=0, le=9, description="Deflate level: 1 fastest … 9 smallest.")


class PgDumpConfig(StepConfig):
    """Dump a PostgreSQL database with pg_dump into the work folder; the item then carries the dump."""

    type: Literal["pg_dump"]
    connection: str = Field(description="Name of a [connections.NAME] of type postgres (its dsn holds "
                            "host, user and password).")
    database: templates.Template | None = Field(None, description="Database to dump (a template, e.g. '{meta.each}'); "
                                 "default: the connection's own.")
    format: Literal["custom", "directory-tar", "tar", "plain"] = Field(
        "custom", description="pg_dump format; 'directory-tar' dumps the directory format (parallel with "
        "jobs) and packs it in one tar file.")
    name: templates.Template = Field("{meta.database}_{now:%Y%m%d-%H%M%S}{meta.dump_suffix}",
                                     description="File name of the dump; sees {meta.database} and "
                                     "{meta.dump_suffix} (.dump, .tar, .sql).")
    jobs: int = Field(1, ge=1, description="Parallel jobs (directory-tar only).")
    extra_args: list[str] = Field(default_factory=list, description="More pg_dump options, e.g. "
                                  "['--exclude-table=audit_*', '--no-owner'].")
    pg_dump: str = Field("pg_dump", description="The pg_dump program (name on PATH or a path).")
    verify: bool = Field(True, description="Check the archive with pg_restore --list before the step succeeds.")

    @field_validator("extra_args")
    @classmethod
    def _extra(cls, value: list[str]) -> list[str]:
        for arg in value:
            if arg.split("=", 1)[0] in _OWN_ARGS:
                raise ValueError(f"extra_args may not set {arg.split('=', 1)[0]}: the step sets it itself")
        return value


_OWN_ARGS = {"-f", "--file", "-F", "--format", "-d", "--dbname", "-W", "--password", "-j", "--jobs"}
"""pg_dump options the step sets; extra_args may not override them."""


__all__ = ["CompressOldConfig", "Keep", "PgDumpConfig", "PruneConfig", "TimeFromName"]
