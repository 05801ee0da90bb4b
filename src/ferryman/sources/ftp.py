"""``ftp``: files dropped on an FTP/FTPS server, polled (see `ferryman.sources.remote`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ferryman.sources.remote import RemoteSource, RemoteSourceConfig


class FtpSourceConfig(RemoteSourceConfig):
    """Files in a folder on an FTP or FTPS server, downloaded when complete, disposed of after success."""

    type: Literal["ftp"] = Field(description="Files on an FTP/FTPS server: url = 'ftp://CONNECTION/path'.")


class FtpSource(RemoteSource[FtpSourceConfig]):
    Config = FtpSourceConfig
