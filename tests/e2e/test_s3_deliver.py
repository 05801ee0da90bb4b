"""A folder flow delivering to S3 (SeaweedFS) and mailing a notice, end to end with `ferryman run --once`."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from servers import seaweedfs as weed
from servers import smtp as smtp_servers
from servers.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedServer
from servers.smtp import PASSWORD, SmtpServer
from support import ferryman, start_ferryman, wait_for

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
    assert "access key or secret key" in shown.stdout  # refused by the upload itself


def test_a_store_that_goes_down_mid_transfer_gets_every_file_exactly_once(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    store = SeaweedServer(tmp_path_factory.mktemp("seaweed-restart"))
    store.start()
    daemon = None
    try:
        store.client().create_bucket(Bucket="restart")
        (tmp_path / "in").mkdir()
        config = tmp_path / "ferryman.toml"
        config.write_text(f"""
[ferryman]
root = "state"
grace = "5s"

[connections.store]
type = "s3"
endpoint = "{store.endpoint}"
access_key = {{ env = "S3_ACCESS" }}
secret_key = {{ env = "S3_SECRET" }}
path_style = true
timeout = "5s"

[flows.up]
retry = {{ attempts = 30, delay = "300ms", backoff = 1.5, max_delay = "2s" }}

[flows.up.source]
type = "folder"
path = "in"
after = "delete"
settle = "100ms"

[[flows.up.steps]]
type = "deliver"
to = "s3://store/restart/up"
""")
        files = {f"f{n}.bin": os.urandom(24 * MiB + n) for n in range(3)}
        daemon = start_ferryman("run", "-c", str(config), env=ENV)
        wait_for(lambda: (tmp_path / "state" / "ferryman.pid").exists())
        for name, data in files.items():
            (tmp_path / "in" / (name + ".part")).write_bytes(data)
            (tmp_path / "in" / (name + ".part")).rename(tmp_path / "in" / name)
        client = store.client()

        def uploading() -> bool:
            started = client.list_multipart_uploads(Bucket="restart").get("Uploads", [])
            listed = client.list_objects_v2(Bucket="restart").get("Contents", [])
            return bool(started or listed)

        wait_for(uploading, timeout=30, interval=0.01)
        store.stop()  # the store goes away in the middle of the uploads
        time.sleep(1.5)
        store.start()
        client = store.client()
        wait_for(lambda: not list((tmp_path / "in").iterdir()), timeout=90, interval=0.2)
        listed = client.list_objects_v2(Bucket="restart")["Contents"]
        assert sorted(o["Key"] for o in listed) == [f"up/{name}" for name in sorted(files)]
        for name, data in files.items():
            body = client.get_object(Bucket="restart", Key=f"up/{name}")["Body"].read()
            assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest(), name
        history = json.loads(ferryman("history", "--json", "-c", str(config), check=True).stdout)
        assert sorted(h["state"] for h in history) == ["done"] * 3
        failed_runs = [run for h in history for run in h["steps"] if run["outcome"] == "failed"]
        assert failed_runs, "the outage should have cost at least one attempt"
        assert all("could not connect to " + store.endpoint in run["error"] for run in failed_runs)
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=30)
        store.stop()


def test_storage_class_and_templated_metadata_reach_the_object(
        seaweedfs: SeaweedServer, s3_bucket: str, smtp: SmtpServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, seaweedfs, s3_bucket, smtp)
    text = config.read_text().replace(
        '[[flows.backups.steps]]\ntype = "email"',
        'storage_class = "STANDARD_IA"\nmetadata = { source = "{name}", flow = "{flow}" }\n\n'
        '[[flows.backups.steps]]\ntype = "email"')
    config.write_text(text)
    (tmp_path / "in" / "pmt_Tuesday.tar").write_bytes(b"backup bytes")
    done = ferryman("run", "--once", "-c", str(config), env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    head = seaweedfs.client().head_object(Bucket=s3_bucket, Key=f"ScheduledBUs/{time.strftime('%Y')}/pmt_Tuesday.tar")
    assert head["Metadata"] == {"source": "pmt_Tuesday.tar", "flow": "backups"}
    assert head["StorageClass"] == "STANDARD_IA"


def test_s3_options_on_a_local_destination_are_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "ferryman.toml"
    config.write_text('[flows.x.source]\ntype = "folder"\npath = "in"\n'
                      '[[flows.x.steps]]\ntype = "deliver"\nto = "out"\nstorage_class = "GLACIER"\n')
    done = ferryman("check", "-c", str(config))
    assert done.returncode == 2
    assert "flows.x.steps[0]: storage_class and metadata apply to s3:// destinations only" in done.stderr
