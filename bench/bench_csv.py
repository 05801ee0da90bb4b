"""CSV re-dialect throughput: the csv step against Python's csv reader → writer loop, same run, same file.

A generated CSV of GIB_SIZE bytes (default 1 GiB; ``BENCH_SMALL=1`` 64 MiB)
with quoted values holding delimiters, doubled quotes and line breaks is
rewritten ``,`` → ``;`` with line breaks inside values replaced by a space
(``replace = [{ pattern = '\\r?\\n', with = ' ' }]``).  Each case runs in its
own subprocess (so its peak RSS is its own), REPEATS times; the table shows
the median.  Baselines:

- ``csv loop``: ``for row in reader: writer.writerow(row)`` — the plain loop,
  no replacement (the ~31 MB/s the issue quotes);
- ``csv loop + replace``: the same loop applying the regex to every value —
  the exact reference the step's output must equal;
- ``cat``: copying the file, the physical limit of this disk.

"identical" compares each output's SHA-256 with the reference loop's.

    .venv/bin/python bench/bench_csv.py
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (64 << 20) if os.environ.get("BENCH_SMALL") else (1 << 30)
REPEATS = int(os.environ.get("BENCH_REPEATS", "1" if os.environ.get("BENCH_SMALL") else "3"))

WORDS = ["alpha", "Bravo", "charlie", "delta", "écho", "foxtrot", "golf", "hotel", "India", "juliett", "kilo"]


def _value(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:
        return rng.choice(WORDS)
    if kind < 0.65:
        return str(rng.randint(0, 10**6))
    if kind < 0.75:
        return f"{rng.choice(WORDS)}, {rng.choice(WORDS)}"  # delimiter inside: quoted
    if kind < 0.82:
        return f"line one {rng.choice(WORDS)}\nline two\r\nline three"  # line breaks inside: quoted
    if kind < 0.87:
        return f'said "{rng.choice(WORDS)}" twice'  # doubled quotes
    if kind < 0.92:
        return ""
    return f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.randint(0, 99)}.{rng.randint(0, 99)}"


def generate(path: Path, size: int) -> None:
    """A CSV of about `size` bytes: 16 distinct 4 MiB blocks of random rows, in random order."""
    import io

    rng = random.Random(42)
    blocks = []
    for _ in range(16):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        while buffer.tell() < (4 << 20):
            writer.writerow([_value(rng) for _ in range(rng.randint(6, 12))])
        blocks.append(buffer.getvalue().encode("utf-8"))
    written = 0
    with open(path, "wb") as f:
        f.write(b"id,name,notes,amount,created,owner,status,comment\r\n")
        while written < size:
            block = rng.choice(blocks)
            f.write(block)
            written += len(block)


WORKER = r"""
import csv, json, re, sys, time
sys.path.insert(0, sys.argv[4])
case, src, dst = sys.argv[1:4]
start = time.perf_counter()
if case == "loop":
    with open(src, newline="", encoding="utf-8") as f, open(dst, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter=";")
        for row in csv.reader(f):
            writer.writerow(row)
elif case == "loop+replace":
    sub = re.compile(r"\r?\n").sub
    with open(src, newline="", encoding="utf-8") as f, open(dst, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter=";")
        for row in csv.reader(f):
            writer.writerow([sub(" ", value) for value in row])
elif case == "ferryman":
    from pathlib import Path
    from ferryman.steps.csv import CsvConfig, CsvStep
    config = CsvConfig.model_validate({"type": "csv", "output": {"delimiter": ";", "lineterminator": "\r\n"},
                                       "replace": [{"pattern": r"\r?\n", "with": " "}]})
    CsvStep(config, None).rewrite(Path(src), Path(dst))
elapsed = time.perf_counter() - start
# VmHWM is this process's own peak (ru_maxrss would include the parent's, inherited across exec)
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": elapsed, "rss": peak}))
"""


def run_case(case: str, src: Path, dst: Path) -> tuple[float, int]:
    if case == "cat":
        start = time.perf_counter()
        subprocess.run(f"cat '{src}' > '{dst}'", shell=True, check=True)
        return time.perf_counter() - start, 0
    done = subprocess.run([sys.executable, "-c", WORKER, case, str(src), str(dst), str(ROOT / "src")],
                          check=True, capture_output=True, text=True)
    result = json.loads(done.stdout)
    return result["seconds"], result["rss"]


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-csv-"))
    try:
        src = folder / "in.csv"
        generate(src, SIZE)
        size = src.stat().st_size
        cases = ["cat", "loop", "loop+replace", "ferryman"]
        rows = {}
        reference = None
        for case in cases:
            dst = folder / f"out-{case}.csv"
            times, peak = [], 0
            for _ in range(REPEATS):
                seconds, rss = run_case(case, src, dst)
                times.append(seconds)
                peak = max(peak, rss)
            digest = sha256(dst)
            if case == "loop+replace":
                reference = digest
            rows[case] = (statistics.median(times), peak, digest)
            dst.unlink()
        base = rows["loop"][0]
        print(f"CSV re-dialect ',' → ';' + line breaks in values → ' ', {size / 1e6:.0f} MB, median of {REPEATS}\n")
        print("| case | seconds | MB/s | vs csv loop | peak RSS | identical to reference |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        names = {"cat": "cat (physical limit)", "loop": "csv loop (no replace)",
                 "loop+replace": "csv loop + replace (reference)", "ferryman": "ferryman csv step"}
        for case in cases:
            seconds, rss, digest = rows[case]
            same = "—" if case in ("cat", "loop") else ("yes" if digest == reference else "NO")
            memory = f"{rss / 2**20:.0f} MiB" if rss else "—"
            print(f"| {names[case]} | {seconds:.1f} | {size / 1e6 / seconds:.0f} | {base / seconds:.2f}x | "
                  f"{memory} | {same} |")
        if rows["ferryman"][2] != reference:
            sys.exit("ferryman's output differs from the csv module's")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
