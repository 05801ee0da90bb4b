"""`ferryman init itrp`: the generated config passes `ferryman check` and means what ITRP meant."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ferryman import config as config_module
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.presets import PRESETS
from ferryman.presets.itrp import EXPORT_TYPE, render_itrp
from ferryman.steps import STEPS
from ferryman.steps.base import StepContext
from ferryman.steps.meta import MetaConfig, MetaStep
from ferryman.transports import TransportPool
from support import ferryman


def test_init_itrp_writes_a_config_that_checks(tmp_path: Path) -> None:
    done = ferryman("init", "itrp", "--export-id", "777", "--export-id", "779", "--email", "exports@example.com",
                    "--to", str(tmp_path / "out"), "--ftp", "ftp.example.com", "--ftp-dir", "my/exports.v2",
                    "--output", "f.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    unset = ferryman("check", "-c", "f.toml", cwd=tmp_path)
    assert unset.returncode == 2, "check resolves the secrets the config names"
    assert "connections.mail.password: secret: environment variable FERRYMAN_IMAP_PASSWORD is not set" in unset.stderr
    env = {**os.environ, "FERRYMAN_IMAP_PASSWORD": "pw", "FERRYMAN_FTP_PASSWORD": "pw"}
    checked = ferryman("check", "-c", "f.toml", cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "warning" not in checked.stderr           # no literal secrets, TLS checked
    assert "pw" not in checked.stdout.replace("ftp", "")

    loaded = config_module.load(tmp_path / "f.toml")
    (flow,) = loaded.config.flows.values()
    source = flow.source
    assert source.type == "imap"
    assert source.match.headers == {"X-ITRP-ExportID": ["777", "779"]}  # type: ignore[attr-defined]
    assert source.take == "link"  # type: ignore[attr-defined]
    assert source.after.move == "[Gmail]/All Mail"  # type: ignore[attr-defined]
    assert [s.type for s in flow.steps] == ["download", "unzip", "deliver", "deliver"]
    assert [getattr(s, "to", None) for s in flow.steps][2:] == [str(tmp_path / "out"), "ftp://ftp/my/exports.v2"]
    mail = loaded.config.connections["mail"]
    assert (mail.host, mail.port, mail.tls) == ("imap.gmail.com", 993, "implicit")  # type: ignore[attr-defined]
    assert mail.password.describe() == "env FERRYMAN_IMAP_PASSWORD"  # type: ignore[attr-defined]


@pytest.mark.parametrize("args, message", [
    (["--email", "a@example.com"], "--export-id"),
    (["--export-id", "777"], "--email"),
    (["--export-id", "777", "--email", "not-an-address"], "--email"),
    (["--export-id", "777", "--email", "a@example.com", "--ftp-dir", "x"], "--ftp HOST"),
])
def test_init_itrp_needs_ids_and_an_address(tmp_path: Path, args: list[str], message: str) -> None:
    done = ferryman("init", "itrp", *args, "--output", "f.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "f.toml").exists()


def test_sub_dirs_and_csv_options_validate() -> None:
    if "csv" not in STEPS:
        pytest.skip("the csv step is not registered yet")
    text = render_itrp([777], "exports@example.com", "/srv/exports", sub_dirs=True, csv_col_sep=";",
                       csv_row_sep="\r\n", csv_quote_char="'", csv_replace_newlines=True)
    import tomllib

    config = config_module.validate(tomllib.loads(text))
    (flow,) = config.flows.values()
    assert [s.type for s in flow.steps] == ["download", "unzip", "csv", "meta", "deliver"]
    assert flow.steps[-1].to == "/srv/exports/{meta.export_type}"  # type: ignore[attr-defined]
    assert flow.steps[2].output.delimiter == ";"  # type: ignore[attr-defined]


def test_no_unzip_without_csv_options() -> None:
    import tomllib

    text = render_itrp([777], "exports@example.com", unzip=False)
    config = config_module.validate(tomllib.loads(text))
    assert [s.type for s in next(iter(config.flows.values())).steps] == ["download", "deliver"]
    with pytest.raises(ValueError, match="need unzip"):
        render_itrp([777], "exports@example.com", unzip=False, csv_col_sep=";")
    assert PRESETS["itrp"] is render_itrp


@pytest.mark.parametrize("name, export_type", [
    ("20240131-people.csv", "people"), ("people.csv", "people"), ("777-2024-01-31-organizations.csv", "organizations"),
])
def test_export_type_is_the_text_after_the_last_dash(name: str, export_type: str) -> None:
    match = re.search(EXPORT_TYPE, name)
    assert match is not None and match.group("export_type") == export_type


def test_each_csv_of_a_zip_gets_its_own_export_type(tmp_path: Path) -> None:
    files = [tmp_path / "20240131-people.csv", tmp_path / "20240131-sites.csv", tmp_path / "readme.txt"]
    for path in files:
        path.write_text("x")
    flow = FlowContext(flow="t", root=tmp_path, config_dir=tmp_path, connections={},
                       transports=TransportPool({}), journal=None)  # type: ignore[arg-type]
    step = MetaStep(MetaConfig.model_validate({"type": "meta", "from_name": EXPORT_TYPE, "include": ["*.csv"]}),
                    flow)
    item = Item("i", "t", "k", "test", {}, list(files))
    result = step.run(item, StepContext(flow, item, 0, tmp_path))
    item.meta.update(result.meta)
    ctx = StepContext(flow, item, 1, tmp_path)
    assert ctx.values(files[0])["meta"].export_type == "people"
    assert ctx.values(files[1])["meta"].export_type == "sites"
    assert "export_type" not in item.meta          # the files disagree: no item-wide value


def test_init_itrp_help_names_the_config_key_of_every_option(tmp_path: Path) -> None:
    """Each option's help names where it lands, and the config written with it has it there."""
    shown = " ".join(ferryman("init", "itrp", "--help", check=True).stdout.split())
    becomes = {
        "--export-id ID": 'the imap source\'s match.headers."X-ITRP-ExportID" list',
        "--email ADDRESS": "[connections.mail] user",
        "--to FOLDER": "the first deliver step's to",
        "--ftp HOST": "[connections.ftp] host and a second deliver step",
        "--ftp-dir DIR": 'that second deliver step\'s to = "ftp://ftp/DIR"',
    }
    import click

    from ferryman.cli import init

    template_options = {o.opts[0] for o in init.params
                        if isinstance(o, click.Option) and "itrp:" in (o.help or "")}  # cioc has its own
    assert template_options == {option.split()[0] for option in becomes}   # every option is in the table
    for option, key in becomes.items():
        assert option in shown and f"becomes {key}" in shown, option
    assert "ca_file" in shown                         # and where the rest is

    ferryman("init", "itrp", "--export-id", "777", "--export-id", "779", "--email", "me@example.com",
             "--to", "/srv/in", "--ftp", "ftp.example.com", "--ftp-dir", "drop/here", "-o", "f.toml",
             cwd=tmp_path, check=True)
    (flow,) = config_module.load(tmp_path / "f.toml").config.flows.values()
    connections = config_module.load(tmp_path / "f.toml").config.connections
    assert flow.source.match.headers == {"X-ITRP-ExportID": ["777", "779"]}  # type: ignore[attr-defined]
    assert connections["mail"].user == "me@example.com"  # type: ignore[union-attr]
    delivers = [s for s in flow.steps if s.type == "deliver"]
    assert delivers[0].to == "/srv/in"  # type: ignore[attr-defined]
    assert connections["ftp"].host == "ftp.example.com"  # type: ignore[union-attr]
    assert delivers[1].to == "ftp://ftp/drop/here"  # type: ignore[attr-defined]


def test_init_itrp_shows_ca_file_for_a_corporate_tls_proxy(tmp_path: Path) -> None:
    text = render_itrp([777], "exports@example.com")
    (line,) = [line for line in text.splitlines() if "ca_file" in line]
    assert line.startswith("# ca_file = ")
    assert "corporate TLS proxy" in text
    # Uncommented, it is the download step's ca_file.
    import tomllib

    config = config_module.validate(tomllib.loads(text.replace(line, line.removeprefix("# "))))
    (flow,) = config.flows.values()
    (download,) = [s for s in flow.steps if s.type == "download"]
    assert download.ca_file == "/usr/local/share/ca-certificates/corporate-proxy-ca.pem"  # type: ignore[attr-defined]
    doc = (Path(__file__).parents[2] / "docs" / "migrating-from-itrp.md").read_text()
    assert "## Behind a corporate TLS proxy" in doc and 'ca_file = "/usr/local/share/ca-certificates/' in doc
