"""The ITRP Export Monitor's job, end to end, with the real `ferryman` command.

Dovecot holds the export mails, a local HTTPS server the export zips; the
flow downloads, unzips, rewrites the CSV, files each CSV under its export
type and archives the mail — only mails of the configured export ids, only
after success, never twice.
"""
# ruff: noqa: F811 - pytest fixtures are imported by name and used as arguments

from __future__ import annotations

import io
import json
import signal
import zipfile
from pathlib import Path

from servers.dovecot import Dovecot, dovecot, mail  # noqa: F401 - fixture
from servers.ftp import FtpServer, ftp_plain_server  # noqa: F401 - fixture
from servers.https import HttpsServer, https_server  # noqa: F401 - fixture
from support import ferryman, start_ferryman, wait_for

CSV = b'id,name,notes\r\n1,Ann,"two\r\nlines"\r\n2,Bob,plain\r\n'
REWRITTEN = b"id;name;notes\r\n1;Ann;two lines\r\n2;Bob;plain\r\n"


def export_zip(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, CSV)
    return buffer.getvalue()


def export_mail(export_id: int, url: str) -> bytes:
    return mail(f"Scheduled export {export_id} is ready", export_id=export_id,
                body=f"Hello,\n\nThe export is ready: {url}\n\nITRP").as_bytes()


def write_config(folder: Path, server: Dovecot, user: str, https: HttpsServer, extra: str = "",
                 flow: str = "") -> Path:
    config = folder / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"
workers = 2
grace = "2s"

[connections.mail]
type = "imap"
host = "127.0.0.1"
port = {server.tls_port}
user = "{user}"
password = {{ env = "FERRYMAN_IMAP_PASSWORD" }}
ca_file = "{server.cert}"

[flows.itrp]
retry = {{ attempts = 2, delay = "100ms" }}
{flow}
[flows.itrp.source]
type = "imap"
connection = "mail"
match = {{ from = "itrp", headers = {{ "X-ITRP-ExportID" = ["777", "779"] }} }}
take = "link"
headers = {{ export_id = "X-ITRP-ExportID" }}
after = {{ move = "Archive" }}
poll_interval = "1s"

[[flows.itrp.steps]]
type = "download"
ca_file = "{https.cert}"

[[flows.itrp.steps]]
type = "unzip"

[[flows.itrp.steps]]
type = "csv"
output = {{ delimiter = ";" }}
replace = [{{ pattern = '\\r?\\n', with = " " }}]

[[flows.itrp.steps]]
type = "meta"
from_name = '(?:^|-)(?P<export_type>[^-]+)\\.csv$'
include = ["*.csv"]

[[flows.itrp.steps]]
type = "deliver"
to = "out/{{meta.export_type}}"
{extra}""")
    return config


ENV = {"FERRYMAN_IMAP_PASSWORD": "secret"}


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def archived(server: Dovecot, user: str) -> list[str]:
    with server.client(user) as client:
        client.select_folder("Archive", readonly=True)
        fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (X-ITRP-EXPORTID)]"])
        return sorted(v[b"BODY[HEADER.FIELDS (X-ITRP-EXPORTID)]"].decode().split(":")[1].strip()
                      for v in fetched.values())


def test_itrp_exports_end_to_end(dovecot: Dovecot, https_server: HttpsServer, ftp_plain_server: FtpServer,
                                 tmp_path: Path) -> None:
    user = dovecot.new_user()
    people = https_server.add("e2e-777.zip", export_zip("20240131-people.csv"))
    sites = https_server.add("e2e-779.zip", export_zip("20240131-sites.csv", "20240131-people_contacts.csv"))
    other = https_server.add("e2e-781.zip", export_zip("20240131-other.csv"))
    dovecot.append(user, export_mail(777, people))
    ignored = dovecot.append(user, export_mail(781, other))
    dovecot.append(user, export_mail(779, sites + "?token=t0p"))
    ftp = ftp_plain_server
    # The old monitor's to_ftp / to_ftp_dir, with a folder name holding dots (it used to drop those).
    config = write_config(tmp_path, dovecot, user, https_server, f"""
[[flows.itrp.steps]]
type = "deliver"
to = "ftp://ftp/exports.v2/{user}/{{meta.export_type}}"

[connections.ftp]
type = "ftp"
host = "127.0.0.1"
port = {ftp.port}
user = "alice"
password = {{ env = "FERRYMAN_FTP_PASSWORD" }}
tls = false
""")

    done = ferryman("run", "--once", "-c", str(config), env={**ENV, "FERRYMAN_FTP_PASSWORD": "secret"})

    assert done.returncode == 0, done.stderr
    assert files_under(tmp_path / "out") == {
        "people/20240131-people.csv": REWRITTEN,
        "sites/20240131-sites.csv": REWRITTEN,
        "people_contacts/20240131-people_contacts.csv": REWRITTEN,
    }
    assert files_under(ftp.root / "exports.v2" / user) == files_under(tmp_path / "out")
    assert dovecot.uids(user) == [ignored]                      # the 781 mail: left alone
    assert dovecot.flags(user, ignored) == set()                # … not even marked seen
    assert archived(dovecot, user) == ["777", "779"]
    assert https_server.requests["/files/e2e-781.zip"] == 0
    assert "secret" not in done.stderr and "t0p" not in done.stderr

    again = ferryman("run", "--once", "-c", str(config), env={**ENV, "FERRYMAN_FTP_PASSWORD": "secret"})
    assert again.returncode == 0, again.stderr
    assert https_server.requests["/files/e2e-777.zip"] == 1     # never downloaded twice
    assert archived(dovecot, user) == ["777", "779"]


def test_a_failed_download_keeps_the_mail_until_it_succeeds(dovecot: Dovecot, https_server: HttpsServer,
                                                           tmp_path: Path) -> None:
    user = dovecot.new_user()
    url = https_server.add("flaky-777.zip", export_zip("20240201-people.csv"))
    https_server.failing.add("flaky-777.zip")
    uid = dovecot.append(user, export_mail(777, url))
    config = write_config(tmp_path, dovecot, user, https_server)

    failed = ferryman("run", "--once", "-c", str(config), env=ENV)

    assert failed.returncode == 1
    assert "HTTP 503" in failed.stderr
    assert dovecot.uids(user) == [uid] and dovecot.flags(user, uid) == set()
    assert not (tmp_path / "out").exists()
    tries = https_server.requests["/files/flaky-777.zip"]
    assert tries == 2                                            # attempts = 2: tried twice, no more
    assert ferryman("run", "--once", "-c", str(config), env=ENV).returncode == 1  # it still waits: exit 1
    assert https_server.requests["/files/flaky-777.zip"] == tries  # a failed item waits for `retry`

    https_server.failing.discard("flaky-777.zip")
    ferryman("retry", "--flow", "itrp", "--failed", "-c", str(config), check=True, env=ENV)
    done = ferryman("run", "--once", "-c", str(config), env=ENV)

    assert done.returncode == 0, done.stderr
    assert files_under(tmp_path / "out") == {"people/20240201-people.csv": REWRITTEN}
    assert dovecot.uids(user) == []
    assert archived(dovecot, user) == ["777"]


def test_a_restart_mid_way_delivers_nothing_twice(dovecot: Dovecot, https_server: HttpsServer,
                                                  tmp_path: Path) -> None:
    user = dovecot.new_user()
    fast = https_server.add("restart-777.zip", export_zip("20240301-people.csv"))
    https_server.add("restart-779.zip", export_zip("20240301-sites.csv"))
    slow = https_server.url("/slow/restart-779.zip")
    dovecot.append(user, export_mail(777, fast))
    dovecot.append(user, export_mail(779, slow))
    config = write_config(tmp_path, dovecot, user, https_server)
    https_server.pause = 30.0
    try:
        daemon = start_ferryman("run", "-c", str(config), env=ENV)
        wait_for(lambda: https_server.requests["/slow/restart-779.zip"] >= 1, timeout=30)
        daemon.send_signal(signal.SIGKILL)           # a crash in the middle of a download
        daemon.communicate(timeout=10)
    finally:
        https_server.pause = 0.0

    done = ferryman("run", "--once", "-c", str(config), env=ENV)

    assert done.returncode == 0, done.stderr
    assert files_under(tmp_path / "out") == {"people/20240301-people.csv": REWRITTEN,
                                             "sites/20240301-sites.csv": REWRITTEN}
    assert archived(dovecot, user) == ["777", "779"]
    assert dovecot.uids(user) == []
    # A step cut off by the crash may run again (steps are idempotent); its outcome exists once.
    assert https_server.requests["/files/restart-777.zip"] <= 2
    assert not list((tmp_path / "out").rglob("*.in_progress"))


def signature_of(url: str) -> str:
    return url.rsplit("X-Amz-Signature=", 1)[1]


def assert_hidden(text: str, url: str) -> None:
    """Neither the signature nor the credential of the pre-signed `url` is in `text`."""
    assert signature_of(url) not in text
    assert "AKIAFERRYMANTEST" not in text and "X-Amz" not in text


def test_a_signed_link_never_shows_and_still_works_after_a_restart(
        dovecot: Dovecot, https_server: HttpsServer, tmp_path: Path) -> None:
    """The export link is pre-signed: no command, log line or notification may show its query string,
    while the journal keeps it whole for the retry that a new process runs."""
    user = dovecot.new_user()
    url = https_server.add_signed("signed-777.zip", export_zip("20240401-people.csv"))
    redacted = url.split("?", 1)[0] + "?…"
    https_server.failing.add("signed-777.zip")
    dovecot.append(user, export_mail(777, url))
    told = tmp_path / "told.jsonl"
    config = write_config(tmp_path, dovecot, user, https_server, flow='notify = ["told", "logged"]\n', extra=f"""
[ferryman.log]
files = {{ debug = "debug.log" }}

[notify.told]
type = "command"
command = ["sh", "-c", "cat >> '{told}'; echo >> '{told}'"]

[notify.logged]
type = "log"
""")

    def every_output() -> list[str]:
        """What each reading command prints (stdout and stderr)."""
        item_id = json.loads(ferryman("history", "--json", "-c", str(config), check=True).stdout)[0]["id"]
        outputs = []
        for args in (["status"], ["status", "--json"], ["history"], ["history", "--json"],
                     ["show", item_id], ["show", item_id, "--json"]):
            done = ferryman(*args, "-c", str(config), check=True)
            outputs.append(done.stdout + done.stderr)
        return outputs

    failed = ferryman("run", "--once", "-v", "-c", str(config), env=ENV)

    assert failed.returncode == 1
    assert f"{redacted}: HTTP 503" in failed.stdout + failed.stderr
    assert_hidden(failed.stdout + failed.stderr, url)
    for output in every_output():
        assert_hidden(output, url)
    (item,) = json.loads(ferryman("history", "--json", "-c", str(config), check=True).stdout)
    assert item["meta"]["url"] == redacted and item["state"] == "failed"
    assert f"url = {redacted}" in ferryman("show", item["id"], "-c", str(config), check=True).stdout
    revealed = ferryman("show", item["id"], "--reveal", "-c", str(config), check=True).stdout
    assert f"url = {url}" in revealed                                   # the operator who asks sees it whole
    assert json.loads(ferryman("show", item["id"], "--json", "--reveal", "-c", str(config),
                               check=True).stdout)["meta"]["url"] == url
    assert (tmp_path / "state" / "journal.db").stat().st_mode & 0o777 == 0o600
    (notified,) = json.loads(told.read_text())                          # the command notifier was told …
    assert notified["error"] == f"{redacted}: HTTP 503 Service Unavailable"
    assert_hidden(told.read_text(), url)                                # … without the signature

    https_server.failing.discard("signed-777.zip")
    ferryman("retry", "--flow", "itrp", "--failed", "-c", str(config), check=True, env=ENV)
    done = ferryman("run", "--once", "-v", "-c", str(config), env=ENV)   # a new process: the URL comes from the journal

    assert done.returncode == 0, done.stderr
    assert files_under(tmp_path / "out") == {"people/20240401-people.csv": REWRITTEN}  # the signature was accepted
    assert archived(dovecot, user) == ["777"]
    assert_hidden(done.stdout + done.stderr, url)
    for output in every_output():
        assert_hidden(output, url)
    log = (tmp_path / "state" / "logs" / "debug.log").read_text()
    assert f"{redacted}: HTTP 503" in log and "moved to Archive" in log
    assert "cut short" not in log                                        # a retry, not a crash
    assert_hidden(log, url)


def test_a_signed_download_cut_off_by_a_crash_resumes_with_the_whole_link(
        dovecot: Dovecot, https_server: HttpsServer, tmp_path: Path) -> None:
    user = dovecot.new_user()
    url = https_server.add_signed("crash-777.zip", export_zip("20240402-people.csv"))
    slow = url.replace("/files/", "/slow/")
    dovecot.append(user, export_mail(777, slow))
    config = write_config(tmp_path, dovecot, user, https_server)
    https_server.pause = 30.0
    try:
        daemon = start_ferryman("run", "-v", "-c", str(config), env=ENV)
        wait_for(lambda: https_server.requests["/slow/crash-777.zip"] >= 1, timeout=30)
        daemon.send_signal(signal.SIGKILL)           # a crash in the middle of the signed download
        daemon.communicate(timeout=10)
    finally:
        https_server.pause = 0.0
    assert_hidden("".join(daemon.output()), slow)

    done = ferryman("run", "--once", "-v", "-c", str(config), env=ENV)

    assert done.returncode == 0, done.stderr
    assert files_under(tmp_path / "out") == {"people/20240402-people.csv": REWRITTEN}
    assert_hidden(done.stdout + done.stderr, slow)
