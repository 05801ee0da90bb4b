"""sql_export beside a plain psycopg ``COPY … TO STDOUT (FORMAT csv)`` into a file, same table, same run
(the machine is shared and noisy: compare ratios, not seconds).

    .venv/bin/python bench/bench_sql_export.py               # 1,000,000 rows
    BENCH_SMALL=1 .venv/bin/python bench/bench_sql_export.py # 100,000 rows

Each variant runs in a process of its own, so its peak RSS is its own.  The table has the kinds of
columns CIOC's tables have: integers, text, a numeric, a timestamp, a boolean, a nullable text.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROWS = 100_000 if os.environ.get("BENCH_SMALL") else 1_000_000
PG = os.environ.get("FERRYMAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

EXPORT = """
import sys, time
from pathlib import Path
from pydantic import TypeAdapter
from ferryman.config import AnyStep
from ferryman.connections import PostgresConnection
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.steps import STEPS, StepContext
from ferryman.transports import TransportPool

folder, dsn, fmt = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
model = TypeAdapter(AnyStep).validate_python({"type": "sql_export", "connection": "db", "format": fmt,
                                              "tables": ["bench_rows"]})
flow = FlowContext(flow="bench", root=folder, config_dir=folder,
                   connections={"db": PostgresConnection(type="postgres", dsn=dsn)},
                   transports=TransportPool({}), journal=None)
step = STEPS["sql_export"](model, flow)
item = Item(id=fmt, flow="bench", key=fmt, origin="bench", meta={}, files=[])
wall = time.perf_counter()
result = step.run(item, StepContext(flow=flow, item=item, index=0, work_dir=folder / fmt))
print(result.outputs["rows"], time.perf_counter() - wall)
"""

BASELINE = """
import sys, time
import psycopg
folder, dsn = sys.argv[1], sys.argv[2]
wall = time.perf_counter()
with psycopg.connect(dsn) as conn, conn.cursor() as cur, open(folder + "/baseline.csv", "wb") as out:
    with cur.copy("COPY (SELECT * FROM bench_rows) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
        for block in copy:
            out.write(block)
    rows = cur.rowcount
print(rows, time.perf_counter() - wall)
"""


def measured(argv: list[str]) -> tuple[int, float, float, int]:
    """Rows, seconds of the export itself (printed by the child), CPU seconds and peak RSS (KiB)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:3]} failed")
    rows, seconds = out.split()
    return int(rows), float(seconds), usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main() -> None:
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"ferryman_bench_{secrets.token_hex(4)}"
    folder = Path(tempfile.mkdtemp(prefix="bench-sql-export-"))
    with psycopg.connect(PG, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = make_conninfo(PG, dbname=name)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"""CREATE TABLE bench_rows AS SELECT g AS id, g % 97 AS member_id,
                'record title ' || g AS title, md5(g::text) || md5((g * 7)::text) AS body,
                (g % 10000) / 100.0 AS price, timestamptz '2026-01-01' + g * interval '1 minute' AS created,
                g % 3 = 0 AS active, CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END AS note
                FROM generate_series(1, {ROWS}) g""")
            size = conn.execute("SELECT pg_total_relation_size('bench_rows')").fetchone()[0]  # type: ignore[index]
        print(f"sql_export of {ROWS:,} rows ({size / 2**20:.0f} MiB in PostgreSQL), 2 cores shared with the server")
        print(f"{'':36} {'s':>7} {'rows/s':>10} {'CPU s':>7} {'peak RSS':>9} {'vs COPY':>8}")
        base = measured([sys.executable, "-c", BASELINE, str(folder), dsn])
        for label, result in (("psycopg COPY TO CSV (baseline)", base),
                              ("sql_export format = csv", measured([sys.executable, "-c", EXPORT, str(folder), dsn,
                                                                    "csv"])),
                              ("sql_export format = sqlite", measured([sys.executable, "-c", EXPORT, str(folder), dsn,
                                                                       "sqlite"]))):
            rows, seconds, cpu, rss = result
            assert rows == ROWS, (label, rows)
            print(f"{label:36} {seconds:7.2f} {rows / seconds:10,.0f} {cpu:7.2f} {rss / 1024:7.0f}MB "
                  f"{base[1] / seconds:7.2f}x")
        print("(s: the export itself, timed inside each process; CPU s and peak RSS: the whole process, "
              "imports included)")
    finally:
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)



if __name__ == "__main__":
    main()
