"""``sftp``: files dropped on an SFTP server, polled (see `ferryman.sources.remote`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ferryman.sources.remote import RemoteSource, RemoteSourceConfig


class SftpSourceConfig(RemoteSourceConfig):
    """Files in a folder on an SFTP server, downloaded when complete, disposed of after success."""

    type: Literal["sftp"] = Field(description="Files on an SFTP server: url = 'sftp://CONNECTION/path'.")


class SftpSource(RemoteSource[SftpSourceConfig]):
    Config = SftpSourceConfig
