"""End to end: the real `ferryman` against a PIExporter-like API: poll, raw backup, decrypt,
append to daily CSVs, delete on the server only once safe."""

from __future__ import annotations

from pathlib import Path

from e2e.pi_flow import all_rows, csv_rows, raw_records, write_config
from servers.piexporter import PiServer
from support import ferryman, start_ferryman, wait_for


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
    for journal_file in (tmp_path / "state").glob("journal*"):  # plaintext never reaches the journal
        assert b"Jane" not in journal_file.read_bytes()
    shown = ferryman("history", "--json", "-c", str(config)).stdout
    assert "Jane" not in shown and "s3cret" not in shown
    assert not list((tmp_path / "state").glob("work/*/*/records.jsonl"))  # decrypted work files are gone
    # a second run finds nothing new and writes nothing twice
    again = ferryman("run", "--once", "-c", str(config))
    assert again.returncode == 0, again.stderr
    assert len(all_rows(tmp_path)) == 8


def test_recover_rebuilds_the_csvs_byte_identical_from_the_backups(tmp_path: Path, pi_server: PiServer) -> None:
    pi_server.form("intake")
    pi_server.form("static", deleteable=False)
    config = write_config(tmp_path, pi_server, batch=4)
    for round_ in range(3):  # three polls, each backing up new records only
        for n in range(5):
            pi_server.add("intake", nameRSA=f"p{round_}-{n}", score=n, extra=None)
        pi_server.add("static", pad="pkcs1v15", answerRSA=f"a{round_}")
        done = ferryman("run", "--once", "-c", str(config))
        assert done.returncode == 0, done.stderr
    assert pi_server.held("intake") == []
    assert len(list((tmp_path / "raw_data").glob("*.json"))) == 6
    live = {p.name: p.read_bytes() for p in (tmp_path / "csv").glob("*.csv")}
    rebuilt = ferryman("recover", "pi", "--into", str(tmp_path / "rebuilt"), "-c", str(config))
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "rebuilt").glob("*.csv")} == live
    report = (tmp_path / "rebuilt" / "recovery_report.txt").read_text()
    assert "records: 18" in report and "intake: 3 backup(s) of 3" in report
    refused = ferryman("recover", "pi", "--into", str(tmp_path / "csv"), "-c", str(config))
    assert refused.returncode == 2 and "live CSV folder" in refused.stderr
    busy = ferryman("recover", "pi", "--into", str(tmp_path / "rebuilt"), "-c", str(config))
    assert busy.returncode == 2 and "not empty" in busy.stderr
    none = ferryman("recover", "pi", "--into", str(tmp_path / "none"), "--from", "2001-01-01", "--to",
                    "2001-01-02", "-c", str(config))
    assert none.returncode == 0 and "0 record(s)" in none.stdout


def test_init_piexporter_writes_the_shipped_example_and_it_checks(tmp_path: Path) -> None:
    done = ferryman("init", "piexporter", "-o", str(tmp_path / "ferryman.toml"), check=True)
    assert "wrote" in done.stdout
    example = Path(__file__).parents[2] / "examples" / "piexporter" / "ferryman.toml"
    assert (tmp_path / "ferryman.toml").read_text() == example.read_text()
    checked = ferryman("check", "-c", str(tmp_path / "ferryman.toml"), env={"PI_PASSWORD": "x"})
    # check resolves every secret: the only thing missing is the private key the template names
    assert checked.returncode == 2, checked.stdout + checked.stderr
    (problem,) = [line for line in checked.stderr.splitlines() if line.startswith("error: ")]
    assert "secret: cannot read /etc/ferryman/pi_private.pem" in problem


def test_import_benchmark_takes_both_formats_and_old_records_are_not_written(tmp_path: Path,
                                                                              pi_server: PiServer) -> None:
    pi_server.form("intake")
    pi_server.form("static", deleteable=False)
    for n in range(6):
        pi_server.add("intake" if n % 2 else "static", nameRSA=f"n{n}")
    config = write_config(tmp_path, pi_server, delete=False)
    (tmp_path / "old.json").write_text('{"intake": 4, "static": 1}')
    (tmp_path / "new.json").write_text('{"static": {"current": 3, "deleteable": false}}')
    first = ferryman("import-benchmark", "pi", str(tmp_path / "old.json"), "-c", str(config), check=True)
    assert "intake: mark none → 4" in first.stdout
    second = ferryman("import-benchmark", "pi", str(tmp_path / "new.json"), "-c", str(config), check=True)
    assert "static: mark 1 → 3 (the file says deleteable = false)" in second.stdout
    lower = ferryman("import-benchmark", "pi", str(tmp_path / "old.json"), "-c", str(config), check=True)
    assert "static: kept the journal's mark 3" in lower.stdout
    done = ferryman("run", "--once", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert sorted(int(r["id"]) for r in all_rows(tmp_path)) == [5, 6]
    (tmp_path / "bad.json").write_text('{"intake": "x"}')
    bad = ferryman("import-benchmark", "pi", str(tmp_path / "bad.json"), "-c", str(config))
    assert bad.returncode == 2 and "no integer id" in bad.stderr


def test_check_connect_logs_in_to_the_api(tmp_path: Path, pi_server: PiServer) -> None:
    pi_server.form("intake")
    config = write_config(tmp_path, pi_server)
    done = ferryman("check", "--connect", "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HTTP 200" in done.stdout and pi_server.password not in done.stdout
    pi_server.password = "changed"
    refused = ferryman("check", "--connect", "-c", str(config))
    assert refused.returncode == 2 and "refused" in refused.stdout + refused.stderr  # a refusal: the config is wrong


def test_a_failing_poll_is_told_once_and_its_recovery_too(tmp_path: Path, pi_server: PiServer) -> None:
    """The old PIExporter mailed when a request failed: here a failing poll is the flow's problem,
    told once however many polls fail, then the recovery once a poll works again."""
    told = tmp_path / "told"
    notifier = tmp_path / "notify.sh"
    notifier.write_text(f'#!/bin/sh\necho "$FERRYMAN_EVENT" >> {told}\n')
    notifier.chmod(0o755)
    pi_server.form("intake")
    pi_server.add("intake", nameRSA="Ann")
    pi_server.faults["intake"] += ["500"] * 3
    config = write_config(tmp_path, pi_server, flow_extra='notify = ["ops"]\nnotify_window = "1s"')
    config.write_text(config.read_text() + f'\n[notify.ops]\ntype = "command"\ncommand = ["{notifier}"]\n')
    daemon = start_ferryman("run", "-c", str(config))
    try:
        wait_for(lambda: told.exists() and "recovered" in told.read_text(), timeout=60)
        wait_for(lambda: len(all_rows(tmp_path)) == 1, timeout=30)
    finally:
        daemon.terminate()
        daemon.communicate(timeout=30)
    assert told.read_text().split() == ["failed", "recovered"]
    history = ferryman("history", "-c", str(config), check=True).stdout
    assert "cleared: polling failed: collection 'intake'" in history
