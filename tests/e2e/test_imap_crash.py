"""The real `ferryman` command SIGKILLed between the journal's commit of a done item and the IMAP MOVE
of its mail: the next run moves the mail to the archive, once, and runs nothing again.

The kill is made deterministic with the connection's XOAUTH2 ``token_command``, which runs at every
login: the watching connection logs in first, and the disposal opens a second connection only after
the journal committed the item — the command blocks on that second call, and the test kills there.
"""
# ruff: noqa: F811 - pytest fixtures are imported by name and used as arguments

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from servers.dovecot import Dovecot, dovecot, mail  # noqa: F401 - fixture
from support import ferryman, start_ferryman, wait_for

TOKEN = "crash-token"


def write_config(folder: Path, server: Dovecot, user: str, after: str) -> Path:
    script = folder / "token.sh"
    # Counts its calls; the second one (the disposal's login, in the first run only) blocks until killed.
    script.write_text(f"""#!/bin/sh
n=$(cat {folder}/calls 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {folder}/calls
if [ "$n" = 2 ]; then echo $$ > {folder}/blocked.tmp; mv {folder}/blocked.tmp {folder}/blocked; exec sleep 120; fi
echo {TOKEN}
""")
    script.chmod(0o755)
    config = folder / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"
workers = 2

[connections.mail]
type = "imap"
host = "127.0.0.1"
port = {server.tls_port}
user = "{user}"
oauth2 = {{ token_command = ["{script}"] }}
ca_file = "{server.cert}"

[flows.mail.source]
type = "imap"
connection = "mail"
match = {{ headers = {{ "X-ITRP-ExportID" = "777" }} }}
after = {after}

[[flows.mail.steps]]
type = "deliver"
to = "out"
if_exists = "rename"
""")
    return config


def history(config: Path) -> list[dict[str, object]]:
    done = ferryman("history", "--json", "-c", str(config), check=True)
    items: list[dict[str, object]] = json.loads(done.stdout)
    return items


def subjects(server: Dovecot, user: str, mailbox: str) -> list[str]:
    with server.client(user) as client:
        client.select_folder(mailbox, readonly=True)
        fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        return sorted(v[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip()
                      for v in fetched.values())


def crash_before_disposal(server: Dovecot, user: str, config: Path, folder: Path) -> None:
    """`run --once` until the disposal's login, then SIGKILL: the state a crash in that window leaves."""
    run = start_ferryman("run", "--once", "-c", str(config))
    try:
        wait_for(lambda: (folder / "blocked").exists() or run.poll() is not None, timeout=60)
        assert (folder / "blocked").exists(), f"the disposal never logged in: {run.output()}"
        # The window: the journal says done and the file is delivered, the mail is still in INBOX.
        assert [i["state"] for i in history(config)] == ["done"]
        assert "export 1" in subjects(server, user, "INBOX")
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=10)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate(timeout=10)
        blocked = folder / "blocked"
        if blocked.exists():
            os.kill(int(blocked.read_text()), signal.SIGKILL)  # the token command the kill orphaned


def test_sigkill_between_journal_and_move_archives_the_mail_once_on_restart(
        dovecot: Dovecot, tmp_path: Path) -> None:
    user = dovecot.new_user()
    dovecot.tokens[TOKEN] = user
    dovecot.append(user, mail("export 1", export_id=777, body="b", attachments=[("people.csv", b"id\n1\n")]))
    other = dovecot.append(user, mail("not ours", export_id=781, body="b"))
    config = write_config(tmp_path, dovecot, user, '{ move = "Archive" }')

    crash_before_disposal(dovecot, user, config, tmp_path)

    again = ferryman("run", "--once", "-c", str(config))
    assert again.returncode == 0, again.stderr
    assert subjects(dovecot, user, "Archive") == ["export 1"]
    assert dovecot.uids(user) == [other]
    assert dovecot.flags(user, other) == set()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["people.csv"]   # delivered once
    (item,) = history(config)
    assert item["state"] == "done"
    shown = json.loads(ferryman("show", str(item["id"]), "--json", "-c", str(config), check=True).stdout)
    assert [s["outcome"] for s in shown["steps"]] == ["done", "done"]   # the mail step and deliver, once each
    assert not list((tmp_path / "state" / "spool").rglob("*.csv"))      # the crash's spool is cleaned too

    # Nothing is left to do, and nothing fails for a mail that is gone.
    last = ferryman("run", "--once", "-c", str(config))
    assert last.returncode == 0, last.stderr
    assert subjects(dovecot, user, "Archive") == ["export 1"]
    assert len(history(config)) == 1
