"""Fixtures of the end-to-end suites: the PostgreSQL journal of the journal suites, the HTTPS server."""

from journal.backends import pg_backend, pg_database
from servers.https import https_server

__all__ = ["https_server", "pg_backend", "pg_database"]
