"""SIGKILL `ferryman run` at random moments (mid-poll, mid-append, mid-delete) while the server
keeps adding records and delete mode is on.  After the restarts every record the server ever held
is in the CSVs exactly once, decrypted; every record deleted on the server was, at the moment of
every kill, already in a CSV row and a raw backup; no row is torn.  The replay variant: the server
serves deleted records again, and each raises exactly one critical alert."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import threading
import time
from pathlib import Path

from e2e.pi_flow import write_config
from servers.piexporter import PiServer
from support import ferryman, start_ferryman, wait_for


def started(folder: Path, pid: int) -> bool:
    pid_file = folder / "state" / "ferryman.pid"
    return pid_file.exists() and pid_file.read_text().strip() == str(pid)


def complete_rows(folder: Path) -> dict[int, list[dict[str, str]]]:
    """Rows by record id, of every CSV, ignoring a torn last line (a kill mid-append)."""
    found: dict[int, list[dict[str, str]]] = {}
    for path in sorted((folder / "csv").glob("*.csv")):
        data = path.read_bytes()
        text = data[: data.rfind(b"\r\n") + 2].decode() if not data.endswith(b"\r\n") else data.decode()
        for row in csv.DictReader(text.splitlines()):
            if row.get("id", "").isdigit():
                found.setdefault(int(row["id"]), []).append(row)
    return found


def backed_up(folder: Path) -> set[int]:
    ids: set[int] = set()
    for path in (folder / "raw_data").glob("*.json"):
        ids |= {r["id"] for r in json.loads(path.read_text())}
    return ids


def chaos(tmp_path: Path, server: PiServer, replay: bool) -> None:
    rng = random.Random(int(os.environ.get("FERRYMAN_CHAOS_SEED", "13")) + replay)
    server.form("intake")
    server.form("followup")
    server.form("static", deleteable=False)
    server.delete_pause = 0.004
    expected: dict[int, str] = {}
    static: set[int] = set()
    stop = threading.Event()

    def add(count: int) -> None:
        for _ in range(count):
            form = rng.choice(["intake", "followup", "static"])
            n = len(expected)
            record = server.add(form, pad="pkcs1v15", nameRSA=f"person {n}",
                                score=n, note=None if n % 3 else "x")
            expected[record["id"]] = f"person {n}"
            if form == "static":
                static.add(record["id"])

    def producer() -> None:
        while not stop.wait(rng.uniform(0.02, 0.2)):
            add(rng.randint(1, 8))

    add(60)
    config = write_config(tmp_path, server, batch=7, every="1s")
    feeder = threading.Thread(target=producer, daemon=True)
    feeder.start()
    kills = 0
    try:
        while kills < 8:
            daemon = start_ferryman("run", "-c", str(config))
            wait_for(lambda d=daemon: started(tmp_path, d.pid), timeout=30)
            time.sleep(rng.uniform(0.1, 1.5))
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=30)
            kills += 1
            rows = complete_rows(tmp_path)
            backups = backed_up(tmp_path)
            with server.lock:
                deleted = {r["id"] for records in server.deleted.values() for r in records}
            assert deleted <= set(rows), f"deleted but not in a CSV: {sorted(deleted - set(rows))[:5]}"
            assert deleted <= backups, f"deleted but not backed up: {sorted(deleted - backups)[:5]}"
            if replay and kills == 4:
                server.replay = True  # from now on the server serves deleted records again
                server.ignore_since = True
    finally:
        stop.set()
        feeder.join()
    daemon = start_ferryman("run", "-c", str(config))
    wait_for(lambda: started(tmp_path, daemon.pid), timeout=30)
    try:
        wait_for(lambda: set(complete_rows(tmp_path)) >= set(expected) and not any(
            server.held(f) for f in ("intake", "followup")), timeout=120, interval=0.3)
        time.sleep(2.5)  # a few more polls: nothing may be written twice
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err[-3000:]
    rows = complete_rows(tmp_path)
    twice = {k: len(v) for k, v in rows.items() if len(v) > 1}
    assert not twice, f"written twice: {sorted(twice)[:10]}"
    assert set(rows) == set(expected)
    assert {k: v[0]["nameRSA"] for k, v in rows.items()} == expected  # decrypted
    for path in (tmp_path / "csv").glob("*.csv"):
        data = path.read_bytes()
        assert data.endswith(b"\r\n"), f"{path.name} ends in a torn row"
        widths = {len(r) for r in csv.reader(data.decode().splitlines())}
        assert len(widths) == 1, f"{path.name} holds rows of different widths: {widths}"
    assert {r["id"] for r in server.held("static")} == static  # not deleteable: never deleted
    assert server.refused == []
    history = json.loads(ferryman("history", "-c", str(config), "--limit", "100000", "--json").stdout)
    alerts = sorted(i["key"] for i in history if i["key"].startswith("replay:"))
    if replay:
        replayed = {f"replay:{form}:{r['id']}" for form in ("intake", "followup") for r in server.deleted[form]}
        assert alerts and len(alerts) == len(set(alerts))  # one alert per record, never two
        assert set(alerts) <= replayed
        missing = sorted(replayed - set(alerts))
        status = ferryman("status", "-c", str(config)).stdout
        assert set(alerts) == replayed, (f"{len(missing)} replayed records raised no alert: {missing[:5]}\n"
                                         f"{status}\n{err[-3000:]}")
    else:
        assert alerts == []
    assert kills == 8


def test_sigkill_at_random_moments_writes_every_record_once_and_deletes_only_what_is_safe(
        tmp_path: Path, pi_server: PiServer) -> None:
    chaos(tmp_path, pi_server, replay=False)


def test_replayed_records_raise_exactly_one_alert_each(tmp_path: Path, pi_server: PiServer) -> None:
    chaos(tmp_path, pi_server, replay=True)
