"""Sources by ``type``.  Adding one: a module here and a line in `SOURCES`."""

from __future__ import annotations

from typing import Any

from ferryman.sources.base import Source, SourceConfig
from ferryman.sources.folder import FolderSource
from ferryman.sources.ftp import FtpSource
from ferryman.sources.http import HttpSource
from ferryman.sources.imap import ImapSource
from ferryman.sources.s3 import S3Source
from ferryman.sources.schedule import ScheduleSource
from ferryman.sources.sftp import SftpSource

SOURCES: dict[str, type[Source[Any]]] = {
    "folder": FolderSource,
    "sftp": SftpSource,
    "ftp": FtpSource,
    "s3": S3Source,
    "imap": ImapSource,
    "schedule": ScheduleSource,
    "http": HttpSource,
}
"""Every source type, by its config ``type`` key."""

__all__ = ["SOURCES", "Source", "SourceConfig"]
