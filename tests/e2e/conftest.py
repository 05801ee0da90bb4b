"""Fixtures of the end-to-end suites: the PostgreSQL journal of the journal suites, the HTTPS server,
the PIExporter-like API."""

from journal.backends import pg_backend, pg_database
from servers.https import https_server
from servers.piexporter import pi_server, pi_tls_server

__all__ = ["https_server", "pg_backend", "pg_database", "pi_server", "pi_tls_server"]
