"""`ferryman init backup`: the generated config checks, and runs a night on the real PostgreSQL."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from journal.backends import PG_ADDRESS
from support import ferryman, require_binary, unavailable


def test_init_backup_checks_and_runs(tmp_path: Path) -> None:
    import psycopg

    require_binary("pg_dump")
    done = ferryman("init", "backup", "--to", str(tmp_path / "bu"), "-o", "f.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    env = {"BACKUP_PG_DSN": PG_ADDRESS}
    checked = ferryman("check", "-c", "f.toml", cwd=tmp_path, env=env)
    assert checked.returncode == 0 and "warning" not in checked.stderr, checked.stdout + checked.stderr
    try:
        admin = psycopg.connect(PG_ADDRESS, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {PG_ADDRESS} is not reachable: {exc}")
        raise
    name = f"ferryman_init_{secrets.token_hex(3)}"
    config = tmp_path / "f.toml"
    config.write_text(config.read_text().replace('for_each = ["mydb"]', f'for_each = ["{name}"]'))
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            ran = ferryman("run", "--once", "--now", "-c", "f.toml", cwd=tmp_path, env=env)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (dump,) = (tmp_path / "bu" / name).iterdir()
    assert dump.name.startswith(f"{name}_") and dump.suffix == ".dump"
    (item,) = json.loads(ferryman("history", "--json", "-c", "f.toml", cwd=tmp_path, env=env, check=True).stdout)
    prune = next(s for s in item["steps"] if s["name"] == "prune local")
    assert prune["outputs"]["deleted"] == [] and prune["outputs"]["kept"][dump.name].startswith("daily ")


def test_init_backup_refuses_other_options(tmp_path: Path) -> None:
    done = ferryman("init", "backup", "--email", "a@example.com", "-o", "f.toml", cwd=tmp_path)
    assert done.returncode == 2 and "takes no --email" in done.stderr
