"""examples/pmt-backups under the real daemon: ticks every second instead of every midnight, a year
of earlier backups already on disk and in the bucket (their names carry their times, so the clock
that retention counts is the files', not the wall's), the real PostgreSQL and SeaweedFS."""

from __future__ import annotations

import json
import re
import secrets
import signal
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from journal.backends import PG_ADDRESS
from servers import seaweedfs as weed
from servers.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedServer
from support import ferryman, require_binary, start_ferryman, unavailable, wait_for

seaweedfs, s3_bucket = weed.seaweedfs, weed.s3_bucket
EXAMPLE = Path(__file__).parents[2] / "examples" / "pmt-backups"
PREFIX = "projects/PMT/Data/DatabaseBUs/ScheduledBUs"
STAMP = re.compile(r"_(\d{8}-\d{6})\.tar$")


@pytest.fixture
def databases() -> Iterator[list[str]]:
    import psycopg

    require_binary("pg_dump")
    try:
        admin = psycopg.connect(PG_ADDRESS, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {PG_ADDRESS} is not reachable: {exc}")
        raise
    names = [f"pmt_{kind}_{secrets.token_hex(3)}" for kind in ("bmgf", "oam")]
    with admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
            with psycopg.connect(PG_ADDRESS, dbname=name, autocommit=True) as conn:
                conn.execute("CREATE TABLE activity AS SELECT g AS id, 'project ' || g AS title "
                             "FROM generate_series(1, 500) g")
        try:
            yield names
        finally:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def history_names(today: date, db: str) -> list[str]:
    """Earlier backups, as ferryman would have left them: 14 nightly ones, and the last night of each
    of the 12 months before."""
    days = {today - timedelta(days=n) for n in range(1, 15)}
    first = today.replace(day=1)
    for _ in range(12):
        first = (first - timedelta(days=1)).replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        days.add(following - timedelta(days=1))
    return sorted(f"{db}_{d:%Y%m%d}-000000.tar" for d in days)


def when(name: str) -> datetime:
    match = STAMP.search(name)
    assert match, name
    return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=UTC)


def gfs(names: set[str], daily: int = 7, weekly: int = 5, monthly: int = 12) -> set[str]:
    """The PMT policy worked out by hand for this data (more periods exist than each rule asks for):
    the newest backup of each of the N most recent days, ISO weeks and months."""
    kept: set[str] = set()
    for count, period in ((daily, lambda t: t.date()), (weekly, lambda t: t.isocalendar()[:2]),
                          (monthly, lambda t: (t.year, t.month))):
        newest: dict[object, str] = {}
        for name in sorted(names, key=when, reverse=True):
            newest.setdefault(period(when(name)), name)
        kept |= set(list(newest.values())[:count])
    return kept


def config_for_test(folder: Path, store: SeaweedServer, bucket: str, dbs: list[str]) -> Path:
    """The example, with: ticks every second, the backup folder under `folder`, SeaweedFS as the store."""
    text = (EXAMPLE / "ferryman.toml").read_text()
    replacements = [
        ('cron = "0 0 * * *"\ntimezone = "UTC"', 'every = "1s"\ntimezone = "UTC"'),
        ("/usr/local/pmt_bu", str(folder / "pmt_bu")),
        ('# endpoint = "https://s3.example.com"    # S3-compatible stores; AWS when unset',
         f'endpoint = "{store.endpoint}"\npath_style = true'),
        ("s3://store/spatialdev/", f"s3://store/{bucket}/"),
    ]
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    (folder / "ferryman.toml").write_text(text)
    (folder / "databases.txt").write_text("\n".join(dbs) + "\n")
    return folder / "ferryman.toml"


def bucket_names(store: SeaweedServer, bucket: str, db: str) -> set[str]:
    pages = store.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{PREFIX}/{db}/")
    return {o["Key"].rsplit("/", 1)[1] for page in pages for o in page.get("Contents", [])}


def test_the_pmt_example_keeps_daily_weekly_monthly(databases: list[str], seaweedfs: SeaweedServer,
                                                     s3_bucket: str, tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    if datetime.now(UTC).hour == 23 and datetime.now(UTC).minute >= 55:
        pytest.skip("too close to midnight UTC: the day would change during the run")
    config_for_test(tmp_path, seaweedfs, s3_bucket, databases)
    client = seaweedfs.client()
    seeded: dict[str, list[str]] = {}
    for db in databases:
        seeded[db] = history_names(today, db)
        folder = tmp_path / "pmt_bu" / db
        folder.mkdir(parents=True)
        for name in seeded[db]:
            (folder / name).write_text(f"an old backup {name}")
            client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/{db}/{name}", Body=name.encode())
    env = {"PMT_PG_DSN": PG_ADDRESS, "PMT_PG_PASSWORD": "not-needed-with-trust", "PMT_S3_ACCESS_KEY": ACCESS_KEY,
           "PMT_S3_SECRET_KEY": SECRET_KEY}
    checked = ferryman("check", cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    daemon = start_ferryman("run", cwd=tmp_path, env=env)

    def done_items() -> list[dict[str, object]]:
        shown = ferryman("history", "--json", "--limit", "1000", cwd=tmp_path, env=env)
        items = json.loads(shown.stdout) if shown.returncode == 0 else []
        return [i for i in items if i["state"] == "done"]

    try:
        wait_for(lambda: len(done_items()) >= 6, timeout=120, interval=0.5)  # three ticks per database
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, out + err
    items = json.loads(ferryman("history", "--json", "--limit", "1000", cwd=tmp_path, env=env, check=True).stdout)
    assert {i["state"] for i in items} <= {"done", "skipped"}, [i["error"] for i in items]
    for db in databases:
        mine = [i for i in items if i["meta"].get("each") == db and i["state"] == "done"]  # type: ignore[attr-defined]
        steps = [{s["name"]: s["outputs"] for s in i["steps"]} for i in mine]  # type: ignore[attr-defined]
        made = {s["pg_dump"]["file"] for s in steps}
        assert len(made) == len(mine) >= 3
        assert all(s["pg_dump"]["verified"].startswith("pg_restore --list") for s in steps)
        every = set(seeded[db]) | made
        expected = gfs(every)
        assert len(every - expected) >= len(made) - 1 + 5  # older nightlies, and each earlier dump of today
        assert {p.name for p in (tmp_path / "pmt_bu" / db).iterdir()} == expected
        assert bucket_names(seaweedfs, s3_bucket, db) == expected
        for label in ("prune local", "prune s3"):
            deleted = [n for s in steps for n in s[label]["deleted"]]
            assert sorted(deleted) == sorted(every - expected)  # every deletion journaled, once
        newest = max(made, key=when)
        last = next(s for s in steps if s["pg_dump"]["file"] == newest)
        assert last["prune local"]["kept"][newest].startswith(f"daily {today:%Y-%m-%d}, weekly ")
        assert "not-needed-with-trust" not in json.dumps(items)
