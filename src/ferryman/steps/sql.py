"""``sql``: run a statement (or a stored procedure) on a ``postgres`` connection.

For scheduled maintenance, such as CIOC's nightly procedure:
``statement = "CALL nightly_maintenance(%(db)s)"``, with ``params = { db = "{meta.each}" }``.

- The statement is fixed text. Values reach it only as ``params``: templates rendered per
  item and passed to psycopg as query parameters, never pasted into the SQL.
- ``database`` (a template) picks the database on the connection's server.
- The rows affected or returned are journaled in the step's outputs.
- The connection string is a secret. Errors name the server's message, never the DSN.
- A lost connection is retried; an SQL error fails the item.
- The step's ``timeout`` is also the statement's (``statement_timeout``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ferryman import templates
from ferryman.connections import PostgresConnection
from ferryman.errors import PermanentError, TransientError
from ferryman.item import Item
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult


class SqlConfig(StepConfig):
    """Run one SQL statement on a PostgreSQL database, in one transaction."""

    type: Literal["sql"]
    connection: str = Field(description="Name of a [connections.NAME] of type postgres.")
    database: templates.Template | None = Field(
        None, description="Database to connect to (a template, e.g. '{meta.each}'); default: the connection's own.")
    statement: str = Field(description="The SQL, e.g. 'CALL nightly_maintenance()'; values only through "
                           "params (%(name)s placeholders).")
    params: dict[str, str] = Field(default_factory=dict, description="name → template of each %(name)s "
                                   "parameter, e.g. { db = '{meta.each}' }.")

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, str]) -> dict[str, str]:
        for template in value.values():
            templates.check(template)
        return value

    @field_validator("statement")
    @classmethod
    def _statement(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the statement is empty")
        return value


class SqlStep(Step[SqlConfig]):
    """Runs the statement once per item; the item's files pass through."""

    Config = SqlConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        import psycopg

        values = ctx.values()
        params = {name: templates.render(t, values) for name, t in self.config.params.items()}
        dsn, extra = connect_args(self.flow, self.config.connection, self.config.database, self.config.timeout,
                                  values)
        try:
            with psycopg.connect(dsn, **extra) as conn, conn.cursor() as cursor:
                cursor.execute(self.config.statement, params or None)
                returned = len(cursor.fetchall()) if cursor.description is not None else None
                affected = cursor.rowcount if cursor.rowcount >= 0 else None
        except psycopg.OperationalError as exc:
            raise TransientError(f"postgres {self.config.connection}: {server_message(exc)}") from None
        except psycopg.Error as exc:
            raise PermanentError(f"postgres {self.config.connection}: {server_message(exc)}") from None
        outputs: dict[str, Any] = {"statement": " ".join(self.config.statement.split())[:200]}
        if returned is not None:
            outputs["rows_returned"] = returned
        elif affected is not None:
            outputs["rows_affected"] = affected
        return StepResult(outputs=outputs)


def connect_args(flow: Any, connection: str, database: str | None, timeout: float | None,
                 values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The dsn and libpq keywords of a ``postgres`` connection for one item: its separate
    ``password`` handed to libpq directly (never put into a string), the rendered ``database``,
    a statement timeout."""
    conn_config = flow.connection(connection, "postgres")
    assert isinstance(conn_config, PostgresConnection)
    extra: dict[str, Any] = {"connect_timeout": 10}
    if conn_config.password is not None:
        extra["password"] = conn_config.password.reveal()
    if database:
        extra["dbname"] = templates.render(database, values)
    if timeout:
        extra["options"] = f"-c statement_timeout={int(timeout * 1000)}"
    return conn_config.dsn.reveal(), extra


def server_message(exc: Exception) -> str:
    """The server's message, first line: psycopg's connection errors hold no DSN, but say 'connection
    to server at …' with the address, which is fine to show."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
