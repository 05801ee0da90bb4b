"""``sql_export``: tables of a PostgreSQL database as a portable SQLite file or CSV files (CIOC's downloads)."""

from ferryman.steps.tables.config import SqlExportConfig
from ferryman.steps.tables.step import SqlExportStep

__all__ = ["SqlExportConfig", "SqlExportStep"]
