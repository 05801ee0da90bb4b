"""Server fixtures for the transport tests (the servers live in tests/servers/)."""

from servers.sshd import fresh_sshd, sshd

__all__ = ["fresh_sshd", "sshd"]
