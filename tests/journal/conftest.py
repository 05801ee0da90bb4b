"""Fixtures of the journal suites (defined in backends.py)."""

from journal.backends import backend, pg_backend, pg_database

__all__ = ["backend", "pg_backend", "pg_database"]
