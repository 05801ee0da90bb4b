"""Retention and backups, side by side with the tools they replace, measured in one run.

1. ``prune`` over 100,000 local files (``keep = { within = "30d" }``, the same cut as
   ``find DIR -type f -mmin +43200 -delete``, i.e. ``-mtime +30`` to the minute), and the same
   folder with a GFS policy, which find cannot express;
2. ``prune`` over 10,000 S3 objects on SeaweedFS (DeleteObjects, 1,000 keys a request) vs a
   boto3 loop deleting one object per call;
3. ``pg_dump`` of a generated database, then ``deliver`` to S3 (ferryman's two steps, the way a
   flow runs them) vs ``pg_dump -Fc > file`` followed by boto3 ``upload_file``: throughput and
   peak memory (ferryman's Python process, and its children's: pg_dump, and for ferryman also the
   ``pg_restore --list`` that verifies the dump, whose time is counted too).

The issue asks for a database of at least 1 GB; the default here is ``BENCH_PG_ROWS=2000000``
rows (a 216 MB database as measured here) so that the whole file runs in a couple of
minutes on a shared 2-core machine.  ``BENCH_PG_ROWS=10000000`` gives a ~1 GB database (8,000,000
rows measured 841 MB here).

    .venv/bin/python bench/bench_prune.py
    BENCH_FILES=20000 BENCH_OBJECTS=2000 BENCH_PG_ROWS=300000 .venv/bin/python bench/bench_prune.py  # quick
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

FILES = int(os.environ.get("BENCH_FILES", "100000"))
OBJECTS = int(os.environ.get("BENCH_OBJECTS", "10000"))
PG_ROWS = int(os.environ.get("BENCH_PG_ROWS", "2000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
PG = os.environ.get("FERRYMAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DAY = 86400.0
MiB = 1024 * 1024


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def step(config: dict[str, Any], root: Path, connections: dict[str, Any] | None = None,
         files: list[Path] | None = None) -> Any:
    """Build and run one step as the engine does; returns its result."""
    from pydantic import TypeAdapter

    from ferryman.config import AnyStep
    from ferryman.flow import FlowContext
    from ferryman.item import Item
    from ferryman.steps import STEPS
    from ferryman.steps.base import StepContext
    from ferryman.transports import TransportPool

    pool = TransportPool(connections or {})
    flow = FlowContext(flow="bench", root=root, config_dir=root, connections=connections or {},
                       transports=pool, journal=None)  # type: ignore[arg-type]
    built = STEPS[config["type"]](TypeAdapter(AnyStep).validate_python(config), flow)
    item = Item(id=secrets.token_hex(4), flow="bench", key="k", origin="bench", meta={}, files=files or [])
    try:
        return built.run(item, StepContext(flow=flow, item=item, index=0, work_dir=root / "work" / item.id))
    finally:
        pool.close()


# ---- 1. local files ---------------------------------------------------------------------------

def make_files(folder: Path, count: int, now: float) -> None:
    """`count` empty files, their mtimes spread evenly over the year before `now`."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for n in range(count):
        path = folder / f"b{n:06d}.dump"
        path.touch()
        when = now - 365 * DAY * n / count
        os.utime(path, (when, when))


def local(tmp: Path) -> list[tuple[str, float, int]]:
    import ferryman.config  # noqa: F401  (imports are not what is measured)

    now = time.time()
    folder = tmp / "files"
    runs: dict[str, list[tuple[float, int]]] = {}
    contenders: list[tuple[str, dict[str, Any] | None]] = [
        ("find -type f -mmin +43200 -delete (30 days; baseline)", None),
        ('prune keep = { within = "30d" }', {"within": "30d"}),
        ("prune keep = { daily = 7, weekly = 5, monthly = 12 }", {"daily": 7, "weekly": 5, "monthly": 12}),
    ]
    for _ in range(ROUNDS):  # alternating, so that the page cache and the disk favour none
        for label, keep in contenders:
            make_files(folder, FILES, now)
            start = time.perf_counter()
            if keep is None:
                subprocess.run(["find", str(folder), "-type", "f", "-mmin", f"+{30 * 24 * 60}", "-delete"],
                               check=True)
                deleted = FILES - len(os.listdir(folder))
            else:
                done = step({"type": "prune", "path": str(folder), "keep": keep, "max_delete": "100%"}, tmp)
                deleted = len(done.outputs["deleted"])
            runs.setdefault(label, []).append((time.perf_counter() - start, deleted))
    shutil.rmtree(folder, ignore_errors=True)
    return [(label, statistics.median(t for t, _ in runs[label]), runs[label][0][1]) for label, _ in contenders]


# ---- 2. S3 objects ----------------------------------------------------------------------------

def fill(client: Any, bucket: str, count: int) -> None:
    def put(n: int) -> None:
        day = date(2000, 1, 1) + timedelta(days=n)  # one a day: 10,000 objects span 27 years
        client.put_object(Bucket=bucket, Key=f"bu/b_{day:%Y%m%d}.dump", Body=b"x")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def s3(server: Any, tmp: Path) -> list[tuple[str, float, int]]:
    from ferryman.connections import S3Connection

    conn = S3Connection.model_validate({"type": "s3", "endpoint": server.endpoint, "access_key": "AKTEST",
                                        "secret_key": "SKTEST", "path_style": True})
    client = server.client()
    rows = []
    client.create_bucket(Bucket="loop")
    fill(client, "loop", OBJECTS)
    start = time.perf_counter()
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="loop", Prefix="bu/")
            for o in page.get("Contents", [])]
    for key in sorted(keys)[:-1]:  # keep the newest, as prune does
        client.delete_object(Bucket="loop", Key=key)
    rows.append(("boto3: list, then delete_object per key (baseline)", time.perf_counter() - start, len(keys) - 1))
    client.create_bucket(Bucket="prune")
    fill(client, "prune", OBJECTS)
    start = time.perf_counter()
    done = step({"type": "prune", "path": "s3://store/prune/bu/", "keep": {"last": 1}, "max_delete": "100%",
                 "time_from_name": {"pattern": r"_(?P<ts>\d{8})\.dump$", "format": "%Y%m%d"}},
                tmp, {"store": conn})
    rows.append(("prune keep = { last = 1 } (DeleteObjects batches)", time.perf_counter() - start,
                 len(done.outputs["deleted"])))
    return rows


# ---- 3. pg_dump to S3 -------------------------------------------------------------------------

def pg_child(kind: str, dsn: str, endpoint: str, out: str) -> None:
    """One dump + upload in a process of its own; prints JSON {seconds, peak_mb, pg_dump_mb, bytes}."""
    import boto3
    from botocore.config import Config

    work = Path(out)
    if kind != "baseline":
        import ferryman.config  # imports are not what is measured
        import ferryman.transports.s3  # noqa: F401
    start = time.perf_counter()
    if kind == "baseline":
        dump = work / "db.dump"
        with open(dump, "wb") as f:
            subprocess.run(["pg_dump", "-Fc", dsn], stdout=f, check=True)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKTEST",
                              aws_secret_access_key="SKTEST", config=Config(s3={"addressing_style": "path"}))
        client.upload_file(str(dump), "dumps", "baseline/db.dump")
        size = dump.stat().st_size
    else:
        from ferryman.connections import PostgresConnection, S3Connection

        conns: dict[str, Any] = {
            "db": PostgresConnection.model_validate({"type": "postgres", "dsn": dsn}),
            "store": S3Connection.model_validate({"type": "s3", "endpoint": endpoint, "access_key": "AKTEST",
                                                  "secret_key": "SKTEST", "path_style": True}),
        }
        dumped = step({"type": "pg_dump", "connection": "db", "name": "db.dump"}, work, conns)
        step({"type": "deliver", "to": "s3://store/dumps/ferryman"}, work, conns, files=dumped.files)
        size = dumped.files[0].stat().st_size
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "pg_dump_mb": children_peak_mb(),
                      "bytes": size}))


def pg(server: Any, tmp: Path) -> tuple[list[tuple[str, float, float, float, float]], float]:
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"ferryman_bench_{secrets.token_hex(3)}"
    rows = []
    with psycopg.connect(PG, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            dsn = make_conninfo(PG, dbname=name)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"CREATE TABLE big AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b, "
                             f"now() - g * interval '1 second' AS at FROM generate_series(1, {PG_ROWS}) g")
                row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
                db_mb = (row[0] if row else 0) / MiB
            server.client().create_bucket(Bucket="dumps")
            subprocess.run(["pg_dump", "-Fc", dsn], stdout=subprocess.DEVNULL, check=True)  # warm the cache for both
            results: dict[str, list[dict[str, float]]] = {}
            kinds = (("baseline", "pg_dump -Fc > file, boto3 upload_file (baseline)"),
                     ("ferryman", "ferryman pg_dump step + deliver to s3://"))
            for _ in range(ROUNDS):
                for kind, _label in kinds:
                    work = tmp / kind
                    work.mkdir()
                    done = subprocess.run([sys.executable, __file__, "--pg-child", kind, dsn, server.endpoint,
                                           str(work)], capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        raise SystemExit(f"{kind} failed:\n{done.stderr[-2000:]}")
                    results.setdefault(kind, []).append(json.loads(done.stdout.strip().splitlines()[-1]))
                    shutil.rmtree(work, ignore_errors=True)
            for kind, label in kinds:
                seconds = statistics.median(r["seconds"] for r in results[kind])
                rows.append((label, seconds, db_mb / seconds, max(r["peak_mb"] for r in results[kind]),
                             max(r["pg_dump_mb"] for r in results[kind])))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return rows, db_mb


def main() -> None:
    from servers.seaweedfs import SeaweedServer

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        local_rows = local(tmp)
        (tmp / "weed").mkdir()
        server = SeaweedServer(tmp / "weed")
        server.start()
        try:
            s3_rows = s3(server, tmp)
            pg_rows, db_mb = pg(server, tmp)
        finally:
            server.stop()

    print(f"\n### prune over {FILES:,} local files (mtimes spread over a year; median of {ROUNDS})\n")
    print("| run | seconds | deleted | files/s |")
    print("| --- | ---: | ---: | ---: |")
    for label, seconds, deleted in local_rows:
        print(f"| {label} | {seconds:.2f} | {deleted:,} | {FILES / seconds:,.0f} |")
    print(f"\nprune within 30d / find: **{local_rows[1][1] / local_rows[0][1]:.2f}×** the time")

    print(f"\n### prune over {OBJECTS:,} S3 objects on SeaweedFS\n")
    print("| run | seconds | deleted | objects/s |")
    print("| --- | ---: | ---: | ---: |")
    for label, seconds, deleted in s3_rows:
        print(f"| {label} | {seconds:.2f} | {deleted:,} | {deleted / seconds:,.0f} |")
    print(f"\nprune is **{s3_rows[0][1] / s3_rows[1][1]:.1f}×** faster than the one-per-call loop")

    print(f"\n### pg_dump of a {db_mb:.0f} MB database to S3, median of {ROUNDS} (the issue asks >= 1 GB: "
          "BENCH_PG_ROWS=10000000)\n")
    print("| run | seconds | DB MB/s | peak RSS Python (MB) | peak RSS pg_dump (MB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, seconds, speed, peak, pg_peak in pg_rows:
        print(f"| {label} | {seconds:.2f} | {speed:.1f} | {peak:.0f} | {pg_peak:.0f} |")
    ratio = pg_rows[0][1] / pg_rows[1][1]
    print(f"\nthroughput ratio ferryman / baseline = **{ratio:.2f}** (goal >= 0.9); ferryman's peak RSS "
          f"{pg_rows[1][3]:.0f} MB (goal <= 150 MB)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--pg-child":
        pg_child(*sys.argv[2:6])
    else:
        main()
