"""`ferryman init cioc`: the generated config passes `ferryman check` and has the example's flows."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman import config as config_module
from support import ferryman


def test_init_cioc_writes_a_config_that_checks(tmp_path: Path) -> None:
    done = ferryman("init", "cioc", "--database", "cioc_x", "--database", "cioc_y", "--email", "it@cioc.example.org",
                    "--to", "/srv/downloads", "--logs", "/srv/logs", "--output", "f.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    checked = ferryman("check", "-c", "f.toml", cwd=tmp_path, env={
        "CIOC_DSN": "postgresql://x@127.0.0.1/x", "CIOC_ZIP_PASSWORD": "pw", "CIOC_SMTP_PASSWORD": "pw"})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "warning" not in checked.stderr  # no literal secrets

    loaded = config_module.load(tmp_path / "f.toml").config
    downloads, logs = loaded.flows["downloads"], loaded.flows["log-errors"]
    assert downloads.source.for_each == ["cioc_x", "cioc_y"]  # type: ignore[attr-defined]
    assert [s.type for s in downloads.steps] == ["sql_export", "zip", "deliver"]
    assert downloads.steps[2].to == "/srv/downloads/{meta.each}"  # type: ignore[attr-defined]
    assert downloads.steps[1].password.describe() == "env CIOC_ZIP_PASSWORD"  # type: ignore[attr-defined]
    assert [s.type for s in logs.steps] == ["log_scan", "email"]
    assert logs.steps[0].paths == ["/srv/logs/*/*.log"]  # type: ignore[attr-defined]
    assert logs.steps[1].to == ["it@cioc.example.org"]  # type: ignore[attr-defined]
    assert 'type = "compress_old"' in (tmp_path / "f.toml").read_text()  # the log-compression flow


@pytest.mark.parametrize(("args", "message"), [
    (["--email", "a@x.org, b@y.org"], "is not one plain address"),
    (["--database", "a\"b"], "is not a database name"),
    (["--export-id", "1"], "template 'cioc' takes no --export-id"),
])
def test_init_cioc_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    done = ferryman("init", "cioc", *args, "--output", "f.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "f.toml").exists()
