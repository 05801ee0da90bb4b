"""CSV re-dialect on corpora nobody tuned for (issue 18): the csv step against the plain csv loop, same run.

Three corpora are generated from a fixed seed, each about ``BENCH_CSV_MB``
MB (default 30; the issue measured 150 MB):

- (a) the project's own export (``bench_csv.typical_row``): ~4% of values quoted;
- (b) a SaaS-like export: 20 columns of ints, decimals, ISO dates, accented
  names and free text; values hold commas, doubled quotes, line breaks and
  ``;`` (the output delimiter, which the input leaves unquoted);
- (c) quote-heavy: ~76% of values quoted (most without needing it), many
  holding ``;``, tabs, backslashes, leading or trailing spaces, and three
  values of 1, 2 and 5 MB.

The job is the issue's: re-delimit ``,`` → ``;``, minimal quoting, UTF-8.
Each case runs in its own subprocess (its own peak RSS and CPU time),
BENCH_REPEATS rounds (default 3) interleaved; the table shows medians.

- ``csv loop`` (1.0x): ``for row in csv.reader(f): writer.writerow(row)``
  with the field size limit raised, what a user would write;
- ``ferryman``: the csv step in process (``CsvStep.rewrite``), with the
  share of the file its fast path took;
- ``polars``: ``scan_csv`` (all strings) → ``sink_csv`` when polars is
  installed (a reference anchor, not a dependency of ferryman).

"identical" compares each output's SHA-256 with the csv loop's.

    .venv/bin/python bench/bench_csv_corpora.py
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_csv import typical_row

ROOT = Path(__file__).resolve().parents[1]
SIZE = int(float(os.environ.get("BENCH_CSV_MB", "30")) * 1e6)
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))

FIRST = ["José", "Zoë", "François", "Łukasz", "Ångström", "Müller", "Søren", "Ana", "Chloé", "Nuño", "Bob", "Eve"]
LAST = ["García", "O'Brien", "Dvořák", "Nguyễn", "Smith", "Ærø", "Björk", "Lefèvre", "Kowalski", "Núñez"]
WORDS = ["réunion", "invoice", "naïve", "café", "follow-up", "pending", "übermäßig", "señal", "ok", "delivery"]


def _text(rng: random.Random) -> str:
    kind = rng.random()
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12)))
    if kind < 0.25:
        return f"{words}, {rng.choice(WORDS)}"
    if kind < 0.35:
        return f'{words} "{rng.choice(WORDS)}" {rng.choice(WORDS)}'
    if kind < 0.45:
        return f"{words}\n{rng.choice(WORDS)}\r\n{rng.choice(WORDS)}"
    if kind < 0.6:
        return f"{words}; {rng.choice(WORDS)}"
    return words


def saas_row(rng: random.Random) -> list[str]:
    """20 columns; about 30% of the values hold a comma, a quote, a line break or ';'."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return [
        str(rng.randint(1, 10**9)), f"{first} {last}", f"{first.lower()}@example.com",
        f"{rng.randint(2015, 2025)}-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}",
        f"{rng.randint(2015, 2025)}-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}T{rng.randint(0, 23):02}:00:00Z",
        f"{rng.uniform(0, 10**5):.2f}", f"{rng.uniform(-1, 1):.6f}", str(rng.randint(0, 500)),
        rng.choice(["EUR", "USD", "CHF"]), rng.choice(["open", "closed", "won", "lost"]),
        f"{last}, {first}" if rng.random() < 0.4 else f"{first} {last}",
        _text(rng), _text(rng), _text(rng) if rng.random() < 0.7 else "",
        rng.choice(WORDS), f"{rng.choice(FIRST)}; {rng.choice(LAST)}" if rng.random() < 0.3 else rng.choice(LAST),
        str(rng.randint(0, 1)), rng.choice(["", "n/a", "—"]), _text(rng), str(rng.randint(10000, 99999)),
    ]


def _odd_value(rng: random.Random) -> str:
    kind = rng.random()
    word = rng.choice(WORDS)
    if kind < 0.2:
        return f"{word}; {rng.choice(WORDS)}"
    if kind < 0.3:
        return f"{word}\t{rng.choice(WORDS)}"
    if kind < 0.4:
        return f"C:\\exports\\{word}"
    if kind < 0.5:
        return f"  {word} "
    if kind < 0.6:
        return f'{word} "quoted", {word}'
    if kind < 0.65:
        return f"{word}\r\n{word}"
    return word


def _quoted(value: str, rng: random.Random) -> str:
    """Quote values that need it, and most of the others too (76% in all)."""
    needs = any(c in value for c in ',"\r\n')
    if needs or rng.random() < 0.74:
        return '"' + value.replace('"', '""') + '"'
    return value


def quote_heavy_lines(rng: random.Random, count: int) -> str:
    out = []
    for _ in range(count):
        out.append(",".join(_quoted(_odd_value(rng), rng) for _ in range(8)) + "\r\n")
    return "".join(out)


def generate(path: Path, size: int, corpus: str) -> None:
    """A corpus of about `size` bytes: 16 distinct blocks of random rows in random order (seed 18)."""
    rng = random.Random(18)
    blocks = []
    for _ in range(16):
        if corpus == "c":
            blocks.append(quote_heavy_lines(rng, 12000).encode("utf-8"))
            continue
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        make_row: Callable[[random.Random], list[str]] = typical_row if corpus == "a" else saas_row
        while buffer.tell() < (1 << 20):
            writer.writerow(make_row(rng))
        blocks.append(buffer.getvalue().encode("utf-8"))
    big = {4: 1 << 20, 9: 2 << 20, 14: 5 << 20} if corpus == "c" else {}
    columns = {"a": 10, "b": 20, "c": 8}[corpus]
    written, index = 0, 0
    with open(path, "wb") as f:
        f.write((",".join(f"col{i}" for i in range(columns)) + "\r\n").encode())
        while written < size:
            block = rng.choice(blocks)
            f.write(block)
            written += len(block)
            if index in big:  # a record holding one multi-MB value: accents, quotes, ';', line breaks
                value = ("Ünïcödé; \"quoted\" text, \\path\\ \t tab\r\nnext line " * (big[index] // 50))
                f.write(f'1,"{value.replace(chr(34), chr(34) * 2)}",end,,,,,\r\n'.encode())
            index += 1


WORKER = r"""
import csv, json, resource, sys, time
sys.path.insert(0, sys.argv[4])
case, src, dst = sys.argv[1:4]
info = {}
if case == "ferryman":  # imports are not the job: time and CPU are counted from here
    from ferryman.steps.csv import CsvConfig, CsvStep, rewrite
elif case == "polars":
    import polars as pl
before = resource.getrusage(resource.RUSAGE_SELF)
start = time.perf_counter()
if case == "loop":
    csv.field_size_limit(1 << 30)
    with open(src, newline="", encoding="utf-8") as f, open(dst, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter=";")
        for row in csv.reader(f):
            writer.writerow(row)
elif case == "ferryman":
    from pathlib import Path
    run = rewrite.Rewriter.run
    def counting(self, source):
        stats = run(self, source)
        info["fast"] = stats.fast_chars / max(1, stats.fast_chars + stats.slow_chars)
        return stats
    rewrite.Rewriter.run = counting
    config = CsvConfig.model_validate({"type": "csv", "output": {"delimiter": ";"}})
    CsvStep(config, None).rewrite(Path(src), Path(dst))
elif case == "polars":
    pl.scan_csv(src, infer_schema=False, quote_char='"').sink_csv(
        dst, separator=";", quote_style="necessary", line_terminator="\r\n")
elapsed = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM is this process's own peak (ru_maxrss would include the parent's, inherited across exec)
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
print(json.dumps({"seconds": elapsed, "cpu": cpu, "rss": peak, **info}))
"""


def have_polars() -> bool:
    return subprocess.run([sys.executable, "-c", "import polars"], capture_output=True).returncode == 0


def run_case(case: str, src: Path, dst: Path) -> dict[str, float] | None:
    done = subprocess.run([sys.executable, "-c", WORKER, case, str(src), str(dst), str(ROOT / "src")],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  ({case} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode})")
        return None
    result: dict[str, float] = json.loads(done.stdout)
    return result


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def measure(src: Path, folder: Path, cases: list[str]) -> dict[str, dict[str, object]]:
    """Per case: median seconds and CPU seconds, max peak RSS, fast share, digest (rounds interleaved)."""
    runs: dict[str, list[dict[str, float]]] = {case: [] for case in cases}
    digests: dict[str, str] = {}
    for _ in range(REPEATS):
        for case in cases:
            dst = folder / f"out-{case}.csv"
            result = run_case(case, src, dst)
            if result is not None:
                runs[case].append(result)
                digests[case] = sha256(dst)
            dst.unlink(missing_ok=True)
    rows: dict[str, dict[str, object]] = {}
    for case, results in runs.items():
        if results:
            rows[case] = {
                "seconds": statistics.median(r["seconds"] for r in results),
                "cpu": statistics.median(r["cpu"] for r in results),
                "rss": max(r["rss"] for r in results),
                "fast": results[-1].get("fast"),
                "digest": digests[case],
            }
    return rows


def table(title: str, size: int, rows: dict[str, dict[str, object]]) -> bool:
    names = {"loop": "csv loop (baseline)", "ferryman": "ferryman csv step", "polars": "polars scan_csv → sink_csv"}
    base = rows["loop"]
    print(f"\n{title}\n")
    print("| case | seconds | MB/s | vs csv loop | CPU s/MB | peak RSS | fast path share | identical to csv loop |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for case, row in rows.items():
        seconds, cpu, rss = float(str(row["seconds"])), float(str(row["cpu"])), int(str(row["rss"]))
        fast = row["fast"]
        share = f"{float(str(fast)):.0%}" if fast is not None else "—"
        same = "—" if case == "loop" else ("yes" if row["digest"] == base["digest"] else "NO")
        print(f"| {names[case]} | {seconds:.2f} | {size / 1e6 / seconds:.0f} | "
              f"{float(str(base['seconds'])) / seconds:.2f}x | {cpu / (size / 1e6) * 1000:.1f} ms | "
              f"{rss / 2**20:.0f} MiB | {share} | {same} |")
    return "ferryman" in rows and rows["ferryman"]["digest"] == base["digest"]


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-csv-corpora-"))
    cases = ["loop", "ferryman"] + (["polars"] if have_polars() else [])
    ok = True
    try:
        print(f"CSV re-delimit ',' -> ';', minimal quoting, UTF-8; median of {REPEATS} interleaved rounds "
              f"({', '.join(cases)}); corpora of ~{SIZE / 1e6:.0f} MB (issue 18 used 150 MB)")
        if "polars" not in cases:
            print("(polars is not installed: its column is left out)")
        for corpus, label in (("a", "(a) the project's own export, ~4% of values quoted"),
                              ("b", "(b) SaaS-like export: 20 columns, accented names, free text"),
                              ("c", "(c) quote-heavy: ~76% of values quoted, values of 1, 2 and 5 MB")):
            src = folder / f"corpus-{corpus}.csv"
            generate(src, SIZE, corpus)
            actual = src.stat().st_size
            ok &= table(f"{label}, {actual / 1e6:.0f} MB", actual, measure(src, folder, cases))
            src.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not ok:
        sys.exit("ferryman's output differs from the csv module's")


if __name__ == "__main__":
    main()
