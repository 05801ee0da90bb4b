"""``ferryman recover FLOW``: rebuild an ``http`` flow's CSVs from its raw backups, into a new folder.

The raw backups of each collection are read in the order of the poll time in their names
(``raw_name`` read back, not the file's mtime or the name's alphabetical order: PIExporter's
``Dec`` sorted before ``Nov``).  A record is taken from the first backup holding it above the
running high-water mark, exactly as the live source took it; the flow's ``decrypt_fields`` and
``append_csv`` steps then run on it (``append_csv`` writing into the folder named, never over
the live files), with the backup's poll time as ``{now}``.  So the rebuilt files are the live
files, byte for byte, for the same range of days.

PIExporter's recovery took only the newest backup of a collection that is not deleteable: its
client never sent ``greaterThan``, so every backup held everything.  Ferryman's backups are
increments when ``since_param`` is set, and taking every backup in order gives the same rows for
cumulative backups too; so one rule serves both.

A short report, ``recovery_report.txt``, lists what was read and written.
"""

from __future__ import annotations

import re
import string
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ferryman.config import LoadedConfig
from ferryman.errors import ConfigError, FerrymanError, PermanentError
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.journal.sqlite import SqliteJournal
from ferryman.sources.http.config import HttpSourceConfig
from ferryman.sources.http.parse import RecordId, order, records
from ferryman.steps import STEPS, StepContext
from ferryman.steps.records import AppendCsvConfig, DecryptFieldsConfig
from ferryman.steps.records.files import write
from ferryman.transports import TransportPool

_DIRECTIVES = {"Y": r"\d{4}", "m": r"\d{1,2}", "d": r"\d{1,2}", "H": r"\d{1,2}", "M": r"\d{1,2}",
               "S": r"\d{1,2}", "y": r"\d{2}", "b": r"[A-Za-z]+", "B": r"[A-Za-z]+", "a": r"[A-Za-z]+",
               "A": r"[A-Za-z]+", "j": r"\d{1,3}", "f": r"\d{1,6}", "p": r"[AaPp][Mm]", "z": r"[+-]\d{4}"}


def name_pattern(template: str, flow: str) -> tuple[re.Pattern[str], list[str]]:
    """A regex reading ``collection`` and the poll time back from a raw backup's name, and the
    strftime formats of its ``{now:…}`` fields, in order."""
    regex = ""
    formats: list[str] = []
    for literal, field_name, spec, _ in string.Formatter().parse(template):
        regex += re.escape(literal)
        if field_name is None:
            continue
        if field_name == "collection":
            regex += r"(?P<collection>.+?)"
        elif field_name == "flow":
            regex += re.escape(flow)
        elif field_name == "now":
            fmt = spec or "%Y-%m-%d %H:%M:%S.%f"
            part = ""
            i = 0
            while i < len(fmt):
                if fmt[i] == "%" and i + 1 < len(fmt):
                    code = fmt[i + 1]
                    if code == "%":
                        part += "%"
                    elif code not in _DIRECTIVES:
                        raise ConfigError(f"raw_name {template!r}: recover cannot read %{code} back")
                    else:
                        part += _DIRECTIVES[code]
                    i += 2
                else:
                    part += re.escape(fmt[i])
                    i += 1
            regex += f"(?P<now{len(formats)}>{part})"
            formats.append(fmt)
    return re.compile(regex + r"$"), formats


@dataclass(order=True)
class Backup:
    polled: datetime
    copy: int
    path: Path = field(compare=False)


def backups(folder: Path, template: str, flow: str) -> dict[str, list[Backup]]:
    """The raw backups in `folder`, per collection, in poll order."""
    pattern, formats = name_pattern(template, flow)
    found: dict[str, list[Backup]] = {}
    for path in sorted(folder.glob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        name, copy = path.name, 0
        match = pattern.match(name)
        if match is None:  # a second backup in the same second: `templates.numbered`'s ``-N``
            numbered = re.match(r"^(?P<stem>[^.]*)-(?P<n>\d+)(?P<rest>\..*)?$", name)
            if numbered:
                match = pattern.match(numbered["stem"] + (numbered["rest"] or ""))
                copy = int(numbered["n"])
        if match is None:
            continue
        text = " ".join(match[f"now{i}"] for i in range(len(formats)))
        try:
            polled = datetime.strptime(text, " ".join(formats)).astimezone()
        except ValueError:
            continue
        found.setdefault(match["collection"], []).append(Backup(polled, copy, path))
    for listed in found.values():
        listed.sort()
    return found


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    records: int = 0


def recover(loaded: LoadedConfig, flow_name: str, into: Path, start: date | None = None,
            end: date | None = None) -> Report:
    """Rebuild the CSVs of `flow_name` from its raw backups polled between `start` and `end`
    (inclusive days, local time) into the folder `into`."""
    flow = loaded.config.flows.get(flow_name)
    if flow is None:
        raise ConfigError(f"no flow named {flow_name!r}; flows are: {', '.join(loaded.config.flows)}")
    source = flow.source
    if not isinstance(source, HttpSourceConfig):
        raise ConfigError(f"flow {flow_name!r} has a {source.type} source; recover rebuilds http flows")
    into = into.expanduser().resolve()
    live = [(loaded.base_dir / s.to).resolve() for s in flow.steps if isinstance(s, AppendCsvConfig)]
    if not live:
        raise ConfigError(f"flow {flow_name!r} has no append_csv step: nothing to rebuild")
    if into in live:
        raise ConfigError(f"{into} is the live CSV folder of flow {flow_name!r}: recover into another folder")
    if into.exists() and any(into.iterdir()):
        raise ConfigError(f"{into} is not empty: recover into a new or empty folder")
    raw_dir = (loaded.base_dir / source.raw_dir).resolve()
    if not raw_dir.is_dir():
        raise ConfigError(f"the raw backup folder {raw_dir} does not exist")
    into.mkdir(parents=True, exist_ok=True)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="ferryman-recover-") as scratch:
        journal = SqliteJournal(Path(scratch) / "journal.db")
        steps: list[Any] = []
        try:
            context = FlowContext(flow=flow_name, root=Path(scratch), config_dir=loaded.base_dir,
                                  connections=loaded.config.connections, transports=TransportPool({}),
                                  journal=journal)
            for step in flow.steps:
                if isinstance(step, AppendCsvConfig):
                    steps.append(STEPS[step.type](step.model_copy(update={"to": str(into)}), context))
                elif isinstance(step, DecryptFieldsConfig):
                    steps.append(STEPS[step.type](step, context))
                else:
                    report.lines.append(f"step {step.title} not applied (recover runs decrypt_fields and append_csv)")
            _rebuild(source, raw_dir, flow_name, steps, context, Path(scratch), start, end, report)
        finally:
            for built in steps:
                built.close()
            journal.close()
    _write_report(into, flow_name, raw_dir, start, end, report)
    return report


def _rebuild(source: HttpSourceConfig, raw_dir: Path, flow: str, steps: list[Any], context: FlowContext,
             scratch: Path, start: date | None, end: date | None, report: Report) -> None:
    count = 0
    for collection, listed in sorted(backups(raw_dir, source.raw_name, flow).items()):
        mark: RecordId | None = None
        used = 0
        for backup in listed:
            day = backup.polled.date()
            wanted = (start is None or day >= start) and (end is None or day <= end)
            for chunk in _chunks(_above(backup.path, source, mark), source.batch):
                for value, _ in chunk:
                    if mark is None or order(value) > order(mark):
                        mark = value
                if not wanted:
                    continue
                count += 1
                folder = scratch / f"item{count}"
                folder.mkdir()
                batch = folder / "records.jsonl"
                write(batch, iter(chunk))
                item = Item(f"recover{count}", flow, f"recover:{count}", str(backup.path),
                            {"collection": collection, "polled_at": backup.polled.isoformat(timespec="seconds"),
                             "raw_file": str(backup.path)}, [batch], created_at=backup.polled.timestamp())
                for index, step in enumerate(steps):
                    ctx = StepContext(flow=context, item=item, index=index, work_dir=folder / f"step{index}")
                    try:
                        result = step.run(item, ctx)
                    except FerrymanError as exc:
                        raise PermanentError(f"{backup.path.name}: {step.config.title}: {exc}") from None
                    if result is not None and result.files is not None:
                        item.files = list(result.files)
                    for path, rows in (result.outputs.get("appended", {}) if result else {}).items():
                        report.rows[path] = report.rows.get(path, 0) + rows
                report.records += len(chunk)
            if wanted:
                used += 1
                report.lines.append(f"{collection}: read {backup.path.name}")
        report.lines.append(f"{collection}: {used} backup(s) of {len(listed)} in the range")


def _above(path: Path, source: HttpSourceConfig,
           mark: RecordId | None) -> Iterator[tuple[RecordId, dict[str, Any]]]:
    """The records of one backup above the mark as it stood before that poll (as the source did)."""
    for parsed in records(path, source.records.list, source.records.id):
        if mark is None or order(parsed.id) > order(mark):
            yield parsed.id, parsed.record


Entry = tuple[RecordId, dict[str, Any]]


def _chunks(found: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    chunk: list[Entry] = []
    for entry in found:
        chunk.append(entry)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_report(into: Path, flow: str, raw_dir: Path, start: date | None, end: date | None, report: Report) -> None:
    span = f"{start or 'the first backup'} to {end or 'the last backup'}"
    lines = [f"ferryman recover {flow}: rebuilt {datetime.now().astimezone().isoformat(timespec='seconds')}",
             f"raw backups: {raw_dir}", f"days: {span}", f"records: {report.records}", "",
             *[f"{Path(path).name}: {rows} row(s)" for path, rows in sorted(report.rows.items())], "",
             *report.lines]
    (into / "recovery_report.txt").write_text("\n".join(lines) + "\n")


__all__ = ["backups", "name_pattern", "recover"]
