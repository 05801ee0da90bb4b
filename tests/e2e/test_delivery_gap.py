"""A daemon killed between the rename of a delivered file and the journaling of that step (issue 16,
item 3): the resumed delivery finds its own identical file, writes nothing, and journals where the
file is, so ``ferryman show`` says where it went."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import ferryman

CRASH_AT_DELIVERED = """
import os, sys
from ferryman.journal.sqlite import SqliteJournal
from ferryman.cli import main

step_done = SqliteJournal.step_done

def crash_when_delivered(self, run, files, meta):
    if run.outputs.get("delivered"):
        os._exit(9)  # the file is renamed into place; its step is not journaled
    step_done(self, run, files, meta)

SqliteJournal.step_done = crash_when_delivered
sys.argv = ["ferryman", "run", "--once", "-c", sys.argv[1]]
main()
"""


@pytest.mark.parametrize("if_exists", ["rename", "overwrite", "fail"])
def test_a_resumed_delivery_journals_the_place_it_found(tmp_path: Path, if_exists: str) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.csv").write_text("a,b\n1,2\n")
    config = tmp_path / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"

[flows.t.source]
type = "folder"
path = "in"
after = "delete"

[[flows.t.steps]]
type = "deliver"
to = "out"
if_exists = "{if_exists}"
""")
    crashed = subprocess.run([sys.executable, "-c", CRASH_AT_DELIVERED, str(config)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, check=False)
    assert crashed.returncode == 9, crashed.stdout + crashed.stderr
    assert (tmp_path / "out" / "x.csv").read_text() == "a,b\n1,2\n"
    assert (tmp_path / "in" / "x.csv").exists(), "not disposed of: the item was not finished"

    resumed = ferryman("run", "--once", "-c", str(config), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.csv"], "delivered once"
    assert not (tmp_path / "in" / "x.csv").exists()

    listed = json.loads(ferryman("history", "--json", "-c", str(config), cwd=tmp_path, check=True).stdout)
    (item,) = listed
    shown = json.loads(ferryman("show", item["id"], "--json", "-c", str(config), cwd=tmp_path,
                                check=True).stdout)
    delivered = [place for step in shown["steps"] if step.get("outcome") == "done"
                 for place in step.get("outputs", {}).get("delivered", [])]
    assert delivered == [str(tmp_path / "out" / "x.csv")], shown
