"""Journal size before and after a prune: N files (default 12,000) carried by a real folder flow
(``after = "keep"``, two steps: checksum, deliver) with the real `ferryman` command,
then ``journal prune --older 0s`` and ``journal vacuum``; SQLite, and PostgreSQL when reachable.

    .venv/bin/python bench/bench_retention.py             # 12,000 files
    BENCH_FILES=2000 .venv/bin/python bench/bench_retention.py

Prints a table of sizes; asserts nothing about time.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

N_FILES = int(os.environ.get("BENCH_FILES", "12000"))
FERRYMAN = [sys.executable, "-m", "ferryman"]
PG = os.environ.get("FERRYMAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def run(*args: str) -> str:
    done = subprocess.run([*FERRYMAN, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ferryman {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout.strip()


def sqlite_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in (folder / "state").glob("journal.db*"))


def pg_size(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0) FROM unnest("
                           "ARRAY['items','step_runs','pruned_keys','cursors','paused_flows','schema_version']) t"
                           ).fetchone()
        return int(row[0]) if row else 0


def measure(folder: Path, journal: str, size: object) -> list[str]:
    config = folder / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"
journal = "{journal}"
[flows.drop.source]
type = "folder"
path = "in"
after = "keep"
[[flows.drop.steps]]
type = "checksum"
[[flows.drop.steps]]
type = "deliver"
to = "out"
""")
    run("run", "--once", "-c", str(config))
    items = len(json.loads(run("history", "--json", "--limit", "0", "-c", str(config))))
    before = size()  # type: ignore[operator]
    pruned = run("journal", "prune", "--older", "0s", "-c", str(config))
    after_prune = size()  # type: ignore[operator]
    run("journal", "vacuum", "--full", "-c", str(config))
    after = size()  # type: ignore[operator]
    again = run("run", "--once", "-c", str(config))
    return [f"{items:,}", f"{before / 1e6:.2f} MB", f"{after_prune / 1e6:.2f} MB", f"{after / 1e6:.2f} MB",
            f"{before / max(after, 1):.1f}x", "yes" if "nothing to do" in again else "NO: " + again[:60],
            pruned.split(";")[0]]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        for n in range(N_FILES):
            (folder / "in" / f"export-{n:05d}_people.csv").write_text(f"id,name\n{n},person {n}\n")
        rows.append(["sqlite", *measure(folder, "sqlite", lambda: sqlite_size(folder))])
        try:
            import psycopg

            schema = f"bench_{secrets.token_hex(4)}"
            with psycopg.connect(PG, autocommit=True) as admin:
                admin.execute(f"CREATE SCHEMA {schema}")
            url = f"{PG}?options={quote(f'-csearch_path={schema}')}"
            try:
                for part in ("out", "state"):
                    subprocess.run(["rm", "-rf", str(folder / part)], check=True)
                rows.append(["postgresql", *measure(folder, url, lambda: pg_size(url))])
            finally:
                with psycopg.connect(PG, autocommit=True) as admin:
                    admin.execute(f"DROP SCHEMA {schema} CASCADE")
        except Exception as exc:  # the server is optional here: say so in the table
            rows.append(["postgresql", f"skipped: {exc}"[:80]])
    header = ["journal", "items", "before", "after prune", "after vacuum", "smaller by", "run again: nothing twice",
              "prune said"]
    widths = [max(len(str(r[i])) if i < len(r) else 0 for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)))


if __name__ == "__main__":
    main()
