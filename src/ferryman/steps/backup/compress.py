"""``compress_old``: files of a local folder last modified longer ago than ``age`` go into a dated zip.

CIOC's compress_old_logs, made crash-safe.  One run:

1. removes its own leftover temporary archives (``.ferryman-compress-*.in_progress``);
2. picks the matching files older than ``age``;
3. a file that an earlier archive of this step already holds (same name, size and CRC-32,
   read from the archive's directory and the file's bytes) is only deleted: that earlier run
   stopped between writing its archive and deleting the originals;
4. writes the others into a hidden temporary zip in the folder, fsyncs it, and reads it back:
   every entry's CRC must match its data (``testzip``) *and* the CRC of the original computed
   while writing;
5. renames it to ``name`` (a numbered name when that exists: ``logs_20261130-1.zip``), fsyncs
   the folder, and only then deletes the originals.

A crash before 5 leaves every original in place and only a temporary file, which the next run
removes; a crash after it leaves an archive whose files the next run recognises (3), so no file
is lost and none lands in two archives.  A file that changed while it was archived is kept.

Culling old files is ``prune`` with ``keep = { within = "30d" }``: one deletion mechanism.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

from ferryman import templates
from ferryman.errors import TransientError
from ferryman.item import Item
from ferryman.steps.backup.config import CompressOldConfig
from ferryman.steps.backup.prune import TEMPORARY, globs
from ferryman.steps.base import Step, StepContext, StepResult
from ferryman.transports.local import fsync_dir, fsync_path, os_errors

MARK = b"ferryman compress_old"
"""The archive comment that marks this step's archives (only those are looked into)."""

TEMP_PREFIX = ".ferryman-compress-"
BLOCK = 1024 * 1024


def crc_of(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


def _changed(path: Path, before: os.stat_result) -> bool:
    """Whether `path` was written to (or replaced) since `before` was taken."""
    try:
        now = path.stat()
    except FileNotFoundError:
        return True
    return (now.st_size, now.st_mtime_ns, now.st_ino) != (before.st_size, before.st_mtime_ns, before.st_ino)


class CompressOldStep(Step[CompressOldConfig]):
    """Compresses once per item; the item then carries the new archive (if one was made)."""

    Config = CompressOldConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        folder = self.flow.resolve(templates.render_path(self.config.path, ctx.values()))
        with os_errors("compress_old: cannot read"):
            for leftover in folder.glob(f"{TEMP_PREFIX}*.in_progress"):
                leftover.unlink(missing_ok=True)
            old = self._old_files(folder, ctx.now.timestamp() - self.config.age)
            archived = self._archived(folder)
        again = [p for p, st in old if (p.name, st.st_size) in archived and crc_of(p) in archived[p.name, st.st_size]]
        fresh = [(p, st) for p, st in old if p not in again]
        outputs: dict[str, Any] = {"folder": str(folder), "compressed": [], "already_archived": [p.name for p in again]}
        files: list[Path] | None = None
        if fresh:
            archive, kept = self._archive(folder, fresh, ctx)
            outputs.update(archive=archive.name, compressed=[p.name for p, _ in fresh if p not in kept],
                           changed_meanwhile=[p.name for p in kept], bytes=archive.stat().st_size)
            again += [p for p, _ in fresh if p not in kept]
            files = [archive]
        with os_errors("compress_old: cannot delete"):
            for path in again:
                path.unlink(missing_ok=True)
                self.flow.log.info("%s: compress_old: deleted %s (archived)", self.flow.flow, path)
            if again:
                fsync_dir(folder)
        return StepResult(files=files, outputs=outputs)

    def _old_files(self, folder: Path, edge: float) -> list[tuple[Path, os.stat_result]]:
        found = []
        temporary, included, excluded = globs(TEMPORARY), globs(self.config.include), globs(self.config.exclude)
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            name = entry.name
            if not entry.is_file(follow_symlinks=False) or temporary(name):
                continue
            if not included(name) or excluded(name):
                continue
            st = entry.stat(follow_symlinks=False)
            if st.st_mtime < edge:
                found.append((Path(entry.path), st))
        return found

    def _archived(self, folder: Path) -> dict[tuple[str, int], set[int]]:
        """(name, size) → CRCs of the entries in this step's earlier archives in `folder`."""
        held: dict[tuple[str, int], set[int]] = {}
        for path in folder.glob("*.zip"):
            try:
                with zipfile.ZipFile(path) as zf:
                    if zf.comment != MARK:
                        continue
                    for info in zf.infolist():
                        held.setdefault((info.filename, info.file_size), set()).add(info.CRC)
            except (zipfile.BadZipFile, OSError) as exc:
                self.flow.log.warning("%s: compress_old: cannot read %s: %s", self.flow.flow, path, exc)
        return held

    def _archive(self, folder: Path, files: list[tuple[Path, os.stat_result]],
                 ctx: StepContext) -> tuple[Path, set[Path]]:
        """Write, verify and name the archive; returns it and the files that changed meanwhile."""
        name = templates.render_name(self.config.name, ctx.values())
        temp = folder / f"{TEMP_PREFIX}{name}.in_progress"
        crcs: dict[str, int] = {}
        try:
            with os_errors("compress_old: cannot write"):
                with zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED, compresslevel=self.config.level) as zf:
                    zf.comment = MARK
                    for path, _ in files:
                        crcs[path.name] = crc_of(path)
                        zf.write(path, path.name)
                fsync_path(temp)
            self._verify(temp, crcs)
            final = self._free_name(folder, name)
            with os_errors("compress_old: cannot rename"):
                os.link(temp, final)  # never replaces: a name taken meanwhile fails instead
                temp.unlink()
                fsync_dir(folder)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        return final, {p for p, st in files if _changed(p, st)}

    @staticmethod
    def _verify(archive: Path, crcs: dict[str, int]) -> None:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise TransientError(f"compress_old: {archive.name}: entry {bad} fails its CRC check on reading back")
            for info in zf.infolist():
                if crcs.get(info.filename) != info.CRC:
                    raise TransientError(f"compress_old: {info.filename} changed while it was archived "
                                         "(CRC differs); nothing deleted")
            if set(crcs) != set(zf.namelist()):
                raise TransientError(f"compress_old: {archive.name} lacks entries on reading back; nothing deleted")

    @staticmethod
    def _free_name(folder: Path, name: str) -> Path:
        for n in range(10_000):
            candidate = folder / (templates.numbered(name, n) if n else name)
            if not candidate.exists():
                return candidate
        raise TransientError(f"compress_old: no free archive name left for {name}")


__all__ = ["CompressOldStep"]
