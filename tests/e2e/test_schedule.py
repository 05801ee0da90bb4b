"""Schedule flows end to end, with the real `ferryman` command: ticks in real time, a SIGKILL in
the middle of a tick, catch-up after downtime, two daemons on one PostgreSQL journal,
``for_each`` with ``--each``, and ``check`` on a bad schedule."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from journal.backends import Backend
from journal.test_postgres import schema_url
from servers.https import HttpsServer
from support import FERRYMAN, ferryman, wait_for

FLOW = """
[flows.tick.source]
type = "schedule"
{schedule}

[[flows.tick.steps]]
type = "command"
per = "item"
collect = true
command = ["sh", "-c", "{script}"]

[[flows.tick.steps]]
type = "deliver"
to = "out"
"""

WRITE = "echo {meta.tick} >> LOG/ticks.log; echo {meta.tick} > tick.txt"
"""The step run by each tick: one line in ticks.log per run (LOG: the test's folder), and a file to
deliver."""


def config(folder: Path, schedule: str, script: str = WRITE, journal: str = "", log: Path | None = None) -> Path:
    journal_line = f'journal = "{journal}"' if journal else ""
    script = script.replace("LOG", str(log or folder))
    (folder / "ferryman.toml").write_text(
        f'[ferryman]\nroot = "state"\n{journal_line}\n'
        + FLOW.replace("{schedule}", schedule).replace("{script}", script))
    return folder / "ferryman.toml"


def history(folder: Path) -> list[dict[str, object]]:
    done = ferryman("history", "--json", "--limit", "1000", cwd=folder, check=True)
    return list(json.loads(done.stdout))


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def daemon(folder: Path) -> subprocess.Popen[str]:
    """The daemon in its own process group: a crash kills the group, as systemd's control group
    would (the step's children included)."""
    return subprocess.Popen([*FERRYMAN, "run", "-q"], cwd=folder, text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def crash(process: subprocess.Popen[str]) -> None:
    """SIGKILL the daemon and the commands its steps run (each in a session of its own), as the
    end of a systemd service's control group does: nothing of the cut-short step goes on."""
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    os.killpg(process.pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(child), signal.SIGKILL)
    process.communicate(timeout=10)


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return err


def test_every_second_runs_about_one_tick_per_second(tmp_path: Path) -> None:
    config(tmp_path, 'every = "1s"')
    process = daemon(tmp_path)
    try:
        wait_for(lambda: lines(tmp_path / "ticks.log"), timeout=20)
        time.sleep(5)
    finally:
        stop(process)
    ran = lines(tmp_path / "ticks.log")
    assert 4 <= len(ran) <= 8, ran
    assert len(set(ran)) == len(ran)  # no tick twice
    stamps = sorted(time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) for t in ran)
    assert all(b - a == 1 for a, b in itertools.pairwise(stamps)), ran  # none lost
    items = history(tmp_path)
    assert {i["state"] for i in items} == {"done"}
    assert all(str(i["key"]).startswith("tick:") for i in items)


def test_a_tick_killed_during_its_step_resumes_once(tmp_path: Path) -> None:
    script = "echo {meta.tick} >> LOG/started.log; sleep 3; " + WRITE
    config(tmp_path, 'every = "2s"\nmissed = "skip"', script=script)
    process = daemon(tmp_path)
    wait_for(lambda: lines(tmp_path / "started.log"), timeout=20)
    crash(process)
    [killed] = [i for i in history(tmp_path) if i["state"] in ("pending", "running")]
    tick = killed["meta"]["tick"]  # type: ignore[index]
    assert str(killed["key"]).startswith("tick:") and lines(tmp_path / "ticks.log") == []
    again = ferryman("run", "--once", cwd=tmp_path)  # resumes the unfinished tick; the missed ones are skipped
    assert again.returncode == 0, again.stderr
    after = {i["id"]: i for i in history(tmp_path)}
    assert after[killed["id"]]["state"] == "done"
    finished = lines(tmp_path / "ticks.log")  # an on-time tick may have run after it, once
    assert finished.count(tick) == 1 and len(set(finished)) == len(finished), finished
    assert lines(tmp_path / "started.log").count(tick) == 2  # the step cut short ran again, from its start
    assert max(Counter(i["key"] for i in after.values()).values()) == 1


@pytest.mark.parametrize("missed", ["latest", "all", "skip"])
def test_a_daemon_down_across_three_ticks(tmp_path: Path, missed: str) -> None:
    config(tmp_path, f'every = "1s"\nmissed = "{missed}"')
    assert ferryman("run", "--once", cwd=tmp_path, check=True).stdout.strip() == "nothing to do"  # history begins
    time.sleep(3.6)
    done = ferryman("run", "--once", cwd=tmp_path, check=True)
    items = history(tmp_path)
    ran = [i for i in items if i["state"] == "done"]
    skipped = [i for i in items if i["state"] == "skipped"]
    covered = sum(int(str(i["meta"]["ticks"])) for i in skipped)  # type: ignore[index]
    if missed == "all":
        assert len(ran) >= 3 and skipped == []
    elif missed == "latest":
        assert len(ran) == 1 and len(skipped) == 1 and covered >= 2
        assert "(missed = 'latest')" in str(skipped[0]["error"])
    else:
        assert len(ran) <= 1 and len(skipped) == 1 and covered >= 2  # one tick may be on time
        assert "(missed = 'skip')" in str(skipped[0]["error"])
    assert len(ran) + covered >= 3
    assert "skipped" in done.stdout or missed == "all"
    status = ferryman("status", cwd=tmp_path, check=True).stdout
    assert "schedules:" in status and "next tick" in status


def test_two_daemons_on_one_postgresql_journal_run_each_tick_once(pg_backend: Backend, pg_database: str,
                                                                   tmp_path: Path) -> None:
    schema = pg_backend.execute("SELECT current_schema()")[0][0]
    url = schema_url(pg_database, schema)
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
        config(folder, 'every = "1s"', script="echo {meta.tick} >> LOG/ticks.log; echo x > t.txt",
               journal=url, log=tmp_path)
    processes = [daemon(folder) for folder in folders]
    try:
        wait_for(lambda: lines(tmp_path / "ticks.log"), timeout=30)
        time.sleep(6)
    finally:
        for process in processes:
            stop(process)
    ran = lines(tmp_path / "ticks.log")
    assert len(ran) >= 5
    assert [t for t, n in Counter(ran).items() if n > 1] == []
    keys = [str(i["key"]) for i in history(folders[0])]
    assert len(keys) == len(set(keys))


def test_for_each_and_each_selection(tmp_path: Path) -> None:
    config(tmp_path, 'cron = "0 3 * * *"\nfor_each = ["cioc_a", "cioc_b", "cioc_c"]',
           script="echo {meta.each} >> LOG/ticks.log; echo {meta.each} > {meta.each}.txt")
    done = ferryman("run", "--once", "--now", "--flow", "tick", "--each", "cioc_b", "--each", "cioc_c",
                    cwd=tmp_path, check=True)
    assert sorted(lines(tmp_path / "ticks.log")) == ["cioc_b", "cioc_c"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cioc_b.txt", "cioc_c.txt"]
    assert "run by hand at" in done.stdout and "(cioc_b)" in done.stdout
    wrong = ferryman("run", "--once", "--now", "--each", "cioc_x", cwd=tmp_path)
    assert wrong.returncode == 2  # the command line asked for what the config does not have
    assert "--each 'cioc_x' is not a for_each value of flow 'tick' (values: cioc_a, cioc_b, cioc_c)" in (
        wrong.stdout + wrong.stderr)
    alone = ferryman("run", "--now", cwd=tmp_path)
    assert alone.returncode == 2 and "use it with --once" in alone.stderr


@pytest.mark.parametrize("schedule, message", [
    ('cron = "0 25 * * *"', "flows.tick.source.cron: '0 25 * * *': field 2 (hour) '25' is not valid"),
    ('cron = "0 3 * * *"\ntimezone = "Europe/Atlantis"', "flows.tick.source.timezone: "),
    ('cron = "0 3 * * *"\nevery = "5m"', "give either cron or every (exactly one)"),
    ('every = "5m"\nfor_each = []', "for_each is empty"),
    ('every = "5m"\nfor_each = { file = "missing.txt" }', "flows.tick.source.for_each: cannot read"),
])
def test_check_names_the_key_of_a_bad_schedule(tmp_path: Path, schedule: str, message: str) -> None:
    config(tmp_path, schedule)
    done = ferryman("check", cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stdout + done.stderr


def test_a_monthly_download_of_an_unchanged_file_delivers_nothing_and_says_so(
        https_server: HttpsServer, tmp_path: Path) -> None:
    url = https_server.add("rates.csv", b"code,rate\nCAD,1.0\n")
    (tmp_path / "ferryman.toml").write_text(f"""
[ferryman]
root = "state"

[flows.rates.source]
type = "schedule"
cron = "@monthly"

[[flows.rates.steps]]
type = "download"
url = "{url}"
ca_file = "{https_server.cert}"
if_changed = true

[[flows.rates.steps]]
type = "deliver"
to = "out/{{now:%Y-%m}}"
""")
    first = ferryman("run", "--once", "--now", cwd=tmp_path, check=True)
    assert "done" in first.stdout and len(list((tmp_path / "out").rglob("rates.csv"))) == 1
    second = ferryman("run", "--once", "--now", cwd=tmp_path, check=True)
    assert https_server.not_modified["rates.csv"] == 1
    assert "skipped" in second.stdout and "not modified since the download of item" in second.stdout
    assert len(list((tmp_path / "out").rglob("*"))) == 2  # still the one month folder and its one file
    https_server.add("rates.csv", b"code,rate\nCAD,1.1\n")  # a new version: downloaded again
    third = ferryman("run", "--once", "--now", cwd=tmp_path, check=True)
    assert "done" in third.stdout
    states = [i["state"] for i in history(tmp_path)]
    assert sorted(states) == ["done", "done", "skipped"]


def test_a_nightly_sql_procedure_per_database(pg_backend: Backend, pg_database: str, tmp_path: Path) -> None:
    """CIOC's nightly maintenance: a stored procedure called per for_each value, on the real PostgreSQL;
    the rows affected are journaled, and an SQL error fails the item with the server's message."""
    schema = pg_backend.execute("SELECT current_schema()")[0][0]
    pg_backend.execute(f"CREATE TABLE {schema}.runs (db text, at timestamptz default now())")
    url = schema_url(pg_database, schema)
    (tmp_path / "ferryman.toml").write_text("""
[ferryman]
root = "state"

[connections.db]
type = "postgres"
dsn = { env = "NIGHTLY_DSN" }

[flows.nightly.source]
type = "schedule"
cron = "0 3 * * 2-6"
for_each = ["cioc_a", "cioc_b"]

[[flows.nightly.steps]]
type = "sql"
connection = "db"
statement = "INSERT INTO runs (db) VALUES (%(db)s)"
params = { db = "{meta.each}" }
""")
    env = {"NIGHTLY_DSN": url}
    done = ferryman("run", "--once", "--now", cwd=tmp_path, env=env, check=True)
    assert "2 done" in done.stdout
    assert sorted(r[0] for r in pg_backend.execute(f"SELECT db FROM {schema}.runs")) == ["cioc_a", "cioc_b"]
    shown = json.loads(ferryman("history", "--json", cwd=tmp_path, env=env, check=True).stdout)
    assert {s["outputs"]["rows_affected"] for i in shown for s in i["steps"]} == {1}  # type: ignore[index]
    (tmp_path / "ferryman.toml").write_text((tmp_path / "ferryman.toml").read_text().replace("runs (db)", "nope (db)"))
    failed = ferryman("run", "--once", "--now", "--each", "cioc_a", cwd=tmp_path, env=env)
    assert failed.returncode == 1
    assert 'relation "nope" does not exist' in failed.stdout
    assert url not in failed.stdout + failed.stderr
