"""CSV re-dialect throughput: the csv step against Python's csv reader → writer loop, same run, same file.

Two generated CSVs with quoted values holding delimiters, doubled quotes and
line breaks — a typical export of 1 GiB (``BENCH_SMALL=1``: 64 MiB) and a
dense one a quarter that size — are rewritten ``,`` → ``;`` with line breaks
inside values replaced by a space (``replace = [{ pattern = '\\r?\\n', with =
' ' }]``).  Each case runs in its own subprocess (so its peak RSS is its own),
REPEATS times interleaved; the table shows the median.  Baselines:

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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (64 << 20) if os.environ.get("BENCH_SMALL") else (1 << 30)
REPEATS = int(os.environ.get("BENCH_REPEATS", "1" if os.environ.get("BENCH_SMALL") else "3"))

WORDS = ["alpha", "Bravo", "charlie", "delta", "écho", "foxtrot", "golf", "hotel", "India", "juliett", "kilo"]
HEADER = b"id,name,email,phone,city,created,amount,status,owner,notes\r\n"


def _note(rng: random.Random) -> str:
    """A free-text value: sometimes with a delimiter, a doubled quote or line breaks inside."""
    kind = rng.random()
    if kind < 0.2:
        return f"{rng.choice(WORDS)}, {rng.choice(WORDS)} and {rng.choice(WORDS)}"
    if kind < 0.35:
        return f"line one {rng.choice(WORDS)}\nline two\r\nline three"
    if kind < 0.45:
        return f'said "{rng.choice(WORDS)}" twice'
    return f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.randint(0, 999)}"


def typical_row(rng: random.Random) -> list[str]:
    """A people export: ten columns, one of them free text (about 4% of all values need quotes)."""
    first, last = rng.choice(WORDS), rng.choice(WORDS)
    name = f"{last}, {first}" if rng.random() < 0.05 else f"{first} {last}"
    return [str(rng.randint(1, 10**7)), name, f"{first.lower()}.{last.lower()}@example.com",
            f"+1 555 {rng.randint(1000, 9999)}", rng.choice(WORDS),
            f"2024-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}",
            f"{rng.random() * 1000:.2f}", rng.choice(["active", "inactive", "pending"]), rng.choice(WORDS),
            _note(rng) if rng.random() < 0.8 else ""]


def dense_row(rng: random.Random) -> list[str]:
    """Every column may be free text: about 18% of all values need quotes."""
    return [_note(rng) if rng.random() < 0.4 else rng.choice(WORDS) for _ in range(rng.randint(6, 12))]


def generate(path: Path, size: int, make_row: Callable[[random.Random], list[str]]) -> None:
    """A CSV of about `size` bytes: 16 distinct 4 MiB blocks of random rows, in random order."""
    import io

    rng = random.Random(42)
    blocks = []
    for _ in range(16):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        while buffer.tell() < (4 << 20):
            writer.writerow(make_row(rng))
        blocks.append(buffer.getvalue().encode("utf-8"))
    written = 0
    with open(path, "wb") as f:
        f.write(HEADER)
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


def measure(src: Path, folder: Path, repeats: int) -> dict[str, tuple[float, int, str]]:
    """Median seconds, peak RSS and output digest per case; runs interleaved (the machine is shared)."""
    cases = ["cat", "loop", "ferryman"]
    times: dict[str, list[float]] = {case: [] for case in cases}
    peaks: dict[str, int] = dict.fromkeys(cases, 0)
    digests: dict[str, str] = {}
    for _ in range(repeats):
        for case in cases:
            dst = folder / f"out-{case}.csv"
            seconds, rss = run_case(case, src, dst)
            times[case].append(seconds)
            peaks[case] = max(peaks[case], rss)
            digests[case] = sha256(dst)
            dst.unlink()
    dst = folder / "out-reference.csv"  # the exact reference, once: the slowest case
    seconds, rss = run_case("loop+replace", src, dst)
    times["loop+replace"], peaks["loop+replace"], digests["loop+replace"] = [seconds], rss, sha256(dst)
    dst.unlink()
    return {case: (statistics.median(times[case]), peaks[case], digests[case]) for case in times}


def table(title: str, size: int, rows: dict[str, tuple[float, int, str]]) -> bool:
    names = {"cat": "cat (physical limit)", "loop": "csv loop, no replace (baseline)",
             "loop+replace": "csv loop + replace (exact reference, 1 run)", "ferryman": "ferryman csv step"}
    base, reference = rows["loop"][0], rows["loop+replace"][2]
    print(f"\n{title}\n")
    print("| case | seconds | MB/s | vs csv loop | peak RSS | output identical to reference |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for case in ("cat", "loop", "loop+replace", "ferryman"):
        seconds, rss, digest = rows[case]
        same = "—" if case in ("cat", "loop") else ("yes" if digest == reference else "NO")
        memory = f"{rss / 2**20:.0f} MiB" if rss else "—"
        print(f"| {names[case]} | {seconds:.1f} | {size / 1e6 / seconds:.0f} | {base / seconds:.2f}x | "
              f"{memory} | {same} |")
    return rows["ferryman"][2] == reference


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-csv-"))
    ok = True
    try:
        print("CSV re-dialect ',' -> ';' with line breaks inside values replaced by a space; "
              f"median of {REPEATS} interleaved runs (cat, csv loop, ferryman)")
        for label, make_row, size, repeats in (
            ("typical export (one free-text column; ~4% of values quoted)", typical_row, SIZE, REPEATS),
            ("dense (free text in every column; ~18% of values quoted)", dense_row, SIZE // 4, 1),
        ):
            src = folder / "in.csv"
            generate(src, size, make_row)
            actual = src.stat().st_size
            ok &= table(f"{label}, {actual / 1e6:.0f} MB", actual, measure(src, folder, repeats))
            src.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not ok:
        sys.exit("ferryman's output differs from the csv module's")


if __name__ == "__main__":
    main()
