"""Unzip throughput: the unzip step against Info-ZIP ``unzip``, same run, same archive.

A deflate zip of about ARCHIVE bytes (default 1 GiB; ``BENCH_SMALL=1``
64 MiB) holding CSV-like files is extracted REPEATS times by each tool, the
runs interleaved (the machine is shared, so its load drifts), into a fresh
folder each time; the table shows the median wall time.  The step runs in its
own process with its safety checks on (streamed CRC, byte budget, name checks).

    .venv/bin/python bench/bench_unzip.py
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = (64 << 20) if os.environ.get("BENCH_SMALL") else (1 << 30)
REPEATS = int(os.environ.get("BENCH_REPEATS", "1" if os.environ.get("BENCH_SMALL") else "3"))
MEMBER = (32 << 20) if os.environ.get("BENCH_SMALL") else (256 << 20)


def blocks() -> list[bytes]:
    rng = random.Random(7)
    out = []
    for _ in range(8):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        while buffer.tell() < (4 << 20):
            writer.writerow([rng.randint(0, 10**9), f"name {rng.random():.12f}", rng.choice("abcdefgh") * 5,
                             f"{rng.random() * 1000:.4f}", f"2024-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}"])
        out.append(buffer.getvalue().encode())
    return out


def generate(path: Path, size: int) -> int:
    """A zip of at least `size` bytes (deflate, level 6) of MEMBER-sized CSV members; the bytes it expands to."""
    rng = random.Random(3)
    pool = blocks()
    total = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        index = 0
        while path.stat().st_size < size:
            with zf.open(f"export/part{index:03}.csv", "w", force_zip64=True) as out:
                written = 0
                while written < MEMBER:
                    block = rng.choice(pool)
                    out.write(block)
                    written += len(block)
                total += written
            index += 1
            zf.fp.flush()  # type: ignore[union-attr]
    return total


WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from ferryman.item import Item
from ferryman.steps.base import StepContext
from ferryman.steps.unzip import UnzipConfig, UnzipStep
archive, work = Path(sys.argv[1]), Path(sys.argv[2])
step = UnzipStep(UnzipConfig.model_validate({"type": "unzip"}), None)
item = Item(id="bench", flow="bench", key="k", origin="bench", meta={}, files=[archive])
start = time.perf_counter()
result = step.run(item, StepContext(flow=None, item=item, index=0, work_dir=work))
print(json.dumps({"seconds": time.perf_counter() - start, "files": len(result.files)}))
"""


def run_unzip(archive: Path, work: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["unzip", "-q", "-o", str(archive), "-d", str(work)], check=True)
    return time.perf_counter() - start


def run_ferryman(archive: Path, work: Path) -> float:
    done = subprocess.run([sys.executable, "-c", WORKER, str(archive), str(work), str(ROOT / "src")],
                          check=True, capture_output=True, text=True)
    return float(json.loads(done.stdout)["seconds"])


def main() -> None:
    if not shutil.which("unzip"):
        sys.exit("Info-ZIP unzip is not installed (apt-get install unzip)")
    folder = Path(tempfile.mkdtemp(prefix="bench-unzip-"))
    try:
        archive = folder / "export.zip"
        expanded = generate(archive, ARCHIVE)
        size = archive.stat().st_size
        times: dict[str, list[float]] = {"unzip": [], "ferryman": []}
        for _ in range(REPEATS):
            for name, run in (("unzip", run_unzip), ("ferryman", run_ferryman)):
                work = folder / f"out-{name}"
                work.mkdir()
                times[name].append(run(archive, work))
                shutil.rmtree(work)
        base = statistics.median(times["unzip"])
        print(f"unzip of a {size / 2**30:.2f} GiB archive ({expanded / 2**30:.2f} GiB of CSV in "
              f"{expanded // MEMBER} members), median of {REPEATS}\n")
        print("| tool | seconds | MB/s written | speed vs unzip |")
        print("| --- | ---: | ---: | ---: |")
        for name, label in (("unzip", "Info-ZIP unzip"), ("ferryman", "ferryman unzip step")):
            seconds = statistics.median(times[name])
            print(f"| {label} | {seconds:.1f} | {expanded / 1e6 / seconds:.0f} | {base / seconds:.2f}x |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
