"""``sql_export`` against a PostgreSQL cluster that checks passwords (SCRAM): a wrong password fails
at once and is never shown.  The cluster fixture (tests/servers/pg_password.py) comes with the
pg_dump step; without it this module is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.errors import PermanentError

pg_password_module = pytest.importorskip("servers.pg_password", reason="the SCRAM cluster fixture is not here yet")
pg_password = pg_password_module.pg_password


def test_a_wrong_password_fails_at_once_and_is_never_shown(pg_password: object, tmp_path: Path) -> None:
    from psycopg.conninfo import make_conninfo

    from steps.test_sql_export import export

    wrong = "not-the-Password-42"
    with pytest.raises(PermanentError) as caught:
        export(tmp_path, {}, dsn=make_conninfo(pg_password.dsn, password=wrong))  # type: ignore[attr-defined]
    assert "password authentication failed" in str(caught.value)
    assert wrong not in str(caught.value) and "\n" not in str(caught.value)


def test_the_right_password_exports(pg_password: object, tmp_path: Path) -> None:
    import psycopg
    from psycopg.conninfo import make_conninfo

    from steps.test_sql_export import export

    dsn = make_conninfo(pg_password.dsn, password=pg_password_module.PASSWORD)  # type: ignore[attr-defined]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pw_check (id int)")
    result = export(tmp_path, {"tables": ["pw_check"]}, dsn=dsn)
    assert result.outputs["tables"] == {"pw_check": 0}
