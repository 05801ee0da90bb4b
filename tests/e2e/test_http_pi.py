"""End to end: the real `ferryman` against a PIExporter-like API: poll, raw backup, decrypt,
append to daily CSVs, delete on the server only once safe."""

from __future__ import annotations

from pathlib import Path

from e2e.pi_flow import all_rows, csv_rows, raw_records, write_config
from servers.piexporter import PiServer
from support import ferryman


def test_records_are_decrypted_appended_backed_up_and_then_deleted(tmp_path: Path, pi_server: PiServer) -> None:
    pi_server.form("intake")
    pi_server.form("followup", deleteable=False)
    for n in range(7):
        pi_server.add("intake", nameRSA=f"Jane {n}", age=30 + n, note=None)
    pi_server.add("followup", pad="pkcs1v15", answerRSA="yes")
    config = write_config(tmp_path, pi_server, batch=3)
    done = ferryman("run", "--once", "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = csv_rows(tmp_path)
    intake = next(rows[name] for name in rows if name.startswith("intake_"))
    assert [r["nameRSA"] for r in intake] == [f"Jane {n}" for n in range(7)]
    assert list(intake[0]) == ["age", "id", "nameRSA", "note"]  # sorted keys of the first record
    assert intake[0]["note"] == ""
    assert pi_server.held("intake") == []  # deleted once safe
    assert len(pi_server.held("followup")) == 1  # not deleteable: never asked
    assert pi_server.refused == []
    assert len(raw_records(tmp_path)) == 8
    assert "Jane" not in done.stdout + done.stderr
    # a second run finds nothing new and writes nothing twice
    again = ferryman("run", "--once", "-c", str(config))
    assert again.returncode == 0, again.stderr
    assert len(all_rows(tmp_path)) == 8
