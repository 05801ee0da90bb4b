"""Schedules: how close to its instant a tick's first step starts, and what 1,000 idle
scheduled flows cost.

1. Tick precision.  The real daemon runs a flow ``every = "250ms"`` (one ``command`` step,
   ``true``) for TICKS ticks.  The delay is the journal's start time of the first step minus
   the tick's instant (``meta.tick``).  The baseline, measured in the same run, is the best any
   scheduler in Python can do: a bare loop that sleeps until the next instant and reads the
   clock when it wakes.  Goal: p99 ≤ 50 ms (cron and systemd timers promise a minute).
2. Idle cost.  The daemon with FLOWS flows on ``cron = "0 3 29 2 *"`` (no tick during the run),
   measured for IDLE seconds after start-up: CPU time from /proc, as % of one core.  The
   baseline is the same daemon with one such flow.  Goal: under 1% of a core.

    .venv/bin/python bench/bench_schedule.py      (BENCH_SMALL=1: 40 ticks, 200 flows, 5 s)
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ferryman.journal.sqlite import SqliteJournal  # noqa: E402

SMALL = bool(os.environ.get("BENCH_SMALL"))
TICKS = 40 if SMALL else 120
PERIOD = 0.25
FLOWS = 200 if SMALL else 1000
IDLE = 5.0 if SMALL else 20.0
FERRYMAN = [sys.executable, "-m", "ferryman"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bare_loop() -> list[float]:
    """Sleep until each instant, then read the clock: the wake-up delays in seconds."""
    delays = []
    next_at = (int(time.time() / PERIOD) + 1) * PERIOD
    for _ in range(TICKS):
        time.sleep(max(0.0, next_at - time.time()))
        delays.append(time.time() - next_at)
        next_at += PERIOD
    return delays


def ferryman_ticks(folder: Path) -> list[float]:
    (folder / "ferryman.toml").write_text(f"""
[ferryman]
root = "state"

[flows.tick.source]
type = "schedule"
every = "{int(PERIOD * 1000)}ms"

[[flows.tick.steps]]
type = "command"
per = "item"
command = ["true"]
""")
    daemon = subprocess.Popen([*FERRYMAN, "run", "-q"], cwd=folder)
    journal_path = folder / "state" / "journal.db"
    try:
        deadline = time.time() + TICKS * PERIOD * 3 + 30
        while time.time() < deadline:
            time.sleep(1)
            if journal_path.exists():
                journal = SqliteJournal(journal_path)
                try:
                    if len(journal.history("tick", limit=TICKS + 10)) >= TICKS + 2:
                        break
                finally:
                    journal.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    journal = SqliteJournal(journal_path)
    try:
        delays = []
        for item in journal.history("tick", limit=TICKS + 10):
            runs = journal.steps(item.id)
            if item.error is None and runs:
                delays.append(runs[0].started_at - datetime.fromisoformat(item.meta["tick"]).timestamp())
        return delays
    finally:
        journal.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(folder: Path, flows: int) -> tuple[int, float]:
    """% of one core the daemon uses while FLOWS scheduled flows wait for their next tick."""
    body = ['[ferryman]\nroot = "state"\n']
    for n in range(flows):
        body.append(f'[flows.f{n}.source]\ntype = "schedule"\ncron = "0 3 29 2 *"\n'
                    f'[[flows.f{n}.steps]]\ntype = "command"\nper = "item"\ncommand = ["true"]\n')
    (folder / "ferryman.toml").write_text("\n".join(body))
    daemon = subprocess.Popen([*FERRYMAN, "run", "-q"], cwd=folder)
    try:
        time.sleep(5.0 if flows > 100 else 2.0)  # start-up: config, threads, first cursor writes
        before, started = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(IDLE)
        used = cpu_seconds(daemon.pid) - before
        threads = len(os.listdir(f"/proc/{daemon.pid}/task"))
        return threads, 100.0 * used / (time.monotonic() - started)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "p").mkdir()
        bare = bare_loop()
        ours = ferryman_ticks(base / "p")
        print(f"## Tick precision: delay from the tick's instant to its first step ({len(ours)} ticks, "
              f"every {int(PERIOD * 1000)} ms)\n")
        print("| scheduler | p50 | p99 | max |")
        print("| --- | ---: | ---: | ---: |")
        for name, values in (("bare sleep-until loop (baseline)", bare), ("ferryman daemon", ours)):
            print(f"| {name} | {statistics.median(values) * 1000:.1f} ms | {percentile(values, 0.99) * 1000:.1f} ms "
                  f"| {max(values) * 1000:.1f} ms |")
        print("\ngoal: ferryman p99 ≤ 50 ms\n")
        rows = []
        for flows in (1, FLOWS):
            (base / f"i{flows}").mkdir()
            rows.append((flows, *idle_cpu(base / f"i{flows}", flows)))
        print(f"## Idle scheduled flows: CPU of the daemon over {IDLE:.0f} s with no tick due\n")
        print("| flows | daemon threads | CPU (% of one core) |")
        print("| ---: | ---: | ---: |")
        for flows, threads, percent in rows:
            print(f"| {flows} | {threads} | {percent:.2f} % |")
        print("\ngoal: under 1% of a core for 1,000 flows")


if __name__ == "__main__":
    main()
