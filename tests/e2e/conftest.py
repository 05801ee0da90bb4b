"""Fixtures of the end-to-end suites: the PostgreSQL journal of the journal suites."""

from journal.backends import pg_backend, pg_database

__all__ = ["pg_backend", "pg_database"]
