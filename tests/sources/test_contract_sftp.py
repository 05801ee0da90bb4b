"""The `SourceContract` for the ``sftp`` source, against a real OpenSSH sshd (one per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.sshd import SshServer, sshd
from sources.contract import DiskRemotePlace, Place, SourceContract

__all__ = ["sshd"]


@pytest.fixture
def place(sshd: SshServer, tmp_path: Path) -> Iterator[Place]:
    # sshd runs on this machine: a local folder is also the remote one (absolute path).
    drop = DiskRemotePlace("sftp", sshd.connection(), str(tmp_path / "drop"), tmp_path / "drop", tmp_path)
    yield drop
    drop.close()


class TestSftpSourceContract(SourceContract):
    pass
