"""`SqlExportConfig` and the `where` conditions made into parameterized SQL (the bottom of ``sql_export``)."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ferryman import templates
from ferryman.steps.base import StepConfig

TABLE_FIELDS = (*templates.FIELDS, "table")


@dataclass(frozen=True)
class Condition:
    """A ``where`` condition split for psycopg: `sql` with ``%s`` placeholders (a literal ``%`` doubled)
    and the templates of their values, in order.  The condition's text is the config author's SQL;
    a template in it (``{meta.each}``) becomes a query parameter, never text pasted into the SQL."""

    sql: str
    values: tuple[str, ...]


def condition(text: str) -> Condition:
    """Split `text`; `ValueError` for a template inside quotes (it would be a literal, not a value)."""
    sql: list[str] = []
    values: list[str] = []
    quoted = False
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"where {text!r}: {exc}") from None
    for literal, field, spec, conversion in parsed:
        sql.append(literal.replace("%", "%%"))
        quoted ^= literal.count("'") % 2 == 1
        if field is None:
            continue
        if quoted:
            raise ValueError(f"where {text!r}: write {{{field}}} without quotes around it; it is sent as a "
                             "query parameter, not pasted into the SQL")
        template = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        templates.check(template)
        sql.append("%s")
        values.append(template)
    return Condition("".join(sql), tuple(values))


class SqlExportConfig(StepConfig):
    """Dump chosen tables of a PostgreSQL database to one portable SQLite file, or one CSV per table."""

    type: Literal["sql_export"]
    connection: str = Field(description="Name of a [connections.NAME] of type postgres.")
    database: templates.Template | None = Field(
        None, description="Database to export (a template, e.g. '{meta.each}'); default: the connection's own.")
    schema_: str = Field("public", alias="schema", description="The schema whose tables are exported.")
    tables: list[str] = Field(default_factory=lambda: ["*"], min_length=1,
                              description="fnmatch patterns of the tables to export, e.g. ['vol_*', 'cic_*'].")
    skip_tables: list[str] = Field(default_factory=list, description="fnmatch patterns of tables left out, "
                                   "e.g. ['*_history', 'tmp_*'].")
    skip_columns: dict[str, list[str]] = Field(
        default_factory=dict, description="Table pattern → column patterns left out, e.g. "
        "{ '*' = ['password*'], 'users' = ['email'] }; every pattern that matches a table counts.")
    where: dict[str, str] = Field(
        default_factory=dict, description="Table pattern → SQL condition; the first pattern that matches a "
        "table wins, e.g. { 'members' = 'member_id = {meta.member}' }. Templates in a condition are sent as "
        "query parameters. A pattern matching no exported table fails the item (a typo must not export "
        "every row).")
    format: Literal["sqlite", "csv"] = Field("sqlite", description="One SQLite file, or one CSV per table "
                                             "(with a header line).")
    name: str | None = Field(None, description="Name of the SQLite file (default '{flow}.sqlite'), or of each "
                             "CSV, which must hold {table} (default '{table}.csv').")
    batch_rows: int = Field(5000, ge=1, description="Rows fetched from the server-side cursor at a time "
                            "(memory stays at one batch whatever the table's size).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None:
            templates.check(value, TABLE_FIELDS)
        return value

    @model_validator(mode="after")
    def _csv_names(self) -> SqlExportConfig:
        if self.format == "csv" and self.name is not None and "{table" not in self.name:
            raise ValueError(f"name {self.name!r}: with format = 'csv' every table has its file, so the name "
                             "must hold {table}")
        return self

    @field_validator("where")
    @classmethod
    def _where(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            condition(text)
        return value

    def file_name(self) -> str:
        """The name template of the file(s) written."""
        return self.name or ("{table}.csv" if self.format == "csv" else "{flow}.sqlite")
