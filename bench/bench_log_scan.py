"""log_scan over a large log corpus, beside ``grep -cE`` with the same patterns on the same files
(the machine is shared and noisy: compare ratios, not seconds).

    .venv/bin/python bench/bench_log_scan.py                  # 1 GiB of logs (issue 12's size)
    BENCH_LOG_MB=256 .venv/bin/python bench/bench_log_scan.py
    BENCH_SMALL=1 .venv/bin/python bench/bench_log_scan.py    # 64 MiB

Both read from the page cache (the files are read once before timing).  grep counts matching
lines; log_scan also groups each match with its traceback and writes the digest, so its count is
of entries.  A second log_scan run right after the first reads nothing new: its cost is the price
of a run with no news (every 15 minutes).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1024 * 1024
TOTAL = int(os.environ.get("BENCH_LOG_MB", "64" if os.environ.get("BENCH_SMALL") else "1024")) * MB
FILES = 8
ERE = r"\b(ERROR|CRITICAL|FATAL)\b|^Traceback \(most recent call last\):"

WORDS = ("request", "user", "record", "search", "export", "session", "cache", "query", "member", "update")


def make_corpus(folder: Path) -> int:
    """FILES logs of TOTAL bytes in all: INFO/DEBUG lines, 1 in 2,000 an ERROR with a traceback."""
    rng = random.Random(12)
    per_file = TOTAL // FILES
    lines = [f"2026-12-04 01:{m:02d}:{s:02d},{ms:03d} {lvl} cioc.{w}: {w} {rng.randrange(10**6)} took "
             f"{rng.randrange(900)}ms for {rng.choice(WORDS)} id={rng.randrange(10**5)}\n"
             for m, s, ms, lvl, w in ((rng.randrange(60), rng.randrange(60), rng.randrange(1000),
                                       rng.choice(("INFO", "INFO", "DEBUG", "WARNING")), rng.choice(WORDS))
                                      for _ in range(4000))]
    error = ("2026-12-04 01:15:00,123 ERROR cioc.search: search failed for member 42\n"
             "Traceback (most recent call last):\n  File \"/srv/cioc/search.py\", line 91, in run\n"
             "    rows = query(q)\nKeyError: 'q'\n")
    block = "".join(lines[i] if i % 2000 else error for i in range(4000)).encode()
    for n in range(FILES):
        with open(folder / "logs" / f"app{n}.log", "wb") as f:
            for _ in range(per_file // len(block)):
                f.write(block)
    return sum(p.stat().st_size for p in (folder / "logs").iterdir())


def measured(argv: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stdout of a command."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{argv[0]} failed")
    return wall, usage.ru_utime + usage.ru_stime, out


SCAN = """
import sys
from pathlib import Path
from pydantic import TypeAdapter
from ferryman.config import AnyStep
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.journal.sqlite import SqliteJournal
from ferryman.steps import STEPS, StepContext
from ferryman.transports import TransportPool

folder, run = Path(sys.argv[1]), sys.argv[2]
journal = SqliteJournal(folder / "journal.db")
model = TypeAdapter(AnyStep).validate_python({"type": "log_scan", "paths": ["logs/*.log"],
                                              "first_run": "beginning"})
flow = FlowContext(flow="bench", root=folder, config_dir=folder, connections={},
                   transports=TransportPool({}), journal=journal)
step = STEPS["log_scan"](model, flow)
item = Item(id=run, flow="bench", key=run, origin="bench", meta={}, files=[])
import time
wall, cpu = time.perf_counter(), time.process_time()
result = step.run(item, StepContext(flow=flow, item=item, index=0, work_dir=folder / "work" / run))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
journal.close()
print(result.outputs["entries"], result.outputs["bytes_read"], wall, cpu)
"""


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-log-scan-"))
    try:
        (folder / "logs").mkdir()
        size = make_corpus(folder)
        files = sorted(str(p) for p in (folder / "logs").iterdir())
        subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)  # into the page cache
        grep = shutil.which("grep") or "grep"
        g_wall, g_cpu, g_out = measured([grep, "-chE", ERE, *files], folder)
        g_count = sum(int(n) for n in g_out.split())
        p_wall, p_cpu, s_out = measured([sys.executable, "-c", SCAN, str(folder), "first"], folder)
        entries, read, s_wall, s_cpu = (float(x) for x in s_out.split())
        assert read == size, (read, size)
        _, _, n_out = measured([sys.executable, "-c", SCAN, str(folder), "second"], folder)
        n_wall = float(n_out.split()[2])
        mb = size / MB
        print(f"log_scan over {mb:,.0f} MiB in {FILES} files (2 cores shared; page cache warm)")
        print(f"{'':34} {'wall s':>8} {'MiB/s':>8} {'CPU s/GiB':>10} {'found':>8}")
        print(f"{'grep -cE (process)':34} {g_wall:8.2f} {mb / g_wall:8.0f} {g_cpu / mb * 1024:10.2f} {g_count:8}")
        print(f"{'log_scan step (in the process)':34} {s_wall:8.2f} {mb / s_wall:8.0f} {s_cpu / mb * 1024:10.2f} "
              f"{entries:8.0f}")
        print(f"{'log_scan (process, with imports)':34} {p_wall:8.2f} {mb / p_wall:8.0f} {p_cpu / mb * 1024:10.2f}")
        print(f"{'log_scan step, nothing new':34} {n_wall:8.3f}")
        print(f"log_scan step / grep throughput: {g_wall / s_wall:.2f}x  (grep counts {g_count} lines: each "
              "traceback's 'ERROR' line and its 'Traceback' line; log_scan one entry for both)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
