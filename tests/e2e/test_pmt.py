"""The PMT flow end to end: `<email>_<db>.csv` appears → mailed to <email> with <db>'s message → deleted.

The real `ferryman run --once` in a subprocess talks to a real SMTP server
(aiosmtpd, STARTTLS + AUTH) started by the test.
"""

from __future__ import annotations

from pathlib import Path

from servers import smtp as smtp_servers
from servers.smtp import PASSWORD, SmtpServer
from support import ferryman

smtp = smtp_servers.smtp
_smtp_starttls = smtp_servers._smtp_starttls


def pmt_config(folder: Path, server: SmtpServer) -> Path:
    (folder / "pmt_dir").mkdir()
    messages = folder / "messages"
    messages.mkdir()
    (messages / "bmgf.txt").write_text(
        "Subject: Your BMGF data request\n\nHello {{ meta.to }},\n\nthe data you asked for is attached.\n")
    (messages / "oam.txt").write_text(
        "Subject: Your OAM data request\n\nHello,\n\nyour OAM export is attached.\n")
    config = folder / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"

[connections.mail]
type = "smtp"
host = "127.0.0.1"
port = {server.port}
user = "mailer"
password = {{ env = "PMT_SMTP_PASSWORD" }}
ca_file = "{server.cert}"
from = "pmt@example.org"

[notify.ops]
type = "email"
connection = "mail"
to = "ops@example.org"

[flows.pmt]
notify = ["ops"]
retry = {{ attempts = 1 }}

[flows.pmt.source]
type = "folder"
path = "pmt_dir"
include = ["*.csv"]
meta_from_name = '(?P<to>.+)_(?P<db>[^_]+)\\.csv$'
after = "delete"
settle = "100ms"

[[flows.pmt.steps]]
type = "email"
connection = "mail"
to = "{{meta.to}}"
template_dir = "messages"
template = "{{meta.db}}"
max_attachment_size = "1MB"
too_large = "notice"
""")
    return config


def run(config: Path) -> tuple[int, str]:
    done = ferryman("run", "--once", "-c", str(config), env={"PMT_SMTP_PASSWORD": PASSWORD})
    return done.returncode, done.stdout + done.stderr


def test_pmt_files_are_mailed_to_the_address_in_their_name_then_deleted(smtp: SmtpServer,
                                                                        tmp_path: Path) -> None:
    config = pmt_config(tmp_path, smtp)
    drop = tmp_path / "pmt_dir"
    (drop / "jane.doe@example.com_bmgf.csv").write_text("id,name\n1,Jane\n")
    (drop / "bob_smith@example.org_oam.csv").write_text("id\n2\n")  # the address holds an underscore
    (drop / "large@example.com_bmgf.csv").write_bytes(b"x" * 1_500_000)
    (drop / "notes.csv").write_text("no underscore: not for PMT")

    code, output = run(config)
    assert code == 0, output

    by_rcpt = {m.rcpt_tos[0]: m.message for m in smtp.messages}
    assert set(by_rcpt) == {"jane.doe@example.com", "bob_smith@example.org", "large@example.com"}
    jane = by_rcpt["jane.doe@example.com"]
    assert jane["Subject"] == "Your BMGF data request"
    assert jane["From"] == "pmt@example.org"
    body = jane.get_body(("plain",))
    assert body is not None and "Hello jane.doe@example.com," in body.get_content()
    [attachment] = jane.iter_attachments()
    assert attachment.get_filename() == "jane.doe@example.com_bmgf.csv"
    assert attachment.get_payload(decode=True) == b"id,name\n1,Jane\n"
    assert by_rcpt["bob_smith@example.org"]["Subject"] == "Your OAM data request"
    # Too large: the mail goes without the file and says so (the old script's "file too large").
    large = by_rcpt["large@example.com"]
    assert list(large.iter_attachments()) == []
    large_body = large.get_body(("plain",))
    assert large_body is not None and "was too large to attach" in large_body.get_content()

    assert sorted(p.name for p in drop.iterdir()) == ["notes.csv"]
    again_code, again = run(config)
    assert again_code == 0, again
    assert len(smtp.messages) == 3


def test_a_hostile_name_fails_the_item_keeps_the_file_and_tells_ops(smtp: SmtpServer,
                                                                     tmp_path: Path) -> None:
    config = pmt_config(tmp_path, smtp)
    hostile = tmp_path / "pmt_dir" / "victim@example.com, evil@example.net_bmgf.csv"
    hostile.write_text("secret data")

    code, output = run(config)
    assert code == 1, output
    assert hostile.exists(), "a failed item keeps its original"
    assert [m.rcpt_tos for m in smtp.messages] == [["ops@example.org"]]
    alert = smtp.messages[0].message
    assert "failed" in alert["Subject"]
    alert_body = alert.get_body(("plain",))
    assert alert_body is not None and "several addresses" in alert_body.get_content()
    assert PASSWORD not in output
