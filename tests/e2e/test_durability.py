"""A step's output files are on disk before the journal says the step is done: after a power loss,
a resumed item must never carry an empty file to the next step (and deliver it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ferryman.cli import main
from ferryman.journal.sqlite import SqliteJournal


def test_step_outputs_are_fsynced_before_the_step_is_journaled(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.csv").write_text("a,b\n1,2\n")
    (tmp_path / "ferryman.toml").write_text("""
[ferryman]
root = "state"

[flows.t.source]
type = "folder"
path = "in"

[[flows.t.steps]]
type = "gzip"

[[flows.t.steps]]
type = "deliver"
to = "out"
""")
    events: list[str] = []
    fsync, step_done = os.fsync, SqliteJournal.step_done

    def watched_fsync(fd: int) -> None:
        events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        fsync(fd)

    def watched_step_done(self: SqliteJournal, run, files, meta) -> None:  # type: ignore[no-untyped-def]
        events.append(f"step_done {run.index}")
        step_done(self, run, files, meta)

    monkeypatch.setattr(os, "fsync", watched_fsync)
    monkeypatch.setattr(SqliteJournal, "step_done", watched_step_done)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "--once", "-c", "ferryman.toml"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "x.csv.gz").exists()
    gzip_done = events.index("step_done 0")
    output = next(i for i, e in enumerate(events) if e.startswith("fsync") and e.endswith("/00-gzip-1/x.csv.gz"))
    folder = next(i for i, e in enumerate(events) if e.startswith("fsync") and e.endswith("/00-gzip-1"))
    item_folder = next(i for i, e in enumerate(events)
                       if e.startswith("fsync") and os.path.dirname(e.split()[1]) == str(tmp_path / "state" / "work"))
    assert output < folder < gzip_done
    assert item_folder < gzip_done
