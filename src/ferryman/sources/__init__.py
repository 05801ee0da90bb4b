"""Sources by ``type``.  Adding one: a module here and a line in `SOURCES`.

An entry is ``"module:Class"``, imported the first time a config names its type; a source
in a sub-package adds its config model, ``("package:Class", "package:ConfigModel")``, so that
``check`` and ``status`` import only its ``config`` module (`ferryman.registry`).
"""

from __future__ import annotations

from typing import Any

from ferryman.registry import Registry
from ferryman.sources.base import Source, SourceConfig

SOURCES: Registry[type[Source[Any]]] = Registry({
    "folder": ("ferryman.sources.folder:FolderSource", "ferryman.sources.folder:FolderSourceConfig"),
    "sftp": "ferryman.sources.sftp:SftpSource",
    "ftp": "ferryman.sources.ftp:FtpSource",
    "s3": "ferryman.sources.s3:S3Source",
    "imap": ("ferryman.sources.imap:ImapSource", "ferryman.sources.imap:ImapSourceConfig"),
    "schedule": ("ferryman.sources.schedule:ScheduleSource", "ferryman.sources.schedule:ScheduleSourceConfig"),
    "http": "ferryman.sources.http:HttpSource",
})
"""Every source type, by its config ``type`` key."""

__all__ = ["SOURCES", "Source", "SourceConfig"]
