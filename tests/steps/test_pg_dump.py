"""``pg_dump`` against the real PostgreSQL: formats verified with pg_restore, the password only in a
0600 passfile (a SCRAM cluster of its own tells right from wrong), and the failures."""

from __future__ import annotations

import itertools
import json
import secrets
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from ferryman.config import AnyStep
from ferryman.connections import ConnectionConfig, PostgresConnection
from ferryman.errors import PermanentError, TransientError
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.steps import STEPS, StepContext, StepResult
from ferryman.steps.backup.pg_dump import passfile_line
from ferryman.transports import TransportPool
from journal.backends import PG_ADDRESS
from servers.pg_password import PASSWORD, USER, PasswordPostgres, pg_password
from support import free_port, require_binary, unavailable

__all__ = ["pg_password"]
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of its own on the test server, with a table of 1,000 rows."""
    import psycopg

    require_binary("pg_dump")
    try:
        admin = psycopg.connect(PG_ADDRESS, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {PG_ADDRESS} is not reachable: {exc}")
        raise
    name = f"ferryman_dump_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with psycopg.connect(PG_ADDRESS, dbname=name, autocommit=True) as conn:
                conn.execute("CREATE TABLE people (id int PRIMARY KEY, name text)")
                conn.execute("INSERT INTO people SELECT g, 'person ' || g FROM generate_series(1, 1000) g")
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(config: dict[str, Any], tmp: Path, conn: dict[str, Any], meta: dict[str, str] | None = None) -> StepResult:
    model = TypeAdapter(AnyStep).validate_python({"type": "pg_dump", "connection": "db", **config})
    connections: dict[str, ConnectionConfig] = {"db": PostgresConnection.model_validate({"type": "postgres",
                                                                                        **conn})}
    flow = FlowContext(flow="t", root=tmp / "root", config_dir=tmp, connections=connections,
                       transports=TransportPool(connections), journal=None)  # type: ignore[arg-type]
    step = STEPS["pg_dump"](model, flow)
    item = Item(id=f"i{next(_ids)}", flow="t", key="k", origin="test", meta=dict(meta or {}), files=[])
    work = tmp / "work" / item.id
    result = step.run(item, StepContext(flow=flow, item=item, index=0, work_dir=work))
    assert result is not None
    return result


@pytest.mark.parametrize("fmt, suffix", [("custom", ".dump"), ("tar", ".tar"), ("plain", ".sql"),
                                         ("directory-tar", ".tar")])
def test_formats_are_dumped_and_verified(database: str, tmp_path: Path, fmt: str, suffix: str) -> None:
    done = run({"format": fmt, "database": "{meta.each}", "jobs": 2}, tmp_path, {"dsn": PG_ADDRESS},
               meta={"each": database})
    (dump,) = done.files or []
    assert dump.name.startswith(f"{database}_") and dump.suffix == suffix
    assert done.meta == {"database": database}
    assert done.outputs["exit"] == 0 and done.outputs["bytes"] == dump.stat().st_size
    if fmt == "plain":
        assert done.outputs["verified"] == "plain dump complete"
        assert "COPY public.people" in dump.read_text()
        return
    assert done.outputs["verified"].startswith("pg_restore --list: ")
    target = dump
    if fmt == "directory-tar":
        with tarfile.open(dump) as tar:
            tar.extractall(tmp_path / "x", filter="data")
        target = tmp_path / "x" / dump.stem
    listing = subprocess.run(["pg_restore", "--list", str(target)], capture_output=True, text=True, check=True)
    assert "TABLE DATA public people" in listing.stdout


def test_name_template_and_extra_args(database: str, tmp_path: Path) -> None:
    done = run({"database": database, "name": "{meta.database}_{now:%A}.dump",
                "extra_args": ["--schema-only"]}, tmp_path, {"dsn": PG_ADDRESS})
    (dump,) = done.files or []
    listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True)
    assert "TABLE DATA" not in listing.stdout and "TABLE public people" in listing.stdout


def _spy(tmp: Path) -> Path:
    """A pg_dump that records its argv, its environment and its passfile's mode, then runs the real one."""
    real = require_binary("pg_dump")
    spy = tmp / "bin" / "pg_dump"
    spy.parent.mkdir()
    (spy.parent / "pg_restore").symlink_to(require_binary("pg_restore"))
    spy.write_text(f"""#!/usr/bin/env python3
import json, os, stat, sys
passfile = os.environ.get("PGPASSFILE")
mode = oct(stat.S_IMODE(os.stat(passfile).st_mode)) if passfile else None
json.dump({{"argv": sys.argv, "env": dict(os.environ), "mode": mode}}, open({str(tmp / "spy.json")!r}, "w"))
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
""")
    spy.chmod(0o755)
    return spy


def test_the_password_goes_only_into_a_0600_passfile(pg_password: PasswordPostgres, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a DSN URL holding the password, and through a separate `password` reference."""
    import psycopg

    with psycopg.connect(pg_password.dsn, password=PASSWORD, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x int)")
    spy = _spy(tmp_path)
    monkeypatch.setenv("PGPASSWORD", "inherited-not-for-children")
    monkeypatch.setenv("DUMP_PW", PASSWORD)
    from urllib.parse import quote

    url = f"postgresql://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{pg_password.port}/postgres"
    for conn in ({"dsn": pg_password.dsn, "password": {"env": "DUMP_PW"}}, {"dsn": url}):
        done = run({"pg_dump": str(spy)}, tmp_path, conn)
        seen = json.loads((tmp_path / "spy.json").read_text())
        assert not any(PASSWORD in arg or "s3cret" in arg for arg in seen["argv"])
        assert "PGPASSWORD" not in seen["env"] and seen["mode"] == "0o600"
        assert not Path(seen["env"]["PGPASSFILE"]).exists()  # deleted after the run
        assert "s3cret" not in json.dumps(done.outputs)
        assert done.outputs["verified"].startswith("pg_restore --list")


def test_passfile_escapes() -> None:
    assert passfile_line("a:b\\c") == "*:*:*:*:a\\:b\\\\c\n"


def test_a_wrong_password_fails_and_is_never_shown(pg_password: PasswordPostgres, tmp_path: Path) -> None:
    wrong = "wrong-Pa55word"
    with pytest.raises(PermanentError) as raised:
        run({}, tmp_path, {"dsn": pg_password.dsn, "password": wrong})
    message = str(raised.value)
    assert message.startswith("pg_dump postgres exited with 1: ")
    assert f'password authentication failed for user "{USER}"' in message
    assert wrong not in message and not list((tmp_path / "root").glob(".pgpass-*"))


def test_an_unknown_database(database: str, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r'pg_dump nope_[0-9a-f]+ exited with 1: .*database "nope_[0-9a-f]+" '
                       "does not exist"):
        run({"database": f"nope_{secrets.token_hex(3)}"}, tmp_path, {"dsn": PG_ADDRESS})


def test_no_server_is_retried(tmp_path: Path) -> None:
    with pytest.raises(TransientError, match=r"exited with 1: .*(Connection refused|could not connect)"):
        run({}, tmp_path, {"dsn": f"host=127.0.0.1 port={free_port()} user=x dbname=x connect_timeout=3"})


def test_pg_dump_missing(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"pg_dump: program '/nowhere/pg_dump' not found \(install "
                       "postgresql-client"):
        run({"pg_dump": "/nowhere/pg_dump"}, tmp_path, {"dsn": PG_ADDRESS})


def test_a_dump_that_pg_restore_cannot_read_fails(database: str, tmp_path: Path) -> None:
    """A pg_dump that exits 0 but leaves a broken archive (a faulty disk, a wrapper gone wrong)."""
    fake = tmp_path / "bin" / "pg_dump"
    fake.parent.mkdir()
    (fake.parent / "pg_restore").symlink_to(require_binary("pg_restore"))
    fake.write_text("#!/bin/sh\nfor a; do case $a in --file=*) printf 'PGDMPjunk' > \"${a#--file=}\";; esac; done\n")
    fake.chmod(0o755)
    with pytest.raises(TransientError, match=r"pg_restore --list cannot read the dump: "):
        run({"database": database, "pg_dump": str(fake)}, tmp_path, {"dsn": PG_ADDRESS})


def test_a_full_disk(database: str, tmp_path: Path) -> None:
    """ENOSPC during the dump: a 64 KiB tmpfs holds the work folder (needs mount, i.e. root)."""
    work = tmp_path / "tiny"
    work.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(work)], capture_output=True)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        import psycopg

        with psycopg.connect(PG_ADDRESS, dbname=database, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS filler AS "
                         "SELECT g, md5(g::text) AS h FROM generate_series(1, 20000) g")
        with pytest.raises(TransientError, match=r"exited with 1: .*No space left on device"):
            run({"database": database, "format": "plain"}, work, {"dsn": PG_ADDRESS})
    finally:
        subprocess.run(["umount", str(work)], check=False)


@pytest.mark.parametrize("config, message", [
    ({"format": "zip"}, "'custom', 'directory-tar', 'tar' or 'plain'"),
    ({"extra_args": ["--file=/etc/x"]}, "may not set --file"),
    ({"extra_args": ["-F", "c"]}, "may not set -F"),
    ({"database": "{nope}"}, "nope"),
    ({"jobs": 0}, "greater than or equal to 1"),
])
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(AnyStep).validate_python({"type": "pg_dump", "connection": "db", **config})


def test_the_sql_step_takes_the_connection_password_too(pg_password: PasswordPostgres, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUMP_PW", PASSWORD)
    model = TypeAdapter(AnyStep).validate_python({"type": "sql", "connection": "db", "statement": "SELECT 1"})
    connections: dict[str, ConnectionConfig] = {"db": PostgresConnection.model_validate(
        {"type": "postgres", "dsn": pg_password.dsn, "password": {"env": "DUMP_PW"}})}
    flow = FlowContext(flow="t", root=tmp_path, config_dir=tmp_path, connections=connections,
                       transports=TransportPool(connections), journal=None)  # type: ignore[arg-type]
    item = Item(id="i", flow="t", key="k", origin="test", meta={}, files=[])
    done = STEPS["sql"](model, flow).run(item, StepContext(flow=flow, item=item, index=0, work_dir=tmp_path / "w"))
    assert done is not None and done.outputs["rows_returned"] == 1
