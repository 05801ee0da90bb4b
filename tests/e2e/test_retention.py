"""Journal retention end to end, with the real `ferryman` command: prune, vacuum, export, and
``keep_history``, on SQLite and on the real PostgreSQL.

The promise under test: after a prune, an original still in its source (a folder with
``after = "keep"``) is not carried a second time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from journal.backends import Backend
from journal.test_postgres import schema_url
from support import FERRYMAN, ferryman, start_ferryman, wait_for


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_setting(request: pytest.FixtureRequest) -> str:
    """The ``[ferryman] journal`` line of each backend (a fresh schema on the real PostgreSQL)."""
    if request.param == "sqlite":
        return 'journal = "sqlite"'
    backend: Backend = request.getfixturevalue("pg_backend")
    schema = backend.execute("SELECT current_schema()")[0][0]
    return f'journal = "{schema_url(request.getfixturevalue("pg_database"), schema)}"'


def write_config(folder: Path, journal: str, ferryman_extra: str = "") -> Path:
    config = folder / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"
{journal}
{ferryman_extra}

[flows.drop]
retry = {{ attempts = 1 }}

[flows.drop.source]
type = "folder"
path = "in"
after = "keep"

[[flows.drop.steps]]
type = "deliver"
to = "out"
if_exists = "rename"   # a second delivery would show as export-N-1.csv
""")
    (folder / "in").mkdir(exist_ok=True)
    return config


def drop(folder: Path, names: list[str]) -> None:
    for name in names:
        (folder / "in" / name).write_text(f"id\n{name}\n")


def delivered(folder: Path) -> list[str]:
    out = folder / "out"
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def history(config: Path) -> list[dict[str, object]]:
    shown = ferryman("history", "--json", "--limit", "0", "-c", str(config), check=True)
    return list(json.loads(shown.stdout))


def test_prune_then_run_again_delivers_nothing_twice(tmp_path: Path, journal_setting: str) -> None:
    config = write_config(tmp_path, journal_setting)
    names = [f"export-{n}.csv" for n in range(6)]
    drop(tmp_path, names)
    ferryman("run", "--once", "-c", str(config), check=True)
    assert delivered(tmp_path) == names

    dry = ferryman("journal", "prune", "--older", "0s", "--dry-run", "-c", str(config), check=True)
    assert dry.stdout.startswith("would prune 5 items (done 5)"), dry.stdout
    assert len(history(config)) == 6, "a dry run changes nothing"
    pruned = ferryman("journal", "prune", "--older", "0s", "-c", str(config), check=True)
    assert pruned.stdout.startswith("pruned 5 items (done 5) and 5 step runs; 5 keys kept as tombstones"), \
        pruned.stdout
    assert "kept the newest done item of 1 flow" in pruned.stdout
    assert len(history(config)) == 1

    again = ferryman("run", "--once", "-c", str(config))
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
    assert delivered(tmp_path) == names, "nothing delivered twice"
    # A daemon start (a fresh scan of the folder) does not bring them back either.
    daemon = start_ferryman("run", "--exit-when-idle", "1s", "-c", str(config))
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert delivered(tmp_path) == names and len(history(config)) == 1
    # A new file, and a changed one (a new key), still go through.
    drop(tmp_path, ["late.csv"])
    time.sleep(0.01)
    (tmp_path / "in" / "export-0.csv").write_text("id\nchanged\n")
    ferryman("run", "--once", "-c", str(config), check=True)
    assert delivered(tmp_path) == sorted([*names, "late.csv", "export-0-1.csv"])

    vacuum = ferryman("journal", "vacuum", "-c", str(config), check=True)
    assert vacuum.stdout.startswith("vacuumed ") and "→" in vacuum.stdout


def test_keep_history_prunes_at_the_end_of_run_once_and_when_the_daemon_starts(
        tmp_path: Path, journal_setting: str) -> None:
    config = write_config(tmp_path, journal_setting)
    drop(tmp_path, ["a.csv", "b.csv", "c.csv"])
    ferryman("run", "--once", "-c", str(config), check=True)
    assert len(history(config)) == 3
    # The daemon prunes when it starts (then hourly): keep_history = "0s" keeps only the newest.
    config = write_config(tmp_path, journal_setting, 'keep_history = "0s"')
    daemon = start_ferryman("run", "-v", "-c", str(config))
    try:
        wait_for(lambda: len(history(config)) == 1, timeout=30)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert "pruned 2 items (done 2)" in err, err
    # run --once prunes after its own work too (for installs run from cron).
    drop(tmp_path, ["d.csv", "e.csv"])
    done = ferryman("run", "--once", "-c", str(config), check=True)
    assert "2 done" in done.stdout
    assert len(history(config)) == 1
    ferryman("run", "--once", "-c", str(config), check=True)
    assert delivered(tmp_path) == ["a.csv", "b.csv", "c.csv", "d.csv", "e.csv"]


def test_failed_items_are_pruned_only_when_keep_failed_allows(tmp_path: Path, journal_setting: str) -> None:
    config = write_config(tmp_path, journal_setting, 'keep_history = "0s"')
    (tmp_path / "out").write_text("a file where the destination folder should be")
    drop(tmp_path, ["x.csv", "y.csv"])
    failed = ferryman("run", "--once", "-c", str(config))
    assert failed.returncode == 1
    assert sorted(str(i["state"]) for i in history(config)) == ["failed", "failed"]
    assert ferryman("journal", "prune", "-c", str(config), check=True).stdout.startswith("pruned 0 items")
    pruned = ferryman("journal", "prune", "--failed-older", "0s", "-c", str(config), check=True)
    assert pruned.stdout.startswith("pruned 2 items (failed 2)"), pruned.stdout
    (tmp_path / "out").unlink()
    again = ferryman("run", "--once", "-c", str(config))
    assert again.returncode == 0 and "nothing to do" in again.stdout, "a pruned failed item is not retried"
    assert delivered(tmp_path) == []


def test_export_streams_a_redacted_json_archive(tmp_path: Path, journal_setting: str) -> None:
    config = write_config(tmp_path, journal_setting)
    secret_url = "https://files.example.com/x.csv?X-Amz-Signature=deadbeefsecret"
    drop(tmp_path, ["a.csv", "b.csv"])
    ferryman("run", "--once", "-c", str(config), check=True)
    if "sqlite" in journal_setting:  # a journaled URL with a signature, as an ITRP item keeps it
        import sqlite3
        with sqlite3.connect(tmp_path / "state" / "journal.db") as conn:
            conn.execute("UPDATE items SET meta = ? WHERE origin LIKE '%a.csv'", (json.dumps({"url": secret_url}),))
    archive = tmp_path / "archive.json"
    written = ferryman("journal", "export", "--json", "-o", str(archive), "-c", str(config), check=True)
    assert written.stdout.strip() == f"exported 2 items to {archive}"
    items = json.loads(archive.read_text())
    assert [Path(str(i["origin"])).name for i in items] == ["a.csv", "b.csv"]  # oldest first
    assert all(i["steps"] and i["steps"][0]["name"] == "deliver" for i in items)
    assert "deadbeefsecret" not in archive.read_text()
    assert not list(tmp_path.glob("*.in_progress"))
    streamed = ferryman("journal", "export", "--json", "-c", str(config), check=True)
    assert json.loads(streamed.stdout) == items
    assert ferryman("journal", "export", "--json", "--older", "1d", "-c", str(config), check=True).stdout == "[]\n"


@pytest.mark.parametrize(("args", "message"), [
    (["prune"], "nothing says what to prune: give --older 30d"),
    (["prune", "--older", "5x"], "--older: '5x' is not a duration"),
    (["prune", "--failed-older", "-1d"], "--failed-older: '-1d' is not a duration"),
    (["export"], "journal export writes JSON only: add --json"),
    (["export", "--json", "--older", "soon"], "--older: 'soon' is not a duration"),
])
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    config = write_config(tmp_path, 'journal = "sqlite"')
    done = ferryman("journal", *args, "-c", str(config))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"ferryman: {done.stderr.strip().removeprefix('ferryman: ')}"]
    assert message in done.stderr


def test_export_to_a_full_disk_fails_loudly(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'journal = "sqlite"')
    drop(tmp_path, ["a.csv"])
    ferryman("run", "--once", "-c", str(config), check=True)
    with open("/dev/full", "w") as full:
        done = subprocess.run([*FERRYMAN, "journal", "export", "--json", "-c", str(config)], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == "ferryman: cannot write the export to stdout: No space left on device"
    existing = tmp_path / "taken.json"
    existing.write_text("keep me")
    refused = ferryman("journal", "export", "--json", "-o", str(existing), "-c", str(config))
    assert refused.returncode == 2 and "exists" in refused.stderr and existing.read_text() == "keep me"


def test_prune_from_the_command_line_while_the_daemon_runs(tmp_path: Path, journal_setting: str) -> None:
    config = write_config(tmp_path, journal_setting)
    config.write_text(config.read_text().replace('after = "keep"', 'after = "keep"\nrescan = "1s"'))
    drop(tmp_path, [f"early-{n}.csv" for n in range(4)])
    daemon = start_ferryman("run", "-c", str(config))
    try:
        wait_for(lambda: len(delivered(tmp_path)) == 4, timeout=60)
        pruned = ferryman("journal", "prune", "--older", "0s", "-c", str(config), check=True)
        assert pruned.stdout.startswith("pruned 3 items (done 3)"), pruned.stdout
        drop(tmp_path, ["late.csv"])
        wait_for(lambda: "late.csv" in delivered(tmp_path), timeout=60)
        time.sleep(2.5)  # two more rescans of the folder, whose four kept files are all pruned but one
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert delivered(tmp_path) == sorted([*(f"early-{n}.csv" for n in range(4)), "late.csv"])
