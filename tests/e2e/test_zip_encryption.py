"""``zip`` with ``encryption = "zipcrypto"`` end to end: the real `ferryman` command packs and
delivers, Info-ZIP ``unzip -P`` opens the result, and the password shows nowhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support import ferryman, require_binary

PASSWORD = "public-Zip-pw-2026"


def write_config(folder: Path, encryption: str) -> Path:
    config = folder / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"

[flows.cioc.source]
type = "folder"
path = "in"
after = "keep"

[[flows.cioc.steps]]
type = "zip"
name = "{{stem}}.zip"
password = {{ env = "CIOC_ZIP_PASSWORD" }}
encryption = "{encryption}"

[[flows.cioc.steps]]
type = "deliver"
to = "out"
""")
    (folder / "in").mkdir(exist_ok=True)
    return config


def test_a_zipcrypto_archive_opens_with_info_zip_unzip(tmp_path: Path) -> None:
    unzip = require_binary("unzip")
    config = write_config(tmp_path, "zipcrypto")
    (tmp_path / "in" / "volunteers.csv").write_text("id,name\n1,Ann\n" * 500)
    env = {"CIOC_ZIP_PASSWORD": PASSWORD}
    done = ferryman("run", "--once", "-v", "-c", str(config), env=env, check=True)
    archive = tmp_path / "out" / "volunteers.zip"
    assert archive.exists()
    opened = subprocess.run([unzip, "-P", PASSWORD, "-p", str(archive), "volunteers.csv"],
                            capture_output=True, check=False)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == (tmp_path / "in" / "volunteers.csv").read_bytes()
    listed = ferryman("history", "--json", "-c", str(config), check=True)
    shown = done.stdout + done.stderr + listed.stdout
    assert '"encryption": "zipcrypto"' in listed.stdout
    assert PASSWORD not in shown
    assert PASSWORD.encode() not in (tmp_path / "state" / "journal.db").read_bytes()


def test_check_refuses_zip_only_keys_on_gunzip_and_a_bad_encryption(tmp_path: Path) -> None:
    config = write_config(tmp_path, "des")
    bad = ferryman("check", "-c", str(config), env={"CIOC_ZIP_PASSWORD": PASSWORD})
    assert bad.returncode == 2 and "encryption" in bad.stderr and "'aes256' or 'zipcrypto'" in bad.stderr
    config.write_text(config.read_text().replace('type = "zip"\nname = "{stem}.zip"', 'type = "gunzip"')
                      .replace('encryption = "des"\n', ""))
    gunzip = ferryman("check", "-c", str(config), env={"CIOC_ZIP_PASSWORD": PASSWORD})
    assert gunzip.returncode == 2 and "password" in gunzip.stderr and "unknown key" in gunzip.stderr, gunzip.stderr
