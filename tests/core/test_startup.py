"""``ferryman --help``, ``check`` and ``status`` import only what they need (issue 15, start-up).

Each command runs in a fresh interpreter, as a user runs it; when it exits, the probe writes
down `sys.modules`.  The assertions are about imports, never about time (bench/bench_startup.py
measures that): the protocol libraries are imported when a connection is opened, a source or
step is imported when the config names its type, and only a terminal pays for rich.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["ferryman", *sys.argv[2:]]
from ferryman.cli import main
main()
"""

LIBRARIES = ("boto3", "botocore", "paramiko", "imapclient", "psycopg", "pyzipper", "cryptography", "jinja2",
             "rich", "watchdog")
"""Third-party libraries that only running a flow (or ``check --connect``) may need."""

FOLDER_ONLY = """
[ferryman]
root = "state"

[notify.ops]
type = "log"

[flows.exports]
notify = ["ops"]
[flows.exports.source]
type = "folder"
path = "inbox"
include = ["*.zip"]
after = { move = "archive" }
[[flows.exports.steps]]
type = "unzip"
[[flows.exports.steps]]
type = "csv"
output = { delimiter = ";" }
[[flows.exports.steps]]
type = "deliver"
to = "outbox/{now:%Y-%m-%d}"

[flows.reports]
[flows.reports.source]
type = "folder"
path = "reports"
[[flows.reports.steps]]
type = "checksum"
[[flows.reports.steps]]
type = "deliver"
to = "out"
"""

EVERY_PROTOCOL = """
[ferryman]
root = "state"

[connections.mail]
type = "imap"
host = "imap.example.com"
user = "exports@example.com"
password = { env = "FERRYMAN_TEST_UNSET" }

[connections.partner]
type = "sftp"
host = "sftp.example.com"
user = "u"
key_file = "id_ed25519"

[connections.store]
type = "s3"
region = "eu-west-1"

[connections.upload]
type = "ftp"
host = "ftp.example.com"

[connections.db]
type = "postgres"
dsn = { env = "FERRYMAN_TEST_UNSET" }

[connections.smtp]
type = "smtp"
host = "smtp.example.com"

[notify.hook]
type = "webhook"
url = "https://hooks.example.com/ferryman"

[notify.mail]
type = "email"
connection = "smtp"
to = ["ops@example.com"]

[flows.itrp]
notify = ["hook", "mail"]
[flows.itrp.source]
type = "imap"
connection = "mail"
take = "link"
[[flows.itrp.steps]]
type = "download"
[[flows.itrp.steps]]
type = "zip"
password = { env = "FERRYMAN_TEST_UNSET" }
[[flows.itrp.steps]]
type = "deliver"
to = "sftp://partner/in"

[flows.bucket]
[flows.bucket.source]
type = "s3"
url = "s3://store/exports/daily"
[[flows.bucket.steps]]
type = "deliver"
to = "ftp://upload/in"

[flows.nightly]
[flows.nightly.source]
type = "schedule"
cron = "0 2 * * *"
[[flows.nightly.steps]]
type = "sql"
connection = "db"
statement = "CALL nightly()"
"""


def imported(tmp_path: Path, *args: str) -> set[str]:
    """The modules loaded by ``ferryman ARGS`` (which must succeed), run in `tmp_path`."""
    out = tmp_path / "modules.json"
    env = {**os.environ, "FERRYMAN_TEST_UNSET": "set"}  # `check` resolves every secret reference
    done = subprocess.run([sys.executable, "-c", PROBE, str(out), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert done.returncode == 0, done.stderr
    return set(json.loads(out.read_text()))


def site(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "ferryman.toml"
    config.write_text(text)
    for folder in ("inbox", "reports"):  # the watched folders: `check` looks at them
        (tmp_path / folder).mkdir(exist_ok=True)
    return config


def libraries(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in LIBRARIES)


def test_help_imports_neither_pydantic_nor_any_component(tmp_path: Path) -> None:
    modules = imported(tmp_path, "--help")
    assert libraries(modules) == []
    assert "pydantic" not in modules
    assert sorted(m for m in modules if m.startswith("ferryman.")) == [
        "ferryman.cli", "ferryman.errors", "ferryman.item", "ferryman.redact"]


@pytest.mark.parametrize("command", ["check", "status"])
def test_a_folder_config_loads_only_its_own_components(tmp_path: Path, command: str) -> None:
    config = site(tmp_path, FOLDER_ONLY)
    modules = imported(tmp_path, command, "-c", str(config))
    assert libraries(modules) == []
    ours = {m for m in modules if m.startswith("ferryman.")}
    assert {"ferryman.sources.folder.config", "ferryman.steps.unzip", "ferryman.steps.csv.config",
            "ferryman.steps.deliver", "ferryman.steps.checksum", "ferryman.notify.log"} <= ours
    unused = ["ferryman.sources.imap", "ferryman.sources.s3", "ferryman.sources.sftp", "ferryman.sources.remote",
              "ferryman.steps.download", "ferryman.steps.email", "ferryman.steps.sql", "ferryman.notify.email",
              "ferryman.notify.webhook", "ferryman.transports.sftp", "ferryman.transports.s3"]
    assert sorted(m for m in ours if m.startswith(tuple(unused))) == []
    # What validates a config is not what runs it: the folder source's watcher, csv's engine.
    assert sorted(ours & {"ferryman.sources.folder.source", "ferryman.sources.folder.watch",
                          "ferryman.steps.csv.rewrite", "ferryman.steps.csv.step"}) == []
    assert sorted(ours & {"ferryman.daemon", "ferryman.engine", "ferryman.probe", "ferryman.reference"}) == []


@pytest.mark.parametrize("command", ["check", "status"])
def test_remote_connections_load_their_models_not_their_libraries(tmp_path: Path, command: str) -> None:
    """IMAP, SFTP, S3, FTP, SMTP and PostgreSQL connections, a password zip, a webhook and an email
    notifier (its built-in templates are Jinja2): models only."""
    config = site(tmp_path, EVERY_PROTOCOL)
    modules = imported(tmp_path, command, "-c", str(config))
    assert libraries(modules) == []
    assert {"ferryman.sources.imap.config", "ferryman.sources.s3", "ferryman.steps.sql"} <= modules
    protocols = ("ferryman.transports.sftp", "ferryman.transports.ssh", "ferryman.transports.s3",
                 "ferryman.transports.ftp", "ferryman.sources.imap.client",
                 "ferryman.journal.postgres")
    assert sorted(m for m in modules if m.startswith(protocols)) == []
