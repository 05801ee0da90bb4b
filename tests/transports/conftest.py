"""Server fixtures for the transport tests (the servers live in tests/servers/)."""

from servers.ftp import fresh_ftp_server, ftp_plain_server, ftp_server, ftps_implicit_server
from servers.sshd import fresh_sshd, sshd

__all__ = ["fresh_ftp_server", "fresh_sshd", "ftp_plain_server", "ftp_server", "ftps_implicit_server",
           "sshd"]
