"""A folder flow delivering to S3 (SeaweedFS) and mailing a notice, end to end with `ferryman run --once`."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from servers import seaweedfs as weed
from servers import smtp as smtp_servers
from servers.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedServer
from servers.smtp import PASSWORD, SmtpServer
from support import ferryman

seaweedfs = weed.seaweedfs
s3_bucket = weed.s3_bucket
smtp = smtp_servers.smtp
_smtp_starttls = smtp_servers._smtp_starttls

MiB = 1024 * 1024
ENV = {"S3_ACCESS": ACCESS_KEY, "S3_SECRET": SECRET_KEY, "SMTP_PASSWORD": PASSWORD}


def write_config(folder: Path, store: SeaweedServer, bucket: str, mail: SmtpServer) -> Path:
    (folder / "in").mkdir()
    config = folder / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"

[connections.store]
type = "s3"
endpoint = "{store.endpoint}"
access_key = {{ env = "S3_ACCESS" }}
secret_key = {{ env = "S3_SECRET" }}
path_style = true

[connections.mail]
type = "smtp"
host = "127.0.0.1"
port = {mail.port}
user = "mailer"
password = {{ env = "SMTP_PASSWORD" }}
ca_file = "{mail.cert}"
from = "backups@example.org"

[flows.backups]
retry = {{ attempts = 1 }}

[flows.backups.source]
type = "folder"
path = "in"
after = "delete"
settle = "100ms"

[[flows.backups.steps]]
type = "deliver"
to = "s3://store/{bucket}/ScheduledBUs/{{now:%Y}}"

[[flows.backups.steps]]
type = "email"
connection = "mail"
to = "dba@example.org"
attach = false
subject = "Backup {{{{ name }}}} stored"
body = "{{{{ name }}}} is in S3."
""")
    return config


def test_files_go_to_s3_then_a_mail_then_the_original_is_deleted(
        seaweedfs: SeaweedServer, s3_bucket: str, smtp: SmtpServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, seaweedfs, s3_bucket, smtp)
    big = os.urandom(21 * MiB + 3)  # multipart
    (tmp_path / "in" / "pmt_Monday.tar").write_bytes(big)
    (tmp_path / "in" / "pmt_Week07.tar").write_bytes(b"small backup")

    done = ferryman("run", "--once", "-c", str(config), env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr

    client = seaweedfs.client()
    year = time.strftime("%Y")
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="ScheduledBUs/")
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        f"ScheduledBUs/{year}/pmt_Monday.tar", f"ScheduledBUs/{year}/pmt_Week07.tar"]
    body = client.get_object(Bucket=s3_bucket, Key=f"ScheduledBUs/{year}/pmt_Monday.tar")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(big).digest()
    assert list((tmp_path / "in").iterdir()) == []
    assert sorted(m.message["Subject"] for m in smtp.messages) == [
        "Backup pmt_Monday.tar stored", "Backup pmt_Week07.tar stored"]
    assert all(not list(m.message.iter_attachments()) for m in smtp.messages)
    for secret in (SECRET_KEY, PASSWORD):
        assert secret not in done.stdout + done.stderr


def test_wrong_s3_keys_fail_the_item_and_keep_the_file(
        seaweedfs: SeaweedServer, s3_bucket: str, smtp: SmtpServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, seaweedfs, s3_bucket, smtp)
    (tmp_path / "in" / "a.tar").write_bytes(b"data")
    done = ferryman("run", "--once", "-c", str(config), env={**ENV, "S3_SECRET": "not-the-secret"})
    assert done.returncode == 1
    assert (tmp_path / "in" / "a.tar").exists()
    assert smtp.messages == []
    assert "not-the-secret" not in done.stdout + done.stderr
    shown = ferryman("history", "--json", "-c", str(config))
    assert "access denied (HTTP 403: wrong access key or secret key" in shown.stdout
