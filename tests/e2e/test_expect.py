"""``expect`` end to end: the real daemon, a folder flow whose export does not come, the email
notifier on a real SMTP server (aiosmtpd, STARTTLS + AUTH): one alert, `status` shows the flow
overdue, further empty windows stay quiet, and a recovery notice follows the first success."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from servers import smtp as smtp_servers
from servers.smtp import PASSWORD, SmtpServer
from support import FERRYMAN, ferryman, wait_for

smtp = smtp_servers.smtp
_smtp_starttls = smtp_servers._smtp_starttls


def write_config(folder: Path, server: SmtpServer) -> None:
    (folder / "inbox").mkdir()
    (folder / "ferryman.toml").write_text(f"""
[ferryman]
root = "state"

[connections.mail]
type = "smtp"
host = "127.0.0.1"
port = {server.port}
user = "mailer"
password = {{ env = "SMTP_PASSWORD" }}
ca_file = "{server.cert}"
from = "ferryman@example.org"

[notify.ops]
type = "email"
connection = "mail"
to = "ops@example.org"

[flows.partner]
notify = ["ops"]
expect = {{ every = "4s", within = "2s" }}

[flows.partner.source]
type = "folder"
path = "inbox"
settle = "100ms"

[[flows.partner.steps]]
type = "deliver"
to = "out"
""")


def subjects(server: SmtpServer) -> list[str]:
    return [str(m.message["Subject"]) for m in server.messages]


def test_an_export_that_never_came_alerts_once_then_recovers(smtp: SmtpServer, tmp_path: Path) -> None:
    write_config(tmp_path, smtp)
    env = {"SMTP_PASSWORD": PASSWORD}
    daemon = subprocess.Popen([*FERRYMAN, "run", "-q"], cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env={**os.environ, **env})
    try:
        wait_for(lambda: smtp.messages, timeout=20)
        [alert] = smtp.messages
        body = alert.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "overdue: no item of flow 'partner' succeeded between" in body
        status = ferryman("status", cwd=tmp_path, env=env, check=True).stdout
        assert "OVERDUE since" in status
        overdue = json.loads(ferryman("status", "--json", cwd=tmp_path, env=env, check=True).stdout)
        assert overdue["flows"]["partner"]["overdue"]["expected"].startswith("expected an item between")
        time.sleep(4.5)  # another window closes without an item: no second alert while overdue
        assert len(smtp.messages) == 1, subjects(smtp)
        (tmp_path / "inbox" / "late.csv").write_text("a,b\n")
        wait_for(lambda: len(smtp.messages) == 2, timeout=20)
        assert "working again" in subjects(smtp)[1]
        wait_for(lambda: "OVERDUE" not in ferryman("status", cwd=tmp_path, env=env, check=True).stdout, timeout=10)
        assert (tmp_path / "out" / "late.csv").read_text() == "a,b\n"
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
