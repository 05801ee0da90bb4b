"""A host that does not resolve, in words, for every connection type: the real `ferryman check
--connect` and `ferryman run --once` on connections to ``no-such-host.invalid`` (RFC 6761: a
``.invalid`` name never resolves) say ``cannot resolve host "no-such-host.invalid" (DNS: …)``,
never ``connection failed: -2``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support import ferryman

HOST = "no-such-host.invalid"
WORDS = f'cannot resolve host "{HOST}" (DNS: '

CONFIG = f"""
[ferryman]
root = "state"

[connections.mail]
type = "imap"
host = "{HOST}"
user = "exports"
password = {{ env = "PW" }}
timeout = "10s"

[connections.outbox]
type = "smtp"
host = "{HOST}"
from = "ferryman@example.com"
timeout = "10s"

[connections.partner]
type = "sftp"
host = "{HOST}"
user = "exports"
password = {{ env = "PW" }}
timeout = "10s"

[connections.drop]
type = "ftp"
host = "{HOST}"
timeout = "10s"

[connections.store]
type = "s3"
endpoint = "https://{HOST}"
access_key = {{ env = "PW" }}
secret_key = {{ env = "PW" }}
timeout = "10s"

[connections.api]
type = "http"
base_url = "https://{HOST}/v1/"
auth = {{ bearer = {{ env = "PW" }} }}
timeout = "10s"

[flows.imap.source]
type = "imap"
connection = "mail"

[flows.sftp.source]
type = "sftp"
url = "sftp://partner/outgoing"

[flows.ftp.source]
type = "ftp"
url = "ftp://drop/outgoing"

[flows.s3.source]
type = "s3"
url = "s3://store/exports/outgoing"

[flows.smtp]
retry = {{ attempts = 1 }}

[flows.smtp.source]
type = "folder"
path = "in"

[[flows.smtp.steps]]
type = "email"
connection = "outbox"
to = ["ops@example.com"]
subject = "export"
body = "attached"

[flows.http]
retry = {{ attempts = 1 }}

[flows.http.source]
type = "folder"
path = "in"

[[flows.http.steps]]
type = "download"
connection = "api"
url = "exports/people.csv"
"""

ENV = {"PW": "dns-test-secret"}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "ferryman.toml").write_text(CONFIG)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "people.csv").write_text("id\n1\n")
    return tmp_path


def test_check_connect_says_which_host_does_not_resolve(folder: Path) -> None:
    done = ferryman("check", "--connect", cwd=folder, env=ENV, timeout=300)
    said = done.stdout + done.stderr
    assert done.returncode == 3, said  # a server that cannot be reached
    lines = {m.group(1): m.group(2) for m in re.finditer(r"^  (\w+) \(\w+\): (.*)$", said, re.MULTILINE)}
    assert set(lines) == {"mail", "outbox", "partner", "drop", "store", "api"}
    for name, line in lines.items():
        assert line.startswith("FAILED — ") and WORDS in line, (name, line)
        assert "-2" not in line and "gaierror" not in line and ENV["PW"] not in line
    assert lines["mail"].startswith(f"FAILED — imap mail (exports@{HOST}): {WORDS}")
    assert lines["partner"].startswith(f"FAILED — sftp exports@{HOST}:22: cannot connect: {WORDS}")
    assert lines["api"].startswith(f"FAILED — https://{HOST}/v1/: {WORDS}")


@pytest.mark.parametrize("flow, code, where", [
    ("imap", 3, f"imap mail (exports@{HOST}): "),
    ("sftp", 3, f"sftp exports@{HOST}:22: cannot connect: "),
    ("ftp", 3, f"ftp anonymous@{HOST}:21: cannot connect: "),
    ("s3", 3, "s3: cannot list "),
    ("smtp", 1, f"smtp {HOST}:587: "),
    ("http", 1, f"https://{HOST}/v1/exports/people.csv: "),
])
def test_run_once_says_which_host_does_not_resolve(folder: Path, flow: str, code: int, where: str) -> None:
    done = ferryman("run", "--once", "--flow", flow, cwd=folder, env=ENV, timeout=300)
    said = done.stdout + done.stderr
    assert done.returncode == code, said
    (failed,) = [line for line in done.stdout.splitlines() if line.startswith("failed")]
    assert where in failed and WORDS in failed, failed
    assert failed.endswith(")") and "-2" not in failed.split(WORDS)[1]
    assert ENV["PW"] not in said
