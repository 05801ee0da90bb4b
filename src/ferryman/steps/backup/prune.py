"""``prune``: delete old backups in a folder, an S3 prefix or an SFTP/FTP folder by GFS retention.

One run:

1. lists the folder completely (a listing that fails half-way fails the item: nothing is
   deleted on a partial list);
2. takes the files whose names match ``include`` and not ``exclude`` (temporary names of
   deliveries, ``*.in_progress`` ``*.part`` ``*.tmp`` and hidden files, are never backups);
3. gives each a time: its modification (object) time, or the time in its name
   (``time_from_name``); a name that does not parse is left alone and reported;
4. lets `gfs.select` decide, with the reasons of every survivor ("monthly 2026-11");
5. refuses the run when it would delete more than ``max_delete``; the newest file is never
   deleted (the selection always keeps it, and the step checks);
6. deletes (S3: DeleteObjects in batches) and journals every deleted name, or with
   ``dry_run`` only journals what it would delete.

No file matching is an error unless ``allow_empty``: a wrong path or pattern looks like that.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from ferryman import templates
from ferryman.errors import PermanentError, StepError, TransientError, one_line
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.steps.backup.config import PruneConfig
from ferryman.steps.backup.gfs import Selection, select
from ferryman.steps.base import Step, StepContext, StepResult
from ferryman.transports import Location, RemoteFile, parse_location

TEMPORARY = ("*.in_progress", "*.part", "*.tmp", ".*")
"""Names that are never backups: files being written, and hidden files."""

SHOWN = 20
"""Names listed in an error message before '… and N more'."""


@dataclass(frozen=True)
class Backup:
    """One matching file and the time retention counts for it."""

    file: RemoteFile
    name: str
    time: datetime


def globs(patterns: list[str] | tuple[str, ...]) -> Callable[[str], bool]:
    """One compiled test for "the name matches any of these globs" (fnmatch's rules, case-sensitive)."""
    if not patterns:
        return lambda _: False
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda name: regex.match(name) is not None


_TEMPORARY = globs(TEMPORARY)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" … and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


class PruneStep(Step[PruneConfig]):
    """Runs the retention policy once per item; the item's files pass through."""

    Config = PruneConfig

    def __init__(self, config: PruneConfig, flow: FlowContext) -> None:
        super().__init__(config, flow)
        self.location = parse_location(config.path)
        self.policy = config.keep.policy()
        if config.timezone:
            self.zone: tzinfo = ZoneInfo(config.timezone)
        else:
            from ferryman.sources.schedule.timing import machine_zone

            self.zone = machine_zone()[0]

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        folder = templates.render_path(self.location.path, ctx.values())
        if self.location.scheme == "file":
            folder = str(self.flow.resolve(folder))
        place = str(Location(self.location.scheme, self.location.connection, folder))
        with self.flow.transports.open(self.location) as transport:
            try:
                listing = list(transport.list(folder))  # all or nothing: an error here deletes nothing
            except StepError as exc:
                kind = TransientError if isinstance(exc, TransientError) else PermanentError
                raise kind(f"prune {place}: the listing failed, nothing deleted: {one_line(exc)}") from None
            values = ctx.values()
            include = [templates.render(p, values) for p in self.config.include]
            exclude = [templates.render(p, values) for p in self.config.exclude]
            backups, unparsed = self.backups(listing, include, exclude)
            if unparsed:
                self.flow.log.warning("%s: prune %s: left alone, no time in the name: %s", self.flow.flow,
                                      place, _names(unparsed))
            if not backups:
                if unparsed:
                    raise PermanentError(f"prune {place}: none of the {len(unparsed)} matching names has a time "
                                         f"that time_from_name can read (e.g. {unparsed[0]!r}); nothing deleted")
                if self.config.allow_empty:
                    return StepResult(outputs={"place": place, "matched": 0})
                raise PermanentError(f"prune {place}: no file matches include = {include}"
                                     f"{' exclude = ' + str(exclude) if exclude else ''}"
                                     f" ({len(listing)} files there); nothing deleted")
            chosen = select(backups, lambda b: b.time, self.policy, self.zone)
            outputs = self._outputs(place, chosen, len(backups), unparsed)
            doomed = [b.name for b in chosen.remove]
            refusal = self._refusal(place, chosen, len(backups))
            if self.config.dry_run:
                for name in doomed:
                    self.flow.log.info("%s: prune %s: would delete %s", self.flow.flow, place, name)
                if refusal:
                    self.flow.log.warning("%s: %s", self.flow.flow, refusal)
                    outputs["refused"] = refusal
                return StepResult(outputs={**outputs, "dry_run": True, "would_delete": doomed})
            if refusal:
                raise PermanentError(refusal)
            deleted = self._delete(transport, place, chosen)
        return StepResult(outputs={**outputs, "deleted": deleted})

    def backups(self, listing: list[RemoteFile], include: list[str],
                exclude: list[str]) -> tuple[list[Backup], list[str]]:
        """The matching files with their times (sorted by name), and the matching names without one."""
        found: list[Backup] = []
        unparsed: list[str] = []
        included, excluded = globs(include), globs(exclude)
        for file in sorted(listing, key=lambda f: f.path):
            name = posixpath.basename(file.path)
            if _TEMPORARY(name) or not included(name) or excluded(name):
                continue
            if self.config.time_from_name is not None:
                naive = self.config.time_from_name.parse(name)
                when = naive.replace(tzinfo=self.zone) if naive else None
            else:
                when = datetime.fromtimestamp(file.mtime, self.zone) if file.mtime is not None else None
            if when is None:
                unparsed.append(name)
            else:
                found.append(Backup(file, name, when))
        return found, unparsed

    def _outputs(self, place: str, chosen: Selection[Backup], matched: int, unparsed: list[str]) -> dict[str, Any]:
        outputs: dict[str, Any] = {
            "place": place, "policy": str(self.policy), "matched": matched,
            "kept": {b.name: ", ".join(r.text for r in reasons) for b, reasons in chosen.keep},
        }
        if unparsed:
            outputs["unparsed"] = unparsed
        for backup, reasons in chosen.keep:
            self.flow.log.info("%s: prune %s: keeps %s (%s)", self.flow.flow, place, backup.name,
                               ", ".join(r.text for r in reasons))
        return outputs

    def _refusal(self, place: str, chosen: Selection[Backup], matched: int) -> str | None:
        """Why the run must not delete, or None."""
        newest = max(chosen.kept + chosen.remove, key=lambda b: b.time.timestamp())
        if newest in chosen.remove:  # gfs.select never does this; the guard stays anyway
            return f"prune {place}: the selection would delete the newest file {newest.name}; nothing deleted"
        limit = self.config.limit(matched)
        count = len(chosen.remove)
        if count > limit:
            share = f"{count * 100 // matched}%"
            return (f"prune {place}: would delete {count} of {matched} matching files ({share}), more than "
                    f"max_delete = {self.config.max_delete}; nothing deleted (check include, keep and the "
                    "clock, set dry_run = true to see the list, or raise max_delete)")
        return None

    def _delete(self, transport: Any, place: str, chosen: Selection[Backup]) -> list[str]:
        deleted: list[str] = []
        paths = {b.file.path: b.name for b in chosen.remove}
        try:
            for path in transport.remove_many(list(paths)):
                deleted.append(paths[path])
                self.flow.log.info("%s: prune %s: deleted %s", self.flow.flow, place, paths[path])
        except StepError as exc:
            done = f"after deleting {len(deleted)} of {len(paths)} ({_names(deleted)})" if deleted else \
                f"before deleting any of {len(paths)}"
            kind = TransientError if isinstance(exc, TransientError) else PermanentError
            raise kind(f"prune {place}: stopped {done}: {one_line(exc)}") from None
        return deleted


__all__ = ["Backup", "PruneStep"]
