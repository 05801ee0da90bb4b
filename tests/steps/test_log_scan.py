"""``log_scan`` on real files and a real SQLite journal: every line once across runs, rotation
(rename, copytruncate, .gz), tracebacks as one entry, a claim re-read by the same item after a
crash, nothing sent when nothing matched."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from ferryman.config import AnyStep
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.journal.sqlite import SqliteJournal
from ferryman.steps import STEPS, StepContext, StepResult
from ferryman.transports import TransportPool

Scan = Callable[..., StepResult]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[SqliteJournal]:
    j = SqliteJournal(tmp_path / "journal.db")
    yield j
    j.close()


@pytest.fixture
def scan(tmp_path: Path, journal: SqliteJournal) -> Scan:
    """``scan(item_id="a", **config)`` runs a log_scan step over tmp/logs/*.log once, as the engine would."""
    runs = iter(range(1, 1000))

    def run(item_id: str | None = None, work: Path | None = None, **config: Any) -> StepResult:
        table = {"type": "log_scan", "paths": ["logs/*.log"], "first_run": "beginning", **config}
        model = TypeAdapter(AnyStep).validate_python(table)
        flow = FlowContext(flow="logs", root=tmp_path / "root", config_dir=tmp_path, connections={},
                           transports=TransportPool({}), journal=journal)
        step = STEPS["log_scan"](model, flow)
        n = next(runs)
        item = Item(id=item_id or f"item{n}", flow="logs", key=f"k{n}", origin="test", meta={}, files=[])
        ctx = StepContext(flow=flow, item=item, index=0, work_dir=(work or tmp_path / "work") / f"{n}")
        result = step.run(item, ctx)
        assert result is not None
        return result

    (tmp_path / "logs").mkdir()
    return run


def entries(result: StepResult) -> list[str]:
    """The entry texts of a digest (the lines after each '-- line N --')."""
    if result.files == []:
        return []
    assert result.files is not None
    text = result.files[0].read_text()
    blocks = [block.split("\n", 1)[1] for block in text.split("\n-- line ")[1:]]
    return [block.split("\n\n== ")[0].split("\n\nnote: ")[0].strip() for block in blocks]


def append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def test_each_line_is_read_once_across_runs(tmp_path: Path, scan: Scan) -> None:
    log = tmp_path / "logs" / "app.log"
    append(log, "2026-12-04 01:00 INFO up\n2026-12-04 01:01 ERROR one\n")
    first = scan()
    assert entries(first) == ["2026-12-04 01:01 ERROR one"]
    assert first.meta["log_entries"] == "1"
    append(log, "2026-12-04 01:02 ERROR two\n2026-12-04 01:03 ERROR thr")  # the last line is still being written
    assert entries(scan()) == ["2026-12-04 01:02 ERROR two"]
    append(log, "ee\n")
    assert entries(scan()) == ["2026-12-04 01:03 ERROR three"]


def test_nothing_matched_sends_nothing(tmp_path: Path, scan: Scan) -> None:
    append(tmp_path / "logs" / "app.log", "INFO a\nINFO b\n")
    result = scan()
    assert result.files == [] and result.skip == "no log entry matched in 2 new lines of 1 files"


def test_a_traceback_is_one_entry(tmp_path: Path, scan: Scan) -> None:
    append(tmp_path / "logs" / "app.log", "\n".join([
        "2026-12-04 01:00:00 ERROR app: request failed",
        "Traceback (most recent call last):",
        '  File "app.py", line 3, in <module>',
        "    main()",
        "ValueError: bad input",
        "2026-12-04 01:00:01 INFO next request",
        "2026-12-04 01:00:02 CRITICAL disk",
        "",
    ]))
    found = entries(scan())
    assert len(found) == 2
    assert found[0].startswith("2026-12-04 01:00:00 ERROR") and found[0].endswith("ValueError: bad input")
    assert found[1] == "2026-12-04 01:00:02 CRITICAL disk"


def test_patterns_and_ignore(tmp_path: Path, scan: Scan) -> None:
    append(tmp_path / "logs" / "app.log", "warn: slow\nfatal: db gone\nfatal: expected shutdown\n")
    assert entries(scan(patterns=["^fatal:"], ignore=["expected"])) == ["fatal: db gone"]


def test_rename_rotation_reads_the_old_files_tail_and_the_new_file(tmp_path: Path, scan: Scan) -> None:
    log = tmp_path / "logs" / "app.log"
    append(log, "ERROR before\n")
    assert entries(scan()) == ["ERROR before"]
    append(log, "ERROR late in the old file\n")
    log.rename(tmp_path / "logs" / "app.log.1")  # logrotate's create mode; the globs do not name app.log.1
    append(log, "ERROR first of the new file\n")
    assert sorted(entries(scan())) == ["ERROR first of the new file", "ERROR late in the old file"]
    assert entries(scan()) == []


def test_compressed_rotation_is_followed_and_not_read_twice(tmp_path: Path, scan: Scan) -> None:
    log = tmp_path / "logs" / "app.log"
    append(log, "ERROR one\n" + "INFO filler line\n" * 200)
    assert entries(scan()) == ["ERROR one"]
    append(log, "ERROR two\n")
    with open(log, "rb") as raw, gzip.open(tmp_path / "logs" / "app.log.1.gz", "wb") as gz:
        gz.write(raw.read())  # logrotate's compress: app.log.1.gz is a new inode
    log.unlink()
    append(log, "ERROR three\n")
    assert sorted(entries(scan())) == ["ERROR three", "ERROR two"]
    assert entries(scan()) == []


def test_a_gz_named_by_the_globs_continues_its_mark(tmp_path: Path, scan: Scan) -> None:
    log = tmp_path / "logs" / "app.log"
    append(log, "ERROR one\n")
    assert entries(scan(paths=["logs/app.log*"])) == ["ERROR one"]
    append(log, "ERROR two\n")
    with open(log, "rb") as raw, gzip.open(tmp_path / "logs" / "app.log.1.gz", "wb") as gz:
        gz.write(raw.read())
    log.unlink()
    assert entries(scan(paths=["logs/app.log*"])) == ["ERROR two"]
    assert entries(scan(paths=["logs/app.log*"])) == []


def test_copytruncate_reads_the_copys_tail_and_the_file_again(tmp_path: Path, scan: Scan) -> None:
    log = tmp_path / "logs" / "app.log"
    append(log, "ERROR one\n" + "INFO filler\n" * 100)
    assert entries(scan()) == ["ERROR one"]
    append(log, "ERROR two, before the copy\n")
    (tmp_path / "logs" / "app.log.1").write_bytes(log.read_bytes())  # logrotate copytruncate: a copy,
    with open(log, "r+") as f:                                        # then the log emptied in place
        f.truncate(0)
    append(log, "ERROR three\n")
    assert sorted(entries(scan())) == ["ERROR three", "ERROR two, before the copy"]
    assert entries(scan()) == []


def test_max_entries_caps_the_digest_not_the_count(tmp_path: Path, scan: Scan) -> None:
    append(tmp_path / "logs" / "app.log", "ERROR flood\n" * 50)
    result = scan(max_entries=3)
    assert len(entries(result)) == 3 and result.meta["log_entries"] == "50"
    assert "… and 47 more entries (max_entries = 3)" in result.files[0].read_text()  # type: ignore[index]


def test_copytruncate_starts_again_at_zero(tmp_path: Path, scan: Scan) -> None:
    log = tmp_path / "logs" / "app.log"
    append(log, "ERROR a long first line of the log\n")
    scan()
    log.write_text("ERROR b\n")  # same inode, shorter: truncated and written again
    result = scan()
    assert entries(result) == ["ERROR b"]
    assert "truncated" in " ".join(result.outputs["notes"])


def test_first_run_from_the_end_reads_only_what_comes_later(tmp_path: Path, scan: Scan) -> None:
    log = tmp_path / "logs" / "app.log"
    append(log, "ERROR old\n" * 3)
    assert entries(scan(first_run="end")) == []
    append(log, "ERROR new\n")
    result = scan(first_run="end")
    assert entries(result) == ["ERROR new"]
    assert "-- line 4 --" in result.files[0].read_text()  # type: ignore[index]


def test_the_same_item_after_a_crash_reads_its_lines_again(tmp_path: Path, scan: Scan) -> None:
    """The marks moved when the digest was written; the engine's record of the step was lost in a
    crash, so the item runs the step again: it starts from its claim, not from the moved marks."""
    log = tmp_path / "logs" / "app.log"
    append(log, "ERROR one\n")
    assert entries(scan(item_id="tick1")) == ["ERROR one"]
    append(log, "ERROR two\n")
    assert entries(scan(item_id="tick1")) == ["ERROR one", "ERROR two"]
    assert entries(scan(item_id="tick2")) == []


def test_the_first_item_again_after_a_crash_still_starts_at_the_end(tmp_path: Path, scan: Scan) -> None:
    log = tmp_path / "logs" / "app.log"
    append(log, "ERROR old\n")
    assert entries(scan(item_id="first", first_run="end")) == []
    append(log, "ERROR new\n")
    assert entries(scan(item_id="first", first_run="end")) == ["ERROR new"]  # not the old lines


def test_a_file_gone_between_listing_and_reading_is_a_note_and_read_next_time(
        tmp_path: Path, scan: Scan, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferryman.steps.logscan import step as module

    log = tmp_path / "logs" / "app.log"
    append(log, "ERROR one\n")
    real = module.discover

    def listed_then_rotated(globs: list[str]) -> list[Path]:
        found = real(globs)
        log.rename(tmp_path / "logs" / "app.log.1")  # rotated away after the listing, before the read
        return found

    monkeypatch.setattr(module, "discover", listed_then_rotated)
    result = scan()
    assert result.files == [] and "gone before it could be read" in result.outputs["notes"][0]
    monkeypatch.setattr(module, "discover", real)
    append(tmp_path / "logs" / "app.log.1", "ERROR two\n")
    assert entries(scan(paths=["logs/*.log*"])) == ["ERROR one", "ERROR two"]


def test_a_file_renamed_while_open_is_read_to_its_end(tmp_path: Path) -> None:
    """Reading goes through the open descriptor: a rotation during the read changes nothing."""
    from ferryman.steps.logscan.config import LogScanConfig
    from ferryman.steps.logscan.reader import Found, Matcher, open_log

    log = tmp_path / "app.log"
    log.write_text("ERROR a\n" * 1000)
    matcher = Matcher(LogScanConfig(type="log_scan", paths=["x"]))
    found = Found(10)
    with open_log(log) as opened:
        os.rename(log, tmp_path / "app.log.1")
        log.write_text("ERROR other file\n")
        offset, lines = matcher.read(opened, 0, 0, found)
    assert (offset, lines, found.total, len(found.entries)) == (8000, 1000, 1000, 10)


def test_an_entry_straddling_blocks_stays_whole(tmp_path: Path, scan: Scan, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferryman.steps.logscan import reader

    monkeypatch.setattr(reader, "BLOCK", 64)
    tb = "ERROR x\nTraceback (most recent call last):\n" + '  File "a.py", line 1\n' * 10 + "KeyError: 'k'\n"
    append(tmp_path / "logs" / "app.log", ("INFO pad\n" * 7 + tb) * 3)
    found = entries(scan())
    assert len(found) == 3 and all(e.startswith("ERROR x") and e.endswith("KeyError: 'k'") for e in found)


@pytest.mark.parametrize(("table", "message"), [
    ({"patterns": ["(unclosed"]}, "patterns: '(unclosed' is not a valid regex"),
    ({"ignore": ["[x"]}, "is not a valid regex"),
    ({"paths": []}, "at least 1 item"),
    ({"encoding": "klingon"}, "unknown encoding 'klingon'"),
    ({"first_run": "middle"}, "'end' or 'beginning'"),
])
def test_config_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TypeAdapter(AnyStep).validate_python({"type": "log_scan", "paths": ["*.log"], **table})


def test_a_full_disk_fails_the_digest_and_keeps_the_lines_for_the_next_run(
        tmp_path: Path, scan: Scan, tiny_disk: Path) -> None:
    from ferryman.errors import TransientError

    append(tmp_path / "logs" / "app.log", "ERROR " + "x" * 100 + "\n" * 1 + ("ERROR y\n" * 20000))
    with open(tiny_disk / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):  # the disk is full now
        while True:
            filler.write(b"\0" * 4096)
    with pytest.raises(TransientError, match="no space left on device"):
        scan(work=tiny_disk)
    assert len(entries(scan())) == 500  # the marks did not move: the next run has them all


def test_a_pattern_re2_cannot_run_still_works(tmp_path: Path, scan: Scan) -> None:
    """Look-behind is not RE2 syntax: such patterns run on Python's re instead."""
    append(tmp_path / "logs" / "app.log", "user=bob ERROR x\nuser=root ERROR y\n")
    assert entries(scan(patterns=[r"(?<!root )ERROR"])) == ["user=bob ERROR x"]


def test_a_gz_still_being_written_is_a_note_then_read_once_whole(tmp_path: Path, scan: Scan) -> None:
    whole = gzip.compress(b"".join(b"ERROR in the gz %d\n" % n for n in range(3000)))
    (tmp_path / "logs" / "old.log.gz").write_bytes(whole[: len(whole) // 2])  # gzip is half-way
    append(tmp_path / "logs" / "app.log", "ERROR live\n")
    result = scan(paths=["logs/*.log", "logs/*.gz"], max_entries=5000)
    assert entries(result) == ["ERROR live"]  # nothing of the half-written gz
    assert any("old.log.gz: cannot be read" in note for note in result.outputs["notes"])
    (tmp_path / "logs" / "old.log.gz").write_bytes(whole)
    assert len(entries(scan(paths=["logs/*.log", "logs/*.gz"], max_entries=5000))) == 3000


def test_a_file_missing_for_a_while_goes_on_where_it_was(tmp_path: Path, scan: Scan) -> None:
    log = tmp_path / "logs" / "app.log"
    append(log, "ERROR one\n")
    assert entries(scan()) == ["ERROR one"]
    away = tmp_path / "away.log"
    log.rename(away)  # out of the globs' and the siblings' reach
    assert entries(scan()) == []
    away.rename(log)
    append(log, "ERROR two\n")
    assert entries(scan()) == ["ERROR two"]  # not "ERROR one" again
