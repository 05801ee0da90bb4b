"""Start-up: ``ferryman --help``, ``check`` and ``status`` beside the interpreter's own start.

Each command runs as a user runs it, in a fresh process (``python -m ferryman …``), on a
config of four flows (folder → unzip → csv → deliver; folder → gzip → deliver to SFTP;
an ITRP mailbox → download → csv → deliver to FTP; a nightly schedule → command) and, for
``status``, a small SQLite journal (40 items).  The baseline is ``python -c pass`` measured
in the same rounds.  Commands are interleaved round by round, so a busy machine slows them
alike; the table shows medians of wall and CPU time (user + system) and the difference above
the baseline.  A second row, ``click + pydantic``, is the floor under ``check`` and ``status``:
the two libraries and one pydantic model, without ferryman.  The machine is shared and noisy:
compare differences, not seconds.

Byte-code caches are written by a warm-up run (as ``pip install`` does), even when
``PYTHONDONTWRITEBYTECODE`` is set: compiling ferryman's sources on every start is not
what a user pays.

    .venv/bin/python bench/bench_startup.py                  # 15 rounds
    BENCH_SMALL=1 .venv/bin/python bench/bench_startup.py    # 5 rounds
    BENCH_BASELINE=/tmp/base/src .venv/bin/python bench/bench_startup.py
        # also the same commands from another checkout's src/ (e.g. the commit before a change),
        # interleaved with these, for a before/after table from one run
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ferryman.item import Candidate, State, StepRun
from ferryman.journal.sqlite import SqliteJournal

SRC = Path(__file__).resolve().parents[1] / "src"

ROUNDS = 5 if os.environ.get("BENCH_SMALL") else int(os.environ.get("BENCH_ROUNDS", "15"))
GOAL = 0.150
"""Issue 15: ``status`` at most 0.15 s above the interpreter's own start."""

FLOOR = "import click\nfrom pydantic import BaseModel\nclass M(BaseModel):\n    x: int\nM(x=1)"
"""What any command that validates a config pays before ferryman's own code: click, pydantic and
its first model (pydantic imports much of itself lazily, when the first model is built)."""

CONFIG = """
[ferryman]
root = "state"

[connections.partner]
type = "sftp"
host = "sftp.example.com"
user = "exports"
key_file = "~/.ssh/id_ed25519"

[connections.mail]
type = "imap"
host = "imap.example.com"
user = "exports@example.com"
password = { env = "FERRYMAN_IMAP_PASSWORD" }

[connections.ftp]
type = "ftp"
host = "ftp.example.com"
user = "upload"
password = { env = "FERRYMAN_FTP_PASSWORD" }
tls = "explicit"

[notify.ops]
type = "log"

[flows.exports]
description = "Zipped CSV exports: unzip, re-dialect, outbox"
notify = ["ops"]
retry = { attempts = 3, delay = "1s" }

[flows.exports.source]
type = "folder"
path = "inbox"
include = ["*.zip"]
after = { move = "archive/{now:%Y-%m}" }

[[flows.exports.steps]]
type = "unzip"

[[flows.exports.steps]]
type = "csv"
output = { delimiter = ";" }
replace = [{ pattern = '\\r?\\n', with = " " }]

[[flows.exports.steps]]
type = "deliver"
to = "outbox/{now:%Y-%m-%d}"

[flows.partner]
notify = ["ops"]

[flows.partner.source]
type = "folder"
path = "to-partner"

[[flows.partner.steps]]
type = "gzip"

[[flows.partner.steps]]
type = "deliver"
to = "sftp://partner/incoming"

[flows.itrp]
notify = ["ops"]

[flows.itrp.source]
type = "imap"
connection = "mail"
match = { from = "itrp", headers = { "X-ITRP-ExportID" = ["1234"] } }
take = "link"
after = { move = "Archive" }

[[flows.itrp.steps]]
type = "download"

[[flows.itrp.steps]]
type = "unzip"

[[flows.itrp.steps]]
type = "csv"

[[flows.itrp.steps]]
type = "deliver"
to = "ftp://ftp/exports"

[flows.nightly]
expect = { cron = "0 7 * * 1-5", within = "2h" }

[flows.nightly.source]
type = "schedule"
cron = "0 2 * * *"

[[flows.nightly.steps]]
type = "command"
command = ["true"]
per = "item"
"""


def make_site(folder: Path) -> Path:
    """The config, its folders and a journal of 40 items (most done, a few failed)."""
    path = folder / "ferryman.toml"
    path.write_text(CONFIG)
    for sub in ("inbox", "to-partner", "outbox", "archive"):
        (folder / sub).mkdir()
    (folder / "state").mkdir()
    journal = SqliteJournal(folder / "state" / "journal.db")
    for flow, count in (("exports", 20), ("partner", 10), ("itrp", 6), ("nightly", 4)):
        items = journal.admit(flow, [Candidate(key=f"{flow}-{n}", files=(), meta={"name": f"f{n}.csv"},
                                               origin=f"{flow}/f{n}.csv") for n in range(count)])
        for n, item in enumerate(items):
            claimed = journal.claim(item.id, "bench", 300)
            assert claimed is not None
            now = time.time()
            failed = n % 7 == 6
            run = StepRun(item.id, 0, "deliver", now, now, "failed" if failed else "done",
                          "connection refused" if failed else None)
            if failed:
                journal.step_failed(run)
                claimed.state, claimed.error = State.FAILED, "deliver: connection refused"
            else:
                journal.step_done(run, [f"/out/f{n}.csv"], claimed.meta)
                claimed.state = State.DONE
            journal.finish(claimed)
    journal.close()
    return path


def measure(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one run of `argv`, which must succeed."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    error = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {error[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    trees = {"this tree": str(SRC)}
    if os.environ.get("BENCH_BASELINE"):
        trees["baseline"] = str(Path(os.environ["BENCH_BASELINE"]).resolve())
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp)
        config = make_site(folder)
        ferryman = [sys.executable, "-m", "ferryman"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "click + pydantic": [sys.executable, "-c", FLOOR],
            "ferryman --help": [*ferryman, "--help"],
            "ferryman check": [*ferryman, "check", "-c", str(config)],
            "ferryman status": [*ferryman, "status", "-c", str(config)],
        }
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        runs = [(tree, name, argv, {**env, "PYTHONPATH": src})
                for tree, src in trees.items() for name, argv in commands.items()]
        for _, _, argv, run_env in runs:  # warm-up: byte-code caches, the page cache
            measure(argv, run_env, folder)
        times: dict[tuple[str, str], list[tuple[float, float]]] = {(t, n): [] for t, n, _, _ in runs}
        for _ in range(ROUNDS):
            for tree, name, argv, run_env in runs:
                times[tree, name].append(measure(argv, run_env, folder))

    print(f"{ROUNDS} rounds, interleaved; medians; config of 4 flows (folder, imap, schedule sources; "
          "sftp, imap, ftp connections), journal of 40 items")
    print()
    print("| tree | command | wall ms | CPU ms | wall above python | CPU above python |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    above: dict[str, float] = {}
    for tree in trees:
        base_wall = statistics.median(w for w, _ in times[tree, "python -c pass"])
        base_cpu = statistics.median(c for _, c in times[tree, "python -c pass"])
        for name in commands:
            wall = statistics.median(w for w, _ in times[tree, name])
            cpu = statistics.median(c for _, c in times[tree, name])
            if name == "python -c pass":
                extra = ("—", "—")
            else:
                extra = (f"+{(wall - base_wall) * 1000:.0f}", f"+{(cpu - base_cpu) * 1000:.0f}")
            if name == "ferryman status":
                above[tree] = wall - base_wall
            print(f"| {tree} | {name} | {wall * 1000:.0f} | {cpu * 1000:.0f} | {extra[0]} | {extra[1]} |")
    print()
    status = above["this tree"]
    floor = statistics.median(w for w, _ in times["this tree", "click + pydantic"]) - statistics.median(
        w for w, _ in times["this tree", "python -c pass"])
    verdict = "met" if status <= GOAL else "NOT met"
    print(f"goal (issue 15): `ferryman status` at most {GOAL * 1000:.0f} ms above the interpreter's own start; "
          f"this tree: +{status * 1000:.0f} ms wall: {verdict} (click + pydantic alone: +{floor * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
