"""``append_csv``: append the item's records as rows to a CSV named by a template, crash-safe.

The header is written once, when the file is new: ``columns``, or the sorted keys of the first
record.  An existing file's header decides the order of the columns.  Null is written empty;
nested values as JSON.  A record with keys the header lacks follows ``extra``: ``error`` fails
the item before anything is written, ``ignore`` drops those keys, ``new_file`` starts the next
file of that name (``name-1.csv``, …) with a header of its own; later records go there too.

The name's ``{now}`` is the item's poll time (``meta.polled_at``, set by the ``http`` source;
else the time the item was admitted), so a resumed item appends to the same file.

Crash safety, per file, with a cursor in the journal (``csv:<path>`` = the item, the length
before its rows, and the length after them once they are fsynced):

- before appending, the length is journaled (durable);
- the rows are written and fsynced, then the new length is journaled;
- an item that finds its own unfinished append truncates back and writes again, and one that
  finds its own finished append does nothing: no torn row, no duplicate row;
- an item that finds another item's unfinished append truncates it away (that item writes its
  rows again when it resumes).

Items of a flow append one at a time (the ``http`` source runs its items in order), and a lock
per file keeps two flows of one process from interleaving.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ferryman import templates
from ferryman.errors import FerrymanError, PermanentError
from ferryman.item import Item
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.steps.records.files import records_of
from ferryman.transports.local import fsync_dir, os_errors

CURSOR = "csv:"
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


class AppendCsvConfig(StepConfig):
    """Append records as rows to daily (or any) CSV files in a local folder."""

    type: Literal["append_csv"]
    to: str = Field(description="Folder of the CSV files (relative to the config file); created when missing.")
    name: templates.Template = Field("{meta.collection}_{now:%b_%d_%Y}.csv",
                                     description="File name template; {now} is the item's poll time.")
    columns: list[str] | None = Field(None, description="Header of a new file (default: the sorted keys "
                                      "of its first record).")
    dialect: Literal["excel", "excel-tab", "unix"] = Field("excel", description="csv module dialect.")
    encoding: str = Field("utf-8", description="Text encoding of the files.")
    extra: Literal["error", "ignore", "new_file"] = Field(
        "error", description="A record with keys the header lacks: fail the item, drop those keys, or "
        "start a new file (name-1.csv …) with its own header.")


@dataclass
class Target:
    """The rows one item appends to one file."""

    path: Path
    header: list[str]
    new: bool
    rows: list[list[str]] = field(default_factory=list)


def _lock(path: Path) -> threading.Lock:
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(str(path), threading.Lock())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


class AppendCsvStep(Step[AppendCsvConfig]):
    """Writes rows; the item keeps its files (the CSV is a shared file, not the item's output)."""

    Config = AppendCsvConfig

    def item_time(self, item: Item) -> datetime:
        polled = item.meta.get("polled_at")
        if polled:
            try:
                return datetime.fromisoformat(polled)
            except ValueError:
                pass
        return datetime.fromtimestamp(item.created_at).astimezone() if item.created_at else datetime.now().astimezone()

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        folder = self.flow.resolve(self.config.to)
        values = ctx.values()
        values["now"] = self.item_time(item)
        base = templates.render_name(self.config.name, values)
        with os_errors("cannot create the CSV folder"):
            folder.mkdir(parents=True, exist_ok=True)
        targets = self._plan(folder, base, item)
        appended: dict[str, int] = {}
        for target in targets:
            with _lock(target.path):
                appended[str(target.path)] = self._append(item, target)
        return StepResult(outputs={"appended": appended, "delivered": list(appended)})

    # ---- which rows go where -------------------------------------------------------------------

    def _plan(self, folder: Path, base: str, item: Item) -> list[Target]:
        targets: list[Target] = []
        current: Target | None = None
        n = self._newest(folder, base)
        for value, record in records_of(item.files):
            if current is None:
                current = self._target(folder / templates.numbered(base, n), record)
                targets.append(current)
            extra = [k for k in record if k not in current.header]
            if extra:
                if self.config.extra == "error":
                    raise PermanentError(f"append_csv: record {value} has field(s) {', '.join(sorted(extra))} that "
                                         f"{current.path.name}'s header lacks (extra = 'error'; 'ignore' drops them, "
                                         "'new_file' starts a new file)")
                if self.config.extra == "new_file":
                    n += 1
                    while (folder / templates.numbered(base, n)).exists():
                        n += 1
                    current = Target(folder / templates.numbered(base, n), sorted(record), True)
                    targets.append(current)
            current.rows.append([_cell(record.get(column)) for column in current.header])
        return targets

    def _newest(self, folder: Path, base: str) -> int:
        """The number of the newest file of this name (0: the name itself)."""
        n = 0
        while (folder / templates.numbered(base, n + 1)).exists():
            n += 1
        return n

    def _target(self, path: Path, first: dict[str, Any]) -> Target:
        header = self._header(path)
        if header is not None:
            return Target(path, header, False)
        return Target(path, list(self.config.columns) if self.config.columns else sorted(first), True)

    def _header(self, path: Path) -> list[str] | None:
        """The header of an existing, non-empty file (None when there is none yet)."""
        try:
            with open(path, encoding=self.config.encoding, newline="") as existing:
                for row in csv.reader(existing, dialect=self.config.dialect):
                    return row
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise PermanentError(f"append_csv: cannot read the header of {path}: {exc}") from None
        return None

    # ---- appending ------------------------------------------------------------------------------

    def _cursor(self, path: Path) -> dict[str, Any] | None:
        raw = self.flow.journal.get_cursor(self.flow.flow, CURSOR + str(path))
        return json.loads(raw) if raw else None

    def _set(self, path: Path, item: Item, before: int, after: int | None) -> None:
        value = json.dumps({"item": item.id, "before": before, "after": after})
        self.flow.journal.set_cursor(self.flow.flow, CURSOR + str(path), value)

    def _append(self, item: Item, target: Target) -> int:
        path = target.path
        cursor = self._cursor(path)
        size = path.stat().st_size if path.exists() else 0
        if cursor is not None:
            if cursor["item"] == item.id and cursor["after"] is not None and size >= cursor["after"]:
                return len(target.rows)  # appended before a crash cut the step short
            if cursor["after"] is None or cursor["item"] == item.id:
                self._truncate(path, int(cursor["before"]))  # an append a crash cut off: torn rows go
        before = path.stat().st_size if path.exists() else 0
        new = before == 0
        if new and not target.new:
            target = Target(path, target.header, True, target.rows)
        self._set(path, item, before, None)
        with self._writing(path, before):
            text = io.StringIO()
            writer = csv.writer(text, dialect=self.config.dialect)
            if new:
                writer.writerow(target.header)
            writer.writerows(target.rows)
            data = text.getvalue().encode(self.config.encoding)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                fsync_dir(path.parent)
        self._set(path, item, before, before + len(data))
        return len(target.rows)

    @contextmanager
    def _writing(self, path: Path, before: int) -> Iterator[None]:
        """Map write errors (a full disk, no permission) and cut a partial append back off."""
        try:
            with os_errors("append_csv: cannot write"):
                yield
        except BaseException:
            with suppress(OSError, FerrymanError):  # the journaled length still says where the rows end
                self._truncate(path, before)
            raise

    @staticmethod
    def _truncate(path: Path, size: int) -> None:
        if path.exists() and path.stat().st_size > size:
            with os_errors("append_csv: cannot repair"):
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.ftruncate(fd, size)
                    os.fsync(fd)
                finally:
                    os.close(fd)
