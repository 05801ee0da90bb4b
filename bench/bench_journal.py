"""Journal throughput: ferryman's group-committing SQLite journal against one commit per item.

Each item goes through what the engine does to it: admit, claim, step_done,
finish (admit and finish wait until their commit is on disk).  The baseline,
measured in the same run on the same disk, is a plain loop that inserts one
SQLite row per item and commits it (WAL, synchronous=FULL): what a script that
journals each file durably pays.  Runs the cases REPEATS times, interleaved,
and prints the medians as a markdown table.  ``BENCH_SMALL=1`` uses 1,000 items.

    .venv/bin/python bench/bench_journal.py
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ferryman.item import Candidate, State, StepRun
from ferryman.journal.sqlite import SqliteJournal

ITEMS = 1_000 if os.environ.get("BENCH_SMALL") else 10_000
THREADS = 4
REPEATS = 5


def baseline(folder: Path) -> tuple[float, int]:
    """One INSERT and one COMMIT per item, synchronous=FULL: seconds, commits."""
    conn = sqlite3.connect(folder / "plain.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY, key TEXT UNIQUE, state TEXT)")
    started = time.perf_counter()
    for n in range(ITEMS):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO items VALUES (?, ?, 'done')", (f"{n:012x}", f"key-{n}"))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, ITEMS


def process(journal: SqliteJournal, item_id: str, owner: str) -> None:
    """What the engine does with one admitted item that has one step."""
    item = journal.claim(item_id, owner, 300)
    assert item is not None
    now = time.time()
    journal.step_done(StepRun(item.id, 0, "deliver", now, now, "done"), [f"/out/{item.key}"],
                      item.meta)
    item.state = State.DONE
    journal.finish(item)


def in_threads(work: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def one_by_one(folder: Path) -> tuple[float, int]:
    """4 workers; each admits its items one at a time (files arriving one by one)."""
    journal = SqliteJournal(folder / "journal.db")
    started = time.perf_counter()

    def work(worker: int) -> None:
        for n in range(worker, ITEMS, THREADS):
            (item,) = journal.admit("bench", [Candidate(key=f"key-{n}", files=(),
                                                        meta={"name": f"f{n}.csv"})])
            process(journal, item.id, f"w{worker}")

    in_threads(work)
    elapsed = time.perf_counter() - started
    journal.close()
    return elapsed, journal.commits


def batched(folder: Path) -> tuple[float, int]:
    """A scan admits everything in one call; 4 workers claim, step and finish."""
    journal = SqliteJournal(folder / "journal.db")
    started = time.perf_counter()
    items = journal.admit("bench", [Candidate(key=f"key-{n}", files=(),
                                              meta={"name": f"f{n}.csv"}, order=n)
                                    for n in range(ITEMS)])

    def work(worker: int) -> None:
        for item in items[worker::THREADS]:
            process(journal, item.id, f"w{worker}")

    in_threads(work)
    elapsed = time.perf_counter() - started
    journal.close()
    return elapsed, journal.commits


def run_once(case: Callable[[Path], tuple[float, int]]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as folder:
        return case(Path(folder))


def main() -> None:
    cases = [
        ("plain sqlite3 loop: insert + commit per item (baseline)", baseline),
        (f"ferryman SQLite, {THREADS} threads, items admitted one by one", one_by_one),
        (f"ferryman SQLite, {THREADS} threads, items admitted in one batch", batched),
    ]
    # Rounds interleave the cases, so a busy moment on a shared machine hits them all alike.
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name, _ in cases}
    for _ in range(REPEATS):
        for name, case in cases:
            runs[name].append(run_once(case))
    print(f"{ITEMS:,} items; admit + claim + step_done + finish per item; "
          f"median of {REPEATS} interleaved runs; synchronous=FULL everywhere\n")
    print("| case | items/s | commits | commits/item | vs baseline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    base_rate = 0.0
    for name, _ in cases:
        rate = statistics.median(ITEMS / seconds for seconds, _ in runs[name])
        commits = int(statistics.median(c for _, c in runs[name]))
        base_rate = base_rate or rate
        print(f"| {name} | {rate:,.0f} | {commits:,} | {commits / ITEMS:.2f} | "
              f"{rate / base_rate:.2f}x |")


if __name__ == "__main__":
    main()
