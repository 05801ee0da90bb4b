"""The PIExporter flow of the end-to-end suites: a config against a `PiServer`, and readers of
what it leaves behind (CSV rows, raw backups)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from servers.piexporter import USER, PiServer


def write_config(folder: Path, server: PiServer, *, delete: bool = True, extra_source: str = "",
                 padding: str = "pkcs1v15", on_error: str = "keep", batch: int = 50, every: str = "1s",
                 flow_extra: str = "", steps: str | None = None) -> Path:
    """`folder`/ferryman.toml: the PIExporter preset's shape, pointed at `server`."""
    (folder / "pass").write_text(server.password + "\n")
    config = folder / "ferryman.toml"
    ca = f'ca_file = "{server.cert}"\n' if server.cert else ""
    default_steps = f"""
[[flows.pi.steps]]
type = "decrypt_fields"
fields = ["*RSA"]
key = {{ file = "{server.key_file}" }}
padding = "{padding}"
on_error = "{on_error}"

[[flows.pi.steps]]
type = "append_csv"
to = "csv"
"""
    config.write_text(f"""
[ferryman]
root = "state"
grace = "1s"

[connections.pi]
type = "http"
base_url = "{server.base_url}"
auth = {{ basic = {{ user = "{USER}", password = {{ file = "{folder / 'pass'}" }} }} }}
timeout = "5s"
{ca}
[flows.pi]
retry = {{ attempts = 3, delay = "100ms" }}
{flow_extra}

[flows.pi.source]
type = "http"
connection = "pi"
every = "{every}"
collections = {{ list = "" }}
records = {{ since_param = "greaterThan" }}
raw_dir = "raw_data"
delete = {"true" if delete else "false"}
batch = {batch}
{extra_source}
{steps if steps is not None else default_steps}
""")
    return config


def csv_rows(folder: Path) -> dict[str, list[dict[str, str]]]:
    """Rows of every CSV in `folder`/csv, by file name."""
    found = {}
    for path in sorted((folder / "csv").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            found[path.name] = list(csv.DictReader(f))
    return found


def all_rows(folder: Path) -> list[dict[str, str]]:
    return [row for rows in csv_rows(folder).values() for row in rows]


def raw_records(folder: Path) -> list[dict[str, Any]]:
    """Every record of every raw backup."""
    found = []
    for path in sorted((folder / "raw_data").glob("*.json")):
        found += json.loads(path.read_text())
    return found
