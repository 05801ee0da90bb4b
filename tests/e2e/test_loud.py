"""Loud and honest, end to end: the exit codes a crontab line relies on, problems that are not an
item's own (a missing folder, an unreadable file, a failed disposal) in status, history and the
notifiers, `check` finding what would fail, readable logs, and the command-line papercuts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from servers.dovecot import Dovecot, dovecot, mail  # noqa: F401 - fixture
from support import FERRYMAN, ferryman

CRON = """#!/bin/sh
# What a crontab line does: run once, quietly; cron mails whatever it prints.
cd "$(dirname "$0")"
{ferryman} run --once --quiet -c ferryman.toml
echo "exit=$?"
"""


def folder_config(folder: Path, *, source: str = "", steps: str = "", flow: str = "", extra: str = "") -> Path:
    config = folder / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"

[flows.drop]
{flow}

[flows.drop.source]
type = "folder"
path = "in"
settle = "0s"
{source}

{steps}
[[flows.drop.steps]]
type = "deliver"
to = "out"
{extra}""")
    return config


def cron(folder: Path) -> tuple[int, str]:
    """Run the crontab-like script; (exit code, what it printed before the exit line)."""
    script = folder / "cron.sh"
    script.write_text(CRON.format(ferryman=" ".join(FERRYMAN)))
    script.chmod(0o755)
    done = subprocess.run([str(script)], capture_output=True, text=True, timeout=120, check=False)
    printed = done.stdout + done.stderr
    last = [line for line in printed.splitlines() if line.startswith("exit=")][-1]
    return int(last.removeprefix("exit=")), printed.replace(last, "").strip()


def failing_step(folder: Path) -> str:
    (folder / "fussy.py").write_text(
        "def check(path):\n"
        "    if 'bad' in path:\n"
        "        raise ValueError('cannot take ' + path.rsplit('/', 1)[-1])\n")
    return f'[[flows.drop.steps]]\ntype = "python"\ncall = "fussy:check"\npythonpath = ["{folder}"]\n'


NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
"""Root without the capabilities that read every file: an owner-only file becomes unreadable."""


def no_dac_available() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


# ---- the exit codes, one test each, from a crontab-like script -----------------------------------

def test_exit_0_prints_nothing_under_quiet(tmp_path: Path) -> None:
    folder_config(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("a\n")
    code, printed = cron(tmp_path)
    assert (code, printed) == (0, "")
    assert (tmp_path / "out" / "a.csv").read_text() == "a\n"
    assert cron(tmp_path) == (0, ""), "nothing to do is also fine, and silent"


def test_exit_1_while_a_failed_item_waits_until_retried_or_dismissed(tmp_path: Path) -> None:
    config = folder_config(tmp_path, steps=failing_step(tmp_path))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.csv").write_text("x\n")
    (tmp_path / "in" / "good.csv").write_text("y\n")
    code, printed = cron(tmp_path)
    assert code == 1 and "cannot take bad.csv" in printed and "exit 1: some items failed" in printed
    code, printed = cron(tmp_path)  # nothing new, but the failure still waits: cron keeps telling
    assert code == 1 and "1 failed item from earlier runs still wait" in printed
    (tmp_path / "fussy.py").write_text("def check(path):\n    return None\n")
    queued = ferryman("retry", "--failed", "-c", str(config), check=True)
    assert "queued again" in queued.stdout
    assert cron(tmp_path) == (0, "")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bad.csv", "good.csv"]


def test_dismiss_gives_up_on_a_failure(tmp_path: Path) -> None:
    config = folder_config(tmp_path, steps=failing_step(tmp_path))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.csv").write_text("x\n")
    assert cron(tmp_path)[0] == 1
    failed = json.loads(ferryman("history", "--state", "failed", "--json", "-c", str(config), check=True).stdout)
    assert ferryman("dismiss", "nonexistent", "-c", str(config)).returncode == 1
    done = ferryman("dismiss", failed[0]["id"], "-c", str(config), check=True)
    assert f"dismissed: {failed[0]['id']}" in done.stdout
    assert cron(tmp_path) == (0, "")
    (item,) = json.loads(ferryman("history", "--json", "-c", str(config), check=True).stdout)
    assert item["state"] == "skipped" and item["error"].startswith("dismissed by hand: ")


def test_exit_2_for_an_invalid_config(tmp_path: Path) -> None:
    (tmp_path / "ferryman.toml").write_text('[flows.drop.source]\ntype = "foldr"\n')
    code, printed = cron(tmp_path)
    assert code == 2 and "unknown source type 'foldr'" in printed


def test_exit_3_for_a_missing_folder_then_0_once_it_is_there(tmp_path: Path) -> None:
    config = folder_config(tmp_path)
    code, printed = cron(tmp_path)
    assert code == 3 and f"folder {tmp_path / 'in'} does not exist" in printed
    assert "exit 3: a source could not be read" in printed
    status = json.loads(ferryman("status", "--json", "-c", str(config), check=True).stdout)
    assert status["flows"]["drop"]["states"]["failed"] == 1
    assert "does not exist" in status["recent_failures"][0]["error"]
    (tmp_path / "in").mkdir()
    assert cron(tmp_path) == (0, "")
    history = ferryman("history", "-c", str(config), check=True).stdout
    assert "cleared: folder" in history


@pytest.mark.skipif(not no_dac_available(), reason="needs root and setpriv to make a file unreadable")
def test_exit_3_for_an_unreadable_file_then_it_is_delivered(tmp_path: Path) -> None:
    config = folder_config(tmp_path)
    (tmp_path / "in").mkdir()
    locked = tmp_path / "in" / "locked.csv"
    locked.write_text("secret rows\n")
    locked.chmod(0)
    (tmp_path / "in" / "open.csv").write_text("rows\n")
    for path in (tmp_path, tmp_path / "in"):
        path.chmod(0o777)
    done = subprocess.run([*NO_DAC, *FERRYMAN, "run", "--once", "-c", str(config)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"{locked} is not readable by ferryman (permission denied)" in done.stdout
    assert (tmp_path / "out" / "open.csv").exists() and not (tmp_path / "out" / "locked.csv").exists()
    locked.chmod(0o644)
    again = ferryman("run", "--once", "-c", str(config))
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "out" / "locked.csv").read_text() == "secret rows\n"


def test_exit_4_for_a_paused_flow(tmp_path: Path) -> None:
    config = folder_config(tmp_path, flow="stop_on_error = true", steps=failing_step(tmp_path))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.csv").write_text("x\n")
    assert cron(tmp_path)[0] == 1
    ferryman("dismiss", "--failed", "-c", str(config), check=True)
    (tmp_path / "in" / "later.csv").write_text("y\n")
    code, printed = cron(tmp_path)
    assert code == 4 and "drop is paused" in printed and "ferryman resume drop" in printed
    ferryman("resume", "drop", "-c", str(config), check=True)
    assert cron(tmp_path) == (0, "")
    assert (tmp_path / "out" / "later.csv").exists()


# ---- a failed disposal: a failure of its own, told once, cleared with a recovery notice ----------

def test_a_failed_disposal_is_a_failure_told_once_and_cleared(tmp_path: Path) -> None:
    told = tmp_path / "told.jsonl"
    notifier = tmp_path / "notify.sh"
    notifier.write_text(f'#!/bin/sh\nprintf \'%s %s\\n\' "$FERRYMAN_EVENT" "$(cat)" >> {told}\n')
    notifier.chmod(0o755)
    archive = tmp_path / "archive"
    archive.write_text("a file where the archive folder should be\n")
    config = folder_config(tmp_path, source=f'after = {{ move = "{archive}" }}', flow='notify = ["ops"]',
                           extra=f'[notify.ops]\ntype = "command"\ncommand = ["{notifier}"]\n')
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("a\n")
    first = ferryman("run", "--once", "-c", str(config))
    assert first.returncode == 1, first.stdout + first.stderr
    assert (tmp_path / "out" / "a.csv").exists(), "the delivery itself succeeded"
    assert "could not dispose of" in first.stdout and (tmp_path / "in" / "a.csv").exists()
    status = ferryman("status", "-c", str(config), check=True).stdout
    assert "could not dispose of" in status
    second = ferryman("run", "--once", "-c", str(config))
    assert second.returncode == 1 and "still wait" in second.stdout
    assert [line.split()[0] for line in told.read_text().splitlines()] == ["failed"], "told once"
    archive.unlink()
    third = ferryman("run", "--once", "-c", str(config))
    assert third.returncode == 0, third.stdout + third.stderr
    assert (archive / "a.csv").exists() and not (tmp_path / "in" / "a.csv").exists()
    assert [line.split()[0] for line in told.read_text().splitlines()] == ["failed", "recovered"]
    assert ferryman("run", "--once", "-c", str(config)).returncode == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.csv"], "delivered once"


def test_imap_archive_mailbox_missing_is_seen_by_check_and_fails_the_run(
        dovecot: Dovecot, tmp_path: Path) -> None:  # noqa: F811 - fixture
    user = dovecot.new_user()
    dovecot.append(user, mail("Export ready", body="rows"))
    config = tmp_path / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"

[connections.mail]
type = "imap"
host = "127.0.0.1"
port = {dovecot.tls_port}
user = "{user}"
password = {{ env = "FERRYMAN_IMAP_PASSWORD" }}
ca_file = "{dovecot.cert}"

[flows.mail.source]
type = "imap"
connection = "mail"
take = "message"
after = {{ move = "[Gmail]/All Mail" }}

[[flows.mail.steps]]
type = "deliver"
to = "out"
""")
    env = {"FERRYMAN_IMAP_PASSWORD": "secret"}
    local = ferryman("check", "-c", str(config), env=env)
    assert local.returncode == 0, local.stdout + local.stderr
    connected = ferryman("check", "--connect", "-c", str(config), env=env)
    assert connected.returncode == 2, connected.stdout + connected.stderr
    assert "flows.mail.source.after: no archive mailbox '[Gmail]/All Mail'" in connected.stderr
    assert "(line 17)" in connected.stderr
    assert "flows.mail.source.mailbox: 'INBOX' exists" in connected.stdout
    run = ferryman("run", "--once", "-c", str(config), env=env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert len(list((tmp_path / "out").iterdir())) == 1
    assert "could not dispose of mail UID" in run.stdout
    status = json.loads(ferryman("status", "--json", "-c", str(config), check=True).stdout)
    assert status["flows"]["mail"]["states"] == {"pending": 0, "running": 0, "done": 1, "failed": 1, "skipped": 0}
    assert "secret" not in run.stdout + run.stderr + connected.stdout + connected.stderr


# ---- check ---------------------------------------------------------------------------------------

def test_check_finds_what_would_fail_with_key_paths_and_lines(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    config = tmp_path / "ferryman.toml"
    config.write_text("""[ferryman]
root = "state"

[flows.x.source]
type = "folder"
path = "nope"

[[flows.x.steps]]
type = "python"
call = "no_such_module_here:go"

[[flows.x.steps]]
type = "zip"
password = { env = "FERRYMAN_TEST_UNSET_ZIP_PASSWORD" }

[[flows.x.steps]]
type = "deliver"
to = "a-file/{meta.name}"
""")
    done = ferryman("check", "-c", str(config))
    assert done.returncode == 2  # the config is wrong (2) wins over the folder that is missing (3)
    lines = done.stderr.splitlines()
    missing = tmp_path / "nope"
    assert f"error: flows.x.source.path: folder {missing} does not exist (or is not a folder) (line 6)" in lines
    assert any(line.startswith("error: flows.x.steps[0].call: python: cannot import 'no_such_module_here'")
               and line.endswith("(line 10)") for line in lines)
    assert ("error: flows.x.steps[1].password: secret: environment variable FERRYMAN_TEST_UNSET_ZIP_PASSWORD is "
            "not set (line 14)") in lines
    assert f"error: flows.x.steps[2].to: {tmp_path / 'a-file'} is a file, not a folder (line 18)" in lines
    report = json.loads(ferryman("check", "--json", "-c", str(config)).stdout)
    assert report["ok"] is False and report["code"] == 2
    assert {p["key"]: (p["code"], p["line"]) for p in report["problems"]} == {
        "flows.x.source.path": (3, 6), "flows.x.steps[0].call": (2, 10),
        "flows.x.steps[1].password": (2, 14), "flows.x.steps[2].to": (2, 18)}
    (tmp_path / "nope").mkdir()
    (tmp_path / "a-file").unlink()
    (tmp_path / "no_such_module_here.py").write_text("def go(path):\n    return None\n")
    fixed = config.read_text().replace('call = "no_such_module_here:go"',
                                       f'call = "no_such_module_here:go"\npythonpath = ["{tmp_path}"]')
    config.write_text(fixed)
    ok = ferryman("check", "-c", str(config), env={"FERRYMAN_TEST_UNSET_ZIP_PASSWORD": "pw"})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "pw" not in ok.stdout.replace("pythonpath", "")


def test_a_missing_watched_folder_alone_is_exit_3(tmp_path: Path) -> None:
    config = folder_config(tmp_path)
    done = ferryman("check", "--json", "-c", str(config))
    assert done.returncode == 3
    assert json.loads(done.stdout)["problems"][0]["key"] == "flows.drop.source.path"


def test_an_empty_config_and_a_flowless_one_are_errors(tmp_path: Path) -> None:
    (tmp_path / "ferryman.toml").write_text("# nothing yet\n")
    done = ferryman("check", cwd=tmp_path)
    assert done.returncode == 2 and "no flows" in done.stderr
    run = ferryman("run", "--once", cwd=tmp_path)
    assert run.returncode == 2 and "no flows" in run.stderr


# ---- the command line ----------------------------------------------------------------------------

def test_config_before_or_after_the_subcommand_from_the_environment_or_a_folder(tmp_path: Path) -> None:
    config = folder_config(tmp_path)
    (tmp_path / "in").mkdir()
    elsewhere = tmp_path.parent
    for args, env in ((["-c", str(config), "status"], {}), (["status", "-c", str(config)], {}),
                      (["status"], {"FERRYMAN_CONFIG": str(config)}), (["-c", str(tmp_path), "status"], {})):
        done = ferryman(*args, cwd=elsewhere, env=env)
        assert done.returncode == 0, (args, done.stderr)
        assert "drop" in done.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    done = ferryman("status", "-c", str(empty))
    assert done.returncode == 2
    assert f"{empty}: a folder, not a config file (and it holds no ferryman.toml)" in done.stderr


def test_exit_codes_are_in_the_help() -> None:
    for args in (("--help",), ("run", "--help"), ("check", "--help")):
        shown = ferryman(*args).stdout
        assert "3  a source could not be read" in shown and "4  a flow is paused" in shown


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_tables_fit_an_80_column_terminal_and_wide_prints_the_whole_origin(tmp_path: Path) -> None:
    config = folder_config(tmp_path)
    (tmp_path / "in").mkdir()
    name = "a-very-long-file-name-of-the-nightly-export-of-the-customer-database-2026-12-04.csv"
    (tmp_path / "in" / name).write_text("x\n")
    ferryman("run", "--once", "-c", str(config), check=True)
    command = " ".join([*FERRYMAN, "history", "-c", str(config)])

    def on_terminal(extra: str = "") -> list[str]:
        done = subprocess.run(["script", "-qec", f"stty cols 80; {command} {extra}", "/dev/null"],
                              capture_output=True, text=True, timeout=60, check=True)
        return [line for line in done.stdout.replace("\x1b[1m", "").replace("\x1b[0m", "").splitlines()
                if line.strip()]

    fitted = on_terminal()
    assert all(len(line.rstrip("\r")) <= 80 for line in fitted), fitted
    assert fitted[1].rstrip("\r").endswith("2026-12-04.csv") and "…" in fitted[1]
    wide = on_terminal("--wide")
    assert wide[1].rstrip("\r").endswith(str(tmp_path / "in" / name))


# ---- logs ----------------------------------------------------------------------------------------

def test_one_line_per_delivered_item_and_json_logs(tmp_path: Path) -> None:
    config = folder_config(tmp_path, source='after = "delete"')
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("x" * 2048)
    done = ferryman("run", "--once", "-c", str(config), check=True)
    assert f"drop: delivered a.csv (2.0 KiB) to {tmp_path / 'out' / 'a.csv'} in " in done.stderr
    assert "deleted" not in done.stderr, "disposal lines are DEBUG"
    (tmp_path / "in" / "b.csv").write_text("y")
    verbose = ferryman("run", "--once", "-v", "--log-format", "json", "-c", str(config), check=True)
    records = [json.loads(line) for line in verbose.stderr.splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    messages = [r["message"] for r in records]
    assert any(m.startswith("drop: delivered b.csv (1 B) to ") for m in messages)
    assert any(m.startswith("drop: deleted ") and r["level"] == "debug" for r, m in zip(records, messages, strict=True))


def test_retry_failed_on_start_queues_failures_again(tmp_path: Path) -> None:
    config = folder_config(tmp_path, flow="retry_failed_on_start = true", steps=failing_step(tmp_path))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.csv").write_text("x\n")
    assert ferryman("run", "--once", "-c", str(config)).returncode == 1
    (tmp_path / "fussy.py").write_text("def check(path):\n    return None\n")
    again = ferryman("run", "--once", "-c", str(config))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 failed item(s) queued again (retry_failed_on_start)" in again.stderr
    assert (tmp_path / "out" / "bad.csv").exists()

